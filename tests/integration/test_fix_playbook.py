"""The fix plan's playbook run by ansible-playbook against sshd test hosts, twice: the second run changes nothing.

The inventory names the hosts as Preflight does, with the lab's addresses, the lab client key and known_hosts
pinned to each host's key; only the lab's own hosts are contacted. Package managers and systemctl are stubbed
(tests/integration/fix_lab.py)."""

import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from checks.services.fix import cluster_fix_plan
from tests.conftest import missing_prerequisite

from .fix_lab import add_fix_nodes, hold_port, reset, trace
from .fixtures import add_lab_nodes, lab_credential, make_cluster, save_output

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
BIN = Path(sys.executable).parent


def _audit(cluster: str) -> None:
    try:
        call_command("audit", "--cluster", cluster, "--json", stdout=StringIO())
    except SystemExit:
        pass


def _inventory(tmp_path: Path, lab, lab_nodes) -> Path:
    key = tmp_path / "client_key"
    key.write_text(lab.client_key)
    key.chmod(0o600)
    known = tmp_path / "known_hosts"
    known.write_text(
        "".join(
            f"{n.address} {(n.directory / 'host_ed25519.pub').read_text().split()[0]} "
            f"{(n.directory / 'host_ed25519.pub').read_text().split()[1]}\n"
            for n in lab_nodes
        )
    )
    ssh_args = f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[workers]\n"
        + "".join(f"{n.spec.name} ansible_host={n.address}\n" for n in lab_nodes)
        + "[workers:vars]\nansible_user=root\nansible_python_interpreter=/usr/bin/python3\n"
        + f"ansible_ssh_private_key_file={key}\nansible_ssh_common_args='{ssh_args}'\n"
    )
    return inventory


def _play(tmp_path: Path, inventory: Path, playbook: Path, *options: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(tmp_path),
        "ANSIBLE_HOME": str(tmp_path / "ansible"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORKS": "5",
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        [str(BIN / "ansible-playbook"), *options, "-i", str(inventory), str(playbook)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )


def _recap(output: str) -> dict[str, dict[str, int]]:
    recap = {}
    for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE):
        recap[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", fields)}
    return recap


def test_playbook_fixes_the_lab_and_a_second_run_changes_nothing(lab, tmp_path):
    if not Path("/usr/bin/ssh").exists():
        missing_prerequisite("the OpenSSH client (ansible's ssh connection) is not installed")
    # given: 4 workers without chrony and 1 holding port 10150, audited
    lab_nodes = add_fix_nodes(lab, "pb")
    reset(lab_nodes)
    holder = hold_port(lab_nodes[4])
    cluster = make_cluster("pb")
    add_lab_nodes(cluster, lab_nodes, lab_credential(lab))
    _audit("pb")
    view = cluster_fix_plan(cluster=cluster)
    playbook = tmp_path / "fix.yml"
    playbook.write_text(view.playbook())
    save_output("fix-playbook-lab.yml", view.playbook())
    inventory = _inventory(tmp_path, lab, lab_nodes)
    lint = subprocess.run(
        [str(BIN / "ansible-lint"), "--offline", "--nocolor", "--profile", "production", "fix.yml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "ANSIBLE_HOME": str(tmp_path / "ansible")},
    )
    syntax = _play(tmp_path, inventory, playbook, "--syntax-check")
    try:
        # when: it runs twice
        first = _play(tmp_path, inventory, playbook)
        second = _play(tmp_path, inventory, playbook)
        stopped = holder.poll() is not None
    finally:
        holder.kill()
        holder.wait()
    save_output("fix-playbook-lab.log", first.stdout + second.stdout)
    # then: the same cluster's playbook passes --syntax-check and ansible-lint, then fixed the lab once
    assert syntax.returncode == 0 and lint.returncode == 0, syntax.stdout + lint.stdout + lint.stderr
    assert first.returncode == 0 and second.returncode == 0, first.stdout[-3000:] + second.stdout[-3000:]
    one, two = _recap(first.stdout), _recap(second.stdout)
    assert sorted(one) == [n.spec.name for n in lab_nodes]
    assert all(one[h]["changed"] > 0 and one[h]["failed"] == 0 for h in one), one
    assert all(two[h]["changed"] == 0 and two[h]["failed"] == 0 for h in two), two
    assert [g["title"] for g in view.as_dict()["groups"]] == [
        "4 nodes: install chrony and enable chrony",
        "1 node: free port 10150",
    ]
    assert stopped  # the play stopped the holder of 10150
    for node in lab_nodes[:4]:
        assert "apt-get install -y chrony" in trace(node)
        assert (node.directory / "bin" / "chronyc").exists()
