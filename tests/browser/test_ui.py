"""An operator's session in a real browser: log in, audit, filter, fix, compare, and find the blocked port."""

import pytest
from django.contrib.auth import get_user_model

from inventory.choices import NodeRole
from tests.integration.fixtures import OUTPUT, add_lab_nodes, lab_credential, make_cluster, wait_for_audit
from tests.lab import nodes

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture(scope="module")
def hosts(lab):
    return {
        "head": lab.add(nodes.plain("head")),
        "gpu-a": lab.add(nodes.nvidia_healthy("gpu-a")),
        "gpu-b": lab.add(nodes.without_ntp("gpu-b")),
    }


def shot(page, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"ui-{name}.png"), full_page=True)


def test_operator_session(portal_server, page, lab, hosts, celery_worker):
    # given: an operator, and a cluster of one server and two workers, audited once while everything was open
    get_user_model().objects.create_superuser("operator", password="correct-horse-9")
    cluster = make_cluster("rack1")
    key = lab_credential(lab)
    add_lab_nodes(cluster, [hosts["head"]], key, role=NodeRole.SERVER)
    add_lab_nodes(cluster, [hosts["gpu-a"], hosts["gpu-b"]], key)
    from checks.services import audit_run_inline, audit_start

    first = audit_run_inline(audit=audit_start(cluster=cluster))
    assert first.state == "done"

    # log in
    page.goto(f"{portal_server.url}/clusters/rack1/")
    assert "/login/" in page.url
    page.fill("#id_username", "operator")
    page.fill("#id_password", "correct-horse-9")
    page.click("button[type=submit]")
    page.wait_for_url("**/clusters/rack1/")
    shot(page, "1-dashboard")

    # a firewall rule appears on gpu-b; the operator audits from the dashboard and watches it finish
    hosts["gpu-b"].exec("iptables -A INPUT -p tcp --dport 10150 -j DROP")
    try:
        page.click("#audit-now")
        page.wait_for_selector("#progress")
        page.wait_for_selector("#progress[data-state=done]", timeout=60_000)
        shot(page, "2-audit-finished")
        assert "Result:" in page.inner_text("#progress")
        second = cluster.audits.order_by("-created").first()
        wait_for_audit(second.pk)
    finally:
        hosts["gpu-b"].exec("iptables -F INPUT")

    # filter the node list to failing workers
    page.goto(f"{portal_server.url}/nodes/")
    page.select_option("select[name=role]", "worker")
    page.select_option("select[name=status]", "fail")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**status=fail**")
    rows = page.locator("table.table tbody tr")
    assert rows.count() == 1 and "gpu-b" in rows.first.inner_text() and "Not ready" in rows.first.inner_text()
    shot(page, "3-failing-workers")

    # open the failing node, expand evidence, download the remediation script
    page.click("text=gpu-b")
    page.wait_for_selector("#check-time\\.ntp")
    ntp = page.locator("#check-time\\.ntp")
    assert "Fail" in ntp.inner_text()
    ntp.locator("summary").click()
    assert ntp.locator("details pre").is_visible()
    assert "none of chronyd" in ntp.locator("details pre").inner_text()
    # the Copy button copies the commands alone, not the explanation
    ntp.locator("button.copy").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == "DEBIAN_FRONTEND=noninteractive apt-get install -y chrony\nsystemctl enable --now chrony"
    shot(page, "4-node-page")
    with page.expect_download() as download_info:
        page.click("#download-script")
    script = open(download_info.value.path()).read()
    assert script.startswith("#!/bin/sh") and "\n  DEBIAN_FRONTEND=noninteractive apt-get install -y chrony\n" in script
    assert "# [fail] time.ntp:" in script

    # compare the two audits and see the check that changed
    page.goto(f"{portal_server.url}/clusters/rack1/diff/?a={first.pk}&b={second.pk}")
    changed = page.inner_text("#changed-checks")
    assert "network.server_to_worker" in changed and "gpu-b" in changed
    assert "closed (pass → fail)" in page.content()
    shot(page, "5-diff")

    # open the matrix and find the blocked port
    page.goto(f"{portal_server.url}/clusters/rack1/matrix/")
    failing = page.locator("td.cell-fail")
    assert failing.count() >= 1 and "10150 timed out" in failing.first.get_attribute("title")
    shot(page, "6-matrix")
    failing.first.locator("a").click()
    page.wait_for_selector("#ports")
    assert "timed out" in page.locator("#ports tr", has_text="10150").inner_text()
    shot(page, "7-path")
