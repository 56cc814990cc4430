"""Web UI pages of audits: clusters at a glance, the dashboard with live progress, diffs, matrix, trend."""

from __future__ import annotations

from collections import Counter, defaultdict

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_celery_beat.models import PeriodicTask

from inventory.filtersets import NOT_READY, READY
from inventory.models import Cluster, Node
from portal import permissions

from .catalog import SEVERITY
from .choices import RunState, Trigger
from .models import Audit, CheckResult, NetworkPath, NodeAudit
from .services import AuditRefused, audit_enqueue, audit_start


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
    return render(request, "checks/home.html", {"clusters": clusters})


def _latest_done(cluster: Cluster) -> Audit | None:
    return Audit.objects.filter(cluster=cluster, state=RunState.DONE).order_by("-created").first()


def _readiness_by_role(cluster: Cluster, *, look_back: int = 10) -> tuple[dict[str, dict[str, int]], list[int]]:
    """Ready / not ready per role, each node counted by its status in its latest finished audit (the worst of its
    own results), and the ids of those node audits. Walks the cluster's finished audits newest first until every
    node is found (one query for the usual full audit); a node in none of the last `look_back` falls back to its
    recorded status."""
    nodes = dict(Node.objects.filter(cluster=cluster).values_list("pk", "role"))
    status: dict[int, str] = {}
    ids: list[int] = []
    audits = (
        Audit.objects.filter(cluster=cluster, state=RunState.DONE).order_by("-created").values_list("pk", flat=True)
    )
    for audit_id in audits[:look_back]:
        for node_id, node_audit_id, node_status in NodeAudit.objects.filter(
            audit_id=audit_id, finished__isnull=False
        ).values_list("node_id", "pk", "status"):
            if node_id in nodes and node_id not in status:
                status[node_id] = node_status
                ids.append(node_audit_id)
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
    return by_role, ids


@login_required
@permission_required("inventory.view_cluster", raise_exception=True)
def dashboard(request, name: str):
    cluster = _cluster(name)
    by_role, latest_node_audits = _readiness_by_role(cluster)
    latest = _latest_done(cluster)
    # Per check id, the nodes whose own result in their latest finished audit is fail or error (the same rule as
    # the node list's failing_check filter these rows link to).
    top_failing = list(
        CheckResult.objects.filter(node_audit_id__in=latest_node_audits, status__in=["fail", "error"])
        .values("check_id")
        .annotate(nodes=Count("node_audit__node", distinct=True))
        .order_by("-nodes", "check_id")[:10]
    )
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
    }
    if not permissions.allowed(request.user, permissions.VIEW_RESULTS):  # results need checks.view_audit
        context.update(latest=None, top_failing=[], trend=[], audits=[], running=None)
    return render(request, "checks/dashboard.html", context)


@login_required
@require_POST
@permissions.requires(permissions.START_AUDIT)
def audit_now(request, name: str):
    cluster = _cluster(name)
    try:
        audit = audit_start(cluster=cluster, trigger=Trigger.UI, user=request.user)
        audit_enqueue(audit)
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
    return render(
        request,
        "checks/_progress.html",
        {"audit": audit, "node_audits": node_audits, "finished": finished, "total": len(node_audits)},
    )


def _audit_of(cluster: Cluster, audit_id) -> Audit:
    try:
        return Audit.objects.get(cluster=cluster, pk=int(audit_id))
    except (Audit.DoesNotExist, TypeError, ValueError):
        raise Http404("no such audit of this cluster") from None


