"""Navigation (issue 25): the jump-to-node search behind the node list's own rule, and breadcrumbs on every page."""

import pytest
from django.contrib.auth.models import Permission

from inventory.jump import JUMP_LIMIT
from tests.uidata import build_cluster

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet():
    return build_cluster("fleet", 30, audits=1, mesh=False)


def test_jump_finds_nodes_by_name_prefix_exact_first_and_bounded(admin_client, fleet):
    # given: a cluster of srv and w001..w030
    # when: the box asks for "w01", then "W" (any case), then the exact name "srv"
    some = admin_client.get("/nodes/jump/", {"q": "w01", "format": "json"}).json()
    many = admin_client.get("/nodes/jump/", {"q": "W", "format": "json"}).json()
    exact = admin_client.get("/nodes/jump/", {"q": "srv", "format": "json"}).json()
    # then: prefix matches in name order, at most JUMP_LIMIT with a "more" flag, each with its page
    assert [n["name"] for n in some["nodes"]] == [f"w01{i}" for i in range(10)]
    assert len(many["nodes"]) == JUMP_LIMIT and many["more"] is True
    assert exact["nodes"][0] == {
        "name": "srv",
        "cluster": "fleet",
        "role": "server",
        "url": f"/nodes/{fleet['nodes'][0].pk}/",
    }


def test_jump_without_javascript_goes_to_the_first_match_or_lists_none(admin_client, fleet):
    # when: the form is submitted without JavaScript (go=1), for a match and for none
    found = admin_client.get("/nodes/jump/", {"q": "w02", "go": "1"})
    none = admin_client.get("/nodes/jump/", {"q": "<b>nope</b>", "go": "1"})
    # then: the first match's page, or a page saying so with the query escaped
    assert found.status_code == 302 and found["Location"] == f"/nodes/{fleet['nodes'][20].pk}/"
    assert none.status_code == 200 and "No node's name starts with “&lt;b&gt;nope&lt;/b&gt;”" in none.content.decode()


def test_jump_asks_the_node_lists_permission(client, django_user_model, fleet):
    # given: a user without inventory.view_node, and one with it
    plain = django_user_model.objects.create_user("plain", password="x")
    viewer = django_user_model.objects.create_user("viewer", password="x")
    viewer.user_permissions.add(Permission.objects.get(codename="view_node"))
    # when / then: refused, then answered; anonymous goes to the login page
    assert client.get("/nodes/jump/", {"q": "w", "format": "json"}).status_code == 302
    client.force_login(plain)
    assert client.get("/nodes/jump/", {"q": "w", "format": "json"}).status_code == 403
    assert 'id="jump"' not in client.get("/account/tokens/").content.decode()  # no box without the permission
    client.force_login(viewer)
    assert client.get("/nodes/jump/", {"q": "w", "format": "json"}).json()["nodes"]


def test_breadcrumbs_lead_from_the_cluster_to_the_node(admin_client, fleet):
    # given: a node of cluster "fleet"
    node = fleet["nodes"][7]
    # when: its page and the cluster's matrix open
    node_page = admin_client.get(f"/nodes/{node.pk}/").content.decode()
    matrix = admin_client.get("/clusters/fleet/matrix/").content.decode()
    # then: Clusters > fleet > Nodes > w007, and Clusters > fleet > Network matrix, the page itself not a link
    crumbs = node_page.split('aria-label="Breadcrumb"')[1].split("</nav>")[0]
    assert '<a href="/">Clusters</a>' in crumbs and '<a href="/clusters/fleet/">fleet</a>' in crumbs
    assert '<a href="/nodes/?cluster=fleet">Nodes</a>' in crumbs and '<span aria-current="page">w007</span>' in crumbs
    assert '<span aria-current="page">Network matrix</span>' in matrix.split('aria-label="Breadcrumb"')[1]


def test_a_clusters_node_list_sits_under_the_cluster(admin_client, fleet):
    # when: the node list is filtered by cluster, by a name with markup, and by one with a slash
    listed = admin_client.get("/nodes/", {"cluster": "fleet"}).content.decode()
    odd = admin_client.get("/nodes/", {"cluster": "<i>x"}).content.decode()
    slash = admin_client.get("/nodes/", {"cluster": "a/b"})
    # then: Clusters > fleet > Nodes; the odd name escaped; the slash falls back to Nodes alone (no error)
    crumbs = listed.split('aria-label="Breadcrumb"')[1].split("</nav>")[0]
    assert '<a href="/clusters/fleet/">fleet</a>' in crumbs and '<span aria-current="page">Nodes</span>' in crumbs
    assert "&lt;i&gt;x" in odd.split('aria-label="Breadcrumb"')[1].split("</nav>")[0]
    assert slash.status_code == 200
