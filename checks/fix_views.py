"""Web pages of the fix plan: the plan of a cluster, its playbook, and (issue 22) preview, approval and runs."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from inventory.models import Cluster
from portal import permissions

from .models import FixRun
from .selectors.fix import fix_run_detail, recent_fix_runs
from .services.apply import FixRefused, fix_approve, fix_preview
from .services.fix import FixPlanUnavailable, cluster_fix_plan


def _audit_param(request) -> int | None:
    raw = request.GET.get("audit", "")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 12:
        raise Http404("audit must be a number")
    return int(raw)


@login_required
@permissions.requires(permissions.VIEW_RESULTS)
def fix_plan(request, name: str):
    cluster = get_object_or_404(Cluster, name=name)
    try:
        view = cluster_fix_plan(cluster=cluster, user=request.user, audit_id=_audit_param(request))
    except FixPlanUnavailable as exc:
        return render(request, "checks/fix_plan.html", {"cluster": cluster, "error": str(exc)}, status=404)
    data = view.as_dict()
    nodes = {n.name: n.node_id for g in view.plan.groups for n in g.nodes}
    for group in data["groups"]:
        group["node_links"] = [(node, nodes[node]) for node in group["nodes"]]
    context = {"cluster": cluster, "plan": data, "audit": view.audit}
    context.update(_apply_context(request, cluster, view))
    return render(request, "checks/fix_plan.html", context)


def _apply_context(request, cluster, view) -> dict:
    return {
        "can_apply": permissions.allowed(request.user, permissions.APPLY_FIX),
        "fix_runs": recent_fix_runs(cluster=cluster),
    }


@login_required
@require_POST
def fix_run_create(request, name: str):
    """Preview: the chosen groups and nodes of the plan, each node's commands and its script's --dry-run."""
    permissions.require(request.user, permissions.APPLY_FIX)
    cluster = get_object_or_404(Cluster, name=name)
    raw = request.POST.get("audit", "")
    if not raw.isdigit() or len(raw) > 12:
        messages.error(request, "the plan's audit is missing: reload the plan")
        return redirect("ui:fix_plan", name=cluster.name)
    try:
        run = fix_preview(
            cluster=cluster,
            user=request.user,
            audit_id=int(raw),
            groups=request.POST.getlist("group")[:200],
            nodes=request.POST.getlist("node")[:5000],
        )
    except (FixRefused, FixPlanUnavailable) as exc:
        messages.error(request, str(exc))
        return redirect("ui:fix_plan", name=cluster.name)
    return redirect("ui:fix_run", run_id=run.pk)


@login_required
@permissions.requires(permissions.VIEW_RESULTS)
def fix_run(request, run_id: int):
    run = get_object_or_404(FixRun, pk=run_id)
    detail = fix_run_detail(fix_run_id=run.pk)
    can_apply = permissions.allowed(request.user, permissions.APPLY_FIX)
    return render(
        request,
        "checks/fix_run.html",
        {"run": detail, "can_apply": can_apply, "cluster": run.cluster, "FixState": FixRun.State},
    )


@login_required
@require_POST
def fix_run_approve(request, run_id: int):
    permissions.require(request.user, permissions.APPLY_FIX)
    run = get_object_or_404(FixRun, pk=run_id)
    try:
        fix_approve(fix_run_id=run.pk, user=request.user)
    except FixRefused as exc:
        messages.error(request, exc.message)
    except PermissionDenied:
        raise
    else:
        messages.success(
            request, f"Approved: the fix runs on {run.nodes.count()} node(s), then they are audited again."
        )
    return redirect("ui:fix_run", run_id=run.pk)


@login_required
@permissions.requires(permissions.VIEW_RESULTS)
def fix_playbook(request, name: str):
    cluster = get_object_or_404(Cluster, name=name)
    try:
        view = cluster_fix_plan(cluster=cluster, user=request.user, audit_id=_audit_param(request))
    except FixPlanUnavailable as exc:
        raise Http404(str(exc)) from None
    response = HttpResponse(view.playbook(), content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="preflight-{cluster.name}-fix.yml"'
    return response
