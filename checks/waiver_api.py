"""Waiver endpoints (/api/v1/waivers): list, read, create, change, delete. Creating or changing one is waiving
(portal.permissions.WAIVE_CHECK), the same rule as the node page's "Waive" and the admin."""

from datetime import datetime

from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status
from ninja.pagination import paginate

from inventory.models import Cluster, Node
from inventory.schemas import ErrorOut
from portal import permissions
from portal.api_plumbing import ApiError, BoundedPagination, require_perms

from .models import Waiver
from .services.waivers import waiver_create, waiver_update

router = Router(tags=["waivers"])
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}


class WaiverIn(Schema):
    cluster: str = Field(..., min_length=1, max_length=64, description="Cluster name")
    node: str | None = Field(None, max_length=128, description="Node name; empty: every node of the cluster")
    check_id: str = Field(..., min_length=1, max_length=64)
    reason: str = Field(..., min_length=1, max_length=500)
    expires: datetime | None = Field(None, description="Default and upper bound: PREFLIGHT_WAIVER_MAX_DAYS ahead")


class WaiverPatch(Schema):
    reason: str | None = Field(None, min_length=1, max_length=500)
    expires: datetime | None = None


class WaiverOut(Schema):
    id: int
    cluster: str
    node: str | None
    check_id: str
    reason: str
    by: str
    created: datetime
    expires: datetime
    active: bool


class WaiverFilters(Schema):
    cluster: str | None = Field(None, max_length=64)
    node: str | None = Field(None, max_length=128)
    active: bool | None = Field(None, description="true: not expired; false: expired")


def _out(waiver: Waiver) -> dict:
    return {
        "id": waiver.pk,
        "cluster": waiver.cluster.name,
        "node": waiver.node.name if waiver.node_id else None,
        "check_id": waiver.check_id,
        "reason": waiver.reason,
        "by": waiver.author,
        "created": waiver.created,
        "expires": waiver.expires,
        "active": waiver.expires > timezone.now(),
    }


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and timezone.is_naive(value):
        raise ApiError(422, "validation_error", "expires needs a time zone", [{"field": "expires", "message": "naive"}])
    return value


@router.get(
    "/waivers",
    summary="List waivers",
    description=(
        "Waivers (accepted non-passing checks), filtered by cluster, node, check and whether they"
        " are active, paged.\n\n"
        "**Who:** checks.view_waiver.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 422 on an "
        "invalid filter."
    ),
    response={200: list[WaiverOut], **ERRORS},
)
@paginate(BoundedPagination)
def waiver_list(request, filters: Query[WaiverFilters]):
    require_perms(request, "checks.view_waiver")
    waivers = Waiver.objects.select_related("cluster", "node").order_by("expires", "pk")
    if filters.cluster:
        waivers = waivers.filter(cluster__name=filters.cluster)
    if filters.node:
        waivers = waivers.filter(node__name=filters.node)
    if filters.active is not None:
        now = timezone.now()
        waivers = waivers.filter(expires__gt=now) if filters.active else waivers.filter(expires__lte=now)
    return [_out(w) for w in waivers]


@router.get(
    "/waivers/{waiver_id}",
    summary="Read a waiver",
    description=(
        "One waiver by id.\n\n"
        "**Who:** checks.view_waiver.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown id."
    ),
    response={200: WaiverOut, **ERRORS},
)
def waiver_get(request, waiver_id: int):
    require_perms(request, "checks.view_waiver")
    return _out(get_object_or_404(Waiver.objects.select_related("cluster", "node"), pk=waiver_id))


@router.post(
    "/waivers",
    summary="Waive a check",
    description=(
        "Waive a check on a node (or every node of a cluster) until `expires`; it applies from "
        "the next audit on.\n\n"
        "**Who:** checks.add_waiver (the same rule as the node page's Waive).\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown cluster or node; 422 on an unknown check, a missing reason or an expiry beyond "
        "the allowed days."
    ),
    response={201: WaiverOut, **ERRORS},
)
def waiver_post(request, payload: WaiverIn):
    """Waive a check on a node (or every node of a cluster) until `expires`; it applies from the next audit on."""
    permissions.require(request.user, permissions.WAIVE_CHECK)
    cluster = Cluster.objects.filter(name=payload.cluster).first()
    if cluster is None:
        raise ApiError(404, "not_found", f"no cluster named {payload.cluster!r}")
    node = None
    if payload.node:
        node = Node.objects.filter(cluster=cluster, name=payload.node).first()
        if node is None:
            raise ApiError(404, "not_found", f"no node named {payload.node!r} in cluster {cluster.name}")
    waiver = waiver_create(
        user=request.user,
        cluster=cluster,
        node=node,
        check_id=payload.check_id,
        reason=payload.reason,
        expires=_aware(payload.expires),
    )
    return Status(201, _out(waiver))


@router.patch(
    "/waivers/{waiver_id}",
    summary="Change a waiver",
    description=(
        "Change a waiver's reason or expiry.\n\n"
        "**Who:** checks.add_waiver and checks.change_waiver.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permissions; 404 for "
        "an unknown id; 422 on invalid values."
    ),
    response={200: WaiverOut, **ERRORS},
)
def waiver_patch(request, waiver_id: int, payload: WaiverPatch):
    permissions.require(request.user, permissions.WAIVE_CHECK)
    require_perms(request, "checks.change_waiver")
    waiver = get_object_or_404(Waiver.objects.select_related("cluster", "node"), pk=waiver_id)
    return _out(waiver_update(user=request.user, waiver=waiver, reason=payload.reason, expires=_aware(payload.expires)))


@router.delete(
    "/waivers/{waiver_id}",
    summary="End a waiver",
    description=(
        "End a waiver now: results recorded from the next audit on count again.\n\n"
        "**Who:** checks.delete_waiver.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown id."
    ),
    response={204: None, **ERRORS},
)
def waiver_delete(request, waiver_id: int):
    """End a waiver now: results recorded from the next audit on count again."""
    require_perms(request, "checks.delete_waiver")
    get_object_or_404(Waiver, pk=waiver_id).delete()
    return Status(204, None)
