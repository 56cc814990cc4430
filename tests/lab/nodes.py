"""Ready-made test node recipes: an os-release, a PCI tree and stand-in tools that print recorded real outputs."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import FIXTURES

from .hosts import NodeSpec


def os_release(distro: str, version: str, pretty: str, id_like: str = "") -> str:
    like = f'ID_LIKE="{id_like}"\n' if id_like else ""
    return f'NAME="{pretty.split()[0]}"\nID={distro}\n{like}VERSION_ID="{version}"\nPRETTY_NAME="{pretty}"\n'


UBUNTU_2204 = os_release("ubuntu", "22.04", "Ubuntu 22.04.4 LTS", "debian")
UBUNTU_1804 = os_release("ubuntu", "18.04", "Ubuntu 18.04.6 LTS", "debian")
MINT_21 = os_release("linuxmint", "21.3", "Linux Mint 21.3", "ubuntu debian")


def cat(path: Path) -> str:
    return f"cat '{path}'"


def fixture(relative: str) -> Path:
    """A recorded output (or gap file) in tests/fixtures/, see its PROVENANCE.md."""
    return FIXTURES / relative


NVIDIA_PCI = [("0000:00:09.0", "0x10de", "0x030200", "0x2330"), ("0000:00:0a.0", "0x10de", "0x040300", "0x22e8")]
ASCEND_PCI = [
    (f"0000:{bus}:00.0", "0x19e5", "0x120000", "0xd801") for bus in ("61", "db", "b2", "3e", "60", "da", "b1", "3d")
]
TIME_TOOLS = {
    "chronyc": cat(fixture("chrony/ubuntu-20.04_chronyc-tracking_synced.txt")),
    "timedatectl": cat(fixture("timedatectl/show_synchronized.txt")),
}


def docker_tool(
    info: Path,
    *,
    ps: Path | None = None,
    inspect: Path | None = None,
    default_runtime: str = "",
    cgroup_driver: str = "",
) -> str:
    """A stand-in `docker`: `info` prints a recorded `docker info` (its Default Runtime or Cgroup Driver line
    rewritten when a test needs another), `ps` and `inspect` print the given files (nothing: no containers)."""
    edits = [f"s/^ Default Runtime: .*/ Default Runtime: {default_runtime}/"] if default_runtime else []
    edits += [f"s/^ Cgroup Driver: .*/ Cgroup Driver: {cgroup_driver}/"] if cgroup_driver else []
    show = cat(info) + "".join(f" | sed '{edit}'" for edit in edits)
    return (
        f'case "$1" in info) {show};; ps) {cat(ps) if ps else "true"};; '
        f'inspect) {cat(inspect) if inspect else "true"};; *) echo "Docker version 24.0.7, build afdd53b";; esac'
    )


def nvidia_healthy(name: str) -> NodeSpec:
    """Ubuntu 22.04, one H100 (plus its audio function, which must not count), driver, toolkit, nvidia runtime."""
    return NodeSpec(
        name=name,
        os_release=UBUNTU_2204,
        pci=NVIDIA_PCI,
        tools={
            "nvidia-smi": 'case "$1" in --query-gpu*) '
            + cat(fixture("nvidia-smi/h100-80gb-hbm3_590.48.01_query-gpu-csv-noheader.csv"))
            + ";; *) "
            + cat(fixture("nvidia-smi/nge-capture_h100-80gb-hbm3_590.48.01_idle_table.txt"))
            + ";; esac",
            "nvidia-ctk": cat(fixture("nvidia-ctk/version_1.17.8.txt")),
            # the recorded A30 host with nvidia made Docker's default runtime and Docker's cgroupfs driver, as
            # GPUStack needs them (the recording itself is the runtime-not-default case: nvidia_runtime_not_default)
            "docker": docker_tool(
                fixture("docker-info/ubuntu22.04_docker-24.0.7_a30-host_nvidia-runtime-not-default.txt"),
                default_runtime="nvidia",
                cgroup_driver="cgroupfs",
            ),
            **TIME_TOOLS,
        },
    )


def nvidia_runtime_not_default(name: str) -> NodeSpec:
    """The recorded A30 host as recorded: the nvidia runtime registered, runc Docker's default."""
    spec = nvidia_healthy(name)
    spec.tools["docker"] = docker_tool(
        fixture("docker-info/ubuntu22.04_docker-24.0.7_a30-host_nvidia-runtime-not-default.txt")
    )
    return spec


def nvidia_broken_driver(name: str) -> NodeSpec:
    spec = nvidia_healthy(name)
    spec.tools["nvidia-smi"] = cat(fixture("nvidia-smi/driver-not-loaded.txt")) + "; exit 9"
    return spec


def ascend_without_runtime(name: str) -> NodeSpec:
    return NodeSpec(
        name=name,
        os_release=os_release("openEuler", "22.03", "openEuler 22.03 (LTS-SP1)"),
        pci=ASCEND_PCI,
        tools={
            "npu-smi": cat(fixture("npu-smi/atlas800-training-9010_910A-x8_npu-smi-22.0.3.1_info.txt")),
            "docker": docker_tool(fixture("docker-info/docker-archive_docker_v27.5.1.txt")),
            **TIME_TOOLS,
        },
    )


def plain(name: str, os_text: str = UBUNTU_2204, **changes) -> NodeSpec:
    """A CPU node with Docker and NTP: the baseline that a test changes one thing of."""
    spec = NodeSpec(
        name=name,
        os_release=os_text,
        tools={"docker": docker_tool(fixture("docker-info/docker-archive_docker_v27.5.1.txt")), **TIME_TOOLS},
    )
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def ppc64le(name: str) -> NodeSpec:
    spec = plain(name)
    spec.tools["uname"] = 'machine=$(/bin/uname -m); /bin/uname "$@" | sed "s/$machine/ppc64le/"'
    return spec


def without_ntp(name: str) -> NodeSpec:
    spec = plain(name)
    del spec.tools["chronyc"]
    del spec.tools["timedatectl"]
    # Debian's systemd-timesyncd binary lives here on the test runner; the node must not see it.
    spec.hide = ["/usr/lib/systemd"]
    return spec


def hangs(name: str) -> NodeSpec:
    """A node whose probe never finishes: `uname` (not wrapped in a tool time-out) blocks."""
    spec = plain(name)
    spec.tools["uname"] = "sleep 600"
    return spec


def hangs_after_login(name: str) -> NodeSpec:
    """A node that accepts the login and then runs `sleep 3600` whatever was asked: the probe never prints a byte."""
    spec = plain(name)
    spec.sshd_options = ["ForceCommand sleep 3600"]
    return spec


def rejects_our_key(name: str) -> NodeSpec:
    """A node whose authorized_keys holds some other key: the login is rejected."""
    spec = plain(name)
    spec.authorized_key = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBqDbHc8AJ4BYwbxZRLmBpLuwc7sAPfBXFJWQr9gtZ2R someone-else"
    )
    return spec


def without_docker(name: str) -> NodeSpec:
    spec = plain(name)
    del spec.tools["docker"]
    return spec


def slow(name: str, seconds: float) -> NodeSpec:
    """A healthy node whose probe takes `seconds` longer (chronyc answers late, within the tool time-out): an audit
    of a few dozen of them is still running when a fault test strikes. Sleeping costs no CPU."""
    spec = plain(name)
    spec.tools["chronyc"] = f"sleep {seconds:g}; " + spec.tools["chronyc"]
    return spec
