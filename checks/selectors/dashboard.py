"""Reads of the dashboard and the per-check page (issue 25): every node's readiness from its latest finished audit,
the fleet heatmap, the Why table (host checks, network causes, warnings), the trend and one check across the fleet.

Each read is a fixed number of queries whatever the number of nodes: one for the nodes, one per finished audit
walked (usually one), one for the problems of the nodes' latest results, two grouped ones for the matrix."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import BooleanField, Count, ExpressionWrapper, Q
from django.utils import timezone

from inventory.models import Cluster, Node
from portal import states
from portal.states import Status

from ..catalog import BY_ID, NETWORK_CHECK_IDS, SEVERITY
from ..choices import RunState
from ..models import Audit, CheckResult, NetworkPath, NodeAudit
from .diff import NodeRef, cause_of
from .pages import NOT_CHECKED

# Whether Preflight itself ended a node audit (portal_error set), read as a boolean: not the text of each row.
PORTAL_FAULT = ExpressionWrapper(~Q(portal_error=""), output_field=BooleanField())
HEATMAP_LIMIT = 3000  # cells drawn; above it the groups show their counts only
CAUSE_CHARS = 60  # of a cause in a cell's hover text (3,000 cells: the page stays small)
BLOCKED_NAMED = 3  # a network check blocked into at most this many nodes gets one row per node
TREND_DAYS = (7, 30, 90)
PROBLEMS = ("warn", "fail", "error")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


@dataclass
class FleetNode:
    pk: int
    name: str
    address: str
    role: str
    group: str
    status: str  # the worst status of its latest finished node audit (or its recorded one)
    reached: bool | None = None  # whether that audit reached it over SSH
    portal_error: bool = False  # Preflight itself lost that run (no verdict on the node)

    @property
    def state(self) -> Status:
        return states.node_state(self.status, self.reached, portal_fault=self.portal_error)


@dataclass
class Fleet:
    nodes: dict[int, FleetNode]
    latest: list[int]  # ids of the node audits the states come from

    def by_role(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for node in self.nodes.values():
            row = counts.setdefault(node.role, {"total": 0, "ready": 0, "failing": 0})
            row["total"] += 1
            row["ready"] += node.state is states.READY
            row["failing"] += node.state in (states.NOT_READY, states.UNREACHABLE)
        return counts


def fleet(cluster: Cluster, *, look_back: int = 10) -> Fleet:
    """Each node counted by its status in its latest finished audit. Walks the cluster's finished audits newest first
    until every node is found (one query for the usual full audit); a node in none of the last `look_back` keeps its
    recorded status."""
    nodes = {
        pk: FleetNode(pk, name, address, role, group, status, reached)
        for pk, name, address, role, group, status, reached in Node.objects.filter(cluster=cluster)
        .order_by()
        .values_list("pk", "name", "address", "role", "network_group", "last_audit_status", "last_reached")
    }
    found: set[int] = set()
    latest: list[int] = []
    audits = Audit.objects.filter(cluster=cluster, state=RunState.DONE).order_by("-created")
    for audit_id in audits.values_list("pk", flat=True)[:look_back]:
        rows = NodeAudit.objects.filter(audit_id=audit_id, finished__isnull=False)
        rows = rows.values_list("node_id", "pk", "status", "reached", PORTAL_FAULT)
        for node_id, node_audit_id, status, reached, portal_error in rows:
            if node_id in nodes and node_id not in found:
                found.add(node_id)
                node = nodes[node_id]
                node.status, node.reached, node.portal_error = status, reached, portal_error
                latest.append(node_audit_id)
        if len(found) == len(nodes):
            break
    return Fleet(nodes=nodes, latest=latest)


def audit_fleet(audit: Audit) -> Fleet:
    """The nodes one audit covered, each with its status in that audit (unfinished ones not audited). One query."""
    rows = (
        NodeAudit.objects.filter(audit=audit)
        .order_by()
        .values_list(
            "node_id",
            "node__name",
            "node__address",
            "node__role",
            "node__network_group",
            "status",
            "pk",
            "reached",
            PORTAL_FAULT,
        )
    )
    nodes, latest = {}, []
    for node_id, name, address, role, group, status, node_audit_id, reached, portal_error in rows:
        nodes[node_id] = FleetNode(node_id, name, address, role, group, status, reached, portal_error)
        latest.append(node_audit_id)
    return Fleet(nodes=nodes, latest=latest)


@dataclass
class Problem:
    node: int
    check_id: str
    status: str
    summary: str


def problems(latest: list[int]) -> list[Problem]:
    """Warnings, failures and errors of the given node audits, not waived; the "not checked" rows of a node that could
    not be reached are left out (its ssh.connect row says why, once). One query."""
    rows = (
        CheckResult.objects.filter(node_audit_id__in=latest, status__in=PROBLEMS, waived__isnull=True)
        .exclude(summary__startswith=NOT_CHECKED)
        .order_by()
        .values_list("node_audit__node_id", "check_id", "status", "summary")
    )
    return [Problem(*row) for row in rows]


# The heatmap: one cell per node, grouped by role and network group.
@dataclass
class Cell:
    pk: int
    name: str
    state: Status
    cause: str

    @property
    def title(self) -> str:
        return f"{self.name} · {self.state.label}" + (f" · {self.cause}" if self.cause else "")


@dataclass
class HeatGroup:
    role: str
    group: str
    cells: list[Cell] = field(default_factory=list)
    total: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # state label -> nodes

    @property
    def label(self) -> str:
        role = {"server": "Servers", "worker": "Workers"}.get(self.role, self.role)
        return f"{role} · {self.group}" if self.group else role

    @property
    def summary(self) -> list[tuple[Status, str]]:
        """(a state, "N Label") per state present, worst first (the node_state tag takes the state as it is)."""
        order = (states.NOT_READY, states.UNREACHABLE, states.NOT_AUDITED, states.READY)
        return [(s, f"{self.counts[s.label]:,} {s.label}") for s in order if self.counts[s.label]]


def heatmap(fleet: Fleet, found: list[Problem], *, limit: int = HEATMAP_LIMIT) -> list[HeatGroup]:
    """Servers first, then workers, each by network group then name; a cell's cause is its worst problem."""
    worst: dict[int, Problem] = {}
    for p in found:
        if p.node not in worst or SEVERITY.get(p.status, 0) > SEVERITY.get(worst[p.node].status, 0):
            worst[p.node] = p
    groups: dict[tuple[str, str], HeatGroup] = {}
    drawn = 0
    ordered = sorted(fleet.nodes.values(), key=lambda n: (n.role != "server", n.role, n.group, n.name))
    for node in ordered:
        group = groups.setdefault((node.role, node.group), HeatGroup(node.role, node.group))
        group.total += 1
        group.counts[node.state.label] += 1
        if drawn >= limit:
            continue
        drawn += 1
        cause = ""
        if node.pk in worst:
            p = worst[node.pk]
            cause = f"{p.check_id}: {p.summary}"
            cause = cause if len(cause) <= CAUSE_CHARS else cause[: CAUSE_CHARS - 1] + "…"
        group.cells.append(Cell(node.pk, node.name, node.state, cause))
    return list(groups.values())


