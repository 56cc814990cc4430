"""Fix plan endpoints: the plan (`GET /api/v1/clusters/{name}/fix-plan`, JSON or `?format=ansible`), and fix
runs: preview (`POST /clusters/{name}/fix-runs`), read (`GET /fix-runs/{id}`), approve (`POST .../approve`)."""

from typing import Literal

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from ninja import Router, Schema, Status

from inventory.models import Cluster
from inventory.schemas import ErrorOut
from portal import permissions
from portal.api_plumbing import ApiError

from .models import FixRun
from .selectors.fix import fix_run_detail
from .services.apply import FixRefused, fix_approve, fix_preview
from .services.fix import FixPlanUnavailable, cluster_fix_plan

router = Router(tags=["fix plans"])
READ_ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}


class StepOut(Schema):
    check_id: str
    commands: list[str]


class GroupOut(Schema):
    key: str
    label: str
    title: str
    check_ids: list[str]
    nodes: list[str]
    steps: list[StepOut]
    commands: list[str]


class ManualOut(Schema):
    node: str
    check_ids: list[str]


class FixPlanOut(Schema):
    cluster: str
    audit: int
    audit_finished: str | None
    latest_audit: int
    newer_audit: bool
    hash: str
    groups: list[GroupOut]
    nothing_to_run: list[str]
    manual: list[ManualOut]


def _cluster(name: str) -> Cluster:
    cluster = Cluster.objects.filter(name=name).first()
    if cluster is None:
        raise ApiError(404, "not_found", f"no cluster named {name!r}")
    return cluster


@router.get(
    "/clusters/{name}/fix-plan",
    summary="A cluster's fix plan",
    description=(
        "The cluster's nodes grouped by the exact commands they need, in dependency order, from "
        "its latest finished audit (or `audit`); `format=ansible` answers a playbook. "
        "`newer_audit` says when the cluster has a newer audit.\n\n"
        "**Who:** anyone with the results permission (checks.view_audit).\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown cluster or audit, or a cluster never audited."
    ),
    response={200: FixPlanOut, **READ_ERRORS},
    openapi_extra={
        "responses": {
            200: {
                "description": "The plan (JSON), or with format=ansible the playbook",
                "content": {"application/yaml": {"schema": {"type": "string"}}},
            }
        }
    },
)
def fix_plan(request, name: str, audit: int | None = None, format: Literal["json", "ansible"] = "json"):
    """The cluster's nodes grouped by the exact commands they need, in dependency order, from its latest finished
    audit (or `audit`); `newer_audit` says when the cluster has a newer one."""
    cluster = _cluster(name)
    try:
        view = cluster_fix_plan(cluster=cluster, user=request.user, audit_id=audit)
    except FixPlanUnavailable as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    if format == "ansible":
        response = HttpResponse(view.playbook(), content_type="application/yaml")
        response["Content-Disposition"] = f'attachment; filename="preflight-{cluster.name}-fix.yml"'
        return response
    return view.as_dict()


class FixRunIn(Schema):
    audit: int
    groups: list[str] = []
    nodes: list[str] = []


def _refused(exc: FixRefused):
    status = 422 if exc.code in ("unknown", "empty") else 409
    code = "validation_error" if status == 422 else "conflict"
    raise ApiError(status, code, exc.message, [{"field": exc.code, "message": exc.message}]) from None


@router.post(
    "/clusters/{name}/fix-runs",
    summary="Preview a fix run",
    description=(
        "Preview a fix of some groups or nodes of the plan of `audit`: the commands per node, to "
        "approve before anything runs.\n\n"
        "**Who:** checks.apply_fix and checks.view_audit.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permissions; 404 for "
        "an unknown cluster or audit; 409 when the plan changed or a run is active; 422 on "
        "invalid input."
    ),
    response={201: dict, 409: ErrorOut, **READ_ERRORS},
)
def fix_run_create(request, name: str, payload: FixRunIn, response: HttpResponse):
    """Preview a fix of some groups or nodes of the plan of `audit`: the commands per node and the output of the
    script's `--dry-run` on each node. Approve it with POST /fix-runs/{id}/approve."""
    permissions.require(request.user, permissions.APPLY_FIX)
    cluster = _cluster(name)
    try:
        run = fix_preview(
            cluster=cluster, user=request.user, audit_id=payload.audit, groups=payload.groups, nodes=payload.nodes
        )
    except FixPlanUnavailable as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except FixRefused as exc:
        _refused(exc)
    response["Location"] = f"/api/v1/fix-runs/{run.pk}"
    return Status(201, fix_run_detail(fix_run_id=run.pk))


@router.get(
    "/fix-runs/{run_id}",
    summary="Read a fix run",
    description=(
        "A fix run: its state, and each node's commands, output and result.\n\n"
        "**Who:** anyone with the results permission (checks.view_audit).\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permission; 404 for an"
        " unknown id."
    ),
    response={200: dict, **READ_ERRORS},
)
def fix_run_get(request, run_id: int):
    permissions.require(request.user, permissions.VIEW_RESULTS)
    get_object_or_404(FixRun, pk=run_id)
    return fix_run_detail(fix_run_id=run_id)


@router.post(
    "/fix-runs/{run_id}/approve",
    summary="Approve and run a fix run",
    description=(
        "Approve a previewed fix run: each node's script runs over SSH, then the nodes are "
        "audited again.\n\n"
        "**Who:** checks.apply_fix and checks.view_audit.\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permissions; 404 for "
        "an unknown id; 409 when the run is not awaiting approval."
    ),
    response={202: dict, 409: ErrorOut, **READ_ERRORS},
)
def fix_run_approve(request, run_id: int):
    """Approve a previewed fix run: each node's script runs over SSH, then the nodes are audited again."""
    permissions.require(request.user, permissions.APPLY_FIX)
    get_object_or_404(FixRun, pk=run_id)
    try:
        fix_approve(fix_run_id=run_id, user=request.user)
    except FixRefused as exc:
        _refused(exc)
    return Status(202, fix_run_detail(fix_run_id=run_id))
