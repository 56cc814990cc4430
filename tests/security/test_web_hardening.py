"""The portal's own surface: login throttling, deployment settings, public docs, 500s on odd input, and values
with a trailing newline."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from inventory.validators import is_valid_address, validate_address, validate_ssh_user
from tests.conftest import REPO
from tests.factories import NodeFactory

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
