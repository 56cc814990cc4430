"""Inventory endpoints: clusters, nodes, credentials (write-only), requirement profiles (read-only), import."""

from django.db import transaction
from django.db.models import Count, Prefetch
from django.shortcuts import get_object_or_404
from ninja import File, Form, Query, Router, Schema, Status
from ninja.files import UploadedFile
from ninja.pagination import paginate

from portal import permissions, states
from portal.api_plumbing import ApiError, BoundedPagination, Paged, require_perms

from .choices import HostKeyState
from .filtersets import ClusterFilterSet, NodeFilterSet
from .importers.ansible import InventoryError
from .models import Accelerator, Cluster, HostKey, Node, RequirementProfile
from .schemas import (
    ClusterIn,
    ClusterOut,
    ClusterPatch,
    ErrorOut,
    HostKeyAcceptIn,
    HostKeyOut,
    ImportOut,
    NodeIn,
    NodeOut,
    NodePatch,
    ProfileOut,
)
from .services import (
    credential_upsert_checked,
    host_key_accept,
    inventory_import,
    node_access_check,
    profile_get_default,
    upload_text,
)

router = Router(tags=["inventory"])
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 413: ErrorOut, 422: ErrorOut}
READ_ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}


def _profile(key: str | None) -> RequirementProfile:
    if not key:
        return profile_get_default()
    profile = RequirementProfile.objects.filter(key=key).first()
    if profile is None:
        known = ", ".join(RequirementProfile.objects.values_list("key", flat=True))
        raise ApiError(
            422,
            "validation_error",
            f"unknown requirement profile {key!r} (known: {known})",
            [{"field": "profile", "message": "unknown requirement profile"}],
        )
    return profile


def _filtered(filterset_class, data: dict, queryset):
    filterset = filterset_class(data={k: v for k, v in data.items() if v is not None}, queryset=queryset)
    if not filterset.is_valid():
        errors = [{"field": k, "message": " ".join(v)} for k, v in filterset.errors.items()]
        raise ApiError(422, "validation_error", "invalid filter", errors)
    return filterset.qs


def _cluster_out(cluster: Cluster) -> dict:
    return {
        "id": cluster.pk,
        "name": cluster.name,
        "description": cluster.description,
        "profile": cluster.profile.key,
        "tls_enabled": cluster.tls_enabled,
        "distributed_vllm": cluster.distributed_vllm,
        "server_runs_worker": cluster.server_runs_worker,
        "gateway": cluster.gateway,
        "external_database": cluster.external_database,
        "builtin_observability": cluster.builtin_observability,
        "proxy_mode": cluster.proxy_mode,
        "connectivity_plan": cluster.connectivity_plan,
        "sampled_peers": cluster.sampled_peers,
        "group_full_mesh_limit": cluster.group_full_mesh_limit,
        "created": cluster.created,
        "node_count": cluster.node_count if hasattr(cluster, "node_count") else cluster.nodes.count(),
    }


# --- clusters -----------------------------------------------------------------------------------------------------


class ClusterFilters(Schema):
    q: str | None = None
    name: str | None = None
    profile: str | None = None
    tls_enabled: bool | None = None
    distributed_vllm: bool | None = None


@router.get(
    "/clusters",
    summary="List clusters",
    description=(
        "Every cluster with its requirement profile and node count, paged (`limit`, `offset`).\n\n"
        "**Who:** inventory.view_cluster.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission."
    ),
    response={200: list[ClusterOut], **READ_ERRORS},
)
@paginate(BoundedPagination)
def cluster_list(request, filters: Query[ClusterFilters]):
    require_perms(request, "inventory.view_cluster")
    queryset = Cluster.objects.select_related("profile").annotate(node_count=Count("nodes")).order_by("name")
    return Paged(_filtered(ClusterFilterSet, filters.dict(), queryset), _cluster_out)


