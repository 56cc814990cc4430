"""One rule per action through every door: for each row of portal.permissions.RULES (the README's table), every
door (admin, web UI, API, import) refuses a user who lacks exactly that row's permission and lets one who has it.

Each door is a function `door(make, world) -> bool` that tries the action as a user made by `make(*permissions)`
and says whether it happened; the user always holds every other permission the door needs.
"""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from checks.choices import RunState
from checks.models import Audit, NetworkPath, NodeAudit
from inventory.models import Accelerator, Credential, HostKey, Node
from portal import permissions
from portal.models import ApiToken
from portal.tokens import api_token_create
from tests.conftest import REPO
from tests.factories import ClusterFactory, FailingNtpResultFactory, NodeFactory

from .conftest import grant

pytestmark = pytest.mark.django_db

API = "/api/v1"
EVERYTHING_ELSE = (
    "inventory.view_cluster",
    "inventory.change_cluster",
    "inventory.add_cluster",
    "inventory.view_node",
    "inventory.add_node",
    "inventory.change_node",
    "checks.view_nodeaudit",
    "checks.view_checkresult",
    "checks.view_networkpath",
    "portal.add_apitoken",
    "portal.view_apitoken",
    "checks.view_waiver",
    "inventory.view_accelerator",
    "inventory.change_accelerator",
    "inventory.view_driverinstall",
    "inventory.view_hostkey",
    "inventory.change_hostkey",
    "inventory.delete_hostkey",
    "checks.view_fixrun",
)
# What only results show in the world below: the worker's failing check, its OS, its device, its status word.
RESULT_MARKERS = ("time.ntp", "Rocky Linux 9.4", "H100", "Not ready")


@pytest.fixture
def world(root_credential):
    cluster = ClusterFactory(name="lab")
    server = NodeFactory(cluster=cluster, name="srv", role="server", credential=root_credential)
    worker = NodeFactory(cluster=cluster, name="w1")
    now = timezone.now()
    audit = Audit.objects.create(
        cluster=cluster,
        profile=cluster.profile,
        profile_key="gpustack-2.0",
        state=RunState.DONE,
        status="fail",
        started=now,
        finished=now,
    )
    node_audit = NodeAudit.objects.create(audit=audit, node=worker, state=RunState.DONE, status="fail", finished=now)
    NodeAudit.objects.create(audit=audit, node=server, state=RunState.DONE, status="pass", finished=now)
    FailingNtpResultFactory(node_audit=node_audit)
    Node.objects.filter(pk=worker.pk).update(
        last_audit_status="fail",
        last_audited_at=now,
        last_facts={"os": {"id": "rocky", "version_id": "9.4", "pretty_name": "Rocky Linux 9.4 (Blue Onyx)"}},
    )
    Node.objects.filter(pk=server.pk).update(last_audit_status="pass", last_audited_at=now)
    Accelerator.objects.create(node=worker, vendor="nvidia", index=0, model="NVIDIA H100 80GB HBM3")
    HostKey.objects.create(
        node=server, key_type="ssh-ed25519", fingerprint="SHA256:old", public_key="AAAA", state="trusted"
    )
    pending = HostKey.objects.create(
        node=server, key_type="ssh-ed25519", fingerprint="SHA256:new", public_key="BBBB", state="pending"
    )
    path = NetworkPath.objects.create(
        audit=audit,
        check_id="network.server_to_worker",
        source=server,
        destination=worker,
        status="fail",
        summary="closed",
        outcomes={},
    )
    return {
        "cluster": cluster,
        "server": server,
        "worker": worker,
        "audit": audit,
        "node_audit": node_audit,
        "path": path,
        "credential": root_credential,
        "pending_key": pending,
    }