# The Why table: host checks, then network causes, then warnings; each row counts nodes.
@dataclass
class WhyRow:
    kind: str  # "check", "path" (a network cause) or "warning"
    check_id: str
    status: Status
    nodes: int
    cause: str  # what it is, in words: the most common summary, or where paths are blocked
    headline: str  # the words of the dashboard's verdict sentence
    node: NodeRef | None = None  # the node paths are blocked at, when there is one


def _common(texts: list[str]) -> tuple[str, int]:
    """The most common text and how many distinct ones there are."""
    counted = Counter(texts)
    return counted.most_common(1)[0][0], len(counted)


def _host_rows(fleet: Fleet, found: list[Problem], statuses: tuple[str, ...], kind: str) -> list[WhyRow]:
    by_check: dict[str, dict[int, Problem]] = defaultdict(dict)
    for p in found:
        if p.status in statuses and p.check_id not in NETWORK_CHECK_IDS:
            kept = by_check[p.check_id].get(p.node)
            if kept is None or SEVERITY.get(p.status, 0) > SEVERITY.get(kept.status, 0):
                by_check[p.check_id][p.node] = p
    rows = []
    for check_id, per_node in by_check.items():
        node = fleet.nodes
        texts = [cause_of(p.summary, name=node[p.node].name, address=node[p.node].address) for p in per_node.values()]
        text, distinct = _common(texts)
        if distinct > 1:
            text = f"{text} (and {distinct - 1} other cause{'' if distinct == 2 else 's'})"
        worst = max((p.status for p in per_node.values()), key=lambda s: SEVERITY.get(s, 0))
        n = len(per_node)
        headline = f"{check_id} ({_plural(n, 'node')})" if kind == "check" else f"{check_id} warns on {n:,}"
        rows.append(WhyRow(kind, check_id, states.check_status(worst), n, text, headline))
    rows.sort(key=lambda r: (-r.status.severity, -r.nodes, r.check_id))
    return rows


