"""Web UI pages of audits: clusters at a glance, the dashboard with live progress, diffs, matrix, trend."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django_celery_beat.models import PeriodicTask

from inventory.filtersets import readiness_q
from inventory.models import Cluster, Node
from inventory.profile_diff import profile_diff_from_baseline
from portal import permissions
from portal.ids import parse_id

from .catalog import BY_ID, SEVERITY
from .choices import RunState, Trigger
from .install import image_ref
from .install_plan import cluster_install_plan, server_url
from .models import Audit, CheckResult, NetworkPath, NodeAudit
from .selectors import dashboard as dashboard_reads
from .selectors.diff import check_diff, inventory_diff, path_diff
from .selectors.pages import (
    FAILING_ONLY_ABOVE,
    GRID_LIMIT,
    cluster_verdict,
    collapse_rollup,
    home_status,
    matrix_rollup,
    path_detail_text,
    peer_coverage,
)
from .services import AuditRefused, audit_request
from .services.waivers import waiver_create, waivers_expiring


def _cluster(name: str) -> Cluster:
    return get_object_or_404(Cluster.objects.select_related("profile"), name=name)


def _next_scheduled():
    task = PeriodicTask.objects.filter(task="checks.audit_all_clusters", enabled=True).select_related("crontab").first()
    if task is None or task.crontab is None:
        return None
    schedule = task.crontab.schedule
    last = task.last_run_at or timezone.now()
    return timezone.now() + schedule.remaining_estimate(last)


@login_required
@permission_required("inventory.view_cluster", raise_exception=True)
def home(request):
    clusters = (
        Cluster.objects.select_related("profile")
        .annotate(
            nodes_total=Count("nodes"),
            nodes_ready=Count("nodes", filter=readiness_q("ready", "nodes__")),
            nodes_failing=Count("nodes", filter=readiness_q("not_ready", "nodes__")),
        )
        .order_by("name")
    )
    clusters = list(clusters)
    results = permissions.allowed(request.user, permissions.VIEW_RESULTS)  # status colours and counts are results
    for cluster in clusters:
        cluster.verdict = home_status(
            total=cluster.nodes_total, ready=cluster.nodes_ready, failing=cluster.nodes_failing
        )
        if not results:
            cluster.verdict, cluster.nodes_ready, cluster.nodes_failing = None, None, None
    return render(request, "checks/home.html", {"clusters": clusters, "results": results})


def _latest_done(cluster: Cluster) -> Audit | None:
    return Audit.objects.filter(cluster=cluster, state=RunState.DONE).order_by("-created").first()


def _recent_audits(cluster: Cluster) -> list[dict]:
    """The last 20 audits, each with the one before it (its comparison link). One query."""
    audits = list(Audit.objects.filter(cluster=cluster).order_by("-created")[:21])
    done = [a for a in audits if a.state == RunState.DONE]
    rows = []
    for audit in audits[:20]:
        earlier = next((d for d in done if d.created < audit.created), None)
        rows.append({"audit": audit, "previous": earlier})
    return rows


@login_required
@permission_required("inventory.view_cluster", raise_exception=True)
def dashboard(request, name: str):
    cluster = _cluster(name)
    if not permissions.allowed(request.user, permissions.VIEW_RESULTS):
        # Results need checks.view_audit: without it the dashboard is the cluster's inventory (nodes per role).
        totals = dict(
            Node.objects.filter(cluster=cluster).values_list("role").annotate(n=Count("pk")).values_list("role", "n")
        )
        return render(
            request,
            "checks/dashboard.html",
            {
                "cluster": cluster,
                "results": False,
                "profile": cluster.profile,
                "profile_diff": profile_diff_from_baseline(cluster.profile),
                "servers": {"total": totals.get("server", 0)},
                "workers": {"total": totals.get("worker", 0)},
                "next_run": _next_scheduled(),
            },
        )
    nodes = dashboard_reads.fleet(cluster)
    by_role, latest_node_audits = nodes.by_role(), nodes.latest
    latest = _latest_done(cluster)
    found = dashboard_reads.problems(latest_node_audits)
    matrix_audit = (
        Audit.objects.filter(cluster=cluster, state=RunState.DONE, network_state="done")
        .order_by("-created")
        .values_list("pk", flat=True)
        .first()
    )
    why = dashboard_reads.why(nodes, found, matrix_audit=matrix_audit)
    running = Audit.objects.filter(cluster=cluster, state__in=[RunState.QUEUED, RunState.RUNNING]).first()
    days = request.GET.get("days", "")
    days = int(days) if days.isdigit() and int(days) in dashboard_reads.TREND_DAYS else 30
    trend = dashboard_reads.trend(cluster, days=days)
    context = {
        "cluster": cluster,
        "servers": by_role.get("server", {}),
        "workers": by_role.get("worker", {}),
        "latest": latest,
        "why": why,
        "heatmap": dashboard_reads.heatmap(nodes, found),
        "heatmap_limit": dashboard_reads.HEATMAP_LIMIT,
        "node_count": len(nodes.nodes),
        "running": running,
        "next_run": _next_scheduled(),
        "trend": trend,
        "days": days,
        "trend_days": dashboard_reads.TREND_DAYS,
        "audits": _recent_audits(cluster),
        "profile": cluster.profile,
        "profile_diff": profile_diff_from_baseline(cluster.profile),
        # Waived results of the nodes counted above: accepted, shown, not counted against readiness.
        "waived_results": CheckResult.objects.filter(
            node_audit_id__in=latest_node_audits, waived__isnull=False
        ).count(),
        # Waivers are read with their model's view permission, as in the API and the admin.
        "expiring": list(waivers_expiring(cluster=cluster)) if request.user.has_perm("checks.view_waiver") else None,
        "expiring_days": settings.PREFLIGHT_WAIVER_EXPIRING_DAYS,
    }
    context["verdict"] = cluster_verdict(
        servers=context["servers"],
        workers=context["workers"],
        latest=latest,
        reasons=why.headlines,
    )
    context["results"] = True
    return render(request, "checks/dashboard.html", context)


@login_required
@permission_required("inventory.view_cluster", raise_exception=True)
@permissions.requires(permissions.VIEW_RESULTS)
def check_detail(request, name: str, check_id: str):
    """One check across the cluster: the nodes whose latest result fails or warns, grouped by cause, the fix once."""
    cluster = _cluster(name)
    if check_id not in BY_ID:
        raise Http404("no such check")
    page = dashboard_reads.check_page(cluster, check_id)
    return render(request, "checks/check.html", {"cluster": cluster, "check": page})


@login_required
@require_POST
@permissions.requires(permissions.START_AUDIT)
def audit_now(request, name: str):
    cluster = _cluster(name)
    try:
        audit = audit_request(cluster=cluster, trigger=Trigger.UI, user=request.user)
    except AuditRefused as exc:  # includes AuditNotQueued: the broker is down
        messages.error(request, str(exc))
        return redirect("ui:dashboard", name=cluster.name)
    messages.success(request, f"Audit {audit.pk} started.")
    return redirect("ui:dashboard", name=cluster.name)


@login_required
@permissions.requires(permissions.VIEW_RESULTS)
def audit_page(request, audit_id: int):
    """One audit: its run state and result, readiness per role, the heatmap and the Why table of that audit, and
    links to its comparison with the audit before and its matrix. A fixed number of queries whatever its size."""
    audit = get_object_or_404(Audit.objects.select_related("cluster", "started_by"), pk=audit_id)
    nodes = dashboard_reads.audit_fleet(audit)
    found = dashboard_reads.problems(nodes.latest)
    previous = (
        Audit.objects.filter(cluster=audit.cluster, state=RunState.DONE, created__lt=audit.created)
        .order_by("-created")
        .only("pk")
        .first()
    )
    by_role = nodes.by_role()
    context = {
        "audit": audit,
        "cluster": audit.cluster,
        "previous": previous,
        "servers": by_role.get("server", {}),
        "workers": by_role.get("worker", {}),
        "why": dashboard_reads.why(nodes, found, matrix_audit=audit.pk if audit.network_state == "done" else None),
        "heatmap": dashboard_reads.heatmap(nodes, found),
        "heatmap_limit": dashboard_reads.HEATMAP_LIMIT,
        "node_count": len(nodes.nodes),
        "latest": audit,
    }
    return render(request, "checks/audit.html", context)


@login_required
@permissions.requires(permissions.VIEW_RESULTS)
def audit_progress(request, audit_id: int):
    """The live part of the dashboard: per-node states of one audit (htmx polls it while the audit runs)."""
    audit = get_object_or_404(Audit.objects.select_related("cluster"), pk=audit_id)
    node_audits = NodeAudit.objects.filter(audit=audit).select_related("node").order_by("node__role", "node__name")
    finished = sum(1 for na in node_audits if na.state in (RunState.DONE, RunState.ERROR))
    response = render(
        request,
        "checks/_progress.html",
        {"audit": audit, "node_audits": node_audits, "finished": finished, "total": len(node_audits)},
    )
    if audit.state in (RunState.DONE, RunState.ERROR):
        # The dashboard's cards, trend and recent audits listen for this and refresh themselves (htmx).
        response["HX-Trigger"] = "audit-finished"
    return response


def _moved_audit_cluster(cluster: Cluster, *audit_ids) -> Cluster | None:
    """The other cluster both audits belong to, when a link names this cluster but not its audits."""
    ids = [parse_id(a) for a in audit_ids]
    if None in ids:
        return None
    owners = set(Audit.objects.filter(pk__in=ids).values_list("cluster", flat=True))
    if len(owners) == 1 and cluster.pk not in owners:
        return Cluster.objects.get(pk=owners.pop())
    return None


def _audit_of(cluster: Cluster, audit_id) -> Audit:
    try:
        return Audit.objects.get(cluster=cluster, pk=parse_id(audit_id))
    except Audit.DoesNotExist:
        raise Http404("no such audit of this cluster") from None


@login_required
@permissions.requires(permissions.VIEW_RESULTS)
def audit_diff(request, name: str):
    """What changed between two audits: check statuses, devices and drivers, network paths."""
    cluster = _cluster(name)
    audits = list(Audit.objects.filter(cluster=cluster, state=RunState.DONE).order_by("-created")[:50])
    if request.GET.get("a") and request.GET.get("b"):
        moved = _moved_audit_cluster(cluster, request.GET["a"], request.GET["b"])
        if moved is not None:  # an old link (a node that changed cluster): follow the audits, never 404
            return redirect(f"{reverse('ui:diff', args=[moved.name])}?{request.GET.urlencode()}")
        old, new = _audit_of(cluster, request.GET["a"]), _audit_of(cluster, request.GET["b"])
    elif len(audits) >= 2:
        old, new = audits[1], audits[0]
    else:
        return render(request, "checks/diff.html", {"cluster": cluster, "audits": audits, "old": None})
    if old.created > new.created:
        old, new = new, old
    node_filter = request.GET.get("node") or None
    checks = check_diff(old=old, new=new, node=node_filter, page=request.GET.get("cpage"))

    hardware = inventory_diff(old=old, new=new, node=node_filter)

    paths = path_diff(
        old=old, new=new, node=node_filter, cause_page=request.GET.get("ppage"), path_page=request.GET.get("lpage")
    )
    query = request.GET.copy()
    for key in ("cpage", "ppage", "lpage"):
        query.pop(key, None)
    context = {
        "cluster": cluster,
        "audits": audits,
        "old": old,
        "new": new,
        "checks": checks,
        "hardware": hardware,
        "paths": paths,
        "node_filter": node_filter or "",
        "query": query.urlencode(),
    }
    return render(request, "checks/diff.html", context)


@login_required
@permissions.requires(permissions.VIEW_RESULTS)
def matrix(request, name: str):
    """One audit's connectivity: a per-node rollup (SQL, paged) at any size, the full grid up to GRID_LIMIT nodes,
    and one node's paths on request. Above FAILING_ONLY_ABOVE nodes only failing nodes are listed by default."""
    cluster = _cluster(name)
    audit = (
        _audit_of(cluster, request.GET["audit"])
        if request.GET.get("audit")
        else Audit.objects.filter(cluster=cluster, state=RunState.DONE, partial=False).order_by("-created").first()
    )
    if audit is None:
        return render(request, "checks/matrix.html", {"cluster": cluster, "audit": None})
    rollup, counts = matrix_rollup(audit)
    view = request.GET.get("view")
    if view not in ("failing", "all"):
        view = "failing" if len(rollup) > FAILING_ONLY_ABOVE else "all"
    failing_names = {r.name for r in rollup if r.at_fault}
    shown = [r for r in rollup if r.at_fault] if view == "failing" else rollup
    page = Paginator(collapse_rollup(shown), 50).get_page(request.GET.get("page"))
    focus = request.GET.get("node", "")
    focus_paths = None
    focus_pk = next((r.pk for r in rollup if r.name == focus), None)
    if focus:
        focus_paths = _paths_of(audit, focus_pk, request.GET.get("paths_page"))
    names, rows = [], []
    if len(rollup) <= GRID_LIMIT:
        names, rows = _grid(audit, failing_names if view == "failing" else None)
    query = request.GET.copy()
    for key in ("page", "paths_page"):
        query.pop(key, None)
    return render(
        request,
        "checks/matrix.html",
        {
            "cluster": cluster,
            "audit": audit,
            "names": names,
            "rows": rows,
            "grid_body": grid_html(names, rows) if rows else "",
            "grid_gaps": any(cell is None for _, row in rows for cell in row),
            "grid_statuses": {cell["status"] for _, row in rows for cell in row if cell is not None},
            "counts": counts,
            "view": view,
            "node_count": len(rollup),
            "failing_count": len(failing_names),
            "page": page,
            "focus": focus,
            "focus_paths": focus_paths,
            "grid_limit": GRID_LIMIT,
            "query": query.urlencode(),
            "coverage": peer_coverage(audit, cluster),
        },
    )


