"""Issue 15 without a browser: node page summary, node list sort/why/filters/exports, matrix rollup, diff."""

import csv
import io
import json
import re

import pytest

from checks.choices import RunState
from checks.models import Audit, NetworkPath, NodeAudit
from tests.uidata import build_cluster

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo():
    data = build_cluster("demo", 12)
    data["by_name"] = {n.name: n for n in data["nodes"]}
    return data


def test_unreachable_node_shows_one_banner_without_doubled_prefix(admin_client, demo):
    body = admin_client.get(f"/nodes/{demo['by_name']['w011'].pk}/").content.decode()
    banner = body.split('id="summary"', 1)[1].split("</section>", 1)[0]
    assert "could not reach w011" in banner and "host key changed: 198.51.0.12 offered" in banner
    assert "accept the new key in the admin" in banner
    assert "host key changed: host key changed" not in body
    assert "not checked:" not in body  # folded into the banner, not repeated per check
    assert 'id="stale-facts"' in body  # the latest audit did not run: facts come from audit 1


def test_failing_node_summary_lists_what_fails_and_keeps_the_remedy_block(admin_client, demo):
    body = admin_client.get(f"/nodes/{demo['by_name']['w007'].pk}/").content.decode()
    summary = body.split('id="summary"', 1)[1].split("</section>", 1)[0]
    assert "1 check fails" in summary and 'href="#check-container.docker"' in summary
    assert "docker is not installed" in summary and "time.ntp" not in summary
    block = body.split('<pre class="cmd" id="', 1)[1].split(">", 1)[1].split("</pre>", 1)[0]
    assert block == "apt-get install -y docker.io\nsystemctl enable --now docker"
    assert 'aria-label="Copy the commands for container.docker"' in body


def _names(body: str) -> list[str]:
    rows = body.split('<table class="table" id="nodes">', 1)[1].split("</tbody>", 1)[0]
    return [cell.split("</a>")[0].rsplit(">", 1)[1] for cell in rows.split('<td><a href="/nodes/')[1:]]


def test_node_list_sorts_by_severity_and_says_why(admin_client, demo):
    body = admin_client.get("/nodes/", {"sort": "last_audit_status"}).content.decode()
    names = _names(body)
    # errors (w011), then fails (w007), then warnings (w005, w010), then ready
    assert names[:4] == ["w011", "w007", "w005", "w010"] and names[4] == "srv"
    # Why: the cause first, then the check that says so; the whole line is the cell's hover text
    assert 'title="docker is not installed (container.docker)"' in body
    assert _names(admin_client.get("/nodes/", {"sort": "-last_audit_status"}).content.decode())[-1] == "w011"


@pytest.mark.parametrize(
    "params, message",
    [
        ({"status": "bogus"}, "Select a valid choice"),
        ({"cluster": "nope"}, "no cluster named"),
        ({"failing_check": "docker"}, "is not a check id"),
    ],
)
def test_invalid_filters_say_so_and_list_nothing(admin_client, demo, params, message):
    body = admin_client.get("/nodes/", params).content.decode()
    assert 'id="filter-problems"' in body and message in body
    assert _names(body) == [] and "No node matches these filters." in body
    assert admin_client.get("/nodes/", {**params, "export": "csv"}).status_code == 400


def test_os_filter_ignores_case(admin_client, demo):
    assert len(_names(admin_client.get("/nodes/", {"os": "UBUNTU"}).content.decode())) == 13


def test_exports_follow_sort_and_filters_with_labels_and_utc_seconds(admin_client, demo):
    text = admin_client.get("/nodes/", {"sort": "last_audit_status", "role": "worker", "export": "csv"}).content
    rows = list(csv.DictReader(io.StringIO(text.decode())))
    assert [r["name"] for r in rows[:2]] == ["w011", "w007"] and len(rows) == 12
    assert rows[1]["status"] == "Not ready" and rows[1]["accelerators"] == "2 x NVIDIA H100 80GB"
    assert rows[1]["why"] == "docker is not installed (container.docker)"
    stamp = rows[1]["last_audited_at"]
    assert len(stamp) == 20 and stamp.endswith("Z") and "." not in stamp
    data = json.loads(admin_client.get("/nodes/", {"sort": "last_audit_status", "export": "json"}).content)
    assert data[0]["name"] == "w011" and data[0]["status"] == "Unreachable"


def test_matrix_rollup_lists_nodes_to_fix_and_stays_small(admin_client, demo):
    body = admin_client.get("/clusters/demo/matrix/", {"view": "failing"}).content.decode()
    rollup = body.split('id="rollup"', 1)[1].split("</table>", 1)[0]
    assert "w007" in rollup and "w011" in rollup and ">w001<" not in rollup
    assert "could not be tested" in body  # the legend explains "⚠"
    paths = admin_client.get("/clusters/demo/matrix/", {"node": "w007"}).content.decode()
    assert paths.count('href="/paths/') >= 24  # every path in and out of w007, each linking to its page


