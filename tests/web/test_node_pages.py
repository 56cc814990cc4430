"""Issue 25, items 5 and 6 without a browser: the node list's filters, page size, sort arrows, Why and bulk actions;
the node page's network section, "Audit this node", admin link, unreachable page and folded passing checks."""

import csv
import io
import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from checks.models import Audit, CheckResult, NetworkPath, NodeAudit
from inventory.models import Node
from tests.uidata import build_cluster

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo():
    data = build_cluster("demo", 12)
    data["by_name"] = {n.name: n for n in data["nodes"]}
    return data


def _rows(body: str) -> list[str]:
    table = body.split('<table class="table" id="nodes">', 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'<td><a href="/nodes/\d+/">([^<]+)</a></td>', table)


def _user(django_user_model, name: str, *codenames: str, staff: bool = False):
    user = django_user_model.objects.create_user(name, password="pw-9-horse", is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_filters_offer_real_choices_and_say_any(admin_client, demo):
    # when
    body = admin_client.get("/nodes/").content.decode()
    form = body.split('id="node-filters"', 1)[1].split("</form>", 1)[0]
    # then: a cluster select, a failing-check select with the network checks, and "Any" for every blank choice
    assert '<select name="cluster"' in form and '<option value="demo">demo</option>' in form
    assert '<select name="failing_check"' in form
    for check in ("network.server_to_worker", "network.worker_to_worker", "container.docker"):
        assert f'<option value="{check}">{check}</option>' in form
    assert '<optgroup label="Network">' in form
    assert '<select name="enabled"' in form and '<option value="" selected>Any</option>' in form
    assert "---------" not in form and "Unknown" not in form


def test_failing_check_filter_selects_by_a_network_check(admin_client, demo):
    # given: w003's latest audit fails network.server_to_worker (a per-node result of the matrix)
    w003 = demo["by_name"]["w003"]
    latest = NodeAudit.objects.filter(node=w003).order_by("-finished").first()
    CheckResult.objects.create(
        node_audit=latest, check_id="network.server_to_worker", status="fail", summary="1 path blocked", position=99
    )
    # when
    body = admin_client.get("/nodes/", {"failing_check": "network.server_to_worker"}).content.decode()
    # then
    assert _rows(body) == ["w003"]


def test_page_size_is_a_choice_of_25_50_100_250(admin_client):
    # given: 30 nodes
    build_cluster("big", 29, audits=1, mesh=False)
    # when / then
    assert len(_rows(admin_client.get("/nodes/", {"per_page": "25"}).content.decode())) == 25
    assert len(_rows(admin_client.get("/nodes/", {"per_page": "25", "page": "2"}).content.decode())) == 5
    assert len(_rows(admin_client.get("/nodes/", {"per_page": "100"}).content.decode())) == 30
    body = admin_client.get("/nodes/", {"per_page": "100000"}).content.decode()  # not a choice: the default, 50
    assert len(_rows(body)) == 30 and '<option value="50" selected>50</option>' in body


def test_sortable_columns_carry_the_arrow_class_and_status_sorts(admin_client, demo):
    # when
    body = admin_client.get("/nodes/", {"sort": "last_audit_status"}).content.decode()
    head = body.split("<thead", 1)[1].split("</thead>", 1)[0]
    # then: Status is sortable, sorted ascending (worst first); the stylesheet draws the arrows from these classes
    status = re.search(r'<th class="([^"]*)">\s*<a href="[^"]*sort=-last_audit_status[^"]*">Status</a>', head)
    assert status and {"orderable", "asc"} <= set(status.group(1).split())
    assert "th.orderable.asc > a::after" in open("portal/static/preflight/nodes.css").read()


def test_why_shows_the_cause_first_and_the_whole_line_on_hover(admin_client, demo):
    # when
    body = admin_client.get("/nodes/", {"q": "w007"}).content.decode()
    cell = body.split('<td class="why-cell">', 1)[1].split("</td>", 1)[0]
    # then
    assert cell.index("docker is not installed") < cell.index("container.docker")
    assert 'title="docker is not installed (container.docker)"' in cell


def test_audit_selected_starts_one_audit_of_exactly_those_nodes(admin_client, demo, django_capture_on_commit_callbacks):
    # given
    chosen = [demo["by_name"][name] for name in ("w001", "w003", "w007")]
    before = set(Audit.objects.values_list("pk", flat=True))
    # when
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(
            "/nodes/audit/", {"node": [n.pk for n in chosen], "query": "cluster=demo&sort=name"}
        )
    # then: one audit, of those three nodes and no other, back to the same list
    new = Audit.objects.exclude(pk__in=before)
    assert new.count() == 1 and new.get().partial and new.get().trigger == "ui"
    assert set(NodeAudit.objects.filter(audit=new.get()).values_list("node__name", flat=True)) == {
        "w001",
        "w003",
        "w007",
    }
    assert response.status_code == 302 and response["Location"] == "/nodes/?cluster=demo&sort=name"


def test_audit_selected_needs_the_start_audit_rule(django_user_model, demo, django_capture_on_commit_callbacks):
    # given: a user who may see nodes and results but not start audits
    client = _user(django_user_model, "viewer", "view_node", "view_audit")
    # when
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/nodes/audit/", {"node": [demo["by_name"]["w001"].pk]})
        listing = client.get("/nodes/").content.decode()
    # then
    assert response.status_code == 403 and not Audit.objects.filter(partial=True).exists()
    assert 'id="audit-selected"' not in listing and 'id="export-selected"' in listing


def test_audit_selected_refuses_a_get_and_a_post_without_csrf(demo, admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.get("/nodes/audit/").status_code == 405
    assert client.post("/nodes/audit/", {"node": [demo["by_name"]["w001"].pk]}).status_code == 403
    assert not Audit.objects.filter(partial=True).exists()


def test_export_selected_has_the_export_columns_and_is_spreadsheet_safe(admin_client, demo):
    # given: a node that reports a formula as its OS name
    w001 = demo["by_name"]["w001"]
    Node.objects.filter(pk=w001.pk).update(last_facts={"os": {"pretty_name": "=HYPERLINK(1)"}})
    whole = admin_client.get("/nodes/", {"export": "csv"}).content.decode()
    # when
    response = admin_client.post("/nodes/export/", {"node": [w001.pk, demo["by_name"]["w007"].pk]})
    # then: the columns of the list's export, only the two rows, the formula neutralised
    assert response["Content-Type"].startswith("text/csv")
    text = response.content.decode()
    assert text.splitlines()[0] == whole.splitlines()[0]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["name"] for r in rows] == ["w001", "w007"]
    assert rows[0]["os"] == "'=HYPERLINK(1)" and rows[1]["why"] == "docker is not installed (container.docker)"


def test_node_page_audit_button_starts_an_audit_of_that_node(admin_client, demo, django_capture_on_commit_callbacks):
    # given
    w007 = demo["by_name"]["w007"]
    page = admin_client.get(f"/nodes/{w007.pk}/").content.decode()
    assert f'action="/nodes/{w007.pk}/audit/"' in page and 'name="csrfmiddlewaretoken"' in page
    # when
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(f"/nodes/{w007.pk}/audit/")
    # then
    audit = Audit.objects.get(partial=True)
    assert list(audit.node_audits.values_list("node__name", flat=True)) == ["w007"]
    assert response["Location"] == f"/nodes/{w007.pk}/"


def test_node_page_audit_button_needs_the_rule(django_user_model, demo, django_capture_on_commit_callbacks):
    client = _user(django_user_model, "viewer", "view_node", "view_audit")
    w007 = demo["by_name"]["w007"]
    assert 'id="audit-node"' not in client.get(f"/nodes/{w007.pk}/").content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(f"/nodes/{w007.pk}/audit/").status_code == 403
    assert not Audit.objects.filter(partial=True).exists()


def test_admin_link_is_for_staff_only(django_user_model, admin_client, demo):
    w007 = demo["by_name"]["w007"]
    link = f'href="/admin/inventory/node/{w007.pk}/change/"'
    assert link in admin_client.get(f"/nodes/{w007.pk}/").content.decode()
    viewer = _user(django_user_model, "viewer", "view_node", "view_audit")
    assert link not in viewer.get(f"/nodes/{w007.pk}/").content.decode()


def test_unreachable_node_page_contradicts_nothing_and_offers_no_script(admin_client, demo):
    # when
    body = admin_client.get(f"/nodes/{demo['by_name']['w011'].pk}/").content.decode()
    # then
    latest = NodeAudit.objects.filter(node=demo["by_name"]["w011"]).order_by("-finished").first()
    assert f"not reached by audit {latest.audit_id}" in body
    assert "audited " not in body.split('id="summary"')[0]  # the header does not say it was audited
    assert "did not run on this node" not in body
    assert 'id="download-script"' not in body and 'id="no-checks"' in body
    assert 'data-state="node:not-ready"' not in body  # one state on the page: Unreachable, the install block too


def test_passing_checks_fold_away(admin_client, demo):
    # when
    body = admin_client.get(f"/nodes/{demo['by_name']['w007'].pk}/").content.decode()
    # then: the failing check is shown, the passing ones sit in a closed <details>
    folded = body.split('<details class="passing-checks" id="passing-checks">', 1)[1].split("</details>\n", 1)[0]
    shown = body.split('<details class="passing-checks"', 1)[0]
    assert 'id="check-container.docker"' in shown and 'id="check-container.docker"' not in folded
    assert 'id="check-ssh.connect"' in folded and 'id="check-ssh.connect"' not in shown
    assert 'id="download-script"' in body


def test_network_section_groups_failing_paths_by_cause_with_blocked_at_links(admin_client, demo):
    # given: the paths into w007 fail; two of them say where the block is
    w007 = demo["by_name"]["w007"]
    latest = demo["audits"][-1]
    into = NetworkPath.objects.filter(
        audit=latest, destination=w007, status="fail", check_id="network.worker_to_worker"
    ).order_by("pk")
    for path in into[:2]:
        NetworkPath.objects.filter(pk=path.pk).update(summary=f"{path.summary} (blocked at w007)")
    failing = (
        NetworkPath.objects.filter(audit=latest, status__in=["fail", "error"]).filter(destination=w007).count()
        + NetworkPath.objects.filter(audit=latest, status__in=["fail", "error"], source=w007).count()
    )
    # when
    body = admin_client.get(f"/nodes/{w007.pk}/").content.decode()
    section = body.split('id="network"', 1)[1].split("<h2", 1)[0]
    # then: counts first, then one group per cause, the blocked ones linking to the node the block is at
    assert f"{failing} of " in section
    groups = section.split("<details>")[1:]
    blocked = [g for g in groups if "blocked at" in g]
    assert len(blocked) == 1 and f'class="blocked-at" href="/nodes/{w007.pk}/">w007</a> (here)' in blocked[0]
    assert "· 2 paths</summary>" in blocked[0] and "10150 timed out" in blocked[0]
    assert sum(int(re.search(r"· (\d+) paths?</summary>", g).group(1)) for g in groups) == failing
    assert re.search(r'href="/paths/\d+/">\w+ → w007</a>', section)


def test_node_list_and_node_page_queries_do_not_grow_with_nodes(admin_client):
    # given a 60-node cluster with a full matrix
    data = build_cluster("q", 59, audits=1)
    # when
    counts = {}
    for size in ("25", "100"):
        with CaptureQueriesContext(connection) as queries:
            admin_client.get("/nodes/", {"per_page": size})
        counts[size] = len(queries.captured_queries)
    pages = []
    for node in (data["nodes"][7], data["nodes"][11]):  # a failing node and an unreachable one
        with CaptureQueriesContext(connection) as queries:
            admin_client.get(f"/nodes/{node.pk}/")
        pages.append(len(queries.captured_queries))
    # then: the same few queries whatever the page size or the node's paths
    assert counts["25"] == counts["100"] <= 10
    assert pages[0] == pages[1] <= 20


def test_audit_selected_across_two_clusters_starts_one_audit_per_cluster(
    admin_client, demo, django_capture_on_commit_callbacks
):
    # given: one node ticked in each of two clusters
    other = build_cluster("other", 3, audits=1, mesh=False)
    chosen = [demo["by_name"]["w002"].pk, other["nodes"][1].pk]
    before = set(Audit.objects.values_list("pk", flat=True))
    # when
    with django_capture_on_commit_callbacks(execute=False):
        admin_client.post("/nodes/audit/", {"node": chosen})
    # then: an audit of a cluster holds that cluster's ticked node alone
    made = {
        a.cluster.name: sorted(a.node_audits.values_list("node__name", flat=True))
        for a in Audit.objects.exclude(pk__in=before)
    }
    assert made == {"demo": ["w002"], "other": [other["nodes"][1].name]}
