"""Whether a node was reached, and whose fault an error was, read the same on every page: a node reached whose probe
was cut short is Not ready, a node not reached is Unreachable, a run Preflight itself lost is Not audited (never
counted against the node). Database-level: tests/uidata.py's audited cluster, one run of each kind made so."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

from portal.tokens import api_token_create
from tests.uidata import build_cluster, portal_lost, probe_cut_short

pytestmark = pytest.mark.django_db


def _cluster(name: str, workers: int) -> dict:
    """uidata's cluster (w011 not reached: a changed host key; w007 failing), with w003's last run cut short after
    SSH connected and w004's last run lost by Preflight."""
    data = build_cluster(name, workers)
    data["by_name"] = by_name = {n.name: n for n in data["nodes"]}
    last = data["audits"][-1]
    data["cut"] = probe_cut_short(by_name["w003"], last)
    data["lost"] = portal_lost(by_name["w004"], last)
    return data


@pytest.fixture
def demo():
    return _cluster("demo", 12)


def _heat_counts(body: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state, n in re.findall(r'data-state="node:([a-z-]+)">([\d,]+) [A-Z]', body):
        counts[state] = counts.get(state, 0) + int(n.replace(",", ""))
    return counts


def test_dashboard_counts_a_cut_short_node_not_ready_and_a_lost_run_not_audited(admin_client, demo):
    # when
    body = admin_client.get("/clusters/demo/").content.decode()
    # then: one node Unreachable (w011), two Not ready (w007 failing, w003 cut short), one Not audited (w004)
    assert _heat_counts(body) == {"not-ready": 2, "unreachable": 1, "not-audited": 1, "ready": 9}
    cells = {int(pk): css for css, pk in re.findall(r'<a class="(state-[a-z-]+)" href="/nodes/(\d+)/"', body)}
    assert cells[demo["by_name"]["w003"].pk] == "state-not-ready"
    assert cells[demo["by_name"]["w004"].pk] == "state-not-audited"
    assert cells[demo["by_name"]["w011"].pk] == "state-unreachable"
    # the "not ready" count of the workers: failing or unreachable, never the run Preflight lost
    workers = body.split('Workers ready</div><div class="big">', 1)[1].split("</div>", 1)[0]
    assert workers == "8 / 12"


def test_audit_pages_read_each_run_by_who_was_reached_and_whose_fault(admin_client, demo):
    # when
    audit = demo["audits"][-1]
    progress = admin_client.get(f"/audits/{audit.pk}/progress/").content.decode()
    # then
    lines = dict(re.findall(r"<li>(w\d+): <span[^>]*data-state=\"node:([a-z-]+)\"", progress))
    assert (lines["w003"], lines["w004"], lines["w011"]) == ("not-ready", "not-audited", "unreachable")


def test_node_page_of_a_lost_run_blames_preflight_and_its_history_says_not_audited(admin_client, demo):
    # when
    page = admin_client.get(f"/nodes/{demo['by_name']['w004'].pk}/").content.decode()
    # then: the summary names Preflight's fault; the run's history row is Not audited, nowhere Unreachable
    assert 'id="portal-error"' in page and "could not reach" not in page
    history = page.split("<h2>History</h2>", 1)[1].split("</tbody>", 1)[0]
    latest = history.split("<tbody>", 1)[1].split("</tr>", 1)[0]
    assert 'data-state="node:not-audited">Not audited</span>' in latest
    assert "node:unreachable" not in page


def test_node_page_of_a_cut_short_run_says_not_ready_in_its_badge_and_its_text(admin_client, demo):
    # when
    page = admin_client.get(f"/nodes/{demo['by_name']['w003'].pk}/").content.decode()
    # then
    assert 'data-state="node:not-ready">Not ready</span>' in page.split("</h1>", 1)[0]
    assert "checks did not run" in page and "node:unreachable" not in page


def test_readiness_filters_tell_unreached_from_reached(admin_client, demo):
    # when
    def names(readiness: str) -> set[str]:
        rows = admin_client.get(f"/nodes/?cluster=demo&readiness={readiness}&export=json").json()
        return {r["name"] for r in rows}

    # then
    assert names("unreachable") == {"w011"}
    assert names("not_ready") == {"w003", "w007", "w011"}
    assert "w003" not in names("ready") and "w011" not in names("ready")


def test_the_api_lists_readiness_as_the_pages_do(client, django_user_model, demo):
    # given
    user = django_user_model.objects.create_superuser("api", password="x")
    _, token = api_token_create(user=user, name="t")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    # when
    items = client.get("/api/v1/nodes?cluster=demo&limit=100", **auth).json()["items"]
    unreached = client.get("/api/v1/nodes?cluster=demo&readiness=unreachable", **auth).json()["items"]
    refused = client.get("/api/v1/nodes?cluster=demo&readiness=nonsense", **auth)
    document = client.get(f"/api/v1/audits/{demo['audits'][-1].pk}", **auth).json()
    # then
    readiness = {n["name"]: n["readiness"] for n in items}
    assert (readiness["w003"], readiness["w011"], readiness["w007"], readiness["w001"]) == (
        "not-ready",
        "unreachable",
        "not-ready",
        "ready",
    )
    assert [n["name"] for n in unreached] == ["w011"]
    assert refused.status_code == 422
    runs = {n["name"]: n for n in document["nodes"]}
    assert runs["w004"]["readiness"] == "not-audited" and runs["w004"]["portal_error"]
    assert runs["w003"]["readiness"] == "not-ready" and runs["w011"]["readiness"] == "unreachable"


def test_metrics_do_not_count_a_lost_run_against_the_node(demo):
    # when
    body = Client(REMOTE_ADDR="127.0.0.1").get("/metrics").content.decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    # then: 12 workers, w004's lost run in neither count; w003 and w011 (and w007) not ready
    ready = samples[("preflight_nodes", (("cluster", "demo"), ("readiness", "ready"), ("role", "worker")))]
    not_ready = samples[("preflight_nodes", (("cluster", "demo"), ("readiness", "not_ready"), ("role", "worker")))]
    assert (ready, not_ready) == (8, 3)


PAGES = [
    ("dashboard", lambda d: f"/clusters/{d['cluster'].name}/"),
    ("node list, unreachable", lambda d: f"/nodes/?cluster={d['cluster'].name}&readiness=unreachable"),
    ("node list", lambda d: f"/nodes/?cluster={d['cluster'].name}&sort=last_audit_status"),
    ("node page, cut short", lambda d: f"/nodes/{d['cut'].node_id}/"),
    ("node page, lost", lambda d: f"/nodes/{d['lost'].node_id}/"),
    ("audit progress", lambda d: f"/audits/{d['audits'][-1].pk}/progress/"),
]


def _queries(client, url: str) -> int:
    client.get(url)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("label,url", PAGES, ids=[p[0] for p in PAGES])
def test_reading_who_was_reached_costs_no_query_per_node(admin_client, label, url):
    # given the same cluster at N and at 3N nodes, each with a run cut short and a run lost
    small = _cluster("small", 12)
    few = _queries(admin_client, url(small))
    large = _cluster("large", 36)
    # when / then
    assert _queries(admin_client, url(large)) == few, label


def test_worst_first_lists_unreachable_nodes_before_the_not_ready_ones(admin_client, demo):
    # when
    rows = admin_client.get("/nodes/?cluster=demo&sort=last_audit_status&export=json").json()
    # then: w011 (not reached) first, then the Not ready ones: w003 (reached, cut short) with w007 (failing)
    assert [r["name"] for r in rows[:3]] == ["w011", "w003", "w007"]
    assert [r["status"] for r in rows[:3]] == ["Unreachable", "Not ready", "Not ready"]
