"""Issue 24 item 5: pages and API answer in a fixed number of SQL queries whatever the number of nodes.

Each test builds the same audited cluster twice, at N and at 3N nodes (several audits, a connectivity matrix on
the last), requests one URL on each, and compares the numbers of queries. Generic on purpose: whatever a page
shows, it must not spend a query per node, per audit row or per path."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.tokens import api_token_create
from tests.uidata import build_cluster

pytestmark = pytest.mark.django_db

SMALL, LARGE = 12, 36  # workers (every kind of node in both); 3 times the nodes, about 9 times the paths


def _worst(data):
    return next(n for n in data["nodes"] if data["kinds"][n.pk] == "unreachable")


def _count(client, url: str, **headers) -> int:
    """Queries of the second request: the first warms what is cached once per process or session."""
    client.get(url, **headers)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, **headers)
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return len(captured)


# (label, url for one cluster's data): each one a page or document the issue names
URLS = [
    ("dashboard", lambda d: f"/clusters/{d['cluster'].name}/"),
    ("node list", lambda d: f"/nodes/?cluster={d['cluster'].name}"),
    ("node list, all clusters", lambda d: "/nodes/"),
    ("node list, failing only", lambda d: f"/nodes/?cluster={d['cluster'].name}&status=fail"),
    ("node list, not ready, worst first", lambda d: f"/nodes/?cluster={d['cluster'].name}&readiness=not_ready"),
    ("node list, by vendor and failing check", lambda d: "/nodes/?vendor=nvidia&failing_check=container.docker"),
    ("node list CSV", lambda d: f"/nodes/?cluster={d['cluster'].name}&export=csv"),
    ("node page", lambda d: f"/nodes/{_worst(d).pk}/"),
    ("matrix rollup", lambda d: f"/clusters/{d['cluster'].name}/matrix/"),
    ("matrix, all nodes", lambda d: f"/clusters/{d['cluster'].name}/matrix/?view=all"),
    ("matrix, one node's paths", lambda d: f"/clusters/{d['cluster'].name}/matrix/?node={_worst(d).name}"),
]


@pytest.mark.parametrize("label,url", URLS, ids=[u[0] for u in URLS])
def test_page_queries_do_not_grow_with_the_cluster(admin_client, label, url):
    # given a cluster of N nodes, 3 audits, the last with a full connectivity matrix
    small = build_cluster("small", SMALL, audits=3)
    few = _count(admin_client, url(small))
    # when the same cluster at 3N nodes is added (the pages over all clusters then list both)
    large = build_cluster("large", LARGE, audits=3)
    many = _count(admin_client, url(large))
    # then
    assert len(large["nodes"]) == 3 * len(small["nodes"]) - 2
    assert many == few, f"{label}: {few} queries with {len(small['nodes'])} nodes, {many} with {len(large['nodes'])}"


API = [
    ("GET /api/v1/nodes?limit=100", lambda d: "/api/v1/nodes?limit=100"),
    ("GET /api/v1/nodes, one cluster", lambda d: f"/api/v1/nodes?limit=100&cluster={d['cluster'].name}"),
    ("GET /api/v1/clusters", lambda d: "/api/v1/clusters"),
    ("GET /api/v1/clusters/{id}", lambda d: f"/api/v1/clusters/{d['cluster'].pk}"),
    ("GET /api/v1/audits", lambda d: "/api/v1/audits?limit=2"),
    ("GET /api/v1/nodes/{id}/checks", lambda d: f"/api/v1/nodes/{_worst(d).pk}/checks?limit=5"),
]


@pytest.mark.parametrize("label,url", API, ids=[u[0] for u in API])
def test_api_queries_do_not_grow_with_the_cluster(client, django_user_model, label, url):
    # given the same cluster at N and at 3N nodes, and an API token
    user = django_user_model.objects.create_user("api", password="x", is_superuser=True)
    _, token = api_token_create(user=user, name="counts")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    small = build_cluster("small", SMALL, audits=3)
    few = _count(client, url(small), **auth)
    # when the fleet grows threefold (both clusters listed by the cluster-wide URLs)
    large = build_cluster("large", LARGE, audits=3)
    many = _count(client, url(large), **auth)
    # then
    assert many == few, f"{label}: {few} queries, then {many} with {len(large['nodes'])} more nodes"


def test_api_node_list_reads_only_its_page(client, django_user_model):
    # given 37 nodes, each with devices, and an API token
    from django.db.models.signals import post_init

    from inventory.models import Accelerator, Node

    build_cluster("large", LARGE, audits=1)
    user = django_user_model.objects.create_user("api", password="x", is_superuser=True)
    _, token = api_token_create(user=user, name="rows")
    built: list = []

    def count(sender, instance, **kwargs):
        built.append(sender)

    # when a page of 5 is asked for
    for model in (Node, Accelerator):
        post_init.connect(count, sender=model)
    try:
        response = client.get("/api/v1/nodes?limit=5&offset=10", HTTP_AUTHORIZATION=f"Bearer {token}")
    finally:
        for model in (Node, Accelerator):
            post_init.disconnect(count, sender=model)
    # then the page holds 5 nodes of the 37 counted, and only those 5 and their devices were read
    body = response.json()
    assert response.status_code == 200 and body["count"] == LARGE + 1 and len(body["items"]) == 5
    assert built.count(Node) == 5
    assert built.count(Accelerator) == sum(len(item["accelerators"]) for item in body["items"])
