"""In Chromium: an operator waives a failing check from the node page, the next audit counts the node ready on the
dashboard, and the install plan gives its command. The audit is the real service on a replayed node output
(tests/replay.py), run the way `manage.py audit` runs it; everything else is the portal in the browser."""

import pytest
from django.contrib.auth import get_user_model

from checks.services import audit_run_inline, audit_start
from tests.browser.test_pages import axe_violations, log_in
from tests.factories import ClusterFactory, CredentialFactory, NodeFactory
from tests.integration.fixtures import OUTPUT
from tests.replay import ReplayTransport, nvidia_worker_sections, sections

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def lab():
    get_user_model().objects.create_superuser("operator", password="correct-horse-9")
    cluster = ClusterFactory(name="lab", gpustack_image_tag="v2.0.0")
    credential = CredentialFactory()
    server = NodeFactory(cluster=cluster, name="srv", role="server", address="127.0.0.2", credential=credential)
    NodeFactory(cluster=cluster, name="w1", role="worker", address="127.0.0.3", credential=credential)
    transport = ReplayTransport({"127.0.0.2": sections(ntp=False), "127.0.0.3": nvidia_worker_sections()})

    def audit():
        audit_run_inline(audit=audit_start(cluster=cluster, node_names=["srv", "w1"]), transport=transport)

    audit()
    return server, audit


def _servers_ready(page) -> str:
    return page.locator(".card", has_text="Servers ready").locator(".big").inner_text()


def test_waive_from_the_node_page_then_ready_and_the_install_plan(live_server, page, lab):
    server, audit = lab
    base = live_server.url
    log_in(page, base)
    # given: the server fails time.ntp, so the dashboard counts it not ready
    page.goto(f"{base}/clusters/lab/")
    assert _servers_ready(page) == "0 / 1"
    # when: the operator waives time.ntp from the node page
    page.goto(f"{base}/nodes/{server.pk}/")
    waive = page.locator("#waive-time\\.ntp")
    waive.locator("summary").click()
    waive.locator("input[name=reason]").fill("NTP comes with the golden image next week")
    waive.locator("button[type=submit]").click()
    page.wait_for_url(f"**/nodes/{server.pk}/#waivers")
    assert "is waived for this node until" in page.locator(".messages, main").first.inner_text()
    assert "NTP comes with the golden image next week" in page.locator("#waivers + .scroll").inner_text()
    # and the next audit runs
    audit()
    # then: the node page keeps the real status beside "Waived", and the dashboard counts the server ready
    page.goto(f"{base}/nodes/{server.pk}/")
    head = page.locator("#check-time\\.ntp .head").inner_text()
    assert "Fail" in head and "Waived" in head
    page.goto(f"{base}/clusters/lab/")
    assert _servers_ready(page) == "1 / 1"
    assert "Ready:" in page.locator("#verdict").inner_text()
    # and the install plan lists the server first, then the worker with --runtime nvidia
    page.click("#install-plan-link")
    page.wait_for_url(f"{base}/clusters/lab/install/")
    plan = page.locator("#install-plan > li")
    assert plan.nth(0).get_attribute("id") == "plan-srv" and plan.nth(1).get_attribute("id") == "plan-w1"
    assert "sudo docker run -d --name gpustack " in plan.nth(0).locator("pre").inner_text()
    assert "--runtime nvidia" in plan.nth(1).locator("pre").inner_text()
    page.fill("#token", "typed-registration-token")
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#token-used")
    assert "--token typed-registration-token" in page.locator("#plan-w1 pre").inner_text()
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "issue23-install-plan.png"), full_page=True)
    assert axe_violations(page) == []
