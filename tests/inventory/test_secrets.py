"""Secrets at rest: never in clear text in the database, an admin page, a log line or a repr."""

import logging

import pytest
from django.db import connection
from django.urls import reverse

from inventory.crypto import SecretUnreadable
from inventory.models import Credential
from inventory.services import inventory_import
from tests.factories import NodeFactory

pytestmark = pytest.mark.django_db

PASSWORD = "Pl4intext-Sentinel-9c1f"
KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nS3ntinelKeyMaterialAAAAC3NzaC1lZDI1NTE5\n-----END OPENSSH PRIVATE KEY-----\n"
)
PASSPHRASE = "Passphrase-Sentinel-77aa"


def _all_database_text() -> str:
    """Every text value of every inventory table, read with raw SQL (not through the model)."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            if not table.startswith("inventory_"):
                continue
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            chunks.extend(str(value) for row in cursor.fetchall() for value in row)
    return "\n".join(chunks)


def test_secrets_encrypted_in_raw_columns_and_round_trip():
    # given
    credential = Credential(name="k", kind="private_key")
    credential.secret = KEY
    credential.passphrase = PASSPHRASE
    credential.save()
    # when
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_encrypted, passphrase_encrypted FROM inventory_credential WHERE id = %s", [credential.pk]
        )
        raw_secret, raw_passphrase = cursor.fetchone()
    # then
    assert raw_secret.startswith("gAAAAA") and "S3ntinel" not in raw_secret
    assert raw_passphrase.startswith("gAAAAA") and PASSPHRASE not in raw_passphrase
    fresh = Credential.objects.get(pk=credential.pk)
    assert (fresh.secret, fresh.passphrase) == (KEY, PASSPHRASE)
    assert "S3ntinel" not in _all_database_text() and PASSPHRASE not in _all_database_text()
    assert "S3ntinel" not in repr(fresh) and "S3ntinel" not in str(fresh)


def test_wrong_key_raises_clear_error(settings):
    credential = Credential(name="p", kind="password")
    credential.secret = PASSWORD
    credential.save()
    settings.PREFLIGHT_FERNET_KEYS = ["x" * 43 + "="]
    with pytest.raises(SecretUnreadable, match="cannot be decrypted"):
        _ = Credential.objects.get(pk=credential.pk).secret


def test_key_rotation_keeps_old_secrets_readable(settings):
    from cryptography.fernet import Fernet

    credential = Credential(name="p", kind="password")
    credential.secret = PASSWORD
    credential.save()
    settings.PREFLIGHT_FERNET_KEYS = [Fernet.generate_key().decode(), *settings.PREFLIGHT_FERNET_KEYS]
    assert Credential.objects.get(pk=credential.pk).secret == PASSWORD


def test_imported_password_never_logged_or_stored_clear(caplog, settings):
    # given: SQL logging on, so parameters would show up if the clear text reached a query
    settings.DEBUG = True
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    # when
    inventory_import(text=f"[server]\nh1 ansible_host=10.0.0.1 ansible_password={PASSWORD}\n", source="lab.ini")
    # then
    assert Credential.objects.get().secret == PASSWORD
    assert any(r.name == "django.db.backends" for r in caplog.records)
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)
    assert PASSWORD not in _all_database_text()


def test_admin_pages_never_render_secrets(admin_client, caplog, settings):
    # given
    settings.DEBUG = True
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    credential = Credential(name="ops", kind="private_key")
    credential.secret = KEY
    credential.passphrase = PASSPHRASE
    credential.save()
    node = NodeFactory(credential=credential)
    pages = [
        reverse("admin:inventory_credential_changelist"),
        reverse("admin:inventory_credential_change", args=[credential.pk]),
        reverse("admin:inventory_node_change", args=[node.pk]),
        reverse("admin:inventory_node_changelist"),
        reverse("admin:inventory_cluster_change", args=[node.cluster_id]),
    ]
    # when
    bodies = [admin_client.get(url).content.decode() for url in pages]
    # then
    for body in bodies:
        assert "S3ntinel" not in body and PASSPHRASE not in body and credential.secret_encrypted not in body
    assert "never shown" in bodies[1]
    assert all("S3ntinel" not in r.getMessage() for r in caplog.records)


def test_admin_replaces_secret_write_only(admin_client):
    # given
    credential = Credential(name="ops", kind="password")
    credential.secret = PASSWORD
    credential.save()
    url = reverse("admin:inventory_credential_change", args=[credential.pk])
    # when: saving without a new secret keeps it; with one replaces it
    keep = admin_client.post(url, {"name": "ops", "kind": "password", "new_secret": "", "new_passphrase": ""})
    kept = Credential.objects.get(pk=credential.pk).secret
    replace = admin_client.post(
        url, {"name": "ops", "kind": "password", "new_secret": "New-Pw-1", "new_passphrase": ""}
    )
    # then
    assert keep.status_code == 302 and kept == PASSWORD
    assert replace.status_code == 302 and Credential.objects.get(pk=credential.pk).secret == "New-Pw-1"


def test_admin_add_credential_requires_secret_and_validates_key(admin_client):
    url = reverse("admin:inventory_credential_add")
    empty = admin_client.post(url, {"name": "x", "kind": "password", "new_secret": ""})
    not_key = admin_client.post(url, {"name": "y", "kind": "private_key", "new_secret": "hello"})
    assert empty.status_code == 200 and "needs a private key or a password" in empty.content.decode()
    assert not_key.status_code == 200 and "does not look like" in not_key.content.decode()
    assert Credential.objects.count() == 0