@pytest.fixture
def make(make_user):
    """A user with every permission the doors need besides the row's own, plus `extra`; web and API clients."""

    def build(*extra: str, superuser: bool = False, bare: bool = False):
        """bare=True: the user holds `extra` alone, none of EVERYTHING_ELSE."""
        user = make_user(*(() if bare else EVERYTHING_ELSE), *extra, superuser=superuser)
        web = Client()
        web.force_login(user)
        _, token = api_token_create(user=user, name="door")
        api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
        return user, web, api

    return build


def _json(client, method, url, body):
    return getattr(client, method)(url, body, content_type="application/json")


def _upload(api_or_web, text: str, admin: bool):
    upload = SimpleUploadedFile("lab.ini", text.encode())
    if admin:
        return api_or_web.post(reverse("admin:inventory_cluster_import"), {"file": upload})
    return api_or_web.post(f"{API}/inventory/import", {"file": upload})


def _node_form(node, **fields):
    data = {
        "cluster": node.cluster_id,
        "name": node.name,
        "address": node.address,
        "ssh_port": node.ssh_port,
        "ssh_user": node.ssh_user,
        "role": node.role,
        "credential": node.credential_id or "",
        "enabled": "on",
    }
    for prefix in ("accelerators", "installs", "host_keys"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000})
    return {**data, **fields}


# --- start an audit ---------------------------------------------------------------------------------------------------


def _audit_started(world, before: int) -> bool:
    return Audit.objects.count() > before


def start_web(make, world, *perms):
    _, web, _ = make(*perms)
    before = Audit.objects.count()
    web.post(reverse("ui:audit_now", args=[world["cluster"].name]))
    return _audit_started(world, before)


def start_web_node(make, world, *perms):
    _, web, _ = make(*perms)
    before = Audit.objects.count()
    web.post(reverse("ui:node_audit", args=[world["worker"].pk]))
    return _audit_started(world, before)


def start_web_selected(make, world, *perms):
    _, web, _ = make(*perms)
    before = Audit.objects.count()
    web.post(reverse("ui:node_audit_selected"), {"node": [world["worker"].pk]})
    return _audit_started(world, before)


def start_admin_cluster(make, world, *perms):
    _, web, _ = make(*perms)
    before = Audit.objects.count()
    web.post(
        reverse("admin:inventory_cluster_changelist"),
        {"action": "audit_now", "_selected_action": [world["cluster"].pk]},
    )
    return _audit_started(world, before)


def start_admin_node(make, world, *perms):
    _, web, _ = make(*perms)
    before = Audit.objects.count()
    web.post(
        reverse("admin:inventory_node_changelist"), {"action": "audit_now", "_selected_action": [world["worker"].pk]}
    )
    return _audit_started(world, before)


def start_api(make, world, *perms):
    _, _, api = make(*perms)
    before = Audit.objects.count()
    _json(api, "post", f"{API}/audits", {"cluster": world["cluster"].name})
    return _audit_started(world, before)


# --- read results and scripts ---------------------------------------------------------------------------------------


def _reads(client, urls) -> bool:
    codes = {url: client.get(url).status_code for url in urls}
    assert set(codes.values()) <= {200, 403}, codes  # never a 500, and no "allowed but empty" third answer
    assert len(set(codes.values())) == 1, codes  # every read of one door agrees
    return next(iter(codes.values())) == 200


def results_web(make, world, *perms):
    _, web, _ = make(*perms)
    cluster, worker, audit = world["cluster"], world["worker"], world["audit"]
    return _reads(
        web,
        [
            reverse("ui:node_remediation", args=[worker.pk]),
            reverse("ui:matrix", args=[cluster.name]),
            reverse("ui:diff", args=[cluster.name]),
            reverse("ui:check", args=[cluster.name, "time.ntp"]),
            reverse("ui:audit_progress", args=[audit.pk]),
            reverse("ui:audit", args=[audit.pk]),
            reverse("ui:path", args=[world["path"].pk]),
            reverse("ui:install_plan", args=[cluster.name]),
        ],
    )


def results_web_dashboard(make, world, *perms):
    _, web, _ = make(*perms)
    body = web.get(reverse("ui:dashboard", args=[world["cluster"].name])).content.decode()
    return "time.ntp" in body  # the top failing checks are results


