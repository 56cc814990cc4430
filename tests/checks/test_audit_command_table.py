"""Issue 25: the audit command's table speaks the one vocabulary and prints one line for checks that did not run."""

import pytest

from checks.management.commands.audit import table_lines
from checks.selectors.audits import audit_detail
from tests.uidata import HOST_CHECK_IDS, build_cluster

pytestmark = pytest.mark.django_db


def _node_block(lines: list[str], name: str) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.startswith(f"\n{name} ("))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("\n")), len(lines))
    return lines[start:end]


def test_a_node_not_reached_prints_its_reason_once_and_one_line_for_the_rest():
    # given an audit where w011's host key changed
    data = build_cluster("demo", 12)
    document = audit_detail(audit_id=data["audits"][1].pk)
    # when
    lines = table_lines(document)
    # then
    block = _node_block(lines, "w011")
    assert block[0].endswith(": Unreachable")
    assert len(block) == 3, block
    assert block[1].startswith("  FAIL   ssh.connect") and "host key changed" in block[1]
    assert block[2] == f"  -      {len(HOST_CHECK_IDS)} checks did not run: see ssh.connect"
    assert not any("not checked" in line for line in lines)


def test_reached_nodes_list_every_check_in_check_words_and_readiness_words():
    # given
    data = build_cluster("demo", 12)
    document = audit_detail(audit_id=data["audits"][1].pk)
    # when
    lines = table_lines(document)
    # then
    failing = _node_block(lines, "w007")
    assert failing[0].endswith(": Not ready")
    assert any(line.startswith("  FAIL   container.docker") for line in failing)
    assert any(line.startswith("  PASS   ssh.connect") for line in failing)
    assert _node_block(lines, "w005")[0].endswith(": Ready")  # warnings do not block
    assert any(line.startswith("  WARN   time.ntp") for line in _node_block(lines, "w005"))
    assert len(failing) == 1 + len(document["nodes"][7]["checks"])
