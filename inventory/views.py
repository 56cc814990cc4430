"""Web UI pages of the inventory: the node list (filters, sorting, export) and the node page."""

import csv
import json
from collections import OrderedDict
from datetime import UTC, timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import OuterRef, Prefetch, Q, Subquery
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django_tables2 import RequestConfig

from checks.catalog import CHECK_IDS
from checks.models import CheckResult, NodeAudit
from checks.selectors.audits import node_remediation_script
from checks.selectors.pages import NOT_CHECKED, RANK, node_summary
from portal import permissions

from .facts_summary import FactsSummary
from .filtersets import NodeFilterSet
from .models import Accelerator, Cluster, Node
from .tables import STATUS_TEXT, NodeTable, accelerator_text, os_text, why_text

AREAS = OrderedDict(
    [
        ("ssh", "Access"),
        ("os", "Operating system"),
        ("time", "Time"),
        ("container", "Containers"),
        ("host", "Host"),
        ("gpustack", "GPUStack"),
        ("accelerator", "Accelerators"),
        ("ports", "Ports"),
        ("network", "Network"),
        ("cluster", "Cluster"),
    ]
)


def node_queryset():
    present = Accelerator.objects.filter(gone_at__isnull=True)
    return Node.objects.select_related("cluster").prefetch_related(
        Prefetch("accelerators", queryset=present.order_by("vendor", "index"), to_attr="present_accelerators")
    )


def attach_why(nodes: list) -> list:
    """Give each node `why_check` and `why_summary`: the worst check (error, fail, then warn; first by position) of
    its latest finished audit. Two queries for any number of nodes; call it on one page of the list, not all."""
    if not nodes:
        return nodes
    latest = NodeAudit.objects.filter(node=OuterRef("pk"), finished__isnull=False).order_by("-finished")
    latest_of = dict(
        Node.objects.filter(pk__in=[n.pk for n in nodes])
        .annotate(latest=Subquery(latest.values("pk")[:1]))
        .values_list("pk", "latest")
    )
    worst: dict[int, tuple] = {}
    waived: dict[int, list[str]] = {}
    bad = CheckResult.objects.filter(
        node_audit_id__in=[pk for pk in latest_of.values() if pk], status__in=["error", "fail", "warn"]
    ).values_list("node_audit_id", "status", "position", "check_id", "summary", "waived")
    for node_audit_id, status, position, check_id, summary, waiver in bad:
        if waiver:  # accepted by a waiver: listed as waived with its reason, never the node's "why"
            waived.setdefault(node_audit_id, []).append(f"{check_id} ({status}, waived: {waiver.get('reason', '')})")
            continue
        # A "not checked" row repeats why the probe did not run; the check that says so (ssh.connect) comes first.
        key = (9 if summary.startswith(NOT_CHECKED) else RANK.get(status, 9), position)
        if node_audit_id not in worst or key < worst[node_audit_id][0]:
            worst[node_audit_id] = (key, check_id, summary)
    for node in nodes:
        found = worst.get(latest_of.get(node.pk))
        node.why_check, node.why_summary = (found[1], found[2]) if found else ("", "")
        # What the list and the exports show, computed once per node (the row template reads these).
        node.waived_text = "; ".join(sorted(waived.get(latest_of.get(node.pk), [])))
        node.why_text = why_text(node) or node.waived_text
        node.status_text = STATUS_TEXT.get(node.last_audit_status, node.last_audit_status)
        node.os_text = os_text(node.last_facts)
        node.accelerator_text = accelerator_text(getattr(node, "present_accelerators", []))
    return nodes


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


@login_required
@permission_required("inventory.view_node", raise_exception=True)
def node_list(request):
    results = permissions.allowed(request.user, permissions.VIEW_RESULTS)
    params = request.GET.copy()
    export = params.pop("export", [None])[-1]
    filterset = NodeFilterSet(params or None, queryset=node_queryset())
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
    if export in ("csv", "json"):
        RequestConfig(request, paginate=False).configure(table)
        if problems:
            return HttpResponse("\n".join(problems), status=400, content_type="text/plain; charset=utf-8")
        return _export(table, export, results=results)
    RequestConfig(request, paginate={"per_page": 50}).configure(table)
    rows = list(table.page.object_list)  # BoundRows of this page, fetched once so the annotations stay
    if results:
        attach_why([row.record for row in rows])
    table.page.object_list = rows
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


