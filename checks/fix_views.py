"""Web pages of the fix plan: the plan of a cluster, its playbook, and (issue 22) preview, approval and runs."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render

from inventory.models import Cluster
from portal import permissions

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
    return {}


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
