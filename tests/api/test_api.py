"""Every endpoint: success, 401, 403, 404 and invalid payloads, with the stable error shape."""

import json
import logging
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from checks.choices import RunState
from checks.models import Audit, NetworkPath, NodeAudit
from inventory.models import Cluster, Credential, Node
from portal.models import ApiToken
from portal.tokens import api_token_create, api_token_revoke
from tests.factories import ClusterFactory, FailingNtpResultFactory, NodeFactory

pytestmark = pytest.mark.django_db
API = "/api/v1"


def post(client, url, data):
    return client.post(f"{API}{url}", data=json.dumps(data), content_type="application/json")


def patch(client, url, data):
    return client.patch(f"{API}{url}", data=json.dumps(data), content_type="application/json")


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["message"], body
    return body


ENDPOINTS = [
    ("get", "/clusters", None),
    ("post", "/clusters", {"name": "new"}),
    ("get", "/clusters/1", None),
    ("patch", "/clusters/1", {"tls_enabled": True}),
    ("delete", "/clusters/1", None),
    ("get", "/nodes", None),
    ("post", "/nodes", {"cluster": 1, "name": "n9", "address": "10.0.0.9"}),
    ("get", "/nodes/1", None),
    ("patch", "/nodes/1", {"ssh_port": 2222}),
    ("delete", "/nodes/1", None),
    ("get", "/profiles", None),
    ("get", "/profiles/gpustack-2.0", None),
    ("post", "/inventory/import", "upload"),
    ("post", "/audits", {"cluster": "c1"}),
    ("get", "/audits", None),
    ("get", "/audits/1", None),
    ("get", "/audits/1/matrix", None),
    ("get", "/nodes/1/checks", None),
    ("get", "/nodes/1/remediation", None),
]


def _call(client, method, url, payload, **extra):
    if payload == "upload":
        upload = SimpleUploadedFile("i.ini", b"[workers]\ng1\n")
        return client.post(f"{API}{url}", {"file": upload}, **extra)
    if payload is None:
        return getattr(client, method)(f"{API}{url}", **extra)
    return getattr(client, method)(f"{API}{url}", data=json.dumps(payload), content_type="application/json", **extra)


@pytest.mark.parametrize(("method", "url", "payload"), ENDPOINTS)
def test_every_endpoint_refuses_without_a_valid_token(client, method, url, payload):
    assert_error(_call(client, method, url, payload), 401, "unauthenticated")
    assert_error(_call(client, method, url, payload, HTTP_AUTHORIZATION="Bearer pf_nope_nope"), 401, "unauthenticated")


@pytest.mark.parametrize(("method", "url", "payload"), ENDPOINTS)
def test_every_endpoint_refuses_a_user_without_permission(make_client, method, url, payload):
    # given: the objects exist, so only the permission stands in the way
    client = make_client()
    cluster = ClusterFactory(pk=1, name="c1")
    NodeFactory(pk=1, cluster=cluster)
    Audit.objects.create(pk=1, cluster=cluster, profile=cluster.profile, profile_key="gpustack-2.0")
    before = (Cluster.objects.count(), Node.objects.count(), Audit.objects.count())
    # when
    response = _call(client, method, url, payload)
    # then
    assert_error(response, 403, "forbidden")
    assert (Cluster.objects.count(), Node.objects.count(), Audit.objects.count()) == before


def test_revoked_and_expired_tokens_refused(client, django_user_model):
    user = django_user_model.objects.create_superuser("root2", password="x")
    revoked, revoked_token = api_token_create(user=user, name="old")
    api_token_revoke(token=revoked)
    _, expired_token = api_token_create(user=user, name="short", expires=timezone.now() - timedelta(seconds=1))
    _, good = api_token_create(user=user, name="ok")
    for token in (revoked_token, expired_token):
        assert_error(client.get(f"{API}/clusters", HTTP_AUTHORIZATION=f"Bearer {token}"), 401, "unauthenticated")
    assert client.get(f"{API}/clusters", HTTP_AUTHORIZATION=f"Bearer {good}").status_code == 200