def results_admin(make, world, *perms):
    _, web, _ = make(*perms)
    node_audit = world["node_audit"]
    return _reads(
        web,
        [
            reverse("admin:checks_nodeaudit_remediation", args=[node_audit.pk]),
            reverse("admin:checks_nodeaudit_changelist"),
            reverse("admin:checks_nodeaudit_change", args=[node_audit.pk]),
            reverse("admin:checks_checkresult_changelist"),
            reverse("admin:checks_networkpath_changelist"),
            reverse("admin:checks_audit_changelist"),
        ],
    )


def results_api(make, world, *perms):
    _, _, api = make(*perms)
    audit, worker = world["audit"], world["worker"]
    return _reads(
        api,
        [
            f"{API}/audits",
            f"{API}/audits/{audit.pk}",
            f"{API}/audits/{audit.pk}/matrix",
            f"{API}/nodes/{worker.pk}/checks",
            f"{API}/nodes/{worker.pk}/remediation",
        ],
    )


def results_rule_alone(make, world, *perms):
    """The rule and nothing else opens every results door alike: no door asks a model permission of its own
    (view_node, view_nodeaudit, view_checkresult, view_networkpath) on top of it."""
    _, web, api = make(bare=True)
    audit, worker, node_audit = world["audit"], world["worker"], world["node_audit"]
    web_open = _reads(
        web,
        [
            reverse("ui:node_detail", args=[worker.pk]),
            reverse("ui:node_remediation", args=[worker.pk]),
            reverse("admin:checks_nodeaudit_change", args=[node_audit.pk]),
            reverse("admin:checks_checkresult_changelist"),
            reverse("admin:checks_networkpath_changelist"),
            reverse("admin:checks_audit_change", args=[audit.pk]),
        ],
    )
    api_open = _reads(
        api,
        [
            f"{API}/audits/{audit.pk}",
            f"{API}/nodes/{worker.pk}/checks",
            f"{API}/nodes/{worker.pk}/remediation",
        ],
    )
    assert web_open == api_open, (web_open, api_open)  # the doors agree
    return web_open


def _shows_results(text: str) -> bool:
    return any(marker in text for marker in RESULT_MARKERS)


def results_node_page(make, world, *perms):
    _, web, _ = make(*perms)
    response = web.get(reverse("ui:node_detail", args=[world["worker"].pk]))
    assert response.status_code == 200  # the node's inventory is shown either way (view_node)
    return _shows_results(response.content.decode())


def results_home(make, world, *perms):
    _, web, _ = make(*perms)
    body = web.get(reverse("ui:home")).content.decode()
    assert "lab" in body
    return 'data-state="' in body or "status-dot" in body  # the cluster's status colour


def results_dashboard_counts(make, world, *perms):
    _, web, _ = make(*perms)
    body = web.get(reverse("ui:dashboard", args=[world["cluster"].name])).content.decode()
    return "Servers ready" in body or "Workers ready" in body


def results_node_list(make, world, *perms):
    _, web, _ = make(*perms)
    body = web.get(reverse("ui:node_list")).content.decode()
    assert "w1" in body and "srv" in body  # the inventory is listed either way
    return _shows_results(body) or 'id="nodes"' in body and "Status" in body.split('id="nodes"')[1].split("</thead>")[0]


def results_node_exports(make, world, *perms):
    _, web, _ = make(*perms)
    shown = []
    for kind in ("csv", "json"):
        response = web.get(reverse("ui:node_list"), {"export": kind})
        assert response.status_code == 200
        body = response.content.decode()
        assert "w1" in body
        shown.append(_shows_results(body) or "status" in body.splitlines()[0] or '"status"' in body)
    assert len(set(shown)) == 1, shown
    return shown[0]


def _listed(body: str, node) -> bool:
    return f'href="{reverse("ui:node_detail", args=[node.pk])}"' in body