@login_required
@permissions.requires(permissions.VIEW_RESULTS)
def audit_diff(request, name: str):
    """What changed between two audits: check statuses, devices and drivers, network paths."""
    cluster = _cluster(name)
    audits = list(Audit.objects.filter(cluster=cluster, state=RunState.DONE).order_by("-created")[:50])
    if request.GET.get("a") and request.GET.get("b"):
        old, new = _audit_of(cluster, request.GET["a"]), _audit_of(cluster, request.GET["b"])
    elif len(audits) >= 2:
        old, new = audits[1], audits[0]
    else:
        return render(request, "checks/diff.html", {"cluster": cluster, "audits": audits, "old": None})
    if old.created > new.created:
        old, new = new, old
    node_filter = request.GET.get("node")

    def results(audit):
        query = CheckResult.objects.filter(node_audit__audit=audit).select_related("node_audit__node")
        if node_filter:
            query = query.filter(node_audit__node__name=node_filter)
        return {(r.node_audit.node.name, r.check_id): r for r in query}

    before, after = results(old), results(new)
    changed = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if (a.status if a else None) != (b.status if b else None):
            changed.append(
                {
                    "node": key[0],
                    "check": key[1],
                    "before": a.status if a else "absent",
                    "after": b.status if b else "absent",
                    "summary": (b or a).summary,
                    "worse": SEVERITY.get(b.status if b else "pass", 0) > SEVERITY.get(a.status if a else "pass", 0),
                }
            )

    def inventory(audit):
        devices, drivers = set(), set()
        for na in NodeAudit.objects.filter(audit=audit).select_related("node"):
            if node_filter and na.node.name != node_filter:
                continue
            facts = na.facts or {}
            for device in facts.get("accelerators", []):
                devices.add((na.node.name, f"{device.get('vendor')}[{device.get('index')}] {device.get('model')}"))
            for vendor, info in (facts.get("drivers") or {}).items():
                drivers.add((na.node.name, f"{vendor} driver {info.get('driver_version', '')}".strip()))
                if info.get("toolkit"):
                    drivers.add((na.node.name, f"{vendor} toolkit {' '.join(info['toolkit'])}"))
            if facts.get("docker") and facts["docker"].get("server_version"):
                drivers.add((na.node.name, f"Docker {facts['docker']['server_version']}"))
                for runtime in facts["docker"].get("runtimes", []):
                    drivers.add((na.node.name, f"docker runtime {runtime}"))
        return devices, drivers

    old_devices, old_drivers = inventory(old)
    new_devices, new_drivers = inventory(new)

    def paths(audit):
        return {
            (p.check_id, p.source.name, p.destination.name): p
            for p in NetworkPath.objects.filter(audit=audit).select_related("source", "destination")
        }

    old_paths, new_paths = paths(old), paths(new)
    path_changes = [
        {
            "check": key[0],
            "source": key[1],
            "destination": key[2],
            "before": old_paths[key].status,
            "after": new_paths[key].status,
            "summary": new_paths[key].summary,
            "closed": new_paths[key].status in ("fail", "error") and old_paths[key].status not in ("fail", "error"),
        }
        for key in sorted(set(old_paths) & set(new_paths))
        if old_paths[key].status != new_paths[key].status
    ]
    context = {
        "cluster": cluster,
        "audits": audits,
        "old": old,
        "new": new,
        "changed": changed,
        "devices_gone": sorted(old_devices - new_devices),
        "devices_new": sorted(new_devices - old_devices),
        "drivers_gone": sorted(old_drivers - new_drivers),
        "drivers_new": sorted(new_drivers - old_drivers),
        "path_changes": path_changes,
        "node_filter": node_filter or "",
    }
    return render(request, "checks/diff.html", context)


@login_required
@permissions.requires(permissions.VIEW_RESULTS)
def matrix(request, name: str):
    """Sources by destinations for one audit, each cell the worst of its paths, failing ports on hover."""
    cluster = _cluster(name)
    audit = (
        _audit_of(cluster, request.GET["audit"])
        if request.GET.get("audit")
        else Audit.objects.filter(cluster=cluster, state=RunState.DONE, partial=False).order_by("-created").first()
    )
    if audit is None:
        return render(request, "checks/matrix.html", {"cluster": cluster, "audit": None})
    paths = list(NetworkPath.objects.filter(audit=audit).select_related("source", "destination"))
    names = sorted(
        {p.source.name for p in paths} | {p.destination.name for p in paths},
        key=lambda n: (n != _server_name(paths), n),
    )
    cells: dict[tuple[str, str], list[NetworkPath]] = defaultdict(list)
    for path in paths:
        cells[(path.source.name, path.destination.name)].append(path)
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
                    "paths": group,
                    "title": "; ".join(failing[:40]) or "all ports connected",
                    "link": group[0].pk
                    if len(group) == 1
                    else next((p.pk for p in group if p.status == status), group[0].pk),
                }
            )
        rows.append((source, row))
    counts = Counter(p.status for p in paths)
    return render(
        request,
        "checks/matrix.html",
        {"cluster": cluster, "audit": audit, "names": names, "rows": rows, "counts": dict(counts)},
    )


def _server_name(paths) -> str:
    return next((p.source.name for p in paths if p.source.role == "server"), "")


@login_required
@permissions.requires(permissions.VIEW_RESULTS)
def path_detail(request, path_id: int):
    path = get_object_or_404(NetworkPath.objects.select_related("source", "destination", "audit__cluster"), pk=path_id)
    ports = sorted(((int(port), outcome) for port, outcome in path.outcomes.items()), key=lambda item: item[0])
    return render(request, "checks/path.html", {"path": path, "ports": ports})