def test_token_stored_hashed_and_never_logged(client, django_user_model, caplog):
    caplog.set_level(logging.DEBUG)
    user = django_user_model.objects.create_superuser("root3", password="x")
    record, token = api_token_create(user=user, name="ci")
    client.get(f"{API}/clusters", HTTP_AUTHORIZATION=f"Bearer {token}")
    client.get(f"{API}/nodes/999", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert token not in record.digest and len(record.digest) == 64
    assert not ApiToken.objects.filter(digest=token).exists()
    assert all(token not in r.getMessage() for r in caplog.records)


def test_cluster_crud(admin_api):
    created = post(admin_api, "/clusters", {"name": "lab", "profile": "gpustack-2.2", "tls_enabled": True})
    assert created.status_code == 201
    cluster_id = created.json()["id"]
    assert created.json()["profile"] == "gpustack-2.2" and created.json()["node_count"] == 0
    listed = admin_api.get(f"{API}/clusters", {"profile": "gpustack-2.2"}).json()
    assert listed["count"] == 1 and listed["items"][0]["name"] == "lab"
    updated = patch(admin_api, f"/clusters/{cluster_id}", {"distributed_vllm": True, "profile": "gpustack-2.0"})
    assert updated.json()["distributed_vllm"] is True and updated.json()["profile"] == "gpustack-2.0"
    assert_error(post(admin_api, "/clusters", {"name": "lab"}), 409, "conflict")
    assert assert_cluster_options(admin_api, cluster_id)
    assert admin_api.delete(f"{API}/clusters/{cluster_id}").status_code == 204
    assert_error(admin_api.get(f"{API}/clusters/{cluster_id}"), 404, "not_found")


def assert_cluster_options(admin_api, cluster_id: int) -> bool:
    defaults = admin_api.get(f"{API}/clusters/{cluster_id}").json()
    assert (defaults["gateway"], defaults["external_database"]) == ("embedded", False)
    assert (defaults["builtin_observability"], defaults["proxy_mode"]) == (True, "worker")
    changed = patch(admin_api, f"/clusters/{cluster_id}", {"proxy_mode": "tunnel", "gateway": "disabled"}).json()
    assert (changed["proxy_mode"], changed["gateway"], changed["builtin_observability"]) == ("tunnel", "disabled", True)
    return Cluster.objects.get(pk=cluster_id).proxy_mode == "tunnel"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "bad name!"}, "name"),
        ({"name": "x", "proxy_mode": "sideways"}, "proxy_mode"),
        ({"name": "x", "gateway": "external"}, "gateway"),
        ({"name": "x", "profile": "gpustack-9"}, "profile"),
        ({"name": 5}, "name"),
        ({"name": "x", "tls_enabled": "maybe"}, "tls_enabled"),
        ({}, "name"),
    ],
)
def test_cluster_invalid_payloads_name_the_field(admin_api, payload, field):
    body = assert_error(post(admin_api, "/clusters", payload), 422, "validation_error")
    assert field in {e["field"] for e in body["errors"]}, body


def test_node_crud_with_write_only_credential(admin_api):
    cluster = ClusterFactory(name="lab")
    created = post(
        admin_api,
        "/nodes",
        {
            "cluster": cluster.pk,
            "name": "gpu01",
            "address": "10.0.0.11",
            "role": "worker",
            "credential": {"kind": "password", "secret": "s3cret!"},
        },
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["has_credential"] is True and "s3cret!" not in created.content.decode()
    assert Credential.objects.get().secret == "s3cret!"
    node_id = body["id"]
    detail = admin_api.get(f"{API}/nodes/{node_id}")
    assert "s3cret" not in detail.content.decode() and "secret" not in detail.json()
    updated = patch(
        admin_api, f"/nodes/{node_id}", {"ssh_port": 2222, "credential": {"kind": "password", "secret": "n3w"}}
    )
    assert updated.json()["ssh_port"] == 2222 and Credential.objects.get().secret == "n3w"
    listing = admin_api.get(f"{API}/nodes", {"cluster": "lab", "role": "worker"}).json()
    assert [n["name"] for n in listing["items"]] == ["gpu01"]
    assert admin_api.get(f"{API}/nodes", {"role": "server"}).json()["count"] == 0
    assert_error(
        post(admin_api, "/nodes", {"cluster": cluster.pk, "name": "gpu01", "address": "10.0.0.12"}), 409, "conflict"
    )
    assert admin_api.delete(f"{API}/nodes/{node_id}").status_code == 204
    assert not Node.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ssh_port": 70000}, "ssh_port"),
        ({"ssh_port": 0}, "ssh_port"),
        ({"address": "10.0.0.1; reboot"}, "address"),
        ({"role": "king"}, "role"),
        ({"cluster": 999999}, "cluster"),
        ({"name": ""}, "name"),
        ({"ssh_user": "root;id"}, "ssh_user"),
        ({"credential": {"kind": "token", "secret": "x"}}, "credential.kind"),
    ],
)
def test_node_invalid_payloads(admin_api, change, field):
    cluster = ClusterFactory()
    payload = {"cluster": cluster.pk, "name": "n1", "address": "10.0.0.1", **change}
    body = assert_error(post(admin_api, "/nodes", payload), 422, "validation_error")
    assert field in {e["field"] for e in body["errors"]}, body
    assert not Node.objects.exists()


