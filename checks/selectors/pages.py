"""Reads shaped for the web pages: what a node page summarises, how statuses rank, how the matrix rolls up."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..catalog import worst
from ..choices import NetworkState

# Worst first: the order an operator wants to read statuses in (node list sort, summaries, matrix rollup).
SEVERITY_ORDER = ["error", "fail", "warn", "pass", "skip", "unknown"]
RANK = {status: i for i, status in enumerate(SEVERITY_ORDER)}
BAD = ("fail", "error")

NOT_CHECKED = "not checked: "
_DOUBLED = re.compile(r"^(?P<p>[^:]{2,60}): (?P=p)(?=:|\b)", re.IGNORECASE)


def undouble(summary: str) -> str:
    """ "host key changed: host key changed: ..." -> "host key changed: ..." (audits recorded before the fix)."""
    return _DOUBLED.sub(r"\g<p>", summary or "", count=1)


@dataclass
class NodeSummary:
    """The top of a node page: whether the probe ran at all, and what fails and why."""

    unreachable: object | None = None  # the ssh.connect result when the node could not be reached
    not_run_reason: str = ""  # why the host checks did not run (one line instead of one per check)
    not_run_count: int = 0
    problems: list = field(default_factory=list)  # failing and erroring checks, worst first
    warnings: list = field(default_factory=list)
    shown: list = field(default_factory=list)  # results to list per check (the "not checked" ones folded away)
    waived: list = field(default_factory=list)  # non-passing results a waiver accepts: shown, not counted

    @property
    def verdict(self) -> str:
        if self.unreachable is not None:
            return "error"
        if self.not_run_count:
            return "error"
        if self.problems:
            return worst(r.status for r in self.problems)
        return "warn" if self.warnings else "pass"


def node_summary(results: list) -> NodeSummary:
    """Fold the results of one node audit into a summary; every summary loses a doubled prefix on the way."""
    summary = NodeSummary()
    for result in results:
        result.summary = undouble(result.summary)
    not_run = [r for r in results if r.status == "error" and r.summary.startswith(NOT_CHECKED)]
    connect = next((r for r in results if r.check_id == "ssh.connect"), None)
    if connect is not None and connect.status in BAD:
        summary.unreachable = connect
    if not_run:
        summary.not_run_count = len(not_run)
        summary.not_run_reason = undouble(not_run[0].summary[len(NOT_CHECKED) :])
    folded = {id(r) for r in not_run}
    if summary.unreachable is not None:
        folded.add(id(summary.unreachable))
    summary.shown = [r for r in results if id(r) not in folded]
    summary.waived = [r for r in summary.shown if getattr(r, "waived", None)]
    counted = [r for r in summary.shown if not getattr(r, "waived", None)]
    summary.problems = sorted((r for r in counted if r.status in BAD), key=lambda r: (RANK[r.status], r.position))
    summary.warnings = [r for r in counted if r.status == "warn"]
    return summary


# The matrix: a grid of cells for small clusters, a per-node rollup computed in SQL for any size.
GRID_LIMIT = 50
FAILING_ONLY_ABOVE = 50
_WORST = {4: "error", 3: "fail", 2: "warn", 1: "unknown", 0: "pass"}
_RANK_OF = {"error": 4, "fail": 3, "warn": 2, "pass": 0, "skip": 0}


def severity_case():
    from django.db.models import Case, IntegerField, Value, When

    return Case(
        When(status="error", then=Value(4)),
        When(status="fail", then=Value(3)),
        When(status="warn", then=Value(2)),
        When(status__in=["pass", "skip"], then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )


@dataclass
class NodeRollup:
    pk: int
    name: str
    role: str
    out_total: int = 0
    out_failing: int = 0
    in_total: int = 0
    in_failing: int = 0
    worst_rank: int = 0  # of the paths this node is answerable for (see matrix_rollup)
    blocked_in: int = 0  # paths into this node that failed: its ports are blocked or closed
    untested_out: int = 0  # paths from this node in error: it could not probe (unreachable, no prober)

    @property
    def failing(self) -> int:
        return self.out_failing + self.in_failing

    @property
    def at_fault(self) -> bool:
        """Where the fix is: a node others cannot reach, or one that could not test its own paths. A node whose only
        failures are paths to such nodes is not listed in the "failing only" view."""
        return bool(self.blocked_in or self.untested_out)

    @property
    def worst(self) -> str:
        return _WORST[self.worst_rank]


def matrix_rollup(audit) -> tuple[list[NodeRollup], dict[str, int]]:
    """Per node of an audit's matrix: paths out and in, how many fail, the worst status; and paths per status.

    Two GROUP BY (node, status) queries on the path table alone plus one for names, whatever the size of the
    cluster (a 500-node mesh has 250,000 paths: nothing per path reaches Python). Worst nodes first."""
    from django.db.models import Count

    from inventory.models import Node

    from ..models import NetworkPath

    paths = NetworkPath.objects.filter(audit=audit).order_by()
    rollups: dict[int, NodeRollup] = {}
    counts: dict[str, int] = {}
    for side, prefix in (("source_id", "out"), ("destination_id", "in")):
        for row in paths.values(side, "status").annotate(n=Count("pk")):
            rollup = rollups.setdefault(row[side], NodeRollup(row[side], "", ""))
            setattr(rollup, f"{prefix}_total", getattr(rollup, f"{prefix}_total") + row["n"])
            if row["status"] in BAD:
                setattr(rollup, f"{prefix}_failing", getattr(rollup, f"{prefix}_failing") + row["n"])
            # A failed path is its destination's problem (a port blocked there), a path in error its source's (it
            # could not probe): each counts toward the worst status of the node where the fix is.
            if not (prefix == "in" and row["status"] == "error") and not (prefix == "out" and row["status"] == "fail"):
                rollup.worst_rank = max(rollup.worst_rank, _RANK_OF.get(row["status"], 1))
            if prefix == "in" and row["status"] == "fail":
                rollup.blocked_in += row["n"]
            if prefix == "out" and row["status"] == "error":
                rollup.untested_out += row["n"]
            if prefix == "out":
                counts[row["status"]] = counts.get(row["status"], 0) + row["n"]
    for pk, name, role in Node.objects.filter(pk__in=list(rollups)).values_list("pk", "name", "role"):
        rollups[pk].name, rollups[pk].role = name, role
    ordered = sorted(
        rollups.values(),
        key=lambda r: (not r.at_fault, -r.worst_rank, -(r.blocked_in + r.untested_out), -r.failing, r.name),
    )
    return ordered, dict(sorted(counts.items(), key=lambda item: RANK.get(item[0], 9)))


NAMES_PER_ROW = 20


@dataclass
class RollupRow:
    """Nodes of the rollup with the same numbers (role, worst, blocked, untested, out and in): one row for all of them,
    "45 nodes: w001, w002, ..." instead of 45 identical rows."""

    first: NodeRollup
    nodes: list[NodeRollup]

    @property
    def count(self) -> int:
        return len(self.nodes)

    @property
    def shown(self) -> list[NodeRollup]:
        return self.nodes[:NAMES_PER_ROW]

    @property
    def more(self) -> int:
        return max(0, len(self.nodes) - NAMES_PER_ROW)


def collapse_rollup(rollup: list[NodeRollup]) -> list[RollupRow]:
    """Identical rollup rows folded into one, in the rollup's order (worst first), names sorted inside a row."""
    rows: dict[tuple, RollupRow] = {}
    for r in rollup:
        key = (r.role, r.worst_rank, r.blocked_in, r.untested_out, r.out_failing, r.out_total, r.in_failing, r.in_total)
        if key in rows:
            rows[key].nodes.append(r)
        else:
            rows[key] = RollupRow(first=r, nodes=[r])
    for row in rows.values():
        row.nodes.sort(key=lambda n: n.name)
    return list(rows.values())