def results_node_list_filter(make, world, *perms):
    # A list filtered by a failing check says which nodes fail as surely as the Why column.
    _, web, _ = make(*perms)
    body = web.get(reverse("ui:node_list"), {"failing_check": "time.ntp"}).content.decode()
    return _listed(body, world["worker"]) and not _listed(body, world["server"])


def results_node_list_sort(make, world, *perms):
    # Sorting by status, worst first, orders the nodes by a result even with the column hidden.
    _, web, _ = make(*perms)
    body = web.get(reverse("ui:node_list"), {"sort": "last_audit_status"}).content.decode()
    worker, server = (
        body.index(f'href="{reverse("ui:node_detail", args=[n.pk])}"') for n in (world["worker"], world["server"])
    )
    return worker < server  # by name srv comes first; worst first w1 (fail) does


def results_api_nodes(make, world, *perms):
    _, _, api = make(*perms)
    rows = api.get(f"{API}/nodes").json()["items"]
    one = api.get(f"{API}/nodes/{world['worker'].pk}").json()
    shown = [
        any(row[key] not in (None, []) for key in ("last_audit_status", "last_audited_at", "accelerators"))
        for row in [*rows, one]
        if row["name"] == "w1"
    ]
    assert len(shown) == 2 and len(set(shown)) == 1, shown
    return shown[0]


def results_api_node_filter(make, world, *perms):
    _, _, api = make(*perms)
    response = api.get(f"{API}/nodes", {"failing_check": "time.ntp"})
    assert response.status_code in (200, 403), response.content
    return response.status_code == 200 and [row["name"] for row in response.json()["items"]] == ["w1"]


def results_admin_nodes(make, world, *perms):
    _, web, _ = make(*perms)
    worker, cluster = world["worker"], world["cluster"]
    pages = [
        web.get(reverse("admin:inventory_node_changelist")),
        web.get(reverse("admin:inventory_node_change", args=[worker.pk])),
        web.get(reverse("admin:inventory_cluster_change", args=[cluster.pk])),
    ]
    assert [p.status_code for p in pages] == [200, 200, 200]
    return any(
        _shows_results(body) or "last_audit_status" in body or "field-last_facts" in body or "field-facts" in body
        for body in (p.content.decode() for p in pages)
    )


def results_admin_node_filter(make, world, *perms):
    # The admin filters its list by any local field named in the query string, listed as a filter or not.
    _, web, _ = make(*perms)
    response = web.get(reverse("admin:inventory_node_changelist"), {"last_audit_status__exact": "fail"})
    assert response.status_code in (200, 400)  # 400: the admin's answer to a lookup it does not allow
    body = response.content.decode()
    change = reverse("admin:inventory_node_change", args=[world["server"].pk])
    return response.status_code == 200 and "w1" in body and f'href="{change}' not in body


def results_admin_devices(make, world, *perms):
    _, web, _ = make(*perms)
    return _reads(
        web, [reverse("admin:inventory_accelerator_changelist"), reverse("admin:inventory_driverinstall_changelist")]
    )


# --- host keys --------------------------------------------------------------------------------------------------------


def _accepted(world) -> bool:
    return HostKey.objects.get(pk=world["pending_key"].pk).state == "trusted"


def accept_admin_action(make, world, *perms):
    _, web, _ = make(*perms)
    web.post(
        reverse("admin:inventory_hostkey_changelist"),
        {"action": "accept", "_selected_action": [world["pending_key"].pk]},
    )
    return _accepted(world)


def accept_admin_edit(make, world, *perms):
    # Editing `state` by hand is no door at all: only the accept action (and the API) trusts a key.
    _, web, _ = make(*perms)
    old = HostKey.objects.get(node=world["server"], state="trusted")
    for key, state in ((old, "retired"), (world["pending_key"], "trusted")):  # one trusted key per type
        web.post(
            reverse("admin:inventory_hostkey_change", args=[key.pk]),
            {
                "node": key.node_id,
                "key_type": key.key_type,
                "fingerprint": key.fingerprint,
                "public_key": key.public_key,
                "state": state,
            },
        )
    return _accepted(world)


