"""The downloaded remediation script, run as root on the hostile node it was made for, runs no node text.

The node's os-release, the process name `ss -p` shows on a GPUStack port, and its GPU model string each carry a
payload that would create a marker file if any of them reached a command. The script is run as root inside that
node's network namespace with package managers, systemctl and the vendor tools stubbed on PATH, and with tmpfs over
the directories it writes (so the test runner's own apt and sysctl configuration stay untouched).
"""

import shlex
import subprocess
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from checks.models import Audit
from tests.lab import nodes
from tests.lab.hosts import NodeSpec

from .fixtures import add_lab_nodes, checks_of, lab_credential, make_cluster, save_output

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# A process name is at most 15 bytes, so the markers are short; each test removes them first.
MARKERS = [Path(f"/tmp/p{c}") for c in "ABCDE"]
HOSTILE_OS = (
    'NAME="Ubuntu $(touch /tmp/pA)"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\nVERSION_CODENAME=jammy\n'
    'UBUNTU_CODENAME=jammy\nPRETTY_NAME="Ubuntu 22.04 `touch /tmp/pB`; touch /tmp/pB"\n'
)
# nvidia-smi's CSV quotes a model name holding a line break; the second line is a command.
HOSTILE_QUERY = '0, "NVIDIA H100\ntouch /tmp/pC\n", GPU-5bd8a1c6-bc38-4c4c-a1e2-7f0e8c3c51b1, 81559 MiB, 590.48.01\n'
# The listener on 10150 renames itself (prctl PR_SET_NAME) to a payload, which `ss -p` then prints.
LISTENER = (
    "import ctypes, socket, sys, time\n"
    "ctypes.CDLL(None).prctl(15, b'`touch /tmp/pD`', 0, 0, 0)\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 10150)); s.listen(); time.sleep(600)\n"
)
STUBS = (
    "apt-get dnf yum zypper systemctl curl gpg nvidia-ctk amd-ctk sysctl firewall-cmd ufw nft iptables chronyc "
    "timedatectl snap"
).split()


def hostile_gpu_node(name: str) -> NodeSpec:
    """Ubuntu 22.04 by ID, no Docker, no NTP, an H100 without the container toolkit; every printed name a payload."""
    spec = nodes.nvidia_healthy(name)
    spec.os_release = HOSTILE_OS
    spec.tools["nvidia-smi"] = (
        f'case "$1" in --query-gpu*) printf %s {shlex.quote(HOSTILE_QUERY)};; *) '
        # the table's header only (driver and CUDA versions): the devices, and their names, come from the CSV
        + "head -n 8 "
        + shlex.quote(str(nodes.fixture("nvidia-smi/nge-capture_h100-80gb-hbm3_590.48.01_idle_table.txt")))
        + ";; esac"
    )
    for tool in ("nvidia-ctk", "docker", "chronyc", "timedatectl"):
        del spec.tools[tool]
    spec.hide = ["/usr/lib/systemd"]  # the runner's systemd-timesyncd must not count as this node's NTP
    return spec


@pytest.fixture(scope="module")
def hostile(lab):
    return lab.add(hostile_gpu_node("evil"))