def _path_rows(fleet: Fleet, audit_id: int) -> list[WhyRow]:
    """Network causes of one audit's matrix: paths blocked at a node (counted in the nodes whose paths it blocks), or
    blocked into many nodes (counted in those nodes), and nodes that could not test their paths. Two grouped
    queries on the path table."""
    blocked: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for check_id, destination, sources in (
        NetworkPath.objects.filter(audit_id=audit_id, status="fail")
        .order_by()
        .values_list("check_id", "destination_id")
        .annotate(sources=Count("pk"))  # one path per (check, source, destination): paths are the sources
    ):
        blocked[check_id].append((destination, sources))
    rows = []
    fail = states.check_status("fail")
    for check_id, at in blocked.items():
        at.sort(key=lambda a: (-a[1], fleet.nodes[a[0]].name if a[0] in fleet.nodes else ""))
        named = [(NodeRef(d, fleet.nodes[d].name if d in fleet.nodes else "?"), n) for d, n in at]
        if len(named) <= BLOCKED_NAMED:
            for ref, n in named:
                cause = f"paths blocked at {ref.name}"
                rows.append(WhyRow("path", check_id, fail, n, cause, f"{cause}: {_plural(n, 'node')}", ref))
        else:
            listed = ", ".join(ref.name for ref, _ in named[:BLOCKED_NAMED])
            into = f"paths blocked into {_plural(len(named), 'node')}"
            cause = f"{into}: {listed} and {len(named) - BLOCKED_NAMED:,} more"
            rows.append(WhyRow("path", check_id, fail, len(named), cause, into))
    for check_id, status, sources in (
        NetworkPath.objects.filter(audit_id=audit_id, status__in=["error", "warn"])
        .order_by()
        .values_list("check_id", "status")
        .annotate(sources=Count("source_id", distinct=True))
    ):
        if status == "error":
            cause = "could not test their paths (not reached, or no prober)"
            rows.append(WhyRow("path", check_id, states.check_status("error"), sources, cause, ""))
        else:
            cause = "paths refused, but not proof of a block"
            rows.append(WhyRow("warning", check_id, states.check_status("warn"), sources, cause, ""))
    return rows


@dataclass
class Why:
    failing: list[WhyRow]  # host checks and network causes, most nodes first
    warnings: list[WhyRow]

    @property
    def headlines(self) -> list[str]:
        """The verdict's reasons: each cause once, most nodes first."""
        seen: list[str] = []
        for row in self.failing:
            if row.headline and row.headline not in seen:
                seen.append(row.headline)
        return seen


def why(fleet: Fleet, found: list[Problem], *, matrix_audit: int | None) -> Why:
    paths = _path_rows(fleet, matrix_audit) if matrix_audit else []
    failing = _host_rows(fleet, found, ("fail", "error"), "check") + [r for r in paths if r.kind == "path"]
    failing.sort(key=lambda r: (-r.nodes, -r.status.severity, r.check_id))
    warnings = _host_rows(fleet, found, ("warn",), "warning") + [r for r in paths if r.kind == "warning"]
    return Why(failing=failing, warnings=warnings)


