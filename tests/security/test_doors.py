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

from checks.models import Audit, NetworkPath, NodeAudit
from inventory.models import ApiToken, Credential, Node
from inventory.services import api_token_create
from portal import permissions
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
    "inventory.add_apitoken",
    "inventory.view_apitoken",
    "checks.view_waiver",
)


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
        state="done",
        status="fail",
        started=now,
        finished=now,
    )
    node_audit = NodeAudit.objects.create(audit=audit, node=worker, state="done", status="fail", finished=now)
    NodeAudit.objects.create(audit=audit, node=server, state="done", status="pass", finished=now)
    FailingNtpResultFactory(node_audit=node_audit)
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
    }


@pytest.fixture
def make(make_user):
    """A user with every permission the doors need besides the row's own, plus `extra`; web and API clients."""

    def build(*extra: str, superuser: bool = False):
        user = make_user(*EVERYTHING_ELSE, *extra, superuser=superuser)
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
            reverse("ui:node_detail", args=[worker.pk]),
            reverse("ui:node_remediation", args=[worker.pk]),
            reverse("ui:matrix", args=[cluster.name]),
            reverse("ui:diff", args=[cluster.name]),
            reverse("ui:audit_progress", args=[audit.pk]),
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
    assert server.address == "192.0.2.200"  # the move itself is always saved
    return server.credential_id == world["credential"].pk


def keep_admin(make, world, *perms):
    _, web, _ = make(*perms)
    server = world["server"]
    web.post(reverse("admin:inventory_node_change", args=[server.pk]), _node_form(server, address="192.0.2.200"))
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
    data["nodes-0-address"] = "192.0.2.200"
    web.post(reverse("admin:inventory_cluster_change", args=[cluster.pk]), data)
    return _kept(world)


def keep_api(make, world, *perms):
    _, _, api = make(*perms)
    _json(api, "patch", f"{API}/nodes/{world['server'].pk}", {"address": "192.0.2.200"})
    return _kept(world)


def keep_import(make, world, *perms):
    _, _, api = make(*perms)
    _upload(api, "[server]\nsrv ansible_host=192.0.2.200\n", admin=False)
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
    web.post(reverse("admin:inventory_apitoken_add"), {"user": victim.pk, "name": "t", "expires": ""})
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


# Every door of every action. A door where the action cannot happen at all (the API has no transport field; the
# account page makes tokens only for oneself) is walked too: it must refuse even the permitted user, which the
# `only_superuser_doors` below checks by granting superuser.
DOORS = {
    permissions.START_AUDIT: [start_web, start_admin_cluster, start_admin_node, start_api],
    permissions.VIEW_RESULTS: [results_web, results_web_dashboard, results_admin, results_api],
    permissions.USE_CREDENTIAL: [use_admin, use_import],
    permissions.ADD_CREDENTIAL: [add_api_post, add_api_patch, add_import_api, add_import_admin],
    permissions.KEEP_CREDENTIAL: [keep_admin, keep_admin_inline, keep_api, keep_import],
    permissions.LOCAL_TRANSPORT: [local_admin, local_api],
    permissions.TOKEN_FOR_OTHERS: [token_admin, token_account],
    permissions.WAIVE_CHECK: [waive_web, waive_admin, waive_api],
}
NO_DOOR_EVEN_FOR_SUPERUSERS = {local_api, token_account}

CASES = [(action, door) for action, doors in DOORS.items() for door in doors]


@pytest.mark.parametrize(("action", "door"), CASES, ids=[f"{a}-{d.__name__}" for a, d in CASES])
def test_door_refuses_without_the_rows_permission(action, door, make, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        assert door(make, world) is False


@pytest.mark.parametrize(("action", "door"), CASES, ids=[f"{a}-{d.__name__}" for a, d in CASES])
def test_door_allows_with_the_rows_permission(action, door, make, world, django_capture_on_commit_callbacks):
    rule = permissions.RULES[action]

    def with_it(*extra):
        if rule.superuser:
            return make(*extra, superuser=True)
        return make(*rule.permissions, *extra)

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