@router.post(
    "/clusters",
    summary="Create a cluster",
    description=(
        "A new cluster, empty, on a requirement profile (default: the newest GPUStack profile).\n\n"
        "**Who:** inventory.add_cluster.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 409 if the"
        " name is taken; 422 on an invalid name or an unknown profile."
    ),
    response={201: ClusterOut, **ERRORS},
)
def cluster_create(request, payload: ClusterIn):
    require_perms(request, "inventory.add_cluster")
    if Cluster.objects.filter(name=payload.name).exists():
        raise ApiError(409, "conflict", f"a cluster named {payload.name!r} exists")
    data = payload.dict()
    cluster = Cluster(**{**data, "profile": _profile(data.pop("profile"))})
    cluster.full_clean()
    cluster.save()
    return Status(201, _cluster_out(cluster))


@router.get(
    "/clusters/{cluster_id}",
    summary="Read a cluster",
    description=(
        "One cluster by id.\n\n"
        "**Who:** inventory.view_cluster.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown id."
    ),
    response={200: ClusterOut, **READ_ERRORS},
)
def cluster_detail(request, cluster_id: int):
    require_perms(request, "inventory.view_cluster")
    return _cluster_out(get_object_or_404(Cluster.objects.select_related("profile"), pk=cluster_id))


@router.patch(
    "/clusters/{cluster_id}",
    summary="Change a cluster",
    description=(
        "Change the fields sent (name, description, profile, GPUStack settings); the others stay.\n\n"
        "**Who:** inventory.change_cluster.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown id; 409 if the new name is taken; 422 on invalid values."
    ),
    response={200: ClusterOut, **ERRORS},
)
def cluster_update(request, cluster_id: int, payload: ClusterPatch):
    require_perms(request, "inventory.change_cluster")
    cluster = get_object_or_404(Cluster.objects.select_related("profile"), pk=cluster_id)
    for field, value in payload.dict(exclude_unset=True).items():
        if value is None:
            continue
        setattr(cluster, field, _profile(value) if field == "profile" else value)
    cluster.full_clean()
    cluster.save()
    return _cluster_out(cluster)


@router.delete(
    "/clusters/{cluster_id}",
    summary="Delete a cluster",
    description=(
        "Delete a cluster with its nodes and audits.\n\n"
        "**Who:** inventory.delete_cluster.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown id."
    ),
    response={204: None, **ERRORS},
)
def cluster_delete(request, cluster_id: int):
    require_perms(request, "inventory.delete_cluster")
    get_object_or_404(Cluster, pk=cluster_id).delete()
    return Status(204, None)


# --- nodes --------------------------------------------------------------------------------------------------------


class NodeFilters(Schema):
    q: str | None = None
    cluster: str | None = None
    role: str | None = None
    status: str | None = None
    readiness: str | None = None
    vendor: str | None = None
    os: str | None = None
    failing_check: str | None = None
    enabled: bool | None = None


def _nodes():
    present = Accelerator.objects.filter(gone_at__isnull=True).order_by("vendor", "index")
    return Node.objects.select_related("cluster").prefetch_related(
        Prefetch("accelerators", queryset=present, to_attr="present_accelerators")
    )


# Filters that read results: a node list filtered by them tells which nodes fail, so they need VIEW_RESULTS too.
RESULT_FILTERS = ("status", "readiness", "vendor", "os", "failing_check")


def _results_filters_allowed(request, filters: dict) -> None:
    used = [name for name in RESULT_FILTERS if filters.get(name) is not None]
    if used and not permissions.allowed(request.user, permissions.VIEW_RESULTS):
        reason = permissions.missing(request.user, permissions.VIEW_RESULTS)
        raise ApiError(403, "forbidden", f"filtering by {', '.join(used)} reads results: {reason}")


