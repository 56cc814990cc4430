"""Issue 25 item 5 in Debian's Chromium: the node list fits 25 or more one-line rows on a 1440x900 screen, and
"Audit selected" of three ticked nodes starts one audit of exactly those nodes."""

import socket

import pytest
from django.contrib.auth import get_user_model

from checks.models import Audit, NodeAudit
from inventory.models import Node
from tests.integration.fixtures import OUTPUT
from tests.uidata import build_cluster

from .conftest import CspWatch
from .test_pages import log_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ROWS_IN_VIEW = """() => [...document.querySelectorAll('#nodes tbody tr')]
  .filter(row => row.getBoundingClientRect().bottom <= window.innerHeight).length"""
TALLEST_ROW = "() => Math.max(...[...document.querySelectorAll('#nodes tbody tr')].map(r => r.offsetHeight))"


@pytest.fixture
def desk(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    csp = CspWatch(context)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()
    assert csp.found == [], csp.found


@pytest.fixture
def fleet():
    get_user_model().objects.create_superuser("operator", password="correct-horse-9")
    return build_cluster("nd", 39, audits=1, mesh=False)


def test_node_list_shows_25_one_line_rows_at_1440x900(live_server, desk, fleet):
    # given
    log_in(desk, live_server.url)
    # when: the list opens, worst first (the longest Why cells on top)
    desk.goto(f"{live_server.url}/nodes/?sort=last_audit_status")
    OUTPUT.mkdir(exist_ok=True)
    desk.screenshot(path=str(OUTPUT / "ui25-node-list-1440.png"))
    # then: at least 25 whole rows are on the first screen, each one line high, and nothing scrolls sideways
    assert desk.evaluate(ROWS_IN_VIEW) >= 25
    assert desk.evaluate(TALLEST_ROW) <= 30
    assert desk.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    # and the list of one cluster, under its breadcrumbs (Clusters > nd > Nodes), still shows 25
    desk.goto(f"{live_server.url}/nodes/?cluster=nd&sort=last_audit_status")
    assert desk.evaluate(ROWS_IN_VIEW) >= 25


def _closed_port() -> int:
    """A loopback port nothing listens on: the audit's SSH connection is refused at once, never leaving the host."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_audit_selected_starts_one_audit_of_exactly_the_ticked_nodes(live_server, desk, fleet):
    # given: three nodes on loopback (the test's audit runs inline and must reach nothing else)
    chosen = ["w002", "w004", "w009"]
    Node.objects.filter(cluster=fleet["cluster"], name__in=chosen).update(address="127.0.0.1", ssh_port=_closed_port())
    before = set(Audit.objects.values_list("pk", flat=True))
    log_in(desk, live_server.url)
    desk.goto(f"{live_server.url}/nodes/?cluster=nd&sort=name")
    # when: the operator ticks them and presses "Audit selected"
    for name in chosen:
        desk.get_by_label(f"Select {name}", exact=True).check()
    assert desk.inner_text("#selected-count") == "3 selected:"
    desk.click("#audit-selected")
    desk.wait_for_selector(".messages li")
    # then: one audit, of those three nodes and no other, and the list it was started from
    new = Audit.objects.exclude(pk__in=before)
    assert new.count() == 1, list(new.values_list("pk", "partial"))
    assert sorted(NodeAudit.objects.filter(audit=new.get()).values_list("node__name", flat=True)) == chosen
    assert f"Audit {new.get().pk} of 3 nodes in nd started." in desk.inner_text(".messages")
    assert desk.url.endswith("/nodes/?cluster=nd&sort=name")