def accept_admin_inline(make, world, *perms):
    _, web, _ = make(*perms)
    server = world["server"]
    keys = list(HostKey.objects.filter(node=server).order_by("pk"))
    data = _node_form(server)
    data.update({"host_keys-TOTAL_FORMS": len(keys), "host_keys-INITIAL_FORMS": len(keys)})
    for i, key in enumerate(keys):
        data.update({f"host_keys-{i}-id": key.pk, f"host_keys-{i}-node": server.pk, f"host_keys-{i}-state": "trusted"})
    data["host_keys-0-state"] = "retired"
    web.post(reverse("admin:inventory_node_change", args=[server.pk]), data)
    return _accepted(world)


def accept_admin_add(make, world, *perms):
    # A key added by hand as trusted would be accepted without the action.
    _, web, _ = make(*perms, "inventory.add_hostkey")
    web.post(
        reverse("admin:inventory_hostkey_add"),
        {
            "node": world["server"].pk,
            "key_type": "ecdsa-sha2-nistp256",
            "fingerprint": "SHA256:attacker",
            "public_key": "CCCC",
            "state": "trusted",
        },
    )
    return HostKey.objects.filter(fingerprint="SHA256:attacker").exists()


def accept_admin_forget(make, world, *perms):
    # Forgetting a node's trusted key makes the next audit trust whatever it is offered: accepting by other means.
    _, web, _ = make(*perms)
    trusted = HostKey.objects.get(node=world["server"], state="trusted")
    web.post(reverse("admin:inventory_hostkey_delete", args=[trusted.pk]), {"post": "yes"})
    return not HostKey.objects.filter(pk=trusted.pk).exists()


def accept_api(make, world, *perms):
    _, _, api = make(*perms)
    _json(api, "post", f"{API}/nodes/{world['server'].pk}/host-key/accept", {"fingerprint": "SHA256:new"})
    return _accepted(world)


# --- credentials ----------------------------------------------------------------------------------------------------


def use_admin(make, world, *perms):
    _, web, _ = make(*perms)
    worker = world["worker"]
    web.post(
        reverse("admin:inventory_node_change", args=[worker.pk]), _node_form(worker, credential=world["credential"].pk)
    )
    worker.refresh_from_db()
    return worker.credential_id == world["credential"].pk


def use_import(make, world, *perms):
    # an existing credential, given again unchanged by an import, is "choosing" it
    credential = Credential(name="lab: password for w1", kind="password")
    credential.secret = "same"
    credential.save()
    _, _, api = make(*perms)
    _upload(api, "[workers]\nw1 ansible_host=192.0.2.50 ansible_password=same\n", admin=False)
    return Node.objects.get(pk=world["worker"].pk).credential_id == credential.pk


def add_api_post(make, world, *perms):
    _, _, api = make(*perms)
    _json(
        api,
        "post",
        f"{API}/nodes",
        {
            "cluster": world["cluster"].pk,
            "name": "new",
            "address": "192.0.2.77",
            "credential": {"kind": "password", "secret": "s"},
        },
    )
    return Node.objects.filter(name="new", credential__isnull=False).exists()


def add_api_patch(make, world, *perms):
    _, _, api = make(*perms)
    _json(api, "patch", f"{API}/nodes/{world['worker'].pk}", {"credential": {"kind": "password", "secret": "s"}})
    return Node.objects.get(pk=world["worker"].pk).credential_id is not None


def add_import_api(make, world, *perms):
    _, _, api = make(*perms)
    _upload(api, "[workers]\nw1 ansible_host=192.0.2.50 ansible_password=new\n", admin=False)
    return Node.objects.get(pk=world["worker"].pk).credential_id is not None


