"""Acceptance: 4 workers lack chrony and 1 holds port 10150; the plan shows 2 groups; the first group is
previewed (its script's --dry-run on each node), approved through the API, run by the Celery worker over SSH
(package managers stubbed: installing chrony puts a stand-in in place), and the re-audit shows time.ntp pass on
those 4 nodes. A changed host key refuses the run on that node, and nothing runs there."""

import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from checks.models import FixNodeRun, FixRun
from portal.tokens import api_token_create

from .fix_lab import add_fix_nodes, hold_port, reset, trace
from .fixtures import add_lab_nodes, checks_of, lab_credential, make_cluster, wait_for_audit

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_apply_the_first_group_with_approval_then_reaudit(lab, celery_worker, admin_user):
    # given: the lab audited, and the plan of its audit
    lab_nodes = add_fix_nodes(lab, "ap")
    reset(lab_nodes)
    holder = hold_port(lab_nodes[4])
    try:
        cluster = make_cluster("ap")
        add_lab_nodes(cluster, lab_nodes, lab_credential(lab))
        try:
            call_command("audit", "--cluster", "ap", "--json", stdout=StringIO())
        except SystemExit:
            pass
        _, token = api_token_create(user=admin_user, name="fix")
        api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
        plan = api.get("/api/v1/clusters/ap/fix-plan").json()
        assert [g["title"] for g in plan["groups"]] == [
            "4 nodes: install chrony and enable chrony",
            "1 node: free port 10150",
        ]
        first, second = plan["groups"]

        # when: the first group is previewed, then approved
        preview = api.post(
            "/api/v1/clusters/ap/fix-runs", {"audit": plan["audit"], "groups": [first["key"]]}, "application/json"
        )
        assert preview.status_code == 201, preview.content
        previewed = preview.json()
        assert [t for n in lab_nodes for t in trace(n)] == []  # the dry run ran nothing
        approved = api.post(f"/api/v1/fix-runs/{previewed['id']}/approve")
        assert approved.status_code == 202, approved.content
        run = _wait(lambda: FixRun.objects.filter(pk=previewed["id"], reaudit__isnull=False).first(), 120, "re-audit")
        reaudit = wait_for_audit(run.reaudit_id, timeout=120)
        detail = api.get(f"/api/v1/fix-runs/{run.pk}").json()

        # and: the second group is previewed, then its node is reinstalled (a new host key) before approval
        other = api.post(
            "/api/v1/clusters/ap/fix-runs", {"audit": plan["audit"], "groups": [second["key"]]}, "application/json"
        ).json()
        lab.replace_host_key(lab_nodes[4])
        assert api.post(f"/api/v1/fix-runs/{other['id']}/approve").status_code == 202
        refused = _wait(
            lambda: FixNodeRun.objects.filter(fix_run_id=other["id"], state="refused").first(), 60, "the refusal"
        )
    finally:
        holder.kill()
        holder.wait()

    # then: each node of the group ran the group's commands, every step exited 0
    for node in previewed["nodes"]:
        assert node["commands"] == first["commands"] and node["state"] == "previewed"
        assert "+ DEBIAN_FRONTEND=noninteractive apt-get install -y chrony" in node["dry_run"]
    assert detail["approved_by"] == admin_user.username and detail["state"] == "done"
    assert detail["commands_hash"] == previewed["commands_hash"]
    for node in detail["nodes"]:
        assert node["state"] == "done" and node["exit_status"] == 0, node
        assert [s["exit_status"] for s in node["steps"]] == [0, 0]
        assert node["before"]["status"] == "fail" and node["after"]["status"] in ("pass", "warn")
    for lab_node in lab_nodes[:4]:
        assert "apt-get install -y chrony" in trace(lab_node) and "systemctl enable --now chrony" in trace(lab_node)
    # and the re-audit shows time.ntp pass on those 4
    assert reaudit.trigger == "fix" and reaudit.partial
    assert {name: checks_of(reaudit.pk, name)["time.ntp"].status for name in ("ap1", "ap2", "ap3", "ap4")} == {
        "ap1": "pass",
        "ap2": "pass",
        "ap3": "pass",
        "ap4": "pass",
    }
    # the plan now has one group left
    now = api.get("/api/v1/clusters/ap/fix-plan").json()
    assert [g["title"] for g in now["groups"]] == ["1 node: free port 10150"]
    # and the changed host key refused the run on ap5: nothing ran there
    # (replacing the key restarted the node, which ended the holder of 10150 too; the stub trace shows no step ran)
    assert "host key changed" in refused.error and refused.output == "" and refused.exit_status is None
    assert trace(lab_nodes[4]) == []