def _node_out(node: Node, *, results: bool) -> dict:
    """A node's inventory, and its results (status, last audit, devices found) only when `results` is True."""
    out = {
        "id": node.pk,
        "cluster": node.cluster.name,
        "cluster_id": node.cluster_id,
        "name": node.name,
        "address": node.address,
        "ssh_port": node.ssh_port,
        "ssh_user": node.ssh_user,
        "role": node.role,
        "network_group": node.network_group,
        "enabled": node.enabled,
        "transport": node.transport,
        "has_credential": node.credential_id is not None,
        "last_audit_status": None,
        "readiness": None,
        "last_audited_at": None,
        "accelerators": None,
    }
    if not results:
        return out
    accelerators = getattr(node, "present_accelerators", None)
    if accelerators is None:
        accelerators = list(node.accelerators.filter(gone_at__isnull=True).order_by("vendor", "index"))
    return {
        **out,
        "last_audit_status": node.last_audit_status,
        "readiness": states.node_state(node.last_audit_status, node.last_reached).value,
        "last_audited_at": node.last_audited_at,
        "accelerators": [
            {
                "vendor": a.vendor,
                "index": a.index,
                "model": a.model,
                "memory_mib": a.memory_mib,
                "uuid": a.uuid,
                "pci_address": a.pci_address,
                "driver_version": a.driver_version,
            }
            for a in accelerators
        ],
    }


def _set_credential(request, node: Node, payload) -> bool:
    """A credential given with a node is the node's own, named after it; the secret is replaced, never returned.
    Creating it needs add_credential, replacing a stored one change_credential (checked before anything is written)."""
    if payload is None:
        return False
    node.credential = credential_upsert_checked(
        user=request.user,
        name=f"{node.cluster.name}/{node.name} (api)",
        kind=payload.kind,
        secret=payload.secret,
        passphrase=payload.passphrase,
    )
    return True


@router.get(
    "/nodes",
    summary="List nodes",
    description=(
        "Nodes, filtered by cluster, role or status and paged. The result fields (status, facts) "
        "are filled only for callers with the results permission; filtering by a result without "
        "it is refused.\n\n"
        "**Who:** inventory.view_node; results need checks.view_audit too.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission or when "
        "filtering by results without checks.view_audit; 422 on an invalid filter."
    ),
    response={200: list[NodeOut], **READ_ERRORS},
)
@paginate(BoundedPagination)
def node_list(request, filters: Query[NodeFilters]):
    require_perms(request, "inventory.view_node")
    _results_filters_allowed(request, filters.dict())
    results = permissions.allowed(request.user, permissions.VIEW_RESULTS)
    nodes = _nodes() if results else Node.objects.select_related("cluster")
    queryset = _filtered(NodeFilterSet, filters.dict(), nodes.order_by("cluster__name", "name"))
    return Paged(queryset, lambda node: _node_out(node, results=results))


@router.post(
    "/nodes",
    summary="Add a node",
    description=(
        "A node of a cluster: name, address, role, SSH port and user, credential.\n\n"
        "**Who:** inventory.add_node; giving it a credential needs inventory.view_credential (an "
        "existing one) or inventory.add_credential (a new one).\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown cluster; 409 if the name is taken in the cluster; 422 on an invalid address, "
        "port or user."
    ),
    response={201: NodeOut, **ERRORS},
)
def node_create(request, payload: NodeIn):
    require_perms(request, "inventory.add_node")
    cluster = Cluster.objects.filter(pk=payload.cluster).first()
    if cluster is None:
        raise ApiError(
            422,
            "validation_error",
            f"no cluster with id {payload.cluster}",
            [{"field": "cluster", "message": "unknown cluster"}],
        )
    if Node.objects.filter(cluster=cluster, name=payload.name).exists():
        raise ApiError(409, "conflict", f"cluster {cluster.name} already has a node named {payload.name!r}")
    with transaction.atomic():
        node = Node(cluster=cluster, **payload.dict(exclude={"cluster", "credential"}))
        created = _set_credential(request, node, payload.credential)
        node_access_check(
            user=request.user,
            values={"address": node.address, "ssh_port": node.ssh_port, "credential_id": node.credential_id},
            before=None,
            credential_is_new=created,
        )
        node.full_clean()
        node.save()
    return Status(201, _node_out(node, results=permissions.allowed(request.user, permissions.VIEW_RESULTS)))