def trend(cluster: Cluster, *, days: int) -> list[dict]:
    """Ready and audited nodes per full finished audit of the last `days` days, oldest first. One query."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        Audit.objects.filter(cluster=cluster, state=RunState.DONE, partial=False, created__gte=since)
        .order_by("-created")
        .annotate(
            ready=Count("node_audits", filter=Q(node_audits__status__in=["pass", "warn"])), total=Count("node_audits")
        )
        .values("pk", "created", "ready", "total")[:200]
    )
    return [
        {"audit": r["pk"], "at": r["created"].strftime("%Y-%m-%d %H:%M"), "ready": r["ready"], "total": r["total"]}
        for r in reversed(list(rows))
    ]


# One check across the fleet.
@dataclass
class CheckGroup:
    status: Status
    cause: str
    remediation: str
    commands: list[str]
    nodes: list[NodeRef] = field(default_factory=list)
    paths: int = 0  # network checks: failing paths of this group


@dataclass
class CheckPage:
    check_id: str
    title: str
    network: bool
    groups: list[CheckGroup]
    affected: int  # nodes in the groups
    passing: int  # nodes whose latest result passes
    common_fix: str  # the remediation most groups share, shown once
    common_commands: list[str]
    audit: int | None  # the matrix audit a network check's groups come from
    not_checked: list[NodeRef] = field(default_factory=list)  # not reached: ssh.connect says why


def check_page(cluster: Cluster, check_id: str, *, look_back: int = 10) -> CheckPage:
    """The nodes whose latest result of `check_id` is not a pass, grouped by status and cause (host checks), or the
    paths of the latest matrix that fail it grouped by the node they are blocked at (network checks)."""
    spec = BY_ID[check_id]
    found = fleet(cluster, look_back=look_back)
    network = check_id in NETWORK_CHECK_IDS
    groups: dict[tuple[str, str], CheckGroup] = {}
    audit_id = None
    passing = 0
    not_checked: list[NodeRef] = []
    if network:
        audit_id = (
            Audit.objects.filter(cluster=cluster, state=RunState.DONE, network_state="done")
            .order_by("-created")
            .values_list("pk", flat=True)
            .first()
        )
        paths = NetworkPath.objects.filter(audit_id=audit_id, check_id=check_id).order_by()
        # a failing (or warning) path is blocked at its destination; a path in error was not tested from its source
        grouped = [
            *paths.filter(status__in=["fail", "warn"]).values_list("status", "destination_id").annotate(n=Count("pk")),
            *paths.filter(status="error").values_list("status", "source_id").annotate(n=Count("pk")),
        ]
        for status, blamed, n in grouped:
            ends = n  # one path per (check, source, destination): as many nodes at the other end as paths
            node = found.nodes.get(blamed)
            name = node.name if node else "?"
            where = "not tested from" if status == "error" else "blocked at"
            cause = f"{where} {name}: {_plural(ends, 'node')} affected"
            group = CheckGroup(states.check_status(status), cause, "", [], [NodeRef(blamed, name)], paths=n)
            groups[(status, cause)] = group
        fix = paths.filter(status="fail").exclude(remediation="").values_list("remediation", "commands").first()
        passing = NetworkPath.objects.filter(audit_id=audit_id, check_id=check_id, status="pass").count()
        common_fix, common_commands = (fix[0], list(fix[1] or [])) if fix else ("", [])
    else:
        rows = (
            CheckResult.objects.filter(node_audit_id__in=found.latest, check_id=check_id)
            .order_by()
            .values_list("node_audit__node_id", "status", "summary", "remediation", "commands", "waived")
        )
        fixes: Counter[str] = Counter()
        commands_of: dict[str, list[str]] = {}
        for node_id, status, summary, remediation, commands, waived in rows:
            if status in ("pass", "skip") or waived is not None:
                passing += status in ("pass", "skip")
                continue
            node = found.nodes[node_id]
            if summary.startswith(NOT_CHECKED):
                not_checked.append(NodeRef(node_id, node.name))
                continue
            cause = cause_of(summary, name=node.name, address=node.address)
            group = groups.setdefault((status, cause), CheckGroup(states.check_status(status), cause, remediation, []))
            group.commands = group.commands or list(commands or [])
            group.nodes.append(NodeRef(node_id, node.name))
            if remediation:
                fixes[remediation] += 1
                commands_of.setdefault(remediation, list(commands or []))
        common_fix = fixes.most_common(1)[0][0] if fixes else ""
        common_commands = commands_of.get(common_fix, [])
    ordered = sorted(groups.values(), key=lambda g: (-g.status.severity, -len(g.nodes) - g.paths, g.cause))
    for group in ordered:
        group.nodes.sort(key=lambda n: n.name)
    affected = sum(len(g.nodes) for g in ordered) if not network else len(ordered)
    return CheckPage(
        check_id=check_id,
        title=spec.title,
        network=network,
        groups=ordered,
        affected=affected,
        passing=passing,
        common_fix=common_fix,
        common_commands=common_commands,
        audit=audit_id,
        not_checked=sorted(not_checked, key=lambda n: n.name),
    )