def test_malformed_and_oversized_bodies(admin_api, settings):
    bad_json = admin_api.post(f"{API}/clusters", data="{not json", content_type="application/json")
    assert_error(bad_json, 400, "bad_request")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = post(admin_api, "/clusters", {"name": "x", "description": "y" * 5000})
    assert_error(big, 413, "too_large")
    assert not Cluster.objects.filter(name="x").exists()


def test_profiles_read_only(admin_api):
    listing = admin_api.get(f"{API}/profiles").json()
    assert [p["key"] for p in listing["items"]] == ["gpustack-2.0", "gpustack-2.2", "gpustack-2.3"]
    profile = admin_api.get(f"{API}/profiles/gpustack-2.0").json()
    assert (
        len(profile["os_rules"]) == 7
        and {"first_port": 10150, "last_port": 10150}.items()
        <= next(r for r in profile["port_rules"] if r["first_port"] == 10150).items()
    )
    assert_error(admin_api.get(f"{API}/profiles/nope"), 404, "not_found")
    assert admin_api.post(f"{API}/profiles", data="{}", content_type="application/json").status_code == 405


def test_inventory_import_upload(admin_api):
    good = SimpleUploadedFile("rack.ini", b"[server]\nh1 ansible_host=10.0.0.1\n[workers]\ng[1:2]\n")
    response = admin_api.post(f"{API}/inventory/import", {"file": good, "profile": "gpustack-2.2"})
    assert response.status_code == 200, response.content
    assert response.json()["created"] == ["h1", "g1", "g2"] and response.json()["profile"] == "gpustack-2.2"
    bad = SimpleUploadedFile("bad.ini", b"[workers]\ngpu1 ansible_port=99999\n")
    body = assert_error(admin_api.post(f"{API}/inventory/import", {"file": bad}), 422, "invalid_inventory")
    assert body["errors"][0]["line"] == 2 and "bad.ini:2:" in body["message"]
    assert not Cluster.objects.filter(name="bad").exists()
    assert_error(admin_api.post(f"{API}/inventory/import", {}), 422, "validation_error")


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("multipart/form-data", b"--x\r\n\r\n--x--\r\n"),  # no boundary in the header
        ("multipart/form-data; boundary=x", b"--x\r\nX-Junk: " + b"a" * 20000 + b"\r\n\r\nv\r\n--x--\r\n"),
    ],
    ids=["no-boundary", "huge-part-header"],
)
def test_malformed_multipart_gets_a_json_400(admin_api, content_type, body):
    # found by schemathesis: Django raised MultiPartParserError and answered with its HTML 400 page
    response = admin_api.generic("POST", f"{API}/inventory/import", body, content_type=content_type)
    assert response["Content-Type"].startswith("application/json")
    assert "could not be parsed" in assert_error(response, 400, "bad_request")["message"]


def test_start_audit_conflicts_and_errors(admin_api, django_capture_on_commit_callbacks):
    node = NodeFactory(name="self", address="127.0.0.1", transport="local")
    with django_capture_on_commit_callbacks(execute=False):
        started = post(admin_api, "/audits", {"cluster": node.cluster.name})
    assert started.status_code == 202, started.content
    audit_id = started.json()["audit"]
    assert started.json()["url"] == started["Location"] == f"/api/v1/audits/{audit_id}"
    assert Audit.objects.get(pk=audit_id).trigger == "api"
    assert_error(post(admin_api, "/audits", {"cluster": node.cluster.name}), 409, "conflict")
    assert_error(post(admin_api, "/audits", {"cluster": "nope"}), 404, "not_found")
    Audit.objects.all().delete()
    body = assert_error(
        post(admin_api, "/audits", {"cluster": node.cluster.name, "nodes": ["ghost"]}), 422, "validation_error"
    )
    assert "ghost" in body["message"]
    assert_error(post(admin_api, "/audits", {"cluster": 12}), 422, "validation_error")


