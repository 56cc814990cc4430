"""The operator's console on a 500-node cluster (issue 25), in Debian's Chromium at 1440 and 390 px, light and dark.

Every page: no horizontal overflow (a wide table may scroll inside its own box, the page may not), and axe-core finds
no serious or critical violation in either colour scheme. The jump box: `/` opens it from any page, typing a node's
name and Enter lands on that node's page, and `/` typed into a field stays in the field.

One browser, one seeded database for the module (1 server + 499 workers, a full matrix), one page reused for every
check; the portal is served by gunicorn as in production. A failure names the page, the width and the colour scheme.
Screenshots of every page land in test-output/console/ for a person to look at."""

import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from tests.integration.fixtures import OUTPUT
from tests.uidata import build_cluster

from .conftest import CspWatch

# Committed, so that gunicorn (another process) reads it; the flush after the test removes it, and the serialized
# rollback puts back what the migrations wrote for the tests that follow.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {1440: 900, 390: 844}
SHOTS = OUTPUT / "console"
USER, PASSWORD = "console-operator", "correct-horse-9"


@pytest.fixture
def fleet():
    """1 server + 499 workers, two audits (the last with a full matrix), and a superuser."""
    started = time.monotonic()
    get_user_model().objects.create_superuser(USER, password=PASSWORD)
    data = build_cluster("fleet", 499)
    print(f"\nseeded {len(data['nodes'])} nodes in {time.monotonic() - started:.1f} s")
    by_name = {n.name: n for n in data["nodes"]}
    old, new = data["audits"]
    pages = {
        "login": "/login/",
        "cluster list": "/",
        "dashboard": "/clusters/fleet/",
        "node list": "/nodes/?cluster=fleet",
        "node page": f"/nodes/{by_name['w007'].pk}/",
        "matrix": "/clusters/fleet/matrix/",
        "compare": f"/clusters/fleet/diff/?a={old.pk}&b={new.pk}",
        "fix plan": "/clusters/fleet/fix-plan/",
        "install plan": "/clusters/fleet/install/",
        "tokens": "/account/tokens/",
        "API docs": "/api/v1/docs",
        "admin node": f"/admin/inventory/node/{by_name['w007'].pk}/change/",
    }
    return {"pages": pages, "nodes": by_name}


def axe_violations(page) -> list[str]:
    # Evaluated through the debugging protocol, not added as a <script>: the page's policy allows no inline script.
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    result = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations'], rules: {'target-size': {enabled: true}}})"
    )
    return [
        f"{v['id']} ({v['impact']}) at {', '.join(str(n['target']) for n in v['nodes'][:3])}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def log_in(page, base: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", USER)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def open_page(page, url: str, name: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, f"{name}: {url} answered {response and response.status}"
    if name == "API docs":  # Swagger UI draws the operations after the page loads
        page.wait_for_selector(".opblock-summary", timeout=30_000)


def shoot(page, path: Path, width: int) -> None:
    """The top of the page, at most 2,400 px of it (the install plan of 500 nodes is 125,000 px tall)."""
    height = min(page.evaluate("document.documentElement.scrollHeight"), 2400)
    page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height})


def check_pages(page, base: str, pages: dict, width: int, csp: CspWatch) -> list[str]:
    """Every page at this width, light then dark: what overflows and what axe-core finds serious or critical."""
    problems = []
    for name, url in pages.items():
        if name == "cluster list":
            log_in(page, base)  # after the login page, which a logged-in operator never sees
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            open_page(page, f"{base}{url}", name)
            where = f"{name} at {width} px, {scheme}"
            shoot(page, SHOTS / f"{name.replace(' ', '-')}-{width}-{scheme}.png", width)
            if name == "dashboard":
                problems.extend(check_trend_colours(page, where))
            if name == "compare" and scheme == "light":
                problems.extend(check_name_lists(page, where))
            if name == "dashboard" and scheme == "light" and width < 640:
                problems.extend(check_heatmap_height(page, where))
            if scheme == "light" and (wide := overflow(page)) > 0:
                problems.append(f"{where}: scrolls sideways by {wide} px")
            # axe-core itself adds an inline <style> on some pages (the admin's), which the policy refuses: what is
            # refused while it runs is the tool's, not the page's (the page's own load was watched before it).
            before = len(csp.found)
            problems.extend(f"{where}: axe {found}" for found in axe_violations(page))
            del csp.found[before:]
    page.emulate_media(color_scheme="light")
    return problems


HEATMAP_HEIGHT = """() => {
  const groups = [...document.querySelectorAll("#heatmap .pf-hm-cells")];
  const cells = groups.sort((a, b) => b.scrollHeight - a.scrollHeight)[0];  // the workers' group, 499 cells
  return cells && {shown: cells.clientHeight, all: cells.scrollHeight, screen: window.innerHeight,
                   page: document.documentElement.scrollHeight};
}"""


