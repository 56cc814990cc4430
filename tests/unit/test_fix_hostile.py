"""The remediation property test, carried through the fix plan: nothing a node prints reaches the plan's
commands or labels, the Ansible playbook, or the script a fix run applies on the node."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.fixplan import NodeResults, ResultRow, build_plan, render_playbook
from checks.fixplan.plan import fix_script
from checks.vendors import VENDORS

from .test_remediation import FIREWALL_SECTIONS, MARK, OS_RELEASES, TEMPLATE_PATTERNS, TERMINATORS, _results, hostile


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    evil=hostile,
    family=st.sampled_from(sorted(OS_RELEASES)),
    vendor=st.sampled_from(["", *sorted(VENDORS)]),
    firewall=st.sampled_from(sorted(FIREWALL_SECTIONS)),
    docker=st.sampled_from(["", "stopped", "desktop"]),
)
def test_hostile_node_text_reaches_no_plan_playbook_or_applied_command(evil, family, vendor, firewall, docker):
    # given: a hostile node's results, and a node named with the payload next to a well-named one
    results = _results(evil, family, vendor, firewall, docker)
    rows = tuple(ResultRow(r.check_id, r.status, tuple(r.commands), i) for i, r in enumerate(results))
    nodes = [NodeResults(1, "gpu01", "fail", 7, rows), NodeResults(2, evil, "fail", 7, rows)]
    # when
    plan = build_plan(audit_id=7, nodes=nodes)
    playbook = render_playbook(plan)
    scripts = [
        fix_script(
            node_name="gpu01", steps=[{"check_id": s.check_id, "command": c.text} for s in g.steps for c in s.commands]
        )
        for g in plan.groups
    ]
    # then: every command in the plan is a template rendering without node text, labels are node-text free
    for group in plan.groups:
        assert evil not in group.label and MARK not in group.label
        for command in group.commands:
            assert any(p.fullmatch(command) for p in TEMPLATE_PATTERNS), command
            assert MARK not in command and evil not in command
    # the playbook names no hostile host and carries no node text
    assert MARK not in playbook
    plays = yaml.safe_load(playbook)
    assert all(play["hosts"] == ["gpu01"] for play in plays)
    # the applied script carries node text nowhere, and no line terminator sneaks into a comment
    for script in scripts:
        assert MARK not in script and not any(t in script for t in TERMINATORS[1:])