def test_audit_results_history_matrix_and_remediation(admin_api):
    # given: a finished audit with a failing check and one network path
    node = NodeFactory(name="w1")
    server = NodeFactory(name="srv", cluster=node.cluster, role="server")
    audit = Audit.objects.create(
        cluster=node.cluster,
        profile=node.cluster.profile,
        profile_key="gpustack-2.0",
        state=RunState.DONE,
        status="fail",
        started=timezone.now(),
        finished=timezone.now(),
    )
    node_audit = NodeAudit.objects.create(
        audit=audit,
        node=node,
        state=RunState.DONE,
        status="fail",
        finished=timezone.now(),
        facts={"os": {"id": "ubuntu"}},
    )
    FailingNtpResultFactory(node_audit=node_audit)
    NetworkPath.objects.create(
        audit=audit,
        check_id="network.server_to_worker",
        source=server,
        destination=node,
        status="fail",
        summary="srv -> w1: 10150 timed out",
        outcomes={"10150": ["timed out", "no answer in 3s"]},
    )
    # when / then
    detail = admin_api.get(f"{API}/audits/{audit.pk}").json()
    assert detail["progress"] == {"nodes": 1, "finished": 1, "network_state": "none"}
    assert detail["nodes"][0]["checks"][0]["id"] == "time.ntp"
    assert detail["nodes"][0]["checks"][0]["commands"] == ["apt-get install -y chrony", "systemctl enable --now chrony"]
    history = admin_api.get(f"{API}/nodes/{node.pk}/checks", {"check_id": "time.ntp"}).json()
    assert history["items"] == [
        {
            "audit": audit.pk,
            "finished": history["items"][0]["finished"],
            "check_id": "time.ntp",
            "status": "fail",
            "summary": "no NTP",
        }
    ]
    matrix = admin_api.get(f"{API}/audits/{audit.pk}/matrix").json()
    assert matrix["count"] == 1
    assert matrix["items"][0]["outcomes"] == {"10150": ["timed out", "no answer in 3s"]}
    script = admin_api.get(f"{API}/nodes/{node.pk}/remediation")
    assert script["Content-Type"] == "text/x-shellscript"
    assert "\n  apt-get install -y chrony\n" in script.content.decode()
    assert_error(admin_api.get(f"{API}/nodes/{server.pk}/remediation"), 404, "not_found")
    assert_error(admin_api.get(f"{API}/audits/999999"), 404, "not_found")
    assert admin_api.get(f"{API}/audits", {"cluster": node.cluster.name}).json()["count"] == 1


def _meshed_audit(workers: int) -> Audit:
    """A finished audit of 1 server and `workers` workers with a full mesh of worker paths, those into w1 failing."""
    server = NodeFactory(name="srv", role="server")
    nodes = [NodeFactory(name=f"w{i}", cluster=server.cluster) for i in range(1, workers + 1)]
    audit = Audit.objects.create(
        cluster=server.cluster, profile=server.cluster.profile, profile_key="gpustack-2.0", state=RunState.DONE
    )
    NetworkPath.objects.bulk_create(
        NetworkPath(
            audit=audit,
            check_id="network.worker_to_worker",
            source=source,
            destination=destination,
            status="fail" if destination.name == "w1" else "pass",
            summary=f"{source.name} -> {destination.name}",
            outcomes={},
        )
        for source in nodes
        for destination in nodes
        if source != destination
    )
    return audit


def test_the_matrix_is_paged_and_filtered_in_the_same_queries_at_any_size(admin_api):
    # given a mesh of 4 workers (12 paths)
    audit = _meshed_audit(4)
    url = f"{API}/audits/{audit.pk}/matrix"
    # when paged by 5, then the pages are whole, in a stable order, and do not overlap
    first, second = (admin_api.get(url, {"limit": 5, "offset": offset}).json() for offset in (0, 5))
    assert first["count"] == second["count"] == 12
    names = [(p["source"], p["destination"]) for p in first["items"] + second["items"]]
    assert len(names) == len(set(names)) == 10 and names == sorted(names)
    # and filtered: the failing paths, and one node's paths (as source or destination)
    failing = admin_api.get(url, {"status": "fail"}).json()
    assert failing["count"] == 3 and {p["destination"] for p in failing["items"]} == {"w1"}
    touching = admin_api.get(url, {"node": "w2"}).json()
    assert touching["count"] == 6 and all("w2" in (p["source"], p["destination"]) for p in touching["items"])
    assert admin_api.get(url, {"limit": 1001}).status_code == 422


