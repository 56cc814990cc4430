"""The exported playbook: valid for `ansible-playbook --syntax-check`, clean for ansible-lint (production
profile), and every shell step is one of the plan's template commands."""

import subprocess
import sys
from pathlib import Path

import yaml

from checks.fixplan import NodeResults, ResultRow, build_plan, render_playbook
from tests.conftest import missing_prerequisite
from tests.unit.test_remediation import _results

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        missing_prerequisite(f"{name} is not installed (requirements-dev.txt)")
    return str(path)


def _plan():
    """Nodes of every package manager family, vendor with commands and firewall, Docker missing or stopped."""
    nodes, number = [], 0
    for family in ("apt-ubuntu", "dnf-rocky", "yum-centos7", "zypper-leap"):
        for vendor, firewall, docker in (
            ("nvidia", "firewalld", "desktop"),
            ("amd", "nftables", "stopped"),
            ("ascend", "iptables", ""),
            ("", "ufw", "desktop"),
        ):
            number += 1
            results = _results("evil", family, vendor, firewall, docker)
            rows = tuple(ResultRow(r.check_id, r.status, tuple(r.commands), i) for i, r in enumerate(results))
            nodes.append(NodeResults(number, f"gpu{number:02d}", "fail", 1, rows))
    return build_plan(audit_id=1, nodes=nodes)


def _env(tmp_path: Path) -> dict:
    return {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ANSIBLE_HOME": str(tmp_path / "ansible"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "NO_COLOR": "1",
        "LANG": "C.UTF-8",
    }


def test_playbook_passes_syntax_check_and_ansible_lint(tmp_path):
    # given: the playbook of a plan that uses every template
    plan = _plan()
    playbook = tmp_path / "fix.yml"
    playbook.write_text(render_playbook(plan))
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[workers]\n" + "".join(f"{n.name}\n" for g in plan.groups for n in g.nodes))
    # when
    syntax = subprocess.run(
        [_tool("ansible-playbook"), "--syntax-check", "-i", str(inventory), str(playbook)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=120,
    )
    lint = subprocess.run(
        [_tool("ansible-lint"), "--offline", "--nocolor", "--profile", "production", "fix.yml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=300,
    )
    # then
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "Passed" in lint.stderr + lint.stdout


def test_playbook_runs_only_the_plans_template_commands():
    # given
    plan = _plan()
    # when
    plays = yaml.safe_load(render_playbook(plan))
    # then: one play per group, hosts as named, every shell fix step is one of the group's commands
    assert len(plays) == len(plan.groups)
    for play, group in zip(plays, plan.groups, strict=True):
        assert play["hosts"] == [n.name for n in group.nodes]
        for task in play["tasks"] + play.get("handlers", []):
            shell = task.get("ansible.builtin.shell")
            if shell and task["name"].startswith(("Fix", "Run")):
                assert shell["cmd"].removeprefix("set -o pipefail; ") in group.commands, task
            # the node names (operator data, "evil-0" and "evil-1" here) may name a host to rename; nothing else
            # with "evil" in it, which is what the nodes printed, reaches a task
            assert "evil" not in yaml.safe_dump(task).replace("evil-0", "").replace("evil-1", "")


def test_hosts_that_ansible_would_read_as_a_pattern_are_left_out():
    # given: a node named like a host pattern
    rows = (ResultRow("time.ntp", "fail", ("systemctl enable --now chrony",), 0),)
    plan = build_plan(
        audit_id=1, nodes=[NodeResults(1, "gpu*,!all", "fail", 1, rows), NodeResults(2, "ok", "fail", 1, rows)]
    )
    # when
    plays = yaml.safe_load(render_playbook(plan))
    # then
    assert plays[0]["hosts"] == ["ok"]
