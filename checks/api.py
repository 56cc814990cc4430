"""Audit endpoints: start one (202), follow it, read results, history, the connectivity matrix, remediation."""

from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.http import content_disposition_header
from ninja import Query, Router, Schema, Status
from ninja.pagination import paginate

from inventory.models import Cluster, Node
from inventory.schemas import ErrorOut
from portal import permissions
from portal.api_plumbing import ApiError, BoundedPagination, Paged

from .choices import RunState, Trigger
from .models import Audit, CheckResult, NetworkPath, NodeAudit
from .schemas import AuditIn, AuditOut, AuditStarted, AuditSummary, CheckHistoryOut, PathOut
from .selectors.audits import audit_detail, node_remediation_script
from .services import AuditAlreadyRunning, AuditNotQueued, AuditRefused, audit_request

router = Router(tags=["audits"])
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 413: ErrorOut, 422: ErrorOut}
READ_ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}


@router.post(
    "/audits",
    summary="Start an audit",
    description=(
        "Start an audit of a cluster (or some of its nodes); answers 202 at once with the audit's"
        " URL, to poll until its state is `done`.\n\n"
        "**Who:** checks.start_audit.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown cluster or node; 409 when an audit of the cluster is already running; 422 on "
        "invalid input; 503 when the task queue is unavailable (retry)."
    ),
    response={202: AuditStarted, 503: ErrorOut, **ERRORS},
)
def audit_create(request, payload: AuditIn, response: HttpResponse):
    """Start an audit of a cluster (or some of its nodes); poll the returned URL until `state` is done."""
    permissions.require(request.user, permissions.START_AUDIT)
    cluster = Cluster.objects.filter(name=payload.cluster).first()
    if cluster is None:
        raise ApiError(404, "not_found", f"no cluster named {payload.cluster!r}")
    try:
        audit = audit_request(cluster=cluster, node_names=payload.nodes, trigger=Trigger.API, user=request.user)
    except AuditAlreadyRunning as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except AuditNotQueued as exc:  # the broker is down; the audit it created is closed
        raise ApiError(503, "unavailable", str(exc), headers={"Retry-After": "30"}) from None
    except AuditRefused as exc:
        raise ApiError(422, "validation_error", str(exc), [{"field": "nodes", "message": str(exc)}]) from None
    url = f"/api/v1/audits/{audit.pk}"
    response["Location"] = url
    return Status(202, {"audit": audit.pk, "state": audit.state, "url": url})


@router.get(
    "/audits/{audit_id}",
    summary="Read an audit",
    description=(
        "One audit: its run state, readiness, and every node's checks with status, summary and "
        "remediation.\n\n"
        "**Who:** anyone with the results permission (checks.view_audit).\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown id."
    ),
    response={200: AuditOut, **READ_ERRORS},
)
def audit_get(request, audit_id: int):
    permissions.require(request.user, permissions.VIEW_RESULTS)
    audit = get_object_or_404(Audit, pk=audit_id)
    counts = NodeAudit.objects.filter(audit=audit).aggregate(
        nodes=Count("pk"), finished=Count("pk", filter=Q(state__in=[RunState.DONE, RunState.ERROR]))
    )
    return {**audit_detail(audit_id=audit.pk), "progress": {**counts, "network_state": audit.network_state}}


class AuditFilters(Schema):
    cluster: str | None = None
    state: str | None = None


@router.get(
    "/audits",
    summary="List audits",
    description=(
        "Audits, newest first, filtered by cluster and state, paged.\n\n"
        "**Who:** anyone with the results permission (checks.view_audit).\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 422 on an "
        "invalid filter."
    ),
    response={200: list[AuditSummary], **READ_ERRORS},
)
@paginate(BoundedPagination)
def audit_list(request, filters: Query[AuditFilters]):
    permissions.require(request.user, permissions.VIEW_RESULTS)
    queryset = Audit.objects.select_related("cluster").order_by("-created")
    if filters.cluster:
        queryset = queryset.filter(cluster__name=filters.cluster)
    if filters.state:
        queryset = queryset.filter(state=filters.state)
    return Paged(
        queryset,
        lambda a: {
            "id": a.pk,
            "cluster": a.cluster.name,
            "profile_key": a.profile_key,
            "state": a.state,
            "status": a.status,
            "trigger": a.trigger,
            "created": a.created,
            "finished": a.finished,
        },
    )


