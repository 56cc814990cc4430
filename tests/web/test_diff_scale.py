"""Issue 25: the comparison of two audits answers with counts and groups, read in the database, never path objects."""

import re

import pytest
from django.db import connection
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext

from checks.models import NetworkPath
from checks.selectors.diff import CAUSES_PER_PAGE, PATHS_PER_PAGE
from tests.uidata import build_cluster

pytestmark = pytest.mark.django_db


def _table(body: str, table_id: str) -> str:
    return body.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]


def _get(client, cluster: str, **params) -> tuple[str, int, int]:
    """The page, its number of queries, and how many NetworkPath objects were built to render it."""
    built = []

    def count(sender, instance, **kwargs):
        built.append(instance)

    post_init.connect(count, sender=NetworkPath)
    try:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/clusters/{cluster}/diff/", params)
    finally:
        post_init.disconnect(count, sender=NetworkPath)
    assert response.status_code == 200
    return response.content.decode(), len(queries), len(built)


def test_comparison_counts_paths_in_the_database_and_groups_them_by_cause(admin_client):
    # given two audits with a full matrix each: every path passed, then paths into failing nodes fail and
    # paths out of unreachable nodes err
    data = build_cluster("fleet", 24, matrix_every_audit=True)
    old, new = data["audits"]
    closed = NetworkPath.objects.filter(audit=new).exclude(status="pass").count()
    # when
    body, _, built = _get(admin_client, "fleet", a=old.pk, b=new.pk)
    # then no path was loaded as an object, and the counts are the database's
    assert built == 0
    counts = re.sub(r"<[^>]+>", "|", _table(body, "diff-counts"))
    assert f"Network paths||{closed}||0||0||0|" in counts.replace("|||", "||")
    w2w = "network.worker_to_worker"
    into = {
        n: NetworkPath.objects.filter(audit=new, check_id=w2w, destination=n, status="fail").count()
        for n in data["nodes"]
        if data["kinds"][n.pk] == "fail"
    }
    causes = _table(body, "path-causes").split("<tr class=")[1:]
    for node, n in into.items():
        row = f'blocked into <a href="/nodes/{node.pk}/">{node.name}</a>'
        assert [r for r in causes if row in r and f"<code>{w2w}</code>" in r][0].startswith(
            f'"worse"><td data-label="Paths">{n}</td>'
        )
    unreachable = next(n for n in data["nodes"] if data["kinds"][n.pk] == "unreachable")
    assert any(f'not probed from <a href="/nodes/{unreachable.pk}/">{unreachable.name}</a>' in r for r in causes)
    # the changed paths are paged, with linked names
    listed = _table(body, "path-changes")
    assert listed.count("<tr class=") == PATHS_PER_PAGE < closed
    assert "lpage=2" in body
    second, _, _ = _get(admin_client, "fleet", a=old.pk, b=new.pk, lpage=2)
    assert _table(second, "path-changes") != listed


def test_comparison_queries_do_not_grow_with_the_fleet(admin_client):
    # given
    small = build_cluster("small", 8, matrix_every_audit=True)
    large = build_cluster("large", 30, matrix_every_audit=True)
    # when
    _, few, _ = _get(admin_client, "small", a=small["audits"][0].pk, b=small["audits"][1].pk)
    _, many, _ = _get(admin_client, "large", a=large["audits"][0].pk, b=large["audits"][1].pk)
    # then
    assert many == few


def test_check_changes_are_grouped_by_cause_with_counts_first(admin_client):
    # given 40 workers: several fail the same check with the same summary
    data = build_cluster("fleet", 40, matrix_every_audit=True)
    old, new = data["audits"]
    # when
    body, _, _ = _get(admin_client, "fleet", a=old.pk, b=new.pk)
    # then the counts come before the groups, and each group lists its nodes once, linked
    assert body.index('id="diff-counts"') < body.index('id="per-check"') < body.index('id="changed-checks"')
    causes = _table(body, "changed-checks")
    rows = causes.split("<tr class=")[1:]
    assert 0 < len(rows) <= CAUSES_PER_PAGE
    unreachable = [n for n in data["nodes"] if data["kinds"][n.pk] == "unreachable"]
    ssh = next(r for r in rows if "<code>ssh.connect</code>" in r)
    assert ssh.startswith(f'"worse"><td data-label="Nodes">{len(unreachable)}</td>')
    for node in unreachable:
        assert f'<a href="/nodes/{node.pk}/">{node.name}</a>' in ssh
    # their other checks did not run: named once in the notice, not as changes
    assert "not checked" not in causes
    assert f"The checks of {len(unreachable)} nodes did not run" in body


def test_paths_are_not_compared_when_the_earlier_audit_has_no_matrix(admin_client):
    # given
    data = build_cluster("fleet", 12)
    old, new = data["audits"]
    # when
    body, _, built = _get(admin_client, "fleet", a=old.pk, b=new.pk)
    # then
    assert built == 0 and 'id="paths-not-compared"' in body and 'id="path-changes"' not in body


@pytest.mark.parametrize("params", [{"lpage": "x"}, {"lpage": "-1"}, {"lpage": "99999"}, {"cpage": "0", "ppage": "é"}])
def test_bad_page_numbers_answer_a_page_not_an_error(admin_client, params):
    # given
    data = build_cluster("fleet", 12, matrix_every_audit=True)
    old, new = data["audits"]
    # when
    body, _, _ = _get(admin_client, "fleet", a=old.pk, b=new.pk, **params)
    # then
    assert 'id="path-changes"' in body and "<tr class=" in _table(body, "path-changes")


def test_a_node_filter_that_matches_no_node_compares_nothing(admin_client):
    data = build_cluster("fleet", 12, matrix_every_audit=True)
    old, new = data["audits"]
    body, _, _ = _get(admin_client, "fleet", a=old.pk, b=new.pk, node="nope")
    assert "No path changed." in body and "No check changed." in body


def test_device_and_driver_changes_are_grouped_by_what_changed_with_linked_nodes(admin_client):
    # given: 30 workers whose NVIDIA driver went from 535 to 550 between two audits
    from checks.models import NodeAudit

    data = build_cluster("drivers", 30, mesh=False)
    old, new = data["audits"]
    workers = [n for n in data["nodes"] if n.role == "worker"]
    for audit, version in ((old, "535.183.01"), (new, "550.54.15")):
        for na in NodeAudit.objects.filter(audit=audit, node__in=workers):
            na.facts = {**(na.facts or {}), "drivers": {"nvidia": {"driver_version": version}}}
            na.save(update_fields=["facts"])
    # when
    body, _, _ = _get(admin_client, "drivers", a=old.pk, b=new.pk)
    # then: two rows, not sixty, gone first, each naming 20 nodes as links and counting the rest
    rows = _table(body, "hardware-changes").split("<tr class=")[1:]
    assert len(rows) == 2
    gone, appeared = rows
    cells = (
        '<td data-label="Nodes">30</td><td data-label="Change">{}</td><td class="why-cell" data-label="What">{}</td>'
    )
    assert gone.startswith('"worse">' + cells.format("gone", "nvidia driver 535.183.01"))
    assert appeared.startswith('"better">' + cells.format("appeared", "nvidia driver 550.54.15"))
    assert len(re.findall(r'<a href="/nodes/\d+/">w\d+</a>', gone)) == 20 and "and 10 more" in gone