_PATH_PREFIX = re.compile(r"^[^\s:]{1,253} -> [^\s:]{1,253}: ")


def path_detail_text(summary: str) -> str:
    """A path's summary without its "source -> destination: " prefix, for a row that already names the path."""
    return _PATH_PREFIX.sub("", summary or "", count=1)


# The verdict line of a dashboard and the status colour of a cluster on the home page.
@dataclass
class Verdict:
    status: str  # pass, warn, fail, unknown: the colour
    label: str  # Ready, Not ready, Not audited, Partly audited, No nodes (portal.states words)
    text: str  # the whole sentence


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def cluster_verdict(*, servers: dict, workers: dict, latest, reasons: list[str]) -> Verdict:
    """One sentence for a dashboard from the counts it already shows: "Not ready: 3 of 48 workers, mostly
    container.docker (2 nodes) and paths blocked at srv: 1 node"; "Not audited" when that is the truth.

    `servers`/`workers` are the dashboard's per-role counts (total, ready, failing); `reasons` the headlines of its
    Why rows, worst first, each counting nodes ("container.docker (71 nodes)", "paths blocked at srv: 48 nodes")."""
    total = (servers.get("total") or 0) + (workers.get("total") or 0)
    if not total:
        return Verdict("unknown", "No nodes", "No nodes yet: import an inventory to audit this cluster.")
    if latest is None:
        return Verdict("unknown", "Not audited", f"Not audited: {_plural(total, 'node')}, none audited yet.")
    failing_servers, failing_workers = servers.get("failing") or 0, workers.get("failing") or 0
    if not failing_servers and not failing_workers:
        ready = (servers.get("ready") or 0) + (workers.get("ready") or 0)
        if ready < total:
            unknown = total - ready
            return Verdict("warn", "Partly audited", f"Ready so far: {ready} of {total} nodes; {unknown} not audited.")
        who = "the only node is" if total == 1 else f"all {total} nodes are"
        return Verdict("pass", "Ready", f"Ready: {who} ready (pass or warnings only).")
    parts = []
    if failing_servers:
        parts.append(f"{failing_servers} of {_plural(servers.get('total') or 0, 'server')}")
    if failing_workers:
        parts.append(f"{failing_workers} of {_plural(workers.get('total') or 0, 'worker')}")
    reasons = reasons[:3]
    because = ""
    if reasons:
        because = ", mostly " + (f"{', '.join(reasons[:-1])} and {reasons[-1]}" if len(reasons) > 1 else reasons[0])
    return Verdict("fail", "Not ready", f"Not ready: {' and '.join(parts)}{because}.")