def test_matrix_defaults_to_failing_only_above_50_nodes(admin_client):
    build_cluster("big", 60, mesh=False)
    body = admin_client.get("/clusters/big/matrix/").content.decode()
    assert 'view=failing" aria-current="page"' in body and 'id="matrix"' not in body  # no grid above 50
    assert len(body) < 100_000


def test_diff_ignores_nodes_a_partial_audit_did_not_cover_and_filters_paths(admin_client, demo):
    old, new = demo["audits"]
    # a partial audit of w007 alone, after the full one
    partial = Audit.objects.create(
        cluster=demo["cluster"], profile=old.profile, profile_key=old.profile_key, state=RunState.DONE, partial=True
    )
    w007 = demo["by_name"]["w007"]
    NodeAudit.objects.create(audit=partial, node=w007, state=RunState.DONE, status="fail")
    na = NodeAudit.objects.get(audit=new, node=w007)
    for r in na.results.all():
        r.pk, r.node_audit_id = None, NodeAudit.objects.get(audit=partial, node=w007).pk
        r.save()
    body = admin_client.get("/clusters/demo/diff/", {"a": new.pk, "b": partial.pk}).content.decode()
    assert "Not audited in" in body and "absent" not in body
    causes = body.split('id="changed-checks"', 1)[1].split("</table>", 1)[0]
    assert "still failing:" in causes and "newly failing:" not in causes and "fixed:" not in causes
    # the first audit had every path open
    for path in NetworkPath.objects.filter(audit=new):
        path.pk, path.audit_id, path.status = None, old.pk, "pass"
        path.save()
    filtered = admin_client.get("/clusters/demo/diff/", {"a": old.pk, "b": new.pk, "node": "w001"}).content.decode()
    listed = filtered.split('id="path-changes"', 1)[1].split("</table>", 1)[0]
    assert f'<a href="/nodes/{demo["by_name"]["w007"].pk}/">w007</a>' in listed  # node names are links
    paths = re.sub(r"<[^>]+>", "", listed)
    assert "w001 → w007" in paths and "closed" in paths
    assert "w005 → w007" not in paths and "w002 →" not in paths


def test_dashboard_verdict_and_home_colour(admin_client, demo):
    body = admin_client.get("/clusters/demo/").content.decode()
    verdict = body.split('id="verdict"', 1)[1].split("</p>", 1)[0]
    assert "Not ready: 2 of 12 workers, mostly" in verdict and "container.docker (1 node)" in verdict
    top = body.split('id="top-failing"', 1)[1].split("</table>", 1)[0]
    assert "os.supported" not in top  # "not checked" rows are not reasons
    home = admin_client.get("/").content.decode()
    assert 'data-state="node:not-ready">Not ready<' in home
    build_cluster("fresh", 2, audits=0)
    assert "Not audited: 3 nodes, none audited yet." in admin_client.get("/clusters/fresh/").content.decode()


def test_links_for_a_node_that_moved_cluster_do_not_404(admin_client, demo):
    from tests.factories import ClusterFactory

    old, new = demo["audits"]
    w001 = demo["by_name"]["w001"]
    w001.cluster = ClusterFactory(name="other")
    w001.save()
    body = admin_client.get(f"/nodes/{w001.pk}/").content.decode()
    link = body.split("compare with latest", 1)[0].rsplit('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert admin_client.get(link).status_code == 200
    # an old link that names the node's new cluster follows the audits to theirs
    moved = admin_client.get("/clusters/other/diff/", {"a": old.pk, "b": new.pk, "node": "w001"})
    assert moved.status_code == 302 and moved["Location"].startswith("/clusters/demo/diff/?")
    assert admin_client.get(moved["Location"]).status_code == 200


def test_top_reason_links_list_as_many_nodes_as_the_row_counts(admin_client, demo):
    body = admin_client.get("/clusters/demo/").content.decode()
    assert "container.docker</code></a></td>" in body
    listed = admin_client.get("/nodes/", {"cluster": "demo", "failing_check": "container.docker"}).content.decode()
    assert _names(listed) == ["w007"]  # not w011, whose checks did not run


def test_matrix_grid_escapes_node_names_and_port_outcomes(admin_client, demo):
    # given: a node named with markup, and a path whose outcome (node-printed) is markup
    w001 = demo["by_name"]["w001"]
    w001.name = '<b id="x">w001</b>'
    w001.save()
    path = NetworkPath.objects.filter(audit=demo["audits"][-1], destination=demo["by_name"]["w007"]).first()
    path.outcomes = {"10150": ['"><script>alert(1)</script>', ""]}
    path.save()
    # when
    body = admin_client.get("/clusters/demo/matrix/", {"view": "all"}).content.decode()
    # then
    assert "<script>alert(1)" not in body and '<b id="x">' not in body
    assert "&lt;b id=&quot;x&quot;&gt;w001&lt;/b&gt;" in body and "&quot;&gt;&lt;script&gt;alert(1)" in body