@router.get(
    "/nodes/{node_id}",
    summary="Read a node",
    description=(
        "One node by id; its result fields only with the results permission.\n\n"
        "**Who:** inventory.view_node; results need checks.view_audit too.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown id."
    ),
    response={200: NodeOut, **READ_ERRORS},
)
def node_detail(request, node_id: int):
    require_perms(request, "inventory.view_node")
    return _node_out(
        get_object_or_404(_nodes(), pk=node_id), results=permissions.allowed(request.user, permissions.VIEW_RESULTS)
    )


@router.patch(
    "/nodes/{node_id}",
    summary="Change a node",
    description=(
        "Change the fields sent. Changing the address, SSH port or transport removes the node's "
        "credential unless the caller may keep it.\n\n"
        "**Who:** inventory.change_node; keeping the credential needs "
        "inventory.change_credential; the local transport is for superusers.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown id; 409 on a taken name; 422 on invalid values."
    ),
    response={200: NodeOut, **ERRORS},
)
def node_update(request, node_id: int, payload: NodePatch):
    require_perms(request, "inventory.change_node")
    node = get_object_or_404(Node.objects.select_related("cluster", "credential"), pk=node_id)
    before = Node.objects.get(pk=node.pk)
    with transaction.atomic():
        changes = {k: v for k, v in payload.dict(exclude_unset=True, exclude={"credential"}).items() if v is not None}
        for field, value in changes.items():
            setattr(node, field, value)
        created = _set_credential(request, node, payload.credential)
        note = node_access_check(
            user=request.user,
            values={**changes, "credential_id": node.credential_id},
            before=before,
            credential_is_new=created,
        )
        if note:
            node.credential = None
        node.full_clean()
        node.save()
    return _node_out(node, results=permissions.allowed(request.user, permissions.VIEW_RESULTS))


@router.delete(
    "/nodes/{node_id}",
    summary="Delete a node",
    description=(
        "Delete a node with its results.\n\n"
        "**Who:** inventory.delete_node.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown id."
    ),
    response={204: None, **ERRORS},
)
def node_delete(request, node_id: int):
    require_perms(request, "inventory.delete_node")
    get_object_or_404(Node, pk=node_id).delete()
    return Status(204, None)


# --- host keys -----------------------------------------------------------------------------------------------------


def _host_key_out(key: HostKey) -> dict:
    return {
        "id": key.pk,
        "key_type": key.key_type,
        "fingerprint": key.fingerprint,
        "state": key.state,
        "first_seen": key.first_seen,
        "accepted_at": key.accepted_at,
        "accepted_by": key.accepted_by.get_username() if key.accepted_by else None,
    }


@router.get(
    "/nodes/{node_id}/host-keys",
    summary="List a node's SSH host keys",
    description=(
        "The SSH host keys audits saw for this node: trusted, pending (offered after a change) or"
        " forgotten.\n\n"
        "**Who:** inventory.view_hostkey.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown node."
    ),
    response={200: list[HostKeyOut], **READ_ERRORS},
)
def node_host_keys(request, node_id: int):
    """The SSH host keys audits saw for this node: trusted, pending (offered after a change) and replaced."""
    require_perms(request, "inventory.view_hostkey")
    node = get_object_or_404(Node, pk=node_id)
    return [_host_key_out(k) for k in HostKey.objects.filter(node=node).select_related("accepted_by")]