def _paths_of(audit: Audit, node_pk: int | None, page_number):
    """One page (100) of a node's paths in and out, worst first: two queries on the covering rollup indexes for the
    keys, one for the page's rows; never the OR of both sides sorted in SQL (slow at 250,000 paths)."""
    keys = []
    if node_pk is not None:
        for side in ("source_id", "destination_id"):
            keys += NetworkPath.objects.filter(audit=audit, **{side: node_pk}).values_list("pk", "status", "check_id")
    keys.sort(key=lambda k: (-SEVERITY.get(k[1], 1), k[2], k[0]))
    page = Paginator(keys, 100).get_page(page_number)
    wanted = [k[0] for k in page.object_list]
    found = NetworkPath.objects.filter(pk__in=wanted).select_related("source", "destination").in_bulk()
    page.object_list = [found[pk] for pk in wanted if pk in found]
    for path in page.object_list:
        path.detail = path_detail_text(path.summary)
    return page


@dataclass
class _GridPath:
    pk: int
    status: str
    outcomes: dict


def _grid(audit: Audit, only: set[str] | None):
    """Sources by destinations, each cell the worst of its paths with its failing ports (small clusters only).

    Reads plain values, not model instances (2,450 paths at 50 nodes), and port outcomes only of paths that did not
    pass: a passing path's title is "all ports connected" whatever it holds."""
    query = NetworkPath.objects.filter(audit=audit).order_by()
    rows_of = list(query.values_list("pk", "source_id", "destination_id", "status"))
    outcomes = dict(query.exclude(status="pass").values_list("pk", "outcomes"))
    node_ids = {r[1] for r in rows_of} | {r[2] for r in rows_of}
    nodes = {
        pk: (name, role) for pk, name, role in Node.objects.filter(pk__in=node_ids).values_list("pk", "name", "role")
    }
    servers = {name for name, role in nodes.values() if role == "server"}
    names = sorted((name for name, _ in nodes.values()), key=lambda n: (n not in servers, n))
    if only is not None:
        names = [n for n in names if n in only]
    path_url = reverse("ui:path", args=[0])
    head, tail = path_url[: path_url.rindex("0")], path_url[path_url.rindex("0") + 1 :]
    cells: dict[tuple[str, str], list[_GridPath]] = defaultdict(list)
    for pk, source_id, destination_id, status in rows_of:
        cells[(nodes[source_id][0], nodes[destination_id][0])].append(_GridPath(pk, status, outcomes.get(pk) or {}))
    rows = []
    for source in names:
        row = []
        for destination in names:
            group = cells.get((source, destination), [])
            if not group:
                row.append(None)
                continue
            status = max((p.status for p in group), key=lambda s: SEVERITY.get(s, 0))
            failing = [
                f"{port} {outcome[0]}"
                for p in group
                for port, outcome in sorted(p.outcomes.items())
                if outcome and outcome[0] != "connected"
            ]
            row.append(
                {
                    "status": status,
                    "destination": destination,
                    "title": "; ".join(failing[:40]) or "all ports connected",
                    # One reverse() for the whole grid: 2,500 cells at 50 nodes.
                    "link": f"{head}{next((p.pk for p in group if p.status == status), group[0].pk)}{tail}",
                }
            )
        rows.append((source, row))
    return names, rows