def test_a_matrix_page_costs_the_same_queries_for_12_and_90_paths(admin_api):
    counts = []
    for workers in (4, 10):
        audit = _meshed_audit(workers)
        admin_api.get(f"{API}/audits/{audit.pk}/matrix", {"limit": 5})  # (the token's first use is remembered)
        with CaptureQueriesContext(connection) as queries:
            page = admin_api.get(f"{API}/audits/{audit.pk}/matrix", {"limit": 5})
        assert page.status_code == 200 and len(page.json()["items"]) == 5
        counts.append(len(queries.captured_queries))
        Node.objects.all().delete()
    assert counts[0] == counts[1]


def test_view_permission_reads_but_cannot_write(make_client):
    client = make_client("inventory.view_cluster")
    cluster = ClusterFactory()
    assert client.get(f"{API}/clusters/{cluster.pk}").status_code == 200
    assert_error(patch(client, f"/clusters/{cluster.pk}", {"tls_enabled": True}), 403, "forbidden")
    assert_error(post(client, "/audits", {"cluster": cluster.name}), 403, "forbidden")


def test_openapi_schema_and_local_docs(client, django_user_model):
    # the docs and schema are behind login (tests/security covers the anonymous case)
    client.force_login(django_user_model.objects.create_user("reader", password="x"))
    schema = client.get(f"{API}/openapi.json")
    assert schema.status_code == 200 and "/api/v1/audits" in schema.json()["paths"]
    docs = client.get(f"{API}/docs").content.decode()
    assert "cdn" not in docs.lower() and "/static/ninja/swagger-ui-bundle.js" in docs


def test_pagination_bounds(admin_api):
    assert_error(admin_api.get(f"{API}/profiles", {"limit": 10**30}), 422, "validation_error")
    assert_error(admin_api.get(f"{API}/nodes", {"offset": 10**30}), 422, "validation_error")
    assert admin_api.get(f"{API}/profiles", {"limit": 1, "offset": 1}).json()["items"][0]["key"] == "gpustack-2.2"


def test_cluster_connectivity_plan_and_node_network_group_through_the_api(admin_api):
    # given a cluster created with defaults
    cluster_id = post(admin_api, "/clusters", {"name": "big"}).json()["id"]
    defaults = admin_api.get(f"{API}/clusters/{cluster_id}").json()
    assert (defaults["connectivity_plan"], defaults["sampled_peers"], defaults["group_full_mesh_limit"]) == (
        "auto",
        3,
        64,
    )
    # when the plan is set to sampled with k=1 and a node gets a network group
    changed = patch(admin_api, f"/clusters/{cluster_id}", {"connectivity_plan": "sampled", "sampled_peers": 1})
    node = post(
        admin_api, "/nodes", {"cluster": cluster_id, "name": "w1", "address": "10.0.0.5", "network_group": "r1"}
    )
    moved = patch(admin_api, f"/nodes/{node.json()['id']}", {"network_group": "rack-2"})
    # then both are stored and shown
    assert (changed.json()["connectivity_plan"], changed.json()["sampled_peers"]) == ("sampled", 1)
    assert node.status_code == 201 and moved.json()["network_group"] == "rack-2"
    assert Node.objects.get(name="w1").network_group == "rack-2"
    # and bad values are a 422 naming the field
    for payload, field in (
        ({"connectivity_plan": "some"}, "connectivity_plan"),
        ({"sampled_peers": 0}, "sampled_peers"),
    ):
        body = assert_error(patch(admin_api, f"/clusters/{cluster_id}", payload), 422, "validation_error")
        assert field in {e["field"] for e in body["errors"]}
    bad = patch(admin_api, f"/nodes/{node.json()['id']}", {"network_group": "a b;rm"})
    assert field_of(assert_error(bad, 422, "validation_error")) == {"network_group"}


def field_of(body: dict) -> set[str]:
    return {e["field"] for e in body["errors"]}