def _in_node(node, script: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `script` as root in the node's network namespace and a private mount namespace."""
    return subprocess.run(
        ["ip", "netns", "exec", node.namespace, "unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _stub_dir(tmp_path: Path, trace: Path) -> Path:
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    body = (
        '#!/bin/sh\necho "$(basename "$0") $*" >> {trace}\n'
        'while [ $# -gt 0 ]; do if [ "$1" = -o ] && [ $# -gt 1 ]; then : > "$2"; fi; shift; done\n'
    )
    for name in STUBS:
        (stubs / name).write_text(body.format(trace=trace))
        (stubs / name).chmod(0o755)
    return stubs


def test_downloaded_script_runs_no_node_text_as_root(lab, hostile, admin_client, tmp_path):
    # given: a process named with a payload listens on 10150, and no marker exists
    for marker in MARKERS:
        marker.unlink(missing_ok=True)
    listener = subprocess.Popen(["ip", "netns", "exec", hostile.namespace, "python3", "-c", LISTENER])
    try:
        for _ in range(50):
            if ":10150 " in hostile.exec("ss -Hltn").stdout:
                break
            time.sleep(0.1)
        cluster = make_cluster("hostile")
        add_lab_nodes(cluster, [hostile], lab_credential(lab))
        try:
            call_command("audit", "--cluster", "hostile", "--json", stdout=open("/dev/null", "w"))
        except SystemExit:
            pass
        audit = Audit.objects.get(cluster=cluster)
        checks = checks_of(audit.pk, "evil")
        # the payloads did reach the results, as text
        facts = audit.node_audits.get().facts
        assert "touch /tmp/pB" in facts["os"]["pretty_name"] and "touch /tmp/pC" in facts["accelerators"][0]["model"]
        assert "`touch /tmp/pD`" in checks["ports.available"].summary
        assert {checks[c].status for c in ("container.docker", "time.ntp", "accelerator.nvidia.toolkit")} == {"fail"}
        node_id = cluster.nodes.get().pk
        script_text = admin_client.get(f"/nodes/{node_id}/remediation.sh").content.decode()
        script = tmp_path / "remediation.sh"
        script.write_text(script_text)
        save_output("remediation-hostile.sh", script_text)
        trace = tmp_path / "trace"
        stubs = _stub_dir(tmp_path, trace)
        state = tmp_path / "state"
        writable = "/etc/apt /etc/sysctl.d /usr/share/keyrings"
        run_twice = (
            "set -e\n"
            f'for d in {writable}; do mkdir -p "$d"; mount -t tmpfs preflight-test "$d"; done\n'
            "mkdir /etc/apt/sources.list.d\n"  # as on every apt node
            f"export PATH={stubs}:/usr/sbin:/usr/bin:/sbin:/bin\n"
            f"cd {tmp_path}\n"
            f"sh {script} --dry-run > {tmp_path}/dry.out\n"
            f"test ! -e {trace}\n"
            f"sh {script} > {tmp_path}/first.out\n"
            f"find {writable} -type f -exec md5sum {{}} + | sort > {state}.1\n"
            f"sh {script} > {tmp_path}/second.out\n"
            f"find {writable} -type f -exec md5sum {{}} + | sort > {state}.2\n"
        )

        # when: the operator runs the script as root on that node, twice
        run = _in_node(hostile, run_twice)
        try:
            listener_stopped = listener.wait(timeout=5) is not None
        except subprocess.TimeoutExpired:
            listener_stopped = False
        port_free = ":10150 " not in hostile.exec("ss -Hltn").stdout
    finally:
        listener.kill()
        listener.wait()

    # then: it finished, no payload ran, and the second run changed nothing the first had fixed
    assert run.returncode == 0, run.stderr + run.stdout
    assert [m for m in MARKERS if m.exists()] == []
    ran = trace.read_text().splitlines()
    assert "apt-get install -y chrony" in ran and "apt-get install -y nvidia-container-toolkit" in ran
    assert "nvidia-ctk runtime configure --runtime=docker" in ran and "systemctl enable --now docker" in ran
    assert listener_stopped and port_free  # the script stopped the process that held 10150
    assert Path(f"{state}.1").read_text() == Path(f"{state}.2").read_text()
    assert "/etc/apt/sources.list.d/docker.list" in Path(f"{state}.1").read_text()
    dry = (tmp_path / "dry.out").read_text().splitlines()
    assert [line for line in dry if line.startswith("+ ")] == [
        line for line in (tmp_path / "first.out").read_text().splitlines() if line.startswith("+ ")
    ]
    for line in script_text.splitlines():
        if "/tmp/p" in line:
            assert line.startswith("#"), line


# A listener on 10150 that names itself as if its pid field came first: ss prints `("x",pid=1,fd=3",pid=N,fd=3))`.
FORGED_NAME = 'x",pid=1,fd=3))'
FORGING_LISTENER = (
    "import ctypes, socket, time\n"
    f"ctypes.CDLL(None).prctl(15, {FORGED_NAME.encode()!r}, 0, 0, 0)\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 10150)); s.listen(); time.sleep(600)\n"
)
# A bystander on a port GPUStack does not need, in the same network namespace: the script must leave it alone.
BYSTANDER = (
    "import socket, time\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 10149)); s.listen(); time.sleep(600)\n"
)


@pytest.fixture(scope="module")
def forging(lab):
    return lab.add(nodes.plain("forger"))


def test_a_process_name_cannot_aim_the_scripts_kill(lab, forging, admin_client, tmp_path):
    # given: a process named `x",pid=1,fd=3))` holds 10150, a bystander holds 10149
    listener = subprocess.Popen(["ip", "netns", "exec", forging.namespace, "python3", "-c", FORGING_LISTENER])
    bystander = subprocess.Popen(["ip", "netns", "exec", forging.namespace, "python3", "-c", BYSTANDER])
    try:
        for _ in range(50):
            held = forging.exec("ss -Hltn").stdout
            if ":10150 " in held and ":10149 " in held:
                break
            time.sleep(0.1)
        cluster = make_cluster("forging")
        add_lab_nodes(cluster, [forging], lab_credential(lab))
        try:
            call_command("audit", "--cluster", "forging", "--json", stdout=open("/dev/null", "w"))
        except SystemExit:
            pass
        ports = checks_of(Audit.objects.get(cluster=cluster).pk, "forger")["ports.available"]
        # the explanation names the process and the pid the kernel gave it, not the forged one
        assert f'10150 held by x",pid=1,fd=3 (pid {listener.pid})' in ports.summary, ports.summary
        node_id = cluster.nodes.get().pk
        script_text = admin_client.get(f"/nodes/{node_id}/remediation.sh").content.decode()
        script = tmp_path / "remediation.sh"
        script.write_text(script_text)
        save_output("remediation-forged-pid.sh", script_text)
        stubs = _stub_dir(tmp_path, tmp_path / "trace")

        # when: the operator looks at the dry run, then runs the script as root on that node
        run = _in_node(
            forging,
            f"set -e\nexport PATH={stubs}:/usr/sbin:/usr/bin:/sbin:/bin\ncd {tmp_path}\n"
            f"sh {script} --dry-run > {tmp_path}/dry.out\nsh {script} > {tmp_path}/run.out\n",
        )
        try:
            listener_stopped = listener.wait(timeout=5) is not None
        except subprocess.TimeoutExpired:
            listener_stopped = False
        bystander_alive = bystander.poll() is None
        held_after = forging.exec("ss -Hltn").stdout
    finally:
        for process in (listener, bystander):
            process.kill()
            process.wait()

    # then: the process that held 10150 was stopped, and no other (the bystander, pid 1, this test)
    assert run.returncode == 0, run.stderr + run.stdout
    assert listener_stopped and ":10150 " not in held_after
    assert bystander_alive and ":10149 " in held_after
    # and the dry run names ports only: no pid the node printed, real or forged
    steps = [line for line in (tmp_path / "dry.out").read_text().splitlines() if line.startswith("+ ")]
    port_steps = [line for line in steps if "/proc/net/tcp" in line]
    assert len(port_steps) == 1 and "printf '%04X ' 10150)" in port_steps[0]
    assert not [line for line in steps if str(listener.pid) in line or "pid=" in line or "kill 1" in line]