CELL_SYMBOL = {"pass": "✓", "warn": "!", "fail": "✗", "error": "⚠"}  # the icons of portal/states.py


def grid_html(names: list[str], rows: list) -> str:
    """The grid's table body as HTML, built here rather than in the template: at 50 nodes it has 2,500 cells and
    the template engine spent most of the page's time on them. Every name and port outcome is node- or
    operator-supplied text, so each goes through escape() (or conditional_escape) exactly once."""
    safe = {name: escape(name) for name in names}
    out = []
    for source, row in rows:
        cells = []
        for cell in row:
            if cell is None:
                cells.append('<td class="cell-none"></td>')
                continue
            status = escape(cell["status"])
            label = f"{safe[source]} to {safe[cell['destination']]}: {status}"
            title = ""
            if cell["status"] != "pass":
                title = f' title="{escape(cell["title"])}"'
                label += f" ({escape(cell['title'])})"
            symbol = CELL_SYMBOL.get(cell["status"], "?")
            link = escape(cell["link"])
            cells.append(f'<td class="cell-{status}"{title}><a href="{link}" aria-label="{label}">{symbol}</a></td>')
        out.append(f'<tr><th scope="row">{safe[source]}</th>{"".join(cells)}</tr>')
    return mark_safe("\n".join(out))  # noqa: S308 - every piece above is escaped


