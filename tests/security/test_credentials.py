"""The credential thief: a staff user who may edit nodes but not credentials tries to make Preflight send the fleet's
root password to a machine of theirs, through the admin, the API and an inventory import."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from checks.models import Audit
from inventory.models import Cluster, Credential, Node
from tests.factories import ClusterFactory, NodeFactory

from .conftest import NODE_EDITOR

pytestmark = pytest.mark.django_db

API = "/api/v1"
ATTACKER_BOX = "127.0.0.99"


def node_post(cluster, node=None, **fields) -> dict:
    """What the admin's node form posts (no inline rows)."""
    data = {
        "cluster": cluster.pk,
        "name": node.name if node else "my-box",
        "address": node.address if node else ATTACKER_BOX,
        "ssh_port": node.ssh_port if node else 22,
        "ssh_user": node.ssh_user if node else "root",
        "role": "worker",
        "credential": (node.credential_id or "") if node else "",
        "enabled": "on",
    }
    for prefix in ("accelerators", "installs", "host_keys"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000})
    data.update(fields)
    return data


def test_node_editor_cannot_pick_a_stored_credential_in_the_admin(staff, root_credential):
    # given: a staff user who may add and change nodes, and nothing about credentials
    client = staff(*NODE_EDITOR)
    cluster = ClusterFactory()
    # when: they add a node pointing at their own machine with the fleet's credential picked by id
    response = client.post(reverse("admin:inventory_node_add"), node_post(cluster, credential=root_credential.pk))
    # then: refused with the permission named, and no node holds the credential
    assert response.status_code == 200
    assert "inventory.view_credential" in response.content.decode()
    assert not Node.objects.filter(credential=root_credential).exists()


def test_node_editor_cannot_attach_a_credential_to_an_existing_node(staff, root_credential):
    client = staff(*NODE_EDITOR)
    node = NodeFactory(address=ATTACKER_BOX)
    response = client.post(
        reverse("admin:inventory_node_change", args=[node.pk]),
        node_post(node.cluster, node, credential=root_credential.pk),
    )
    assert response.status_code == 200 and "inventory.view_credential" in response.content.decode()
    node.refresh_from_db()
    assert node.credential_id is None


def test_user_who_may_view_credentials_may_choose_one(staff, root_credential):
    client = staff(*NODE_EDITOR, "inventory.view_credential")
    cluster = ClusterFactory()
    response = client.post(reverse("admin:inventory_node_add"), node_post(cluster, credential=root_credential.pk))
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert Node.objects.get(name="my-box").credential == root_credential


def test_moving_a_node_in_the_admin_drops_its_credential(staff, root_credential):
    # given: a real node with the fleet's credential; a node editor moves it to their machine
    client = staff(*NODE_EDITOR)
    node = NodeFactory(credential=root_credential)
    # when
    response = client.post(
        reverse("admin:inventory_node_change", args=[node.pk]),
        node_post(node.cluster, node, address=ATTACKER_BOX),
        follow=True,
    )
    # then: the move is saved, the credential is not, and the user is told
    node.refresh_from_db()
    assert node.address == ATTACKER_BOX and node.credential_id is None
    assert "its credential was removed" in response.content.decode()


def test_moving_a_node_keeps_its_credential_for_who_may_change_credentials(staff, root_credential):
    client = staff(*NODE_EDITOR, "inventory.change_credential")
    node = NodeFactory(credential=root_credential)
    client.post(
        reverse("admin:inventory_node_change", args=[node.pk]), node_post(node.cluster, node, address="10.0.0.5")
    )
    node.refresh_from_db()
    assert node.address == "10.0.0.5" and node.credential == root_credential


def test_moving_a_node_through_the_clusters_inline_drops_its_credential(staff, root_credential):
    # given: the cluster page's node rows (no credential column) are another way to change an address
    client = staff(*NODE_EDITOR, "inventory.change_cluster")
    node = NodeFactory(credential=root_credential)
    cluster = node.cluster
    data = {
        "name": cluster.name,
        "description": "",
        "profile": cluster.profile_id,
        "gateway": "embedded",
        "builtin_observability": "on",
        "proxy_mode": "worker",
        "connectivity_plan": "auto",
        "sampled_peers": 3,
        "group_full_mesh_limit": 64,
        "nodes-TOTAL_FORMS": 1,
        "nodes-INITIAL_FORMS": 1,
        "nodes-MAX_NUM_FORMS": 1000,
        "nodes-0-id": node.pk,
        "nodes-0-cluster": cluster.pk,
        "nodes-0-name": node.name,
        "nodes-0-role": "worker",
        "nodes-0-address": ATTACKER_BOX,
        "nodes-0-ssh_port": 22,
        "nodes-0-ssh_user": "root",
        "nodes-0-enabled": "on",
    }
    # when
    response = client.post(reverse("admin:inventory_cluster_change", args=[cluster.pk]), data)
    # then
    assert response.status_code == 302, response.content.decode()[-3000:]
    node.refresh_from_db()
    assert node.address == ATTACKER_BOX and node.credential_id is None


