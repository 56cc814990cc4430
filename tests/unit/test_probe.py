"""The probe script itself, run on this machine (no network) under each POSIX shell and as an unprivileged user."""

import os
import shutil
import subprocess

import pytest

from checks.node_facts import build_facts
from checks.probe import PROBE_SCRIPT, probe_command, server_literal, split_sections
from tests.conftest import missing_prerequisite

NONCE = "00112233445566ff"
SHELLS = [s for s in ("dash", "bash", "sh") if shutil.which(s)]


@pytest.mark.parametrize("shell", SHELLS)
def test_probe_runs_under_each_shell(shell):
    # when
    output = subprocess.run(
        [shell, "-s", "--", NONCE, "5"], input=PROBE_SCRIPT, capture_output=True, text=True, timeout=60
    ).stdout
    sections = split_sections(output, NONCE)
    facts = build_facts(sections)
    # then
    assert {"meta", "os-release", "uname", "pci", "tools", "clock", "port-range", "done"} <= set(sections)
    assert all(section.rc is not None for section in sections.values())
    assert facts.kernel == "Linux" and facts.machine == os.uname().machine and facts.os.id
    assert facts.clock is not None and facts.port_range


def test_probe_as_unprivileged_user_says_what_it_could_not_read():
    if os.geteuid() != 0 or not shutil.which("runuser"):
        missing_prerequisite("needs root and runuser to switch to nobody")
    output = subprocess.run(
        ["runuser", "-u", "nobody", "--", "sh", "-s", "--", NONCE, "5"],
        input=PROBE_SCRIPT,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    ).stdout
    facts = build_facts(split_sections(output, NONCE))
    assert facts.login_user == "nobody" and facts.login_uid != 0
    assert "done" in split_sections(output, NONCE)


def test_probe_command_takes_only_a_nonce_a_number_and_an_ip_literal():
    assert probe_command(NONCE, 20) == f"sh -s -- {NONCE} 20 -"
    assert probe_command(NONCE, 20, "10.0.0.1") == f"sh -s -- {NONCE} 20 10.0.0.1"
    assert probe_command(NONCE, 20, "fd00::1") == f"sh -s -- {NONCE} 20 fd00::1"
    for hostile in ("$(reboot)", "10.0.0.1; reboot", "10.0.0.1 -x", "server.example", "fd00:0::1", " 10.0.0.1", ""):
        with pytest.raises(ValueError):
            probe_command(NONCE, 20, hostile)
    with pytest.raises(ValueError):
        probe_command("$(reboot)", 20)


@pytest.mark.parametrize(
    ("given", "passed"),
    [
        ("10.0.0.1", "10.0.0.1"),
        (" 10.0.0.1\n", "10.0.0.1"),
        ("FD00:0:0::1", "fd00::1"),
        ("server.example", "-"),  # a DNS name is never passed: the rules compare the inventory address literally
        ("10.0.0.1;reboot", "-"),
        ("", "-"),
    ],
)
def test_server_address_reaches_the_probe_only_as_a_canonical_ip_literal(given, passed):
    assert server_literal(given) == passed
    assert probe_command(NONCE, 20, server_literal(given)).split()[-1] == passed


def test_probe_asks_the_route_to_the_server_it_was_given():
    # when: the probe runs on this machine with a server address
    output = subprocess.run(
        ["sh", "-s", "--", NONCE, "5", "127.0.0.1"], input=PROBE_SCRIPT, capture_output=True, text=True, timeout=60
    ).stdout
    facts = build_facts(split_sections(output, NONCE))
    # then: its own addresses, the route's source, identity, memory and disk were read
    if shutil.which("ip"):
        assert facts.addresses is not None and facts.route_source == "127.0.0.1"
    assert facts.mem_total_kib and facts.filesystems and facts.machine_id


def test_probe_inspects_only_gpustack_containers_and_only_their_mirrored_name(tmp_path):
    # given: a stand-in `docker` that records its arguments and prints recorded outputs
    from tests.conftest import FIXTURES

    calls = tmp_path / "calls"
    docker = tmp_path / "docker"
    docker.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'case "$1" in\n'
        f"  ps) cat {FIXTURES / 'gpustack/docker-ps_two-gpustack.txt'};;\n"
        f"  inspect) cat {FIXTURES / 'gpustack/docker-inspect_mirrored-name.txt'};;\n"
        "  *) echo 'Server:'; echo ' Server Version: 27.5.1';;\n"
        "esac\n"
    )
    docker.chmod(0o755)
    # when
    output = subprocess.run(
        ["sh", "-s", "--", NONCE, "5", "-"],
        input=PROBE_SCRIPT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
    ).stdout
    facts = build_facts(split_sections(output, NONCE))
    # then: `docker inspect` named the two gpustack/gpustack containers, not portainer, and asked for one variable
    inspect = [line for line in calls.read_text().splitlines() if line.startswith("inspect")]
    assert len(inspect) == 1 and inspect[0].endswith(" gpustack-worker gpustack-server")
    assert "GPUSTACK_RUNTIME_DEPLOY_MIRRORED_NAME" in inspect[0] and "portainer" not in inspect[0]
    assert [(c.name, c.mirrored_name) for c in facts.gpustack_containers] == [
        ("gpustack-worker", "gpustack-worker"),
        ("gpustack-server", ""),
    ]