def _export(table: NodeTable, kind: str, *, results: bool) -> HttpResponse:
    """The rows of the node list as shown: its filters and its sort, statuses in words, times in UTC; without
    VIEW_RESULTS the inventory columns alone."""
    if not results:
        fields = INVENTORY_EXPORT_FIELDS
        rows = [
            {"cluster": n.cluster.name, "name": n.name, "address": n.address, "role": n.get_role_display()}
            for n in table.data
        ]
    else:
        fields = EXPORT_FIELDS
        rows = _result_rows(table)
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


def _result_rows(table: NodeTable) -> list[dict]:
    return [
        {
            "cluster": node.cluster.name,
            "name": node.name,
            "address": node.address,
            "role": node.get_role_display(),
            "status": node.status_text,
            "why": node.why_text,
            "os": node.os_text,
            "accelerators": node.accelerator_text,
            "last_audited_at": iso_utc(node.last_audited_at),
            "waived": node.waived_text,
        }
        for node in attach_why(list(table.data))
    ]


def _latest_audit(node: Node):
    return (
        NodeAudit.objects.filter(node=node, finished__isnull=False)
        .select_related("audit")
        .order_by("-finished")
        .first()
    )


@login_required
def node_detail(request, node_id: int):
    """The node's inventory (with inventory.view_node) and its results (VIEW_RESULTS, which alone also shows the
    name, role and address the results are about, as the API's audit does); 403 with neither."""
    inventory = request.user.has_perm("inventory.view_node")
    if not permissions.allowed(request.user, permissions.VIEW_RESULTS):
        if not inventory:
            permissions.require(request.user, permissions.VIEW_RESULTS)
        node = get_object_or_404(Node.objects.select_related("cluster"), pk=node_id)
        return render(request, "inventory/node_detail.html", {"node": node, "results": False, "inventory": True})
    node = get_object_or_404(node_queryset(), pk=node_id)
    latest = _latest_audit(node)
    results = list(latest.results.order_by("position")) if latest is not None else []
    summary = node_summary(results)
    groups: OrderedDict[str, list] = OrderedDict((label, []) for label in AREAS.values())
    for result in summary.shown:
        groups[AREAS.get(result.check_id.split(".")[0], "Other")].append(result)
    history = list(
        NodeAudit.objects.filter(node=node).select_related("audit__cluster").order_by("-audit__created")[:20]
    )
    # Facts come from the last audit that ran on the node; say which, so a stale fact is never mistaken for news.
    facts_audit = (
        NodeAudit.objects.filter(node=node, state="done", finished__isnull=False)
        .exclude(facts={})
        .select_related("audit")
        .order_by("-finished")
        .first()
    )
    context = {
        "node": node,
        "latest": latest,
        "summary": summary,
        "groups": [(k, v) for k, v in groups.items() if v],
        "installs": node.installs.filter(gone_at__isnull=True).order_by("kind", "name"),
        "history": history,
        "facts": FactsSummary.from_json(node.last_facts),
        "facts_audit": facts_audit,
        "facts_stale": facts_audit is not None and latest is not None and facts_audit.pk != latest.pk,
        "status_text": STATUS_TEXT,
        "check_count": len(CHECK_IDS),
        **_waiver_context(request, node),
        "results": True,
        "inventory": inventory,
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
    latest = _latest_audit(node)
    if latest is None:
        raise Http404("this node has no finished audit")
    response = HttpResponse(node_remediation_script(node_audit=latest), content_type="text/x-shellscript")
    response["Content-Disposition"] = content_disposition_header(True, f"preflight-{node.name}-remediation.sh")
    return response
