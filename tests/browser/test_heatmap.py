"""Issue 25: the dashboard's fleet heatmap links to a node (Debian's Chromium, Playwright), and the per-check page
passes axe-core like the other pages."""

import pytest

from tests.integration.fixtures import OUTPUT
from tests.uidata import build_cluster

from .conftest import CspWatch
from .test_pages import axe_violations, log_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_a_heatmap_cell_opens_its_node(live_server, browser):
    # given: an operator on the dashboard of a 12-worker cluster
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("operator", password="correct-horse-9")
    data = build_cluster("heat", 12, mesh=False)
    w007 = next(n for n in data["nodes"] if n.name == "w007")
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    csp = CspWatch(context)
    page = context.new_page()
    page.set_default_timeout(20_000)
    OUTPUT.mkdir(exist_ok=True)
    try:
        log_in(page, live_server.url)
        page.goto(f"{live_server.url}/clusters/heat/")
        cell = page.locator('#heatmap a[title^="w007 · "]')
        assert cell.get_attribute("title") == "w007 · Not ready · container.docker: docker is not installed"
        assert "state-not-ready" in cell.get_attribute("class")
        box = cell.bounding_box()
        assert box["width"] >= 16 and box["height"] >= 16, box  # a cell you can see and click
        page.screenshot(path=str(OUTPUT / "ui25-dashboard-1440.png"), full_page=True)
        # when: the operator clicks the cell
        cell.click()
        # then: that node's page
        page.wait_for_url(f"{live_server.url}/nodes/{w007.pk}/")
        assert "w007" in page.locator("h1").inner_text()
        # and the per-check page has no serious accessibility violation
        page.goto(f"{live_server.url}/clusters/heat/checks/container.docker/")
        page.screenshot(path=str(OUTPUT / "ui25-check-1440.png"), full_page=True)
        assert axe_violations(page) == []
        assert csp.found == [], csp.found
    finally:
        context.close()