def add_import_admin(make, world, *perms):
    _, web, _ = make(*perms)
    _upload(web, "[workers]\nw1 ansible_host=192.0.2.50 ansible_password=new\n", admin=True)
    return Node.objects.get(pk=world["worker"].pk).credential_id is not None


def _kept(world) -> bool:
    server = Node.objects.get(pk=world["server"].pk)
    assert server.address == "198.51.100.200"  # the move itself is always saved (never a factory address: 192.0.2.x)
    return server.credential_id == world["credential"].pk


def keep_admin(make, world, *perms):
    _, web, _ = make(*perms)
    server = world["server"]
    web.post(reverse("admin:inventory_node_change", args=[server.pk]), _node_form(server, address="198.51.100.200"))
    return _kept(world)


def keep_admin_inline(make, world, *perms):
    _, web, _ = make(*perms)
    cluster, server, worker = world["cluster"], world["server"], world["worker"]
    data = {
        "name": cluster.name,
        "description": "",
        "profile": cluster.profile_id,
        "gateway": cluster.gateway,
        "builtin_observability": "on",
        "proxy_mode": cluster.proxy_mode,
        "connectivity_plan": "auto",
        "sampled_peers": 3,
        "group_full_mesh_limit": 64,
        "nodes-TOTAL_FORMS": 2,
        "nodes-INITIAL_FORMS": 2,
        "nodes-MAX_NUM_FORMS": 1000,
    }
    for i, node in enumerate([server, worker]):
        data.update(
            {
                f"nodes-{i}-id": node.pk,
                f"nodes-{i}-cluster": cluster.pk,
                f"nodes-{i}-name": node.name,
                f"nodes-{i}-role": node.role,
                f"nodes-{i}-address": node.address,
                f"nodes-{i}-ssh_port": 22,
                f"nodes-{i}-ssh_user": "root",
                f"nodes-{i}-enabled": "on",
            }
        )
    data["nodes-0-address"] = "198.51.100.200"
    web.post(reverse("admin:inventory_cluster_change", args=[cluster.pk]), data)
    return _kept(world)


def keep_api(make, world, *perms):
    _, _, api = make(*perms)
    _json(api, "patch", f"{API}/nodes/{world['server'].pk}", {"address": "198.51.100.200"})
    return _kept(world)


def keep_import(make, world, *perms):
    _, _, api = make(*perms)
    _upload(api, "[server]\nsrv ansible_host=198.51.100.200\n", admin=False)
    return _kept(world)


# --- transport=local and tokens for others ----------------------------------------------------------------------------


def local_admin(make, world, *perms):
    user, web, _ = make(*perms)
    worker = world["worker"]
    web.post(reverse("admin:inventory_node_change", args=[worker.pk]), _node_form(worker, transport="local"))
    web.post(reverse("admin:inventory_node_add"), _node_form(worker, name="other", transport="local"))
    return Node.objects.filter(transport="local").exists()


def local_api(make, world, *perms):
    _, _, api = make(*perms)
    _json(api, "patch", f"{API}/nodes/{world['worker'].pk}", {"transport": "local"})
    _json(
        api,
        "post",
        f"{API}/nodes",
        {"cluster": world["cluster"].pk, "name": "other", "address": "192.0.2.9", "transport": "local"},
    )
    return Node.objects.filter(transport="local").exists()


def token_admin(make, world, *perms):
    from django.contrib.auth import get_user_model

    victim = get_user_model().objects.create_user("victim", password="x")
    _, web, _ = make(*perms)
    web.post(reverse("admin:portal_apitoken_add"), {"user": victim.pk, "name": "t", "expires": ""})
    return ApiToken.objects.filter(user=victim).exists()


def token_account(make, world, *perms):
    from django.contrib.auth import get_user_model

    victim = get_user_model().objects.create_user("victim", password="x")
    _, web, _ = make(*perms)
    web.post(reverse("account_tokens"), {"action": "create", "name": "t", "user": victim.pk})
    return ApiToken.objects.filter(user=victim).exists()


