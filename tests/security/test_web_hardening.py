"""The portal's own surface: login throttling, deployment settings, public docs, 500s on odd input, and values
with a trailing newline."""

import os
import subprocess
import sys
from email.message import Message

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from checks.models import NodeAudit
from inventory.importers.ansible import InventoryError
from inventory.models import Node
from inventory.services import inventory_import
from inventory.validators import is_valid_address, validate_address, validate_node_name, validate_ssh_user
from tests.conftest import REPO
from tests.factories import NodeFactory
from tests.security.test_credentials import node_post
from tests.uidata import build_cluster

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_password_guessing_is_locked_out(client, django_user_model, url):
    # given: the attacker tried 30 admin passwords in 8 s with no delay
    django_user_model.objects.create_superuser("admin", password="the-right-one")
    answers = [client.post(url, {"username": "admin", "password": f"guess{i}"}).status_code for i in range(6)]
    # then: after the limit even the right password is refused, with 429
    assert answers[:4] == [200] * 4 and answers[-1] == 429
    assert client.post(url, {"username": "admin", "password": "the-right-one"}).status_code == 429


def test_a_lockout_of_one_user_leaves_others_alone(client, django_user_model):
    django_user_model.objects.create_user("alice", password="alice-pw")
    for i in range(6):
        client.post("/login/", {"username": "bob", "password": f"guess{i}"})
    assert client.post("/login/", {"username": "alice", "password": "alice-pw"}).status_code == 302


def test_check_deploy_is_clean_with_a_production_environment(tmp_path):
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin"),
        "DJANGO_SETTINGS_MODULE": "portal.settings.base",
        "PREFLIGHT_ENV_FILE": "/dev/null",
        "SECRET_KEY": "k3Jx9-production-grade-secret-key-with-enough-entropy-0f8a7b6c5d4e3f2a1",
        "PREFLIGHT_FERNET_KEYS": "dGVzdC1vbmx5LWZlcm5ldC1rZXktMzItYnl0ZXMhIT0=",
        "DEBUG": "False",
        "ALLOWED_HOSTS": "preflight.example.org",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PREFLIGHT_TARGET_NETWORKS": "10.0.0.0/8",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_api_docs_and_schema_need_a_login(client, django_user_model):
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 302 and docs["Location"].startswith("/login/")
    schema = client.get("/api/v1/openapi.json")
    assert schema.status_code == 401 and schema.json()["code"] == "unauthenticated"
    bad_token = client.get("/api/v1/openapi.json", HTTP_AUTHORIZATION="Bearer pf_nope")
    assert bad_token.status_code == 401


def test_admin_remediation_of_an_unknown_node_audit_is_404(admin_client):
    response = admin_client.get(reverse("admin:checks_nodeaudit_remediation", args=[987654]))
    assert response.status_code == 404


@pytest.mark.parametrize("value", ["root\n", "root\r\n", "ro ot", "root\x00", "\nroot"])
def test_login_names_with_a_trailing_newline_are_invalid(value):
    with pytest.raises(ValidationError):
        validate_ssh_user(value)


@pytest.mark.parametrize("value", ["gpu1\n", "gpu1.lab\n", "10.0.0.1\n", "gpu1.\n", "a\n.b"])
def test_addresses_with_a_newline_are_invalid(value):
    assert not is_valid_address(value)
    with pytest.raises(ValidationError):
        validate_address(value)


def test_api_refuses_a_login_name_with_a_newline(token_client):
    api = token_client("inventory.change_node", "inventory.view_node")
    node = NodeFactory()
    response = api.patch(f"/api/v1/nodes/{node.pk}", {"ssh_user": "root\n"}, content_type="application/json")
    assert response.status_code == 422
    response = api.patch(f"/api/v1/nodes/{node.pk}", {"address": "gpu1\n"}, content_type="application/json")
    assert response.status_code == 422
    node.refresh_from_db()
    assert node.ssh_user == "root"


# Issue 19: node names are validated in the model (admin, API and import apply it), and a download's file name is
# built by Django's content_disposition_header, so even a name stored before the rule cannot split a header.

BAD_NODE_NAMES = ["gpu\r\n1", "gpu1\n", 'x"; filename="evil.desktop', "a b", "", "x" * 129, "\u202egpu", "a\x00", "a/b"]


@pytest.mark.parametrize(
    "name", ["gpu01", "srv", "w-001", "node_1.lab", "10.0.0.1", "fe80::1%eth0", "gpu@a+b", "节点1"]
)
def test_node_names_of_inventories_and_the_demo_are_valid(name):
    validate_node_name(name)


@pytest.mark.parametrize("name", BAD_NODE_NAMES)
def test_node_names_with_control_characters_quotes_or_spaces_are_invalid(name):
    with pytest.raises(ValidationError):
        validate_node_name(name)


