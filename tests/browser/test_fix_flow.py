"""An operator fixes a node from the cluster's fix plan in a real browser: plan, preview (the script's --dry-run
on the node), approve, and the re-audited node turns ready."""

import time

import pytest
from django.contrib.auth import get_user_model

from checks.models import FixRun
from tests.integration.fix_lab import fix_node, reset, trace
from tests.integration.fixtures import OUTPUT, add_lab_nodes, lab_credential, make_cluster

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def shot(page, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"fix-{name}.png"), full_page=True)


def test_plan_preview_approve_and_the_node_turns_ready(portal_server, page, lab, celery_worker):
    # given: a worker without NTP (package managers stubbed), audited, and an operator who may apply fixes
    host = lab.add(fix_node("bfx1"))
    reset([host])
    get_user_model().objects.create_superuser("fixer", password="correct-horse-9")
    cluster = make_cluster("fixui")
    node = add_lab_nodes(cluster, [host], lab_credential(lab))[0]
    from checks.services import audit_run_inline, audit_start

    audit_run_inline(audit=audit_start(cluster=cluster))
    node.refresh_from_db()
    assert node.last_audit_status == "fail"

    # log in and open the plan
    page.goto(f"{portal_server.url}/clusters/fixui/fix-plan/")
    page.fill("#id_username", "fixer")
    page.fill("#id_password", "correct-horse-9")
    page.click("button[type=submit]")
    page.wait_for_url("**/clusters/fixui/fix-plan/")
    group = page.locator("section.fix-group").first
    assert "1 node: install chrony and enable chrony" in group.inner_text() and "bfx1" in group.inner_text()
    shot(page, "1-plan")

    # choose the group and preview: the dry run on the node prints each step and runs none
    group.locator("input[name=group]").check()
    page.click("#fix-preview")
    page.wait_for_url("**/fix-runs/*/")
    assert "+ DEBIAN_FRONTEND=noninteractive apt-get install -y chrony" in page.inner_text("#fix-node-bfx1 pre.dry-run")
    assert trace(host) == []
    shot(page, "2-preview")

    # approve; the run and the re-audit finish while the operator reloads
    page.click("#fix-approve button[type=submit]")
    page.wait_for_selector("#fix-run-approver")
    assert page.inner_text("#fix-run-approver") == "fixer"
    deadline = time.monotonic() + 90
    while not page.locator("#fix-node-bfx1 .fix-after").count():
        assert time.monotonic() < deadline, "the re-audit did not finish in 90 s"
        time.sleep(1)
        page.reload()
    # the node's state before and after, in the one vocabulary (portal/states.py): a warning still counts as ready
    assert "before: Not ready after: Ready" in page.inner_text("#fix-node-bfx1")
    shot(page, "3-after")

    # then: the node list shows the node ready, and the plan has nothing left for it
    page.goto(f"{portal_server.url}/nodes/?cluster=fixui&readiness=ready")
    row = page.locator("table.table tbody tr", has_text="bfx1")
    assert row.count() == 1 and "Not ready" not in row.inner_text()
    page.goto(f"{portal_server.url}/clusters/fixui/fix-plan/")
    assert page.locator("#fix-plan-empty").is_visible()
    assert "fixer" in page.inner_text("#fix-runs")
    run = FixRun.objects.get(cluster=cluster)
    assert run.approved_by.username == "fixer" and run.state == "done"
    shot(page, "4-plan-after")