@login_required
@permissions.requires(permissions.VIEW_RESULTS)
def path_detail(request, path_id: int):
    path = get_object_or_404(NetworkPath.objects.select_related("source", "destination", "audit__cluster"), pk=path_id)
    ports = sorted(((int(port), outcome) for port, outcome in path.outcomes.items()), key=lambda item: item[0])
    return render(request, "checks/path.html", {"path": path, "ports": ports})


@login_required
@require_POST
@permission_required("inventory.view_node", raise_exception=True)
@permissions.requires(permissions.WAIVE_CHECK)
def node_waive(request, node_id: int):
    """The node page's "Waive": one check, on this node or its whole cluster, with a reason and an expiry date
    (00:00 UTC of that day). It applies from the next audit on; the page says so."""
    node = get_object_or_404(Node.objects.select_related("cluster"), pk=node_id)
    back = f"{reverse('ui:node_detail', args=[node.pk])}#waivers"
    try:
        day = date.fromisoformat(request.POST.get("expires", ""))
    except ValueError:
        messages.error(request, "Waiver not saved: the expiry must be a date (YYYY-MM-DD).")
        return redirect(back)
    try:
        waiver = waiver_create(
            user=request.user,
            cluster=node.cluster,
            node=None if request.POST.get("scope") == "cluster" else node,
            check_id=request.POST.get("check_id", ""),
            reason=request.POST.get("reason", ""),
            expires=datetime.combine(day, time.min, tzinfo=UTC),
        )
    except ValidationError as exc:
        problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        messages.error(request, f"Waiver not saved: {problems}")
        return redirect(back)
    where = "this node" if waiver.node_id else f"every node of {node.cluster.name}"
    messages.success(
        request,
        f"{waiver.check_id} is waived for {where} until {waiver.expires:%Y-%m-%d} UTC: it stops counting against "
        "readiness from the next audit on.",
    )
    return redirect(back)


@login_required
@sensitive_post_parameters("token")
@never_cache
@permission_required("inventory.view_cluster", raise_exception=True)
@permissions.requires(permissions.VIEW_RESULTS)
def install_plan(request, name: str):
    """The cluster's GPUStack install commands in order (server first), each node not ready marked with why. The
    registration token comes in a POST for this response only: it is never stored, logged or put in a URL."""
    cluster = _cluster(name)
    token = request.POST.get("token", "").strip()[:512] if request.method == "POST" else ""
    plan = cluster_install_plan(cluster=cluster, token=token)
    servers = [item.node for item in plan if item.node.role == "server"]
    context = {
        "cluster": cluster,
        "plan": plan,
        "image": image_ref(cluster.gpustack_image_tag),
        "server_url": server_url(cluster, servers),
        "token_used": bool(token),
    }
    return render(request, "checks/install_plan.html", context)
