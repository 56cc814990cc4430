"""The node list (filters, sorting, page size, exports, bulk actions) and the node page: they read audits, so they
live here; inventory holds the nodes and never imports checks (.importlinter). URLs: portal/ui_urls.py."""

import csv
import json
from datetime import UTC, timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import EmptyPage, PageNotAnInteger
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_POST
from django_filters import BooleanFilter, CharFilter
from django_tables2 import RequestConfig

from inventory.facts_summary import FactsSummary
from inventory.filtersets import NodeFilterSet
from inventory.models import Cluster, Node
from portal import permissions

from .catalog import CHECK_IDS
from .choices import Trigger
from .node_tables import DEFAULT_PAGE_SIZE, PAGE_SIZES, NodeTable
from .selectors.audits import node_remediation_script
from .selectors.nodes import (
    NodeRow,
    check_choices,
    failing_check_filter,
    latest_node_audit,
    node_page,
    node_queryset,
    node_rows,
)
from .services import AuditRefused, audit_request

ANY = "Any"


SHORT_LABELS = {"vendor": "Vendor", "os": "OS id"}


class NodeListFilterSet(NodeFilterSet):
    """The web list's filters: inventory's, as selects with real choices ("Any", never "---------" or "Unknown")."""

    cluster = CharFilter(field_name="cluster__name", label="Cluster")
    failing_check = CharFilter(method="by_failing_check", label="Failing check")
    enabled = BooleanFilter(label="Enabled", widget=forms.Select(choices=[("", ANY), ("true", "Yes"), ("false", "No")]))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = Cluster.objects.order_by("name").values_list("name", flat=True)
        self.filters["cluster"].extra["widget"] = forms.Select(choices=[("", ANY), *((n, n) for n in names)])
        self.filters["failing_check"].extra["widget"] = forms.Select(choices=[("", ANY), *check_choices()])
        for name in ("role", "status", "readiness", "vendor"):
            self.filters[name].extra["empty_label"] = ANY
        for name, label in SHORT_LABELS.items():  # one line of filters at 1440 px
            self.filters[name].label = label

    def by_failing_check(self, queryset, name, value):
        return failing_check_filter(queryset, value)


def _filter_problems(request, filterset) -> list[str]:
    """Why the filters cannot be applied, in words; an empty list when they can."""
    problems = []
    if filterset.is_bound and not filterset.is_valid():
        for field, errors in filterset.form.errors.items():
            label = filterset.form.fields[field].label if field in filterset.form.fields else field
            problems.extend(f"{label}: {error}" for error in errors)
    cluster = request.GET.get("cluster")
    if cluster and not Cluster.objects.filter(name=cluster).exists():
        problems.append(f"Cluster: there is no cluster named “{cluster}”.")
    check = request.GET.get("failing_check")
    if check and check not in CHECK_IDS:
        problems.append(f"Failing check: “{check}” is not a check id (for example container.docker).")
    return problems


# What the node list shows only with VIEW_RESULTS: its columns, and the filters that select nodes by a result (a
# list filtered by failing check tells which nodes fail as surely as the Why column). Without the rule it is the
# inventory: name, cluster, role, address.
RESULT_COLUMNS = ("last_audit_status", "why", "os", "accelerators", "last_audited_at")
RESULT_FILTERS = ("status", "readiness", "vendor", "os", "failing_check")
VIEW_RESULTS_NEEDS = permissions.RULES[permissions.VIEW_RESULTS].text()
NOT_FILTERS = ("page", "export", "per_page", "sort")


def _page_size(request) -> int:
    try:
        size = int(request.GET.get("per_page", DEFAULT_PAGE_SIZE))
    except ValueError:
        return DEFAULT_PAGE_SIZE
    return size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE


