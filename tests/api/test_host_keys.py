"""Host keys in the API: list a node's keys, and accept a changed one (the accept_host_key rule; test_doors.py walks
its permission). Accepting names the pending key by fingerprint, so a key offered after the operator looked is never
trusted by mistake."""

import pytest

from inventory.models import HostKey
from tests.factories import ClusterFactory, NodeFactory

pytestmark = pytest.mark.django_db

API = "/api/v1"


@pytest.fixture
def changed():
    node = NodeFactory(cluster=ClusterFactory(name="lab"), name="srv")
    old = HostKey.objects.create(
        node=node, key_type="ssh-ed25519", fingerprint="SHA256:old", public_key="AAAA", state="trusted"
    )
    new = HostKey.objects.create(
        node=node, key_type="ssh-ed25519", fingerprint="SHA256:new", public_key="BBBB", state="pending"
    )
    return node, old, new


def test_accepting_the_pending_key_trusts_it_and_retires_the_old_one(make_client, changed):
    # given
    node, old, new = changed
    api = make_client("inventory.accept_hostkey", "inventory.view_hostkey")
    # when
    response = api.post(
        f"{API}/nodes/{node.pk}/host-key/accept", {"fingerprint": "SHA256:new"}, content_type="application/json"
    )
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["fingerprint"] == "SHA256:new" and body["state"] == "trusted" and body["accepted_by"] == api.user_name
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.state, new.state) == ("retired", "trusted")
    listed = api.get(f"{API}/nodes/{node.pk}/host-keys").json()
    assert {(k["fingerprint"], k["state"]) for k in listed} == {("SHA256:old", "retired"), ("SHA256:new", "trusted")}


@pytest.mark.parametrize("fingerprint", ["SHA256:other", "SHA256:old"])
def test_only_a_pending_key_can_be_accepted(make_client, changed, fingerprint):
    # given: a fingerprint the node never offered, or the key already trusted
    node, old, new = changed
    api = make_client("inventory.accept_hostkey")
    # when
    response = api.post(
        f"{API}/nodes/{node.pk}/host-key/accept", {"fingerprint": fingerprint}, content_type="application/json"
    )
    # then: a 404 in the API's error shape, and nothing changed
    assert response.status_code == 404
    assert response.json()["code"] == "not_found" and response.json()["errors"][0]["field"] == "fingerprint"
    assert set(HostKey.objects.values_list("fingerprint", "state")) == {
        ("SHA256:old", "trusted"),
        ("SHA256:new", "pending"),
    }


def test_change_hostkey_alone_accepts_nothing(make_client, changed):
    node, _, new = changed
    api = make_client("inventory.change_hostkey", "inventory.view_hostkey", "inventory.view_node")
    response = api.post(
        f"{API}/nodes/{node.pk}/host-key/accept", {"fingerprint": "SHA256:new"}, content_type="application/json"
    )
    assert response.status_code == 403 and "inventory.accept_hostkey" in response.json()["message"]
    new.refresh_from_db()
    assert new.state == "pending"