class PathFilters(Schema):
    status: str | None = None
    check_id: str | None = None
    node: str | None = None


@router.get(
    "/audits/{audit_id}/matrix",
    summary="Read an audit's network paths",
    description=(
        "The connectivity matrix of an audit: one row per tested path (source, destination, "
        "check, status, summary, port outcomes), paged like every list (`limit` up to 1,000, `offset`; "
        "`count` is the whole number): a full mesh of 500 nodes is 250,000 paths. Filter by `status` "
        "(`fail` for the failing paths), `check_id`, and `node` (a node's name, as source or destination).\n\n"
        "**Who:** anyone with the results permission (checks.view_audit).\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown id; 422 on an invalid filter."
    ),
    response={200: list[PathOut], **READ_ERRORS},
)
@paginate(BoundedPagination)
def audit_matrix(request, audit_id: int, filters: Query[PathFilters]):
    permissions.require(request.user, permissions.VIEW_RESULTS)
    audit = get_object_or_404(Audit, pk=audit_id)
    paths = (
        NetworkPath.objects.filter(audit=audit)
        .select_related("source", "destination")
        .order_by("check_id", "source__name", "destination__name", "pk")  # (a stable order across pages)
    )
    if filters.status:
        paths = paths.filter(status=filters.status)
    if filters.check_id:
        paths = paths.filter(check_id=filters.check_id)
    if filters.node:
        paths = paths.filter(Q(source__name=filters.node) | Q(destination__name=filters.node))
    return Paged(
        paths,
        lambda p: {
            "check_id": p.check_id,
            "source": p.source.name,
            "destination": p.destination.name,
            "status": p.status,
            "summary": p.summary,
            "outcomes": {k: [str(x) for x in v] for k, v in p.outcomes.items()},
        },
    )


class HistoryFilters(Schema):
    check_id: str | None = None


@router.get(
    "/nodes/{node_id}/checks",
    summary="A node's check history",
    description=(
        "Every result this node's checks had, newest audit first; filter by check id.\n\n"
        "**Who:** anyone with the results permission (checks.view_audit).\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown node; 422 on an invalid filter."
    ),
    response={200: list[CheckHistoryOut], **READ_ERRORS},
)
@paginate(BoundedPagination)
def node_check_history(request, node_id: int, filters: Query[HistoryFilters]):
    """Every result this node's checks had, newest audit first."""
    permissions.require(request.user, permissions.VIEW_RESULTS)
    node = get_object_or_404(Node, pk=node_id)
    results = (
        CheckResult.objects.filter(node_audit__node=node)
        .select_related("node_audit")
        .order_by("-node_audit__audit_id", "position")
    )
    if filters.check_id:
        results = results.filter(check_id=filters.check_id)
    return Paged(
        results,
        lambda r: {
            "audit": r.node_audit.audit_id,
            "finished": r.node_audit.finished,
            "check_id": r.check_id,
            "status": r.status,
            "summary": r.summary,
        },
    )


@router.get(
    "/nodes/{node_id}/remediation",
    summary="A node's remediation script",
    description=(
        "A commented shell script of the fixes for the node's failing checks, from its latest "
        "finished audit. Preflight never runs it.\n\n"
        "**Who:** anyone with the results permission (checks.view_audit).\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown node or one never audited."
    ),
    response={200: str, **READ_ERRORS},
    openapi_extra={
        "responses": {
            200: {
                "description": "A commented shell script",
                "content": {"text/x-shellscript": {"schema": {"type": "string"}}},
            }
        }
    },
)
def node_remediation(request, node_id: int):
    """The node's remediation script from its latest finished audit (Preflight never runs it)."""
    permissions.require(request.user, permissions.VIEW_RESULTS)
    node = get_object_or_404(Node, pk=node_id)
    node_audit = (
        NodeAudit.objects.filter(node=node, finished__isnull=False)
        .select_related("node", "audit")
        .order_by("-finished")
        .first()
    )
    if node_audit is None:
        raise ApiError(404, "not_found", f"node {node.name} has no finished audit yet")
    response = HttpResponse(node_remediation_script(node_audit=node_audit), content_type="text/x-shellscript")
    response["Content-Disposition"] = content_disposition_header(True, f"preflight-{node.name}-remediation.sh")
    return response