@router.post(
    "/nodes/{node_id}/host-key/accept",
    summary="Accept a node's changed SSH host key",
    description=(
        "Trust the pending key with this fingerprint (the node was reinstalled); the key it "
        "replaces is no longer trusted.\n\n"
        "**Who:** inventory.accept_hostkey.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown node or no pending key with that fingerprint; 422 on a malformed fingerprint."
    ),
    response={200: HostKeyOut, **ERRORS},
)
def node_host_key_accept(request, node_id: int, payload: HostKeyAcceptIn):
    """Trust the pending key with this fingerprint (the node was reinstalled); the key it replaces is retired. The
    same action as "Accept selected keys" in the admin, under the same rule (accept_host_key)."""
    permissions.require(request.user, permissions.ACCEPT_HOST_KEY)
    node = get_object_or_404(Node, pk=node_id)
    with transaction.atomic():
        key = (
            HostKey.objects.select_for_update()
            .filter(node=node, fingerprint=payload.fingerprint, state=HostKeyState.PENDING)
            .first()
        )
        if key is None:
            raise ApiError(
                404,
                "not_found",
                f"node {node.name} has no pending host key {payload.fingerprint!r}",
                [{"field": "fingerprint", "message": "no pending key with this fingerprint"}],
            )
        host_key_accept(host_key=key, user=request.user)
    return _host_key_out(key)


# --- profiles and import ------------------------------------------------------------------------------------------


def _profiles():
    return RequirementProfile.objects.prefetch_related("os_rules", "accelerator_rules", "port_rules").order_by("key")


@router.get(
    "/profiles",
    summary="List requirement profiles",
    description=(
        "The requirement profiles (what a GPUStack version needs of a node), paged.\n\n"
        "**Who:** inventory.view_requirementprofile.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission."
    ),
    response={200: list[ProfileOut], **READ_ERRORS},
)
@paginate(BoundedPagination)
def profile_list(request):
    require_perms(request, "inventory.view_requirementprofile")
    return _profiles()


@router.get(
    "/profiles/{key}",
    summary="Read a requirement profile",
    description=(
        "One profile by key, with its OS, accelerator and port rules.\n\n"
        "**Who:** inventory.view_requirementprofile.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown key."
    ),
    response={200: ProfileOut, **READ_ERRORS},
)
def profile_detail(request, key: str):
    require_perms(request, "inventory.view_requirementprofile")
    return get_object_or_404(_profiles(), key=key)


@router.post(
    "/inventory/import",
    summary="Import an Ansible inventory",
    description=(
        "Upload an Ansible inventory (INI or YAML) as multipart `file`: all hosts are added or "
        "updated, or none. Key files are never read from uploads.\n\n"
        "**Who:** inventory.add_node, inventory.change_node and inventory.add_cluster.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permissions; 413 for a"
        " file over the upload limit; 422 naming each bad line when the inventory does not parse "
        "or a host is invalid."
    ),
    response={200: ImportOut, **ERRORS},
)
def inventory_upload(
    request, file: File[UploadedFile], cluster: Form[str | None] = None, profile: Form[str | None] = None
):
    """Import an Ansible inventory (INI or YAML): all hosts or none. Key files are never read from uploads."""
    require_perms(request, "inventory.add_node", "inventory.change_node", "inventory.add_cluster")
    try:
        text = upload_text(file)
    except InventoryError as exc:
        status = 413 if "larger than" in exc.message else 422
        raise ApiError(
            status,
            "too_large" if status == 413 else "invalid_inventory",
            f"{exc} (nothing was imported)",
            [{"field": "file", "message": exc.message}],
        ) from None
    try:
        report = inventory_import(
            text=text,
            source=file.name or "inventory",
            cluster_name=cluster or None,
            profile_key=profile or None,
            read_key_files=False,
            user=request.user,
        )
    except InventoryError as exc:
        raise ApiError(
            422,
            "invalid_inventory",
            f"{exc} (nothing was imported)",
            [{"field": "file", "message": exc.message, "line": exc.line}],
        ) from None
    return {**report.__dict__, "summary": report.summary()}
