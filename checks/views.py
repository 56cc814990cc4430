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
from django.db.models import Count, Max, Q
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

from inventory.filtersets import NOT_READY, READY
from inventory.models import Cluster, Node
from inventory.profile_diff import profile_diff_from_baseline
from portal import permissions
from portal.ids import parse_id

from .catalog import SEVERITY
from .choices import RunState, Trigger
from .install import image_ref
from .install_plan import cluster_install_plan, server_url
from .models import Audit, CheckResult, NetworkPath, NodeAudit
from .selectors.diff import check_diff, path_diff
from .selectors.pages import (
    FAILING_ONLY_ABOVE,
    GRID_LIMIT,
    NOT_CHECKED,
    cluster_verdict,
    home_status,
    matrix_rollup,
    peer_coverage,
    severity_case,
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
            nodes_ready=Count("nodes", filter=Q(nodes__last_audit_status__in=READY)),
            nodes_failing=Count("nodes", filter=Q(nodes__last_audit_status__in=NOT_READY)),
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


def _readiness_by_role(cluster: Cluster, *, look_back: int = 10):
    """Ready / not ready per role, each node counted by its status in its latest finished audit (the worst of its
    own results), and those node audits: their ids, or, when they are every finished node audit of one audit (the
    usual full audit), a subquery for them, so that the queries filtering by them do not send 3,000 ids as
    parameters (about 25 ms each at 3,000 nodes). Walks the cluster's finished audits newest first until every
    node is found (one query for the usual full audit); a node in none of the last `look_back` falls back to its
    recorded status."""
    nodes = dict(Node.objects.filter(cluster=cluster).values_list("pk", "role"))
    status: dict[int, str] = {}
    ids: list[int] = []
    audits = (
        Audit.objects.filter(cluster=cluster, state=RunState.DONE).order_by("-created").values_list("pk", flat=True)
    )
    whole_audits = []  # audits every finished node audit of which was taken
    for audit_id in audits[:look_back]:
        rows = NodeAudit.objects.filter(audit_id=audit_id, finished__isnull=False)
        taken = 0
        found = rows.values_list("node_id", "pk", "status")
        for node_id, node_audit_id, node_status in found:
            if node_id in nodes and node_id not in status:
                status[node_id] = node_status
                ids.append(node_audit_id)
                taken += 1
        whole_audits.append((rows, taken == len(found)))
        if len(status) == len(nodes):
            break
    if len(status) < len(nodes):
        missing = Node.objects.filter(cluster=cluster).exclude(pk__in=status).values_list("pk", "last_audit_status")
        status.update(missing)
    by_role: dict[str, dict[str, int]] = {}
    for node_id, role in nodes.items():
        counts = by_role.setdefault(role, {"total": 0, "ready": 0, "failing": 0})
        counts["total"] += 1
        counts["ready"] += status[node_id] in READY
        counts["failing"] += status[node_id] in NOT_READY
    if len(whole_audits) == 1 and whole_audits[0][1] and ids:
        return by_role, whole_audits[0][0].values("pk")
    return by_role, ids


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
    by_role, latest_node_audits = _readiness_by_role(cluster)
    latest = _latest_done(cluster)
    # Per check id, the nodes whose own result in their latest finished audit is fail or error (the same rule as
    # the node list's failing_check filter these rows link to), worst first. "not checked" rows repeat why a node
    # could not be reached (ssh.connect says it once): not a cause.
    top_failing = list(
        CheckResult.objects.filter(
            node_audit_id__in=latest_node_audits, status__in=["fail", "error"], waived__isnull=True
        )
        .exclude(summary__startswith=NOT_CHECKED)
        .values("check_id")
        .annotate(nodes=Count("node_audit__node", distinct=True), worst=Max(severity_case()))
        .order_by("-worst", "-nodes", "check_id")[:10]
    )
    blocked_paths = []
    if latest is not None:
        # Grouped by id on the covering index (audit, destination, status); the name is looked up for one row.
        blocked = list(
            NetworkPath.objects.filter(audit=latest, status="fail")
            .values("destination_id")
            .annotate(paths=Count("pk"))
            .order_by("-paths", "destination_id")[:1]
        )
        blocked_paths = [
            {"node": Node.objects.get(pk=row["destination_id"]).name, "paths": row["paths"]} for row in blocked
        ]
    running = Audit.objects.filter(cluster=cluster, state__in=[RunState.QUEUED, RunState.RUNNING]).first()
    trend = list(
        Audit.objects.filter(cluster=cluster, state=RunState.DONE, partial=False)
        .order_by("-created")
        .annotate(ready=Count("node_audits", filter=Q(node_audits__status__in=READY)), total=Count("node_audits"))
        .values("pk", "created", "ready", "total")[:60]
    )[::-1]
    context = {
        "cluster": cluster,
        "servers": by_role.get("server", {}),
        "workers": by_role.get("worker", {}),
        "latest": latest,
        "top_failing": top_failing,
        "running": running,
        "next_run": _next_scheduled(),
        "trend": [
            {"audit": t["pk"], "at": t["created"].strftime("%Y-%m-%d %H:%M"), "ready": t["ready"], "total": t["total"]}
            for t in trend
        ],
        "audits": Audit.objects.filter(cluster=cluster).order_by("-created")[:20],
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
        top_failing=top_failing,
        blocked_paths=blocked_paths,
    )
    context["results"] = True
    return render(request, "checks/dashboard.html", context)


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

    def inventory(audit):
        devices, drivers = set(), set()
        rows = NodeAudit.objects.filter(audit=audit)
        if node_filter:
            rows = rows.filter(node__name=node_filter)
        for name, facts in rows.values_list("node__name", "facts"):
            facts = facts or {}
            for device in facts.get("accelerators", []):
                devices.add((name, f"{device.get('vendor')}[{device.get('index')}] {device.get('model')}"))
            for vendor, info in (facts.get("drivers") or {}).items():
                drivers.add((name, f"{vendor} driver {info.get('driver_version', '')}".strip()))
                if info.get("toolkit"):
                    drivers.add((name, f"{vendor} toolkit {' '.join(info['toolkit'])}"))
            if facts.get("docker") and facts["docker"].get("server_version"):
                drivers.add((name, f"Docker {facts['docker']['server_version']}"))
                for runtime in facts["docker"].get("runtimes", []):
                    drivers.add((name, f"docker runtime {runtime}"))
        return devices, drivers

    old_devices, old_drivers = inventory(old)
    new_devices, new_drivers = inventory(new)

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
        "devices_gone": sorted(old_devices - new_devices),
        "devices_new": sorted(new_devices - old_devices),
        "drivers_gone": sorted(old_drivers - new_drivers),
        "drivers_new": sorted(new_drivers - old_drivers),
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
    page = Paginator(shown, 50).get_page(request.GET.get("page"))
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


CELL_SYMBOL = {"pass": "✓", "warn": "!", "fail": "✗"}


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