# --- waive a check --------------------------------------------------------------------------------------------------


def _waived() -> bool:
    from checks.models import Waiver

    return Waiver.objects.filter(check_id="time.ntp").exists()


def _tomorrow() -> str:
    from datetime import timedelta

    return (timezone.now() + timedelta(days=2)).date().isoformat()


def waive_web(make, world, *perms):
    _, web, _ = make(*perms)
    web.post(
        reverse("ui:node_waive", args=[world["worker"].pk]),
        {"check_id": "time.ntp", "reason": "lab node", "expires": _tomorrow(), "scope": "node"},
    )
    return _waived()


def waive_admin(make, world, *perms):
    _, web, _ = make(*perms)
    web.post(
        reverse("admin:checks_waiver_add"),
        {
            "cluster": world["cluster"].pk,
            "node": world["worker"].pk,
            "check_id": "time.ntp",
            "reason": "lab node",
            "expires_0": _tomorrow(),
            "expires_1": "00:00:00",
        },
    )
    return _waived()


def waive_api(make, world, *perms):
    _, _, api = make(*perms)
    _json(api, "post", f"{API}/waivers", {"cluster": "lab", "node": "w1", "check_id": "time.ntp", "reason": "lab"})
    return _waived()


# --- apply_fix: preview and approve (web, API; approve also in the admin) ------------------------------------------


def _fix_world(world):
    """A node (transport local: the preview's --dry-run runs here and prints only) that the latest audit says
    lacks chrony; returns the audit and the plan group's key."""
    from checks.models import CheckResult
    from checks.services.fix import cluster_fix_plan

    node = NodeFactory(cluster=world["cluster"], name="fx", transport="local")
    now = timezone.now()
    audit = Audit.objects.create(
        cluster=world["cluster"],
        profile=world["cluster"].profile,
        profile_key="gpustack-2.0",
        state=RunState.DONE,
        status="fail",
        started=now,
        finished=now,
        partial=True,
    )
    node_audit = NodeAudit.objects.create(audit=audit, node=node, state=RunState.DONE, status="fail", finished=now)
    CheckResult.objects.create(
        node_audit=node_audit,
        check_id="time.ntp",
        status="fail",
        summary="no NTP",
        commands=["DEBIAN_FRONTEND=noninteractive apt-get install -y chrony", "systemctl enable --now chrony"],
    )
    plan = cluster_fix_plan(cluster=world["cluster"], audit_id=audit.pk).plan
    return audit, next(g.key for g in plan.groups if [n.name for n in g.nodes] == ["fx"])


def _previewed(world):
    from checks.services.apply import fix_preview

    audit, key = _fix_world(world)
    return fix_preview(cluster=world["cluster"], user=None, audit_id=audit.pk, groups=[key])


def _approved(run) -> bool:
    from checks.models import FixRun

    return FixRun.objects.get(pk=run.pk).state == "running"


def fix_preview_web(make, world, *perms):
    from checks.models import FixRun

    audit, key = _fix_world(world)
    _, web, _ = make(*perms)
    web.post(reverse("ui:fix_run_create", args=["lab"]), {"audit": audit.pk, "group": key})
    return FixRun.objects.exists()


def fix_preview_api(make, world, *perms):
    from checks.models import FixRun

    audit, key = _fix_world(world)
    _, _, api = make(*perms)
    _json(api, "post", f"{API}/clusters/lab/fix-runs", {"audit": audit.pk, "groups": [key]})
    return FixRun.objects.exists()


def fix_approve_web(make, world, *perms):
    run = _previewed(world)
    _, web, _ = make(*perms)
    web.post(reverse("ui:fix_run_approve", args=[run.pk]))
    return _approved(run)


def fix_approve_api(make, world, *perms):
    run = _previewed(world)
    _, _, api = make(*perms)
    api.post(f"{API}/fix-runs/{run.pk}/approve")
    return _approved(run)


