"""Every main page in Debian's Chromium at 1440 and 390 px: axe-core finds no serious or critical violation, the
page never scrolls sideways on a phone, and a screenshot of each lands in test-output/ for a person to look at.

axe-core comes from npm (tests/browser/package.json, installed by scripts/test.sh), read from disk and injected
into the page: nothing is fetched at run time."""

import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from checks.models import NetworkPath
from tests.integration.fixtures import OUTPUT
from tests.uidata import build_cluster

from .conftest import CspWatch

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}


def axe_violations(page) -> list[dict]:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm ci --prefix tests/browser` (scripts/test.sh does)")
    # Evaluated by the browser's debugging protocol, not added as a <script>: the page's Content-Security-Policy
    # allows no inline script, and this test must not loosen it.
    page.evaluate(AXE.read_text())
    # target-size (WCAG 2.2 AA, tap targets of at least 24 px) is off by default in axe-core: turn it on.
    result = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations'], rules: {'target-size': {enabled: true}}})"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def log_in(page, base: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "correct-horse-9")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


@pytest.fixture
def demo():
    get_user_model().objects.create_superuser("operator", password="correct-horse-9")
    data = build_cluster("demo", 12)
    path = NetworkPath.objects.filter(audit=data["audits"][-1], status="fail").first()
    by_name = {n.name: n for n in data["nodes"]}
    old, new = data["audits"]
    return {
        "home": "/",
        "dashboard": "/clusters/demo/",
        "nodes": "/nodes/?sort=last_audit_status",
        "node-unreachable": f"/nodes/{by_name['w011'].pk}/",
        "node-failing": f"/nodes/{by_name['w007'].pk}/",
        "matrix": "/clusters/demo/matrix/",
        "path": f"/paths/{path.pk}/",
        "diff": f"/clusters/demo/diff/?a={old.pk}&b={new.pk}",
    }


@pytest.mark.parametrize("width", list(WIDTHS))
def test_pages_are_accessible_and_fit(live_server, browser, demo, width):
    # given: an operator on a desktop or a phone
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h})
    csp = CspWatch(context)
    page = context.new_page()
    page.set_default_timeout(20_000)
    OUTPUT.mkdir(exist_ok=True)
    try:
        log_in(page, live_server.url)
        problems = {}
        for name, url in demo.items():
            # when: each page opens
            page.goto(f"{live_server.url}{url}")
            page.screenshot(path=str(OUTPUT / f"ui15-{name}-{w}.png"), full_page=True)
            # then: no serious or critical accessibility violation, and nothing wider than the screen
            found = axe_violations(page)
            if found:
                problems[name] = found
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} at {w} px scrolls sideways by {overflow} px"
        assert not problems, problems
        # the header stays one line on a phone, with the menu behind a button
        header = page.locator("header.top").bounding_box()
        if width == "phone":
            assert header["height"] <= 60, header
            assert not page.locator("#menu").is_visible()
            page.click(".menu-button")
            assert page.locator("#menu").is_visible() and page.get_attribute(".menu-button", "aria-expanded") == "true"
            page.screenshot(path=str(OUTPUT / f"ui15-menu-open-{w}.png"))
        # and the Content-Security-Policy refused nothing on any of them
        assert csp.found == [], csp.found
    finally:
        context.close()


def test_no_page_breaks_the_content_security_policy(live_server, browser, demo):
    """Every page under the one policy (no inline script or style): the UI, the admin's lists, forms and actions,
    the token page, the login page and the API's Swagger UI, each opened and used the way a person would."""
    # given: a browser that reports every violation
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    csp = CspWatch(context)
    page = context.new_page()
    page.set_default_timeout(20_000)
    base = live_server.url
    try:
        # when: the login page, then every page of the UI, the admin and the API docs
        page.goto(f"{base}/login/")
        header = page.request.get(f"{base}/login/").headers["content-security-policy"]
        log_in(page, base)
        for url in demo.values():
            page.goto(f"{base}{url}")
        from inventory.models import Cluster, Node

        node = Node.objects.filter(name="w007").get()
        admin_pages = [
            "/admin/",
            "/admin/inventory/cluster/",
            f"/admin/inventory/cluster/{Cluster.objects.get(name='demo').pk}/change/",
            "/admin/inventory/cluster/import/",
            "/admin/inventory/node/?last_audit_status__exact=fail",
            f"/admin/inventory/node/{node.pk}/change/",
            "/admin/inventory/node/add/",
            "/admin/inventory/hostkey/",
            "/admin/inventory/credential/add/",
            "/admin/inventory/requirementprofile/",
            "/admin/checks/audit/",
            "/admin/checks/nodeaudit/",
            "/admin/checks/checkresult/",
            "/admin/django_celery_beat/periodictask/",
            "/admin/django_celery_beat/periodictask/add/",
            "/admin/auth/user/add/",
            "/account/tokens/",
        ]
        for url in admin_pages:
            response = page.goto(f"{base}{url}")
            assert response.status == 200, url
        # the admin's widgets: the credential autocomplete, a date-time shortcut and the action bar
        page.goto(f"{base}/admin/inventory/node/{node.pk}/change/")
        page.click(".select2-selection")
        page.wait_for_selector(".select2-results")
        page.goto(f"{base}/admin/inventory/node/")
        page.check("#action-toggle")
        page.goto(f"{base}/admin/django_celery_beat/periodictask/add/")
        page.click(".datetimeshortcuts a >> nth=1")
        # and the API's Swagger UI draws the operations from the OpenAPI document
        page.goto(f"{base}/api/v1/docs")
        page.wait_for_selector(".opblock-summary", timeout=30_000)
        page.click(".opblock-summary >> nth=0")
        page.wait_for_timeout(500)
    finally:
        context.close()
    # then: the policy was sent, and nothing was refused
    assert "script-src 'self'" in header and "style-src 'self'" in header and "unsafe-inline" not in header
    assert csp.found == [], csp.found


def test_node_page_says_once_why_a_node_was_not_reached(live_server, page, demo):
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}{demo['node-unreachable']}")
    banner = page.inner_text("#summary")
    assert "could not reach w011" in banner and "accept the new key" in banner
    assert "host key changed: host key changed" not in page.content()
    assert page.locator("text=not checked:").count() == 0
    assert page.locator("#stale-facts").is_visible()


@pytest.mark.integration
def test_audit_now_updates_the_dashboard_without_a_reload(live_server, page, lab, celery_worker):
    # given: a cluster of one reachable server and one worker, audited once, and its dashboard open
    from checks.models import Audit
    from checks.services import audit_run_inline, audit_start
    from inventory.choices import NodeRole
    from tests.integration.fixtures import add_lab_nodes, lab_credential, make_cluster, wait_for_audit
    from tests.lab import nodes

    get_user_model().objects.create_superuser("operator", password="correct-horse-9")
    cluster = make_cluster("live")
    key = lab_credential(lab)
    add_lab_nodes(cluster, [lab.add(nodes.plain("live-srv"))], key, role=NodeRole.SERVER)
    add_lab_nodes(cluster, [lab.add(nodes.plain("live-w1"))], key)
    first = audit_run_inline(audit=audit_start(cluster=cluster))
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/clusters/live/")
    assert f"Audit {first.pk}," in page.inner_text("#last-audit")

    # when: the operator starts an audit (the form posts and lands back on the dashboard) and waits
    page.click("#audit-now")
    page.wait_for_selector("#progress")
    page.evaluate("window.__noReload = true")  # gone if the page were loaded again
    second = Audit.objects.filter(cluster=cluster).exclude(pk=first.pk).get()
    wait_for_audit(second.pk)

    # then: the last-audit card and the recent-audits table show it, and the page was never reloaded
    # (polled with evaluate, which the page's Content-Security-Policy does not govern; wait_for_function evaluates a
    # string inside the page, which a policy without 'unsafe-eval' rightly refuses)
    refreshed = (
        f"document.querySelector('#last-audit').innerText.includes('Audit {second.pk},')"
        " && document.querySelector('#recent-audits tbody tr').innerText.includes('Finished')"
    )
    deadline = time.monotonic() + 30
    while not page.evaluate(refreshed):
        assert time.monotonic() < deadline, "the dashboard did not refresh within 30 s"
        page.wait_for_timeout(200)
    first_row = page.locator("#recent-audits tbody tr").first.inner_text()
    assert first_row.startswith(f"Audit {second.pk}") and "Finished" in first_row
    trend = page.locator("#live-history details table tbody tr")
    assert trend.count() == 2  # the trend table (and chart) now include the new audit
    assert page.evaluate("window.__noReload === true")
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "ui15-dashboard-after-live-audit-1440.png"), full_page=True)
