"""The GPUStack install commands (checks/install.py): the shape GPUStack's UI gives, and quoting of every value."""

import shlex

import pytest

from checks.install import TOKEN_PLACEHOLDER, server_command, worker_command


def _argv(text: str) -> list[str]:
    return shlex.split(text.replace(" \\\n    ", " "))


def test_nvidia_worker_whose_runtime_is_not_the_default_gets_runtime_nvidia():
    # when: Docker's default runtime is runc (recorded `docker info` of an A30 host)
    command = worker_command(tag="v2.0.0", server_url="http://10.0.0.1", vendor="nvidia", default_runtime="runc")
    # then
    argv = _argv(command.text)
    assert argv[argv.index("--runtime") + 1] == "nvidia" and command.runtime == "nvidia"
    assert argv[:4] == ["sudo", "docker", "run", "-d"] and "gpustack/gpustack:v2.0.0" in argv
    assert argv[argv.index("--server-url") + 1] == "http://10.0.0.1"
    assert "GPUSTACK_RUNTIME_DEPLOY_MIRRORED_NAME=gpustack-worker" in argv and "--privileged" in argv
    assert "/var/run/docker.sock:/var/run/docker.sock" in argv and "gpustack-data:/var/lib/gpustack" in argv


def test_nvidia_worker_whose_default_runtime_is_nvidia_needs_no_runtime_flag():
    command = worker_command(tag="v2.0.0", server_url="http://10.0.0.1", vendor="nvidia", default_runtime="nvidia")
    assert "--runtime" not in _argv(command.text) and command.runtime == ""


def test_amd_worker_mounts_rocm_read_only_and_names_its_runtime():
    command = worker_command(tag="v2.0.0", server_url="https://gs.example", vendor="amd", default_runtime="runc")
    argv = _argv(command.text)
    assert argv[argv.index("/opt/rocm:/opt/rocm:ro") - 1] == "--volume"
    assert argv[argv.index("--runtime") + 1] == "amd"


@pytest.mark.parametrize(
    ("vendor", "mounts", "runtime"),
    [
        ("hygon", ["/opt/hyhal:/opt/hyhal:ro", "/opt/dtk:/opt/dtk:ro"], None),
        ("iluvatar", ["/usr/local/corex:/usr/local/corex:ro"], "iluvatar"),
        ("metax", ["/opt/mxdriver:/opt/mxdriver:ro", "/opt/maca:/opt/maca:ro"], None),
        ("cambricon", ["/usr/local/neuware:/usr/local/neuware:ro", "/usr/bin/cnmon:/usr/bin/cnmon"], None),
        ("thead", ["/usr/local/PPU_SDK:/usr/local/PPU_SDK:ro", "/var/run/cdi:/var/run/cdi"], None),
        ("mthreads", [], "mthreads"),
        ("ascend", [], "ascend"),
    ],
)
def test_vendor_mounts_and_runtime_follow_gpustack_ui(vendor, mounts, runtime):
    argv = _argv(worker_command(tag="", server_url="http://s", vendor=vendor, default_runtime="runc").text)
    volumes = [argv[i + 1] for i, a in enumerate(argv) if a == "--volume"]
    assert volumes == ["/var/run/docker.sock:/var/run/docker.sock", "gpustack-data:/var/lib/gpustack", *mounts]
    assert (argv[argv.index("--runtime") + 1] if "--runtime" in argv else None) == runtime
    assert "gpustack/gpustack" in argv


def test_cpu_worker_has_no_runtime_and_no_mounts():
    argv = _argv(worker_command(tag="v2.0.0", server_url="http://s", vendor=None, default_runtime="runc").text)
    assert "--runtime" not in argv and [a for a in argv if a.startswith("/opt") or a.startswith("/usr")] == []


def test_every_value_is_quoted_and_the_token_is_a_placeholder_unless_typed():
    # given: hostile values everywhere a value goes
    url = "http://x; touch /tmp/pwned"
    token = "$(touch /tmp/pwned)'\""
    # when
    typed = worker_command(tag="v1", server_url=url, vendor="nvidia", default_runtime="runc", token=token)
    placeholder = worker_command(tag="v1", server_url="http://s", vendor="nvidia", default_runtime="runc")
    # then: each stays one argument, exactly as given
    argv = _argv(typed.text)
    assert argv[argv.index("--server-url") + 1] == url and argv[argv.index("--token") + 1] == token
    assert placeholder.text.endswith(f"--token {TOKEN_PLACEHOLDER}")


def test_server_command_publishes_the_ui_and_metrics_ports():
    plain = _argv(server_command(tag="v2.0.0", tls=False).text)
    tls = _argv(server_command(tag="v2.0.0", tls=True).text)
    assert plain == [
        "sudo", "docker", "run", "-d", "--name", "gpustack", "--restart=unless-stopped", "-p", "80:80",
        "-p", "10161:10161", "--volume", "gpustack-data:/var/lib/gpustack", "gpustack/gpustack:v2.0.0",
    ]  # fmt: skip
    assert "443:443" in tls and "443:443" not in plain