def fix_approve_admin(make, world, *perms):
    run = _previewed(world)
    _, web, _ = make(*perms)
    web.post(reverse("admin:checks_fixrun_changelist"), {"action": "approve", "_selected_action": [run.pk]})
    return _approved(run)


FIX_DOORS = [fix_preview_web, fix_preview_api, fix_approve_web, fix_approve_api, fix_approve_admin]


@pytest.mark.parametrize("door", FIX_DOORS, ids=[d.__name__ for d in FIX_DOORS])
def test_start_audit_alone_can_neither_preview_nor_apply(door, make, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        assert door(make, world, "checks.start_audit", "checks.view_audit") is False


# Every door of every action. A door where the action cannot happen at all (the API has no transport field; the
# account page makes tokens only for oneself) is walked too: it must refuse even the permitted user, which the
# `only_superuser_doors` below checks by granting superuser.
DOORS = {
    permissions.START_AUDIT: [
        start_web,
        start_web_node,
        start_web_selected,
        start_admin_cluster,
        start_admin_node,
        start_api,
    ],
    permissions.VIEW_RESULTS: [
        results_web,
        results_web_dashboard,
        results_admin,
        results_api,
        results_rule_alone,
        results_node_page,
        results_home,
        results_dashboard_counts,
        results_node_list,
        results_node_exports,
        results_node_list_filter,
        results_node_list_sort,
        results_api_nodes,
        results_api_node_filter,
        results_admin_nodes,
        results_admin_node_filter,
        results_admin_devices,
    ],
    permissions.USE_CREDENTIAL: [use_admin, use_import],
    permissions.ADD_CREDENTIAL: [add_api_post, add_api_patch, add_import_api, add_import_admin],
    permissions.KEEP_CREDENTIAL: [keep_admin, keep_admin_inline, keep_api, keep_import],
    permissions.LOCAL_TRANSPORT: [local_admin, local_api],
    permissions.TOKEN_FOR_OTHERS: [token_admin, token_account],
    permissions.WAIVE_CHECK: [waive_web, waive_admin, waive_api],
    permissions.ACCEPT_HOST_KEY: [
        accept_admin_action,
        accept_admin_edit,
        accept_admin_inline,
        accept_admin_add,
        accept_admin_forget,
        accept_api,
    ],
    permissions.APPLY_FIX: FIX_DOORS,
}
NO_DOOR_EVEN_FOR_SUPERUSERS = {local_api, token_account, accept_admin_edit, accept_admin_inline, accept_admin_add}

CASES = [(action, door) for action, doors in DOORS.items() for door in doors]


@pytest.mark.parametrize(("action", "door"), CASES, ids=[f"{a}-{d.__name__}" for a, d in CASES])
def test_door_refuses_without_the_rows_permission(action, door, make, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        assert door(make, world) is False


@pytest.mark.parametrize(("action", "door"), CASES, ids=[f"{a}-{d.__name__}" for a, d in CASES])
def test_door_allows_with_the_rows_permission(action, door, make, world, django_capture_on_commit_callbacks):
    rule = permissions.RULES[action]

    def with_it(*extra, **options):
        if rule.superuser:
            return make(*extra, superuser=True, **options)
        return make(*rule.permissions, *extra, **options)

    with django_capture_on_commit_callbacks(execute=False):
        assert door(with_it, world) is (door not in NO_DOOR_EVEN_FOR_SUPERUSERS)


def test_every_action_has_doors_and_the_readme_lists_every_rule():
    assert set(DOORS) == set(permissions.RULES)
    readme = (REPO / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| .*? \| (.+?) \|", readme, re.M))
    assert {k: v.replace("`", "") for k, v in rows.items()} == {
        action: rule.text() for action, rule in permissions.RULES.items()
    }


def test_grant_helper_grants_exactly(make_user):
    user = make_user("checks.start_audit")
    grant(user)
    assert user.has_perm("checks.start_audit") and not user.has_perm("checks.view_audit")
