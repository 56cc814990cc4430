"""Web UI pages of the inventory: the node list (filters, sorting, export) and the node page."""

import csv
import json
from collections import OrderedDict

from django.contrib.auth.decorators import login_required, permission_required
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Prefetch
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django_tables2 import RequestConfig

from checks.catalog import CHECK_IDS
from checks.models import NodeAudit
from checks.selectors import node_remediation_script
from portal import permissions

from .filtersets import NodeFilterSet
from .models import Accelerator, Node
from .tables import STATUS_TEXT, NodeTable

AREAS = OrderedDict(
    [
        ("ssh", "Access"),
        ("os", "Operating system"),
        ("time", "Time"),
        ("container", "Containers"),
        ("accelerator", "Accelerators"),
        ("ports", "Ports"),
        ("network", "Network"),
    ]
)


def node_queryset():
    present = Accelerator.objects.filter(gone_at__isnull=True)
    return Node.objects.select_related("cluster").prefetch_related(
        Prefetch("accelerators", queryset=present.order_by("vendor", "index"), to_attr="present_accelerators")
    )


@login_required
@permission_required("inventory.view_node", raise_exception=True)
def node_list(request):
    filterset = NodeFilterSet(request.GET or None, queryset=node_queryset())
    queryset = filterset.qs if filterset.is_bound and filterset.is_valid() else node_queryset()
    export = request.GET.get("export")
    if export in ("csv", "json"):
        return _export(queryset.order_by("cluster__name", "name"), export)
    table = NodeTable(queryset)
    RequestConfig(request, paginate={"per_page": 50}).configure(table)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request, "inventory/node_list.html", {"filter": filterset, "table": table, "query": query.urlencode()}
    )


# OWASP CSV injection: a cell starting with one of these is read as a formula by spreadsheet programs.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A text cell a spreadsheet shows as text: formula triggers are prefixed with a single quote (OWASP).

    Exports hold node-reported text (os-release names); JSON exports get the same treatment because operators
    open them in the same spreadsheet programs. Numbers and dates pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def _export(queryset, kind: str) -> HttpResponse:
    rows = [
        {
            "cluster": node.cluster.name,
            "name": node.name,
            "address": node.address,
            "role": node.role,
            "status": node.last_audit_status,
            "os": ((node.last_facts or {}).get("os") or {}).get("pretty_name", ""),
            "accelerators": len(node.present_accelerators),
            "last_audited_at": node.last_audited_at,
        }
        for node in queryset
    ]
    rows = [{key: spreadsheet_safe(value) for key, value in row.items()} for row in rows]
    if kind == "json":
        response = HttpResponse(json.dumps(rows, cls=DjangoJSONEncoder, indent=2), content_type="application/json")
    else:
        response = HttpResponse(content_type="text/csv")
        writer = csv.DictWriter(response, fieldnames=list(rows[0]) if rows else ["cluster", "name"])
        writer.writeheader()
        writer.writerows(rows)
    response["Content-Disposition"] = f'attachment; filename="preflight-nodes.{kind}"'
    return response


def _latest_audit(node: Node):
    return (
        NodeAudit.objects.filter(node=node, finished__isnull=False)
        .select_related("audit")
        .order_by("-finished")
        .first()
    )


@login_required
@permission_required("inventory.view_node", raise_exception=True)
@permissions.requires(permissions.VIEW_RESULTS)
def node_detail(request, node_id: int):
    node = get_object_or_404(node_queryset(), pk=node_id)
    latest = _latest_audit(node)
    groups: OrderedDict[str, list] = OrderedDict((label, []) for label in AREAS.values())
    if latest is not None:
        for result in latest.results.order_by("position"):
            groups[AREAS.get(result.check_id.split(".")[0], "Other")].append(result)
    history = NodeAudit.objects.filter(node=node).select_related("audit").order_by("-audit__created")[:20]
    context = {
        "node": node,
        "latest": latest,
        "groups": [(k, v) for k, v in groups.items() if v],
        "installs": node.installs.filter(gone_at__isnull=True).order_by("kind", "name"),
        "history": history,
        "facts": node.last_facts or {},
        "status_text": STATUS_TEXT,
        "check_count": len(CHECK_IDS),
    }
    return render(request, "inventory/node_detail.html", context)


@login_required
@permission_required("inventory.view_node", raise_exception=True)
@permissions.requires(permissions.VIEW_RESULTS)
def node_remediation(request, node_id: int):
    node = get_object_or_404(Node, pk=node_id)
    latest = _latest_audit(node)
    if latest is None:
        raise Http404("this node has no finished audit")
    response = HttpResponse(node_remediation_script(node_audit=latest), content_type="text/x-shellscript")
    response["Content-Disposition"] = f'attachment; filename="preflight-{node.name}-remediation.sh"'
    return response