def test_admin_form_refuses_a_node_name_with_a_line_break(admin_client):
    # given
    cluster = NodeFactory().cluster
    # when
    response = admin_client.post(reverse("admin:inventory_node_add"), node_post(cluster, name="gpu\r\nevil"))
    # then: the form answers with the error, and nothing is stored
    assert response.status_code == 200 and "is not a node name" in response.content.decode()
    assert not Node.objects.filter(name__contains="evil").exists()


@pytest.mark.parametrize("name", BAD_NODE_NAMES[:3])
def test_api_refuses_a_node_name_with_a_line_break_or_quote(token_client, name):
    api = token_client("inventory.add_node", "inventory.change_node", "inventory.view_node")
    node = NodeFactory()
    created = api.post(
        "/api/v1/nodes",
        {"cluster": node.cluster.name, "name": name, "address": "192.0.2.9"},
        content_type="application/json",
    )
    assert created.status_code == 422 and created.json()["code"] == "validation_error", created.content
    # (a node's name is not among the fields PATCH changes)
    api.patch(f"/api/v1/nodes/{node.pk}", {"name": name}, content_type="application/json")
    assert Node.objects.count() == 1 and Node.objects.get().name == node.name


def test_import_refuses_a_host_name_with_a_quote_at_its_line():
    text = "workers:\n  hosts:\n    gpu1:\n    'gpu\"2':\n      ansible_host: 192.0.2.2\n"
    with pytest.raises(InventoryError, match="is not a node name") as error:
        inventory_import(text=text, source="lab.yml")
    assert error.value.line == 4 and not Node.objects.exists()


@pytest.mark.parametrize("name", ['x"; filename="evil.desktop', "gpu\r\nX-Evil: 1", "节点1"])
def test_remediation_downloads_carry_one_filename_whatever_the_stored_name(admin_client, token_client, name):
    # given: a node audited, then renamed in the database (as a row stored before the name rule could be)
    data = build_cluster("cd", 1, audits=1)
    node = data["nodes"][0]
    Node.objects.filter(pk=node.pk).update(name=name)
    node_audit = NodeAudit.objects.get(node=node)
    api = token_client(superuser=True)
    # when: the script is downloaded through each door
    responses = [
        admin_client.get(f"/nodes/{node.pk}/remediation.sh"),
        api.get(f"/api/v1/nodes/{node.pk}/remediation"),
        admin_client.get(reverse("admin:checks_nodeaudit_remediation", args=[node_audit.pk])),
    ]
    # then: one attachment with one file name (quoted, or RFC 5987-encoded), which reads back as the whole name
    for response in responses:
        header = response["Content-Disposition"]
        assert response.status_code == 200 and "\r" not in header and "\n" not in header, header
        parsed = Message()
        parsed["Content-Disposition"] = header
        params = [key for key, _ in parsed.get_params(header="content-disposition")]
        assert params == ["attachment", "filename"] or params == ["attachment", "filename*"], header
        assert parsed.get_filename() == f"preflight-{name}-remediation.sh", header


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_node_list_exports_name_their_file(admin_client, kind):
    NodeFactory()
    response = admin_client.get("/nodes/", {"export": kind})
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="preflight-nodes.{kind}"'


def test_a_nul_in_a_path_or_query_is_a_clear_400(admin_client):
    page = admin_client.get("/clusters/a%00b/")
    query = admin_client.get("/nodes/", {"q": "gpu\x00"})
    assert (page.status_code, query.status_code) == (400, 400)
    assert "NUL character" in query.content.decode()


def test_a_nul_in_the_api_is_a_validation_error(token_client):
    api = token_client(superuser=True)
    query = api.get("/api/v1/nodes", {"q": "\x00"})
    body = api.post("/api/v1/clusters", '{"name": "a\\u0000b"}', content_type="application/json")
    escaped = api.post("/api/v1/clusters", '{"name": "a\\\\u0000b"}', content_type="application/json")
    assert (query.status_code, body.status_code) == (422, 422)
    assert query.json()["code"] == "validation_error" and "NUL" in body.json()["message"]
    # a backslash followed by the text u0000 is not a NUL: the view answers (here: not a slug)
    assert escaped.status_code != 422 or "NUL" not in escaped.json()["message"]


@pytest.mark.parametrize(
    "query", [{"_to_field": ""}, {"audit": "99999999999"}, {"audit__in": "1,2147483648"}, {"node": str(10**30)}]
)
def test_admin_filters_that_would_overflow_are_a_clear_400(admin_client, query):
    response = admin_client.get("/admin/checks/nodeaudit/", query)
    assert response.status_code == 400 and response.content.decode().startswith(("_to_field", "a number"))


def test_admin_filters_within_range_and_search_terms_still_work(admin_client):
    assert admin_client.get("/admin/checks/nodeaudit/", {"audit": "2147483647"}).status_code == 200
    assert admin_client.get("/admin/inventory/node/", {"q": "99999999999999999999"}).status_code == 200