def test_transport_local_is_not_settable_by_a_node_editor_in_the_admin(staff):
    # given: the portal's own host audited as root is the prize; the editor posts transport=local anyway
    client = staff(*NODE_EDITOR)
    node = NodeFactory()
    response = client.post(
        reverse("admin:inventory_node_change", args=[node.pk]), node_post(node.cluster, node, transport="local")
    )
    assert response.status_code == 302
    node.refresh_from_db()
    assert node.transport == "ssh"
    client.post(reverse("admin:inventory_node_add"), node_post(node.cluster, transport="local"))
    assert Node.objects.get(name="my-box").transport == "ssh"


def test_superuser_may_set_transport_local(staff):
    client = staff(superuser=True)
    node = NodeFactory()
    response = client.post(
        reverse("admin:inventory_node_change", args=[node.pk]), node_post(node.cluster, node, transport="local")
    )
    assert response.status_code == 302
    node.refresh_from_db()
    assert node.transport == "local"


def test_admin_audit_now_needs_start_audit(staff, django_capture_on_commit_callbacks):
    # given: the last step: an editor presses "Audit now" on their node
    client = staff(*NODE_EDITOR)
    node = NodeFactory()
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            reverse("admin:inventory_node_changelist"), {"action": "audit_now", "_selected_action": [node.pk]}
        )
    assert response.status_code in (200, 302)
    assert not Audit.objects.exists()


# --- the API --------------------------------------------------------------------------------------------------------


def _json(client, method, url, body):
    return getattr(client, method)(url, body, content_type="application/json")


def test_api_patch_cannot_set_a_credential_without_credential_permission(token_client, root_credential):
    api = token_client("inventory.change_node", "inventory.view_node")
    node = NodeFactory(address=ATTACKER_BOX)
    response = _json(api, "patch", f"{API}/nodes/{node.pk}", {"credential": {"kind": "password", "secret": "mine"}})
    assert response.status_code == 403 and "inventory.add_credential" in response.json()["message"]
    node.refresh_from_db()
    assert node.credential_id is None and Credential.objects.count() == 1


def test_api_patch_replacing_a_stored_credential_needs_change_credential(token_client, root_credential):
    # given: a node whose credential was made through the API (named after it); the attacker may only add
    api = token_client("inventory.change_node", "inventory.view_node", "inventory.add_credential")
    node = NodeFactory()
    first = _json(
        token_client(superuser=True),
        "patch",
        f"{API}/nodes/{node.pk}",
        {"credential": {"kind": "password", "secret": "real"}},
    )
    assert first.status_code == 200
    # when
    response = _json(api, "patch", f"{API}/nodes/{node.pk}", {"credential": {"kind": "password", "secret": "mine"}})
    # then
    assert response.status_code == 403 and "inventory.change_credential" in response.json()["message"]
    node.refresh_from_db()
    assert node.credential.secret == "real"


def test_api_patch_moving_a_node_drops_its_credential(token_client, root_credential):
    api = token_client("inventory.change_node", "inventory.view_node")
    node = NodeFactory(credential=root_credential)
    response = _json(api, "patch", f"{API}/nodes/{node.pk}", {"address": ATTACKER_BOX})
    assert response.status_code == 200 and response.json()["has_credential"] is False
    node.refresh_from_db()
    assert node.address == ATTACKER_BOX and node.credential_id is None
    # a port change is a move too
    node.credential = root_credential
    node.save()
    _json(api, "patch", f"{API}/nodes/{node.pk}", {"ssh_port": 2222})
    node.refresh_from_db()
    assert node.credential_id is None


def test_api_patch_keeps_the_credential_for_who_may_change_credentials(token_client, root_credential):
    api = token_client("inventory.change_node", "inventory.view_node", "inventory.change_credential")
    node = NodeFactory(credential=root_credential)
    assert _json(api, "patch", f"{API}/nodes/{node.pk}", {"address": "10.0.0.9"}).json()["has_credential"] is True