def home_status(*, total: int, ready: int, failing: int) -> Verdict:
    """The status colour of one cluster on the home page, from the counts the home page shows."""
    if not total:
        return Verdict("unknown", "No nodes", "")
    if failing:
        return Verdict("fail", "Not ready", "")
    if ready == total:
        return Verdict("pass", "Ready", "")
    if ready == 0:
        return Verdict("unknown", "Not audited", "")
    return Verdict("warn", "Partly audited", "")


@dataclass
class PeerCoverage:
    """How much of the worker mesh a matrix proved: this audit's worker pairs against all ordered pairs, and how
    many distinct pairs passed within the window of audits the plan needs to cover them all."""

    plan: str  # full | sampled (auto resolved by size)
    peers: int  # workers, plus the server when it runs a worker
    pairs: int  # ordered worker pairs: peers * (peers - 1)
    tested: int  # worker-to-worker paths of this audit
    proven: int  # of them, passed
    window: int  # audits the plan needs to cover every pair (1 for full)
    window_audits: int  # audits with a matrix actually in that window (fewer while the cluster is new)
    proven_in_window: int  # distinct ordered pairs that passed in those audits


def peer_coverage(audit, cluster) -> PeerCoverage:
    """Four aggregate queries whatever the size: peers of the audit, this audit's worker paths by status, the ids of
    the window's audits, and the distinct passing pairs in them."""
    from django.db.models import Count, Q

    from ..connectivity import W2W, effective_plan, rounds_to_cover
    from ..models import Audit, NetworkPath, NodeAudit

    roles = NodeAudit.objects.filter(audit=audit).aggregate(
        workers=Count("pk", filter=Q(node__role="worker")), servers=Count("pk", filter=Q(node__role="server"))
    )
    peers = roles["workers"] + (roles["servers"] if cluster.server_runs_worker else 0)
    plan = effective_plan(cluster.connectivity_plan, peers)
    own = NetworkPath.objects.filter(audit=audit, check_id=W2W).aggregate(
        tested=Count("pk"), proven=Count("pk", filter=Q(status="pass"))
    )
    window = 1 if plan == "full" else rounds_to_cover(peers=peers, k=cluster.sampled_peers)
    ids = list(
        Audit.objects.filter(cluster_id=cluster.pk, partial=False, network_state=NetworkState.DONE, pk__lte=audit.pk)
        .order_by("-pk")
        .values_list("pk", flat=True)[:window]
    )
    in_window = (
        NetworkPath.objects.filter(audit_id__in=ids, check_id=W2W, status="pass")
        .values("source_id", "destination_id")
        .distinct()
        .count()
    )
    return PeerCoverage(
        plan=plan,
        peers=peers,
        pairs=peers * max(0, peers - 1),
        tested=own["tested"],
        proven=own["proven"],
        window=window,
        window_audits=len(ids),
        proven_in_window=in_window,
    )
