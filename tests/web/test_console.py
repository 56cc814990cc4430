"""Issue 25 items 3, 4 and 8: the fleet heatmap, the dashboard's causes counted in nodes, the per-check page, the
compact trend, and the matrix rollup's numbers and grouping. Django's test client on tests/uidata.py clusters."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from checks.models import Audit, CheckResult, NetworkPath
from checks.selectors.dashboard import CAUSE_CHARS, Fleet, FleetNode, Problem, heatmap
from checks.templatetags.heatmap import heatmap_cells
from inventory.models import Node
from tests.uidata import build_cluster, node_kind

pytestmark = pytest.mark.django_db

CELL = re.compile(r'<a class="(state-[a-z-]+)" href="/nodes/(\d+)/" title="([^"]*)"></a>')


def _part(body: str, marker: str, end: str = "</table>") -> str:
    return body.split(marker, 1)[1].split(end, 1)[0]


def _get(client, url: str, **params) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params)
    assert response.status_code == 200
    return response.content.decode(), len(queries)


@pytest.fixture
def demo():
    data = build_cluster("demo", 12)
    data["by_name"] = {n.name: n for n in data["nodes"]}
    return data


def test_heatmap_draws_one_linked_cell_per_node_grouped_by_role_and_network_group(admin_client, demo):
    # given: w001-w008 in rack-a, the other workers in no group
    workers = [n for n in demo["nodes"] if n.role == "worker"]
    Node.objects.filter(pk__in=[n.pk for n in workers[:8]]).update(network_group="rack-a")
    # when
    body, _ = _get(admin_client, "/clusters/demo/")
    # then: one cell per node, each a link to its node with the colour of its state and a hover text
    heat = _part(body, 'id="heatmap"', '<h2 id="trend-title">')
    cells = {int(pk): (css, title) for css, pk, title in CELL.findall(heat)}
    assert set(cells) == {n.pk for n in demo["nodes"]}
    by_name = demo["by_name"]
    assert cells[by_name["w001"].pk] == ("state-ready", "w001 · Ready")
    docker = "w007 · Not ready · container.docker: docker is not installed"
    assert cells[by_name["w007"].pk] == ("state-not-ready", docker)
    assert cells[by_name["w011"].pk][0] == "state-unreachable"
    assert cells[by_name["w011"].pk][1].startswith("w011 · Unreachable · ssh.connect: host key changed")
    assert len(cells[by_name["w011"].pk][1]) <= len("w011 · Unreachable · ") + CAUSE_CHARS
    assert cells[by_name["w005"].pk][1] == "w005 · Ready · time.ntp: chronyd runs but is not synchronised yet"
    # grouped: servers, then the workers of no group, then rack-a's, each with its counts in the one vocabulary
    labels = re.findall(r'<section class="pf-hm-group" aria-label="([^"]+)">', heat)
    assert labels == ["Servers", "Workers", "Workers · rack-a"]
    rack = heat.split('aria-label="Workers · rack-a"')[1].split("</section>")[0]
    assert {int(pk) for _, pk, _ in CELL.findall(rack)} == {n.pk for n in workers[:8]}
    assert 'data-state="node:not-ready">1 Not ready</span>' in rack and ">7 Ready</span>" in rack


def test_heatmap_of_3000_nodes_stays_small():
    # given: 3,000 nodes with long names in 30 racks, one in four with a long cause (the uidata mix)
    nodes, found = {}, []
    for i in range(1, 3001):
        kind = node_kind(i)
        status = "error" if kind == "unreachable" else kind
        nodes[i] = FleetNode(i, f"gpu-node-{i:05d}", "10.0.0.1", "worker", f"rack-{i // 100:02d}", status)
        if kind != "pass":
            found.append(Problem(i, "container.docker", status, "docker is not installed on this node " * 5))
    # when
    groups = heatmap(Fleet(nodes, []), found)
    html = "".join(heatmap_cells(g) for g in groups)
    # then: every node drawn, in well under 400 KB
    assert sum(len(g.cells) for g in groups) == 3000 and len(CELL.findall(html)) == 3000
    assert len(html.encode()) < 400_000


def test_heatmap_above_its_limit_counts_the_rest():
    nodes = {i: FleetNode(i, f"n{i}", "", "worker", "", "pass") for i in range(1, 11)}
    groups = heatmap(Fleet(nodes, []), [], limit=4)
    assert [len(g.cells) for g in groups] == [4] and groups[0].total == 10


def test_dashboard_and_check_page_queries_do_not_grow_with_nodes(admin_client):
    # given: a cluster of 12 workers and one of 48 (each with two audits and a full matrix)
    build_cluster("small", 12)
    build_cluster("large", 48)
    # when
    counts = {
        name: [
            _get(admin_client, f"/clusters/{name}/")[1],
            _get(admin_client, f"/clusters/{name}/checks/container.docker/")[1],
            _get(admin_client, f"/clusters/{name}/checks/network.worker_to_worker/")[1],
        ]
        for name in ("small", "large")
    }
    # then
    assert counts["small"] == counts["large"]


def test_why_counts_nodes_per_cause_with_network_causes_and_warnings(admin_client):
    # given: 24 workers; besides the uidata faults, the worker-to-server paths of 5 healthy workers are blocked at srv
    data = build_cluster("net", 24, mesh=False)
    latest = data["audits"][-1]
    healthy = [n for n in data["nodes"] if data["kinds"][n.pk] == "pass" and n.role == "worker"][:5]
    NetworkPath.objects.filter(audit=latest, check_id="network.worker_to_server", source__in=healthy).update(
        status="fail"
    )
    warned = sum(1 for kind in data["kinds"].values() if kind == "warn")
    failing = [n for n in data["nodes"] if data["kinds"][n.pk] in ("fail", "unreachable")]
    # when
    body, _ = _get(admin_client, "/clusters/net/")
    # then: the verdict counts nodes per cause, never paths
    verdict = _part(body, 'id="verdict"', "</p>")
    assert "paths blocked at srv: 5 nodes" in verdict
    why = _part(body, 'id="top-failing"')
    rows = why.split("<tr")[2:]
    at_srv = next(r for r in rows if "paths blocked at" in r and ">srv</a>" in r)
    assert 'data-kind="path"' in at_srv and "network.worker_to_server" in at_srv and 'aria-label="5 nodes' in at_srv
    into = next(r for r in rows if "network.server_to_worker" in r and 'data-state="check:fail"' in r)
    assert f"paths blocked into {len(failing)} nodes" in into and f'aria-label="{len(failing)} nodes' in into
    docker = next(r for r in rows if "container.docker" in r)
    assert "docker is not installed" in docker  # the cause, not "Fail" again
    # and the warnings have a row of their own
    warnings = next(r for r in rows if 'data-kind="warning"' in r)
    assert "time.ntp" in warnings and f'aria-label="{warned} nodes warn' in warnings


def test_check_page_groups_failing_nodes_by_cause_with_the_fix_once(admin_client):
    # given: 30 workers, a few of which fail container.docker with another summary
    data = build_cluster("chk", 30, mesh=False)
    latest = data["audits"][-1]
    failing = sorted(n.name for n in data["nodes"] if data["kinds"][n.pk] == "fail")
    odd = failing[0]
    rows = CheckResult.objects.filter(node_audit__audit=latest, check_id="container.docker")
    rows.filter(node_audit__node__name=odd).update(summary=f"docker on {odd} is 19.03, too old")
    unreachable = sorted(n.name for n in data["nodes"] if data["kinds"][n.pk] == "unreachable")
    # when
    body, _ = _get(admin_client, "/clusters/chk/checks/container.docker/")
    # then: two causes, the node's own name left out of its cause, each node linked once
    groups = _part(body, 'id="check-groups"').split("<tr>")[2:]
    assert len(groups) == 2
    assert "docker is not installed" in groups[0] and f'<td class="pf-count">{len(failing) - 1}</td>' in groups[0]
    assert "docker on ‹node› is 19.03, too old" in groups[1] and f">{odd}</a>" in groups[1]
    linked = re.findall(r'<a href="/nodes/\d+/">([^<]+)</a>', _part(body, 'id="check-groups"'))
    assert sorted(linked) == failing
    # the common fix once, the unreachable nodes folded into one line
    assert body.count("Install Docker Engine and start it at boot.") == 1
    assert body.count("systemctl enable --now docker") == 1
    not_checked = _part(body, 'id="not-checked"', "</p>")
    assert re.findall(r'<a href="/nodes/\d+/">([^<]+)</a>', not_checked) == unreachable


def test_check_page_of_a_network_check_groups_paths_by_the_node_they_are_blocked_at(admin_client, demo):
    latest = demo["audits"][-1]
    body, _ = _get(admin_client, "/clusters/demo/checks/network.worker_to_worker/")
    groups = _part(body, 'id="check-groups"')
    w007 = NetworkPath.objects.filter(audit=latest, check_id="network.worker_to_worker", destination__name="w007")
    blocked = w007.filter(status="fail").count()
    assert re.search(rf"<td class=\"pf-count\">{blocked}</td>\s*<td class=\"why-cell\">blocked at w007: ", groups)
    assert "node=w007#node-paths" in groups
    assert admin_client.get("/clusters/demo/checks/no.such.check/").status_code == 404


def test_trend_range_and_recent_audits_link_to_their_pages(admin_client):
    # given: three audits, the first 40 days ago
    data = build_cluster("trend", 4, audits=3, mesh=False)
    first, second, third = data["audits"]
    Audit.objects.filter(pk=first.pk).update(created=timezone.now() - timedelta(days=40))
    # when
    month, _ = _get(admin_client, "/clusters/trend/")
    quarter, _ = _get(admin_client, "/clusters/trend/", days="90")
    # then
    audits = [a.pk for a in data["audits"]]
    assert re.findall(r'"audit": (\d+)', _part(month, 'id="trend-data"', "</script>")) == [str(a) for a in audits[1:]]
    assert re.findall(r'"audit": (\d+)', _part(quarter, 'id="trend-data"', "</script>")) == [str(a) for a in audits]
    assert 'href="?days=90#trend-title" aria-current="true"' in quarter
    recent = _part(month, 'id="recent-audits"')
    assert f'<a href="/audits/{third.pk}/">Audit {third.pk}</a>' in recent
    assert f'href="/clusters/trend/diff/?a={second.pk}&amp;b={third.pk}">changes since {second.pk}</a>' in recent
    assert f'href="/clusters/trend/matrix/?audit={third.pk}">matrix</a>' in recent
    # "Audit now" is the one button: a POST form, the views are links
    actions = _part(month, 'class="pf-actions"', "</div>")
    assert re.search(r'<form method="post" action="/clusters/trend/audit/"[^>]*>.*<button type="submit"', actions)
    assert "<button" not in actions.split('class="pf-views"')[1]


def test_matrix_prints_readable_numbers_and_folds_identical_rows(admin_client):
    # given: 60 workers, a full mesh of 3,540 paths
    data = build_cluster("mesh", 60)
    paths = NetworkPath.objects.filter(audit=data["audits"][-1])
    passing = paths.filter(status="pass").count()
    assert passing > 999
    # when
    body, _ = _get(admin_client, "/clusters/mesh/matrix/", view="all")
    # then: thousands separated
    counts = _part(body, 'id="path-counts"', "</p>")
    assert f'data-state="check:pass">Pass</span> <span class="pf-count">{passing:,}</span> paths' in counts
    # the healthy workers share one row, named and linked
    rollup = _part(body, 'id="rollup"')
    rows = rollup.split("<tr>")[2:]
    healthy = sorted(n.name for n in data["nodes"] if data["kinds"][n.pk] in ("pass", "warn") and n.role == "worker")
    shared = next(r for r in rows if f"{len(healthy)} nodes:" in r)
    assert re.findall(r"node=([\w]+)#node-paths", shared) == healthy[:20]
    assert f"and {len(healthy) - 20} more" in shared
    assert len(rows) < 10
    # no grid above 50 nodes: no legend of a grid that is not drawn
    assert 'class="legend"' not in body


def test_matrix_legend_matches_the_grid_and_a_node_lists_each_path_once(admin_client, demo):
    body, _ = _get(admin_client, "/clusters/demo/matrix/", view="all")
    legend = _part(body, 'class="legend"', "</dl>")
    grid = _part(body, 'id="matrix"')
    for status in ("pass", "warn", "fail", "error"):
        assert (f"cell-{status}" in legend) == (f'class="cell-{status}"' in grid), status
    assert ("cell-none" in legend) == ('class="cell-none"' in grid)
    # a node's paths: each path once, named once
    focus, _ = _get(admin_client, "/clusters/demo/matrix/", node="w007")
    table = _part(focus, 'id="node-paths"')
    assert "->" not in table
    links = re.findall(r'<a href="/paths/(\d+)/">', table)
    assert len(links) == len(set(links)) > 0


def test_an_audit_page_shows_that_audit_in_a_fixed_number_of_queries(admin_client):
    # given: two clusters of different sizes, each audited twice (the first audit all passing)
    small, large = build_cluster("a12", 12, mesh=False), build_cluster("a48", 48, mesh=False)
    # when
    pages = {}
    for data in (small, large):
        old, new = data["audits"]
        pages[len(data["nodes"])] = _get(admin_client, f"/audits/{new.pk}/"), _get(admin_client, f"/audits/{old.pk}/")
    # then: the latest audit's states, causes and links; the first audit's own states (all ready)
    (body, queries), (first, first_queries) = pages[13]
    old, new = small["audits"]
    assert f'href="/clusters/a12/diff/?a={old.pk}&amp;b={new.pk}" id="audit-compare"' in body
    cells = {int(pk): css for css, pk, _ in CELL.findall(body)}
    w007 = next(n for n in small["nodes"] if n.name == "w007")
    assert len(cells) == 13 and cells[w007.pk] == "state-not-ready"
    assert "docker is not installed" in _part(body, 'id="top-failing"')
    assert set(css for css, _, _ in CELL.findall(first)) == {"state-ready"} and 'id="audit-compare"' not in first
    assert queries == pages[49][0][1] and first_queries == pages[49][1][1]