def test_api_cannot_switch_transport_to_local(token_client):
    api = token_client("inventory.change_node", "inventory.view_node", "inventory.add_node")
    node = NodeFactory()
    _json(api, "patch", f"{API}/nodes/{node.pk}", {"transport": "local"})
    created = _json(
        api,
        "post",
        f"{API}/nodes",
        {"cluster": node.cluster_id, "name": "n2", "address": "10.0.0.2", "transport": "local"},
    )
    node.refresh_from_db()
    assert node.transport == "ssh" and created.status_code == 201 and created.json()["transport"] == "ssh"


def test_api_post_needs_add_credential_and_never_reuses_a_stored_one(token_client, root_credential):
    api = token_client("inventory.add_node", "inventory.view_node")
    cluster = ClusterFactory()
    body = {
        "cluster": cluster.pk,
        "name": "box",
        "address": ATTACKER_BOX,
        "credential": {"kind": "password", "secret": "x"},
    }
    assert _json(api, "post", f"{API}/nodes", body).status_code == 403
    assert not Node.objects.filter(name="box").exists()


# --- imports ----------------------------------------------------------------------------------------------------------


IMPORTER = (
    "inventory.add_node",
    "inventory.change_node",
    "inventory.add_cluster",
    "inventory.change_cluster",
    "inventory.view_node",
    "inventory.view_cluster",
)


def test_import_with_a_password_needs_add_credential(token_client, staff):
    text = b"[workers]\ngpu1 ansible_host=10.0.0.1 ansible_password=hunter2\n"
    api = token_client(*IMPORTER)
    response = api.post(f"{API}/inventory/import", {"file": SimpleUploadedFile("lab.ini", text)})
    assert response.status_code == 422 and "inventory.add_credential" in response.json()["message"]
    assert not Cluster.objects.filter(name="lab").exists() and not Credential.objects.exists()
    client = staff(*IMPORTER)
    page = client.post(reverse("admin:inventory_cluster_import"), {"file": SimpleUploadedFile("lab.ini", text)})
    assert "inventory.add_credential" in page.content.decode() and not Credential.objects.exists()


def test_reimport_that_moves_a_node_drops_its_credential(token_client, root_credential):
    # given: a node of cluster lab with the fleet credential; the importer re-imports it at their own address
    cluster = ClusterFactory(name="lab")
    node = NodeFactory(cluster=cluster, name="gpu1", address="10.0.0.1", credential=root_credential)
    api = token_client(*IMPORTER)
    text = f"[workers]\ngpu1 ansible_host={ATTACKER_BOX}\n".encode()
    # when
    response = api.post(f"{API}/inventory/import", {"file": SimpleUploadedFile("lab.ini", text)})
    # then
    assert response.status_code == 200 and response.json()["credentials_removed"] == ["gpu1"]
    node.refresh_from_db()
    assert node.address == ATTACKER_BOX and node.credential_id is None


def test_reimport_keeps_the_credential_of_a_node_that_did_not_move(token_client, root_credential):
    cluster = ClusterFactory(name="lab")
    node = NodeFactory(cluster=cluster, name="gpu1", address="10.0.0.1", credential=root_credential)
    api = token_client(*IMPORTER)
    text = b"[workers]\ngpu1 ansible_host=10.0.0.1 ansible_user=admin\n"
    assert api.post(f"{API}/inventory/import", {"file": SimpleUploadedFile("lab.ini", text)}).status_code == 200
    node.refresh_from_db()
    assert node.ssh_user == "admin" and node.credential == root_credential


def test_api_patch_that_moves_a_node_with_a_new_credential_keeps_the_new_one(token_client):
    api = token_client("inventory.change_node", "inventory.view_node", "inventory.add_credential")
    node = NodeFactory()
    body = {"address": ATTACKER_BOX, "credential": {"kind": "password", "secret": "mine"}}
    response = _json(api, "patch", f"{API}/nodes/{node.pk}", body)
    assert response.status_code == 200 and response.json()["has_credential"] is True
    # sending the same secret again (it is the caller's own) is allowed with add_credential alone, and kept
    body["address"] = "127.0.0.98"
    response = _json(api, "patch", f"{API}/nodes/{node.pk}", body)
    assert response.status_code == 200 and response.json()["has_credential"] is True
    node.refresh_from_db()
    assert node.credential.secret == "mine" and Credential.objects.count() == 1