def check_heatmap_height(page, where: str) -> list[str]:
    """On a phone the 500 cells scroll inside half a screen: the page used to grow by the whole heatmap."""
    found = page.evaluate(HEATMAP_HEIGHT)
    if found is None:
        return [f"{where}: no heatmap"]
    if found["shown"] > found["screen"] / 2 + 1 or found["all"] <= found["shown"]:
        return [f"{where}: the heatmap shows {found['shown']} of {found['all']} px (screen {found['screen']} px)"]
    return []


NAME_LISTS = """() => {
  const items = [...document.querySelectorAll('td[data-label="Which"] .pf-item')];
  const split = items.filter((item) => item.getClientRects().length > 1);
  return {items: items.length, split: split.map((item) => item.textContent)};
}"""


def check_name_lists(page, where: str) -> list[str]:
    """The comparison's "Which" lists of node names: each name keeps its comma on its own line (at 390 px a line
    used to start with ", w045")."""
    found = page.evaluate(NAME_LISTS)
    if not found["items"]:
        return [f"{where}: no node names in the 'Which' lists"]
    return [f"{where}: '{text}' is split across two lines" for text in found["split"]]


TREND_COLOURS = """() => {
  const chart = window.Chart && Chart.getChart(document.getElementById("trend"));
  if (!chart) return null;
  const style = getComputedStyle(document.documentElement), css = (name) => style.getPropertyValue(name).trim();
  return {ready: [chart.data.datasets[0].borderColor, css("--pass-text")],
          ticks: [chart.options.scales.y.ticks.color, css("--fg")],
          grid: [chart.options.scales.y.grid.color, css("--line")]};
}"""


def check_trend_colours(page, where: str) -> list[str]:
    """The trend chart (a canvas axe-core cannot read) draws in the page's own colours for its scheme: Chart.js's
    defaults, dark grey text and a dark green line, did not show on the dark page."""
    found = page.evaluate(TREND_COLOURS)
    if found is None:
        return [f"{where}: no trend chart drawn"]
    return [
        f"{where}: trend {part} drawn in {drawn}, the page's is {css}"
        for part, (drawn, css) in found.items()
        if drawn != css
    ]


def check_jump(page, base: str, node, width: int) -> list[str]:
    """`/` on the node list opens the box; the node's name and Enter land on its page; Esc closes; `/` in a field
    is typed."""
    where = f"jump box at {width} px"
    page.goto(f"{base}/nodes/?cluster=fleet")
    if page.locator("#jump").is_visible():
        return [f"{where}: open before `/` was pressed"]
    page.keyboard.press("/")
    if not page.locator("#jump").is_visible() or page.evaluate("document.activeElement.id") != "jump-q":
        return [f"{where}: `/` did not open the box and focus its field"]
    page.keyboard.type(node.name)
    page.wait_for_selector("#jump-results a")
    page.screenshot(path=str(SHOTS / f"jump-box-{width}.png"))
    first = page.locator("#jump-results a").first.inner_text()
    if first != node.name:
        return [f"{where}: the first match for {node.name} is {first}"]
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/nodes/{node.pk}/")
    problems = []
    if node.name not in page.locator("h1").inner_text():
        problems.append(f"{where}: Enter did not land on {node.name}'s page")
    page.keyboard.press("/")
    page.keyboard.press("Escape")
    if page.locator("#jump").is_visible():
        problems.append(f"{where}: Esc did not close the box")
    page.goto(f"{base}/account/tokens/")
    page.fill("input[name=name]", "ci")
    page.keyboard.press("/")
    if page.input_value("input[name=name]") != "ci/" or page.locator("#jump").is_visible():
        problems.append(f"{where}: `/` typed into a field opened the box instead of typing")
    return problems


def test_console_fits_passes_axe_and_jumps_at_500_nodes(portal_server, browser, fleet):
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm ci --prefix tests/browser` (scripts/test.sh does)")
    # given: the operator's pages on a 500-node cluster, and one browser page at desktop and phone widths
    SHOTS.mkdir(parents=True, exist_ok=True)
    base = portal_server.url
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    csp = CspWatch(context)
    page = context.new_page()
    page.set_default_timeout(30_000)
    problems: list[str] = []
    started = time.monotonic()
    try:
        for width, height in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            context.clear_cookies()
            # when: each page opens, in light and in dark mode, and the operator jumps to a node with `/`
            problems += check_pages(page, base, fleet["pages"], width, csp)
            problems += check_jump(page, base, fleet["nodes"]["w123"], width)
    finally:
        context.close()
    took = time.monotonic() - started
    print(f"{len(fleet['pages'])} pages x 2 widths x 2 schemes and the jump box checked in {took:.1f} s")
    # then: no page scrolls sideways, axe-core finds nothing serious, the jump box lands on the node
    assert not problems, "\n".join(["", *problems])
    # and the Content-Security-Policy refused nothing on any of them
    assert csp.found == [], csp.found