@login_required
@permission_required("inventory.view_node", raise_exception=True)
def node_list(request):
    results = permissions.allowed(request.user, permissions.VIEW_RESULTS)
    params = request.GET.copy()
    export = params.pop("export", [None])[-1]
    filterset = NodeListFilterSet(params or None, queryset=node_queryset())
    refused = []
    if not results:  # before the form is built from the filters
        for name in RESULT_FILTERS:
            refused_filter = filterset.filters.pop(name)
            if params.get(name):
                refused.append(f"{refused_filter.label or name}: filtering by results needs {VIEW_RESULTS_NEEDS}.")
    problems = _filter_problems(request, filterset) + refused
    # An invalid filter shows what is wrong and lists nothing: never silently every node.
    queryset = filterset.qs if filterset.is_bound and not problems else node_queryset()
    if problems:
        queryset = queryset.none()
    table = NodeTable(queryset, exclude=() if results else RESULT_COLUMNS)
    table.results = results  # the row template writes the result cells only then
    RequestConfig(request, paginate=False).configure(table)  # the sort; the page size is checked below
    if export in ("csv", "json"):
        if problems:
            return HttpResponse("\n".join(problems), status=400, content_type="text/plain; charset=utf-8")
        return _export(list(table.data), export, results=results)
    per_page = _page_size(request)
    try:
        table.paginate(per_page=per_page, page=request.GET.get("page", 1))
    except PageNotAnInteger:
        table.paginate(per_page=per_page, page=1)
    except EmptyPage:
        table.paginate(per_page=per_page, page=table.paginator.num_pages)
    table.node_rows = node_rows([row.record for row in table.page.object_list])
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("export", None)
    return render(
        request,
        "inventory/node_list.html",
        {
            "filter": filterset,
            "table": table,
            "query": query.urlencode(),
            "problems": problems,
            "filtering": any(params.get(name) for name in filterset.form.fields),
            "results": results,
            "per_page": per_page,
            "page_sizes": PAGE_SIZES,
            "sort": request.GET.get("sort", ""),
            "can_audit": permissions.allowed(request.user, permissions.START_AUDIT),
        },
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


def iso_utc(value) -> str:
    """2026-11-27T19:30:05Z: ISO 8601 in UTC, whole seconds."""
    if value is None:
        return ""
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


EXPORT_FIELDS = [
    "cluster",
    "name",
    "address",
    "role",
    "status",
    "why",
    "os",
    "accelerators",
    "last_audited_at",
    "waived",
]
INVENTORY_EXPORT_FIELDS = ["cluster", "name", "address", "role"]


def _export(nodes: list[Node], kind: str, *, results: bool) -> HttpResponse:
    """These nodes, in this order: statuses in words, times in UTC; without VIEW_RESULTS the inventory columns
    alone. The list's "Export" links and its "Export selected" both answer here."""
    if not results:
        fields = INVENTORY_EXPORT_FIELDS
        rows = [
            {"cluster": n.cluster.name, "name": n.name, "address": n.address, "role": n.get_role_display()}
            for n in nodes
        ]
    else:
        fields = EXPORT_FIELDS
        rows = [_result_row(row) for row in node_rows(nodes)]
    rows = [{key: spreadsheet_safe(value) for key, value in row.items()} for row in rows]
    if kind == "json":
        response = HttpResponse(json.dumps(rows, indent=2), content_type="application/json")
    else:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        writer = csv.DictWriter(response, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    response["Content-Disposition"] = content_disposition_header(True, f"preflight-nodes.{kind}")
    return response


def _result_row(row: NodeRow) -> dict:
    return {
        "cluster": row.cluster,
        "name": row.name,
        "address": row.address,
        "role": row.role,
        "status": row.state.label,
        "why": row.why.text,
        "os": row.os,
        "accelerators": row.accelerators,
        "last_audited_at": iso_utc(row.last_audited_at),
        "waived": row.why.waived,
    }


# A page holds at most 250 rows; the bound keeps a forged form from asking for the whole fleet twice over.
MOST_SELECTED = 1000


def _selected(request) -> list[int]:
    ids = []
    for value in request.POST.getlist("node")[: MOST_SELECTED + 1]:
        try:
            ids.append(int(value))
        except ValueError:
            continue
    return ids


def _back_to_list(request):
    """The list the form was posted from: its filters, sort and page (a query string on our own path only)."""
    query = request.POST.get("query", "")[:2000]
    return redirect(f"{reverse('ui:node_list')}?{query}" if query else reverse("ui:node_list"))


@login_required
@require_POST
@permission_required("inventory.view_node", raise_exception=True)
def node_export_selected(request):
    """ "Export selected": the ticked rows as CSV, with the columns and escaping of the list's own export."""
    ids = _selected(request)
    if not ids:
        messages.error(request, "Export selected: tick at least one node first.")
        return _back_to_list(request)
    if len(ids) > MOST_SELECTED:
        return HttpResponse(f"At most {MOST_SELECTED} nodes at a time.", status=400, content_type="text/plain")
    nodes = list(node_queryset().filter(pk__in=ids).order_by("cluster__name", "name"))
    results = permissions.allowed(request.user, permissions.VIEW_RESULTS)
    return _export(nodes, "csv", results=results)


def _start_audits(request, nodes: list[Node]) -> None:
    """One audit per cluster of exactly these nodes, through the one audit request (its permission check and
    refusals), with a message per cluster."""
    clusters: dict[int, tuple[Cluster, list[str]]] = {}
    for node in nodes:
        clusters.setdefault(node.cluster_id, (node.cluster, []))[1].append(node.name)
    for cluster, names in clusters.values():
        try:
            audit = audit_request(cluster=cluster, node_names=names, trigger=Trigger.UI, user=request.user)
        except AuditRefused as exc:  # includes AuditNotQueued: the broker is down
            messages.error(request, f"{cluster.name}: {exc}")
            continue
        count = f"{len(names)} node{'' if len(names) == 1 else 's'}"
        dashboard = reverse("ui:dashboard", args=[cluster.name])
        messages.success(
            request,
            format_html('Audit {} of {} in <a href="{}">{}</a> started.', audit.pk, count, dashboard, cluster.name),
        )


@login_required
@require_POST
@permissions.requires(permissions.START_AUDIT)
def node_audit_selected(request):
    """ "Audit selected": one audit of exactly the ticked nodes (one per cluster when they span clusters)."""
    ids = _selected(request)
    if not ids or len(ids) > MOST_SELECTED:
        messages.error(request, f"Audit selected: tick between 1 and {MOST_SELECTED} nodes.")
        return _back_to_list(request)
    nodes = list(Node.objects.select_related("cluster").filter(pk__in=ids).order_by("cluster__name", "name"))
    if len(nodes) != len(set(ids)):
        messages.error(request, "Audit selected: some of the ticked nodes no longer exist; nothing was started.")
        return _back_to_list(request)
    _start_audits(request, nodes)
    return _back_to_list(request)


@login_required
@require_POST
@permissions.requires(permissions.START_AUDIT)
def node_audit(request, node_id: int):
    """The node page's "Audit this node"."""
    node = get_object_or_404(Node.objects.select_related("cluster"), pk=node_id)
    _start_audits(request, [node])
    return redirect("ui:node_detail", node_id=node.pk)


@login_required
def node_detail(request, node_id: int):
    """The node's inventory (with inventory.view_node) and its results (VIEW_RESULTS, which alone also shows the
    name, role and address the results are about, as the API's audit does); 403 with neither."""
    inventory = request.user.has_perm("inventory.view_node")
    common = {
        "inventory": inventory,
        "can_audit": permissions.allowed(request.user, permissions.START_AUDIT),
        "admin_url": reverse("admin:inventory_node_change", args=[node_id]) if request.user.is_staff else "",
    }
    if not permissions.allowed(request.user, permissions.VIEW_RESULTS):
        if not inventory:
            permissions.require(request.user, permissions.VIEW_RESULTS)
        node = get_object_or_404(Node.objects.select_related("cluster"), pk=node_id)
        return render(request, "inventory/node_detail.html", {"node": node, "results": False, **common})
    node = get_object_or_404(node_queryset(), pk=node_id)
    page = node_page(node)
    context = {
        "node": node,
        "page": page,
        "latest": page.latest,
        "summary": page.summary,
        "facts": FactsSummary.from_json(node.last_facts),
        "installs": node.installs.filter(gone_at__isnull=True).order_by("kind", "name"),
        "check_count": len(CHECK_IDS),
        **_waiver_context(request, node),
        "results": True,
        **common,
    }
    return render(request, "inventory/node_detail.html", context)


def _waiver_context(request, node: Node) -> dict:
    """The node page's waivers in force (its own and its cluster's) and the bounds of the "Waive" form."""
    today = timezone.now().astimezone(UTC).date()
    longest = settings.PREFLIGHT_WAIVER_MAX_DAYS
    waivers = node.cluster.waivers.filter(Q(node=node) | Q(node__isnull=True), expires__gt=timezone.now())
    return {
        "can_waive": permissions.allowed(request.user, permissions.WAIVE_CHECK),
        "waivable": ("warn", "fail", "error"),
        "waivers": waivers.order_by("check_id", "expires"),
        "waiver_min": (today + timedelta(days=1)).isoformat(),
        "waiver_max": (today + timedelta(days=longest - 1)).isoformat(),
        "waiver_default": (today + timedelta(days=min(30, longest - 1))).isoformat(),
    }


@login_required
@permissions.requires(permissions.VIEW_RESULTS)
def node_remediation(request, node_id: int):
    node = get_object_or_404(Node, pk=node_id)
    latest = latest_node_audit(node)
    if latest is None:
        raise Http404("this node has no finished audit")
    response = HttpResponse(node_remediation_script(node_audit=latest), content_type="text/x-shellscript")
    response["Content-Disposition"] = content_disposition_header(True, f"preflight-{node.name}-remediation.sh")
    return response
