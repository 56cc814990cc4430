"""Reads for the node list and the node page (issue 25): rows and sections as dataclasses on portal.states' Status,
in a fixed number of queries whatever the number of nodes. Inventory's node pages read audits through here."""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery

from inventory.facts_summary import FactsSummary
from inventory.models import Accelerator, Node
from portal import states

from ..catalog import CHECK_IDS
from ..choices import RunState
from ..models import CheckResult, NetworkPath, NodeAudit
from .pages import BAD, NOT_CHECKED, RANK, NodeSummary, node_summary, undouble

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


def check_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """Every check id grouped by area, for the failing-check select (network checks included)."""
    groups: OrderedDict[str, list[tuple[str, str]]] = OrderedDict((label, []) for label in AREAS.values())
    for check_id in CHECK_IDS:
        groups.setdefault(AREAS.get(check_id.split(".")[0], "Other"), []).append((check_id, check_id))
    return [(label, ids) for label, ids in groups.items() if ids]


def node_queryset() -> QuerySet[Node]:
    present = Accelerator.objects.filter(gone_at__isnull=True)
    return Node.objects.select_related("cluster").prefetch_related(
        Prefetch("accelerators", queryset=present.order_by("vendor", "index"), to_attr="present_accelerators")
    )


def failing_check_filter(queryset: QuerySet[Node], check_id: str) -> QuerySet[Node]:
    """Nodes whose latest finished audit has this check failing or in error. A check that did not run ("not
    checked: ..." because the node was unreachable) is not failing: ssh.connect lists those nodes. Network checks
    (network.server_to_worker, ...) are per-node results too, so they filter the same way."""
    latest = NodeAudit.objects.filter(node=OuterRef(OuterRef("pk")), finished__isnull=False).order_by("-finished")
    failing = CheckResult.objects.filter(
        node_audit=Subquery(latest.values("pk")[:1]),
        check_id=check_id,
        status__in=list(BAD),
        waived__isnull=True,
    ).exclude(summary__startswith=NOT_CHECKED)
    return queryset.filter(Exists(failing))


def accelerator_text(devices) -> str:
    """'2 x NVIDIA H100 80GB, 1 x AMD MI300X': devices counted by model (vendor when the model is unknown)."""
    models: dict[str, int] = {}
    for device in devices:
        models[device.model or device.vendor] = models.get(device.model or device.vendor, 0) + 1
    return ", ".join(f"{count} x {model}" for model, count in models.items())


def os_text(facts) -> str:
    return FactsSummary.from_json(facts).os_text


@dataclass(frozen=True)
class Why:
    """Why a node is not ready, cause first: the failing check's summary, then which check says so."""

    check_id: str = ""
    cause: str = ""
    waived: str = ""  # "check (status, waived: reason); ..." for results a waiver accepts

    @property
    def text(self) -> str:
        """The one line of the exports and of the cell's hover text: "cause (check)"."""
        if self.check_id:
            return f"{self.cause} ({self.check_id})"
        return self.waived


@dataclass(frozen=True)
class NodeRow:
    """One line of the node list."""

    pk: int
    name: str
    cluster: str
    role: str
    address: str
    status: str  # the node's last audit status (pass, warn, fail, error, unknown): the node_state tag reads it
    state: states.Status
    why: Why
    os: str
    accelerators: str
    last_audited_at: datetime | None


def node_rows(nodes: list[Node]) -> list[NodeRow]:
    """The rows of the node list for these nodes, each with the worst check (error, fail, then warn; first by
    position) of its latest finished audit as Why. Two queries for any number of nodes; call it on one page."""
    if not nodes:
        return []
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
    rows = []
    for node in nodes:
        audit_pk = latest_of.get(node.pk)
        found = worst.get(audit_pk) if audit_pk else None
        why = Why(
            check_id=found[1] if found else "",
            cause=undouble(found[2]) if found else "",
            waived="; ".join(sorted(waived.get(audit_pk, []) if audit_pk else [])),
        )
        rows.append(
            NodeRow(
                pk=node.pk,
                name=node.name,
                cluster=node.cluster.name,
                role=node.get_role_display(),
                address=node.address,
                status=node.last_audit_status,
                state=states.node_state(node.last_audit_status, node.last_reached),
                why=why,
                os=os_text(node.last_facts),
                accelerators=accelerator_text(getattr(node, "present_accelerators", [])),
                last_audited_at=node.last_audited_at,
            )
        )
    return rows


# --- the node page -----------------------------------------------------------------------------------------------

_BLOCKED_AT = re.compile(r" \(blocked at (?P<node>[^,()]+)(?:, here)?\)$")
PATHS_PER_GROUP = 20


@dataclass(frozen=True)
class PathLine:
    pk: int
    source: str
    destination: str
    status: str


@dataclass
class PathGroup:
    """The node's failing paths that share a check, a direction, a status, a cause and the node the block is at."""

    check_id: str
    direction: str  # "in" (paths into the node) or "out" (paths from it)
    cause: str  # "10150-10151 timed out": the summary without its two ends and its "blocked at"
    blocked_at: str  # a node name, or "" when the evidence cannot tell
    blocked_at_pk: int | None
    status: states.Status
    count: int = 0
    paths: list[PathLine] = field(default_factory=list)  # the first PATHS_PER_GROUP, each linked


@dataclass
class NodeNetwork:
    audit_id: int | None = None
    total: int = 0  # paths from or to the node in that audit
    failing: int = 0
    groups: list[PathGroup] = field(default_factory=list)


def node_network(node: Node) -> NodeNetwork:
    """The node's failing paths (fail or error, from or to it) of the latest audit that tested its paths, grouped
    by check, direction, status, cause and "blocked at", worst and largest first. Four queries; values only, never
    path objects."""
    touching = NetworkPath.objects.filter(Q(source=node) | Q(destination=node))
    audit_id = touching.order_by("-audit_id").values_list("audit_id", flat=True).first()
    if audit_id is None:
        return NodeNetwork()
    mine = touching.filter(audit_id=audit_id)
    network = NodeNetwork(audit_id=audit_id, total=mine.count())
    rows = (
        mine.filter(status__in=list(BAD))
        .order_by("check_id", "source__name", "destination__name")
        .values_list("pk", "check_id", "status", "summary", "source__name", "destination__name")
    )
    groups: dict[tuple[str, str, str, str, str], PathGroup] = {}
    for pk, check_id, status, summary, source, destination in rows:
        network.failing += 1
        match = _BLOCKED_AT.search(summary)
        blocked_at = match.group("node").strip() if match else ""
        cause = summary[: match.start()] if match else summary
        prefix = f"{source} -> {destination}: "
        cause = cause[len(prefix) :] if cause.startswith(prefix) else cause
        direction = "in" if destination == node.name else "out"
        group = groups.setdefault(
            (check_id, direction, status, cause, blocked_at),
            PathGroup(check_id, direction, cause, blocked_at, None, states.check_status(status)),
        )
        group.count += 1
        if len(group.paths) < PATHS_PER_GROUP:
            group.paths.append(PathLine(pk, source, destination, status))
    names = {g.blocked_at for g in groups.values() if g.blocked_at}
    pks = dict(Node.objects.filter(cluster_id=node.cluster_id, name__in=names).values_list("name", "pk"))
    for group in groups.values():
        group.blocked_at_pk = pks.get(group.blocked_at)
    network.groups = sorted(groups.values(), key=lambda g: (-g.status.severity, -g.count, g.check_id, g.cause))
    return network


@dataclass
class NodePage:
    """What the node page shows of the node's audits."""

    latest: NodeAudit | None
    summary: NodeSummary
    problems: list = field(default_factory=list)  # (area, results that are not a pass or skip)
    passing: list = field(default_factory=list)  # (area, results that pass or skip): folded away
    passed: int = 0
    ran: bool = False  # whether any check ran on the node in the latest audit (else: no script to offer)
    history: list = field(default_factory=list)
    facts_audit: NodeAudit | None = None
    facts_stale: bool = False
    network: NodeNetwork = field(default_factory=NodeNetwork)
    state: states.Status = states.NOT_AUDITED


FOLDED = ("pass", "skip")


def latest_node_audit(node: Node) -> NodeAudit | None:
    return (
        NodeAudit.objects.filter(node=node, finished__isnull=False)
        .select_related("audit")
        .order_by("-finished")
        .first()
    )


def node_page(node: Node) -> NodePage:
    latest = latest_node_audit(node)
    results = list(latest.results.order_by("position")) if latest is not None else []
    summary = node_summary(results)
    areas: OrderedDict[str, list] = OrderedDict((label, []) for label in AREAS.values())
    for result in summary.shown:
        areas[AREAS.get(result.check_id.split(".")[0], "Other")].append(result)
    problems, passing = [], []
    for area, shown in areas.items():
        bad = [r for r in shown if r.status not in FOLDED]
        good = [r for r in shown if r.status in FOLDED]
        if bad:
            problems.append((area, bad))
        if good:
            passing.append((area, good))
    history = list(
        NodeAudit.objects.filter(node=node).select_related("audit__cluster").order_by("-audit__created")[:20]
    )
    # Facts come from the last audit that ran on the node; say which, so a stale fact is never mistaken for news.
    facts_audit = (
        NodeAudit.objects.filter(node=node, state=RunState.DONE, finished__isnull=False)
        .exclude(facts={})
        .select_related("audit")
        .order_by("-finished")
        .first()
    )
    # A check ran when it has a result of its own: not the connection failure, not "not checked: ..." rows.
    ran = summary.unreachable is None and any(not r.summary.startswith(NOT_CHECKED) for r in summary.shown)
    return NodePage(
        latest=latest,
        summary=summary,
        problems=problems,
        passing=passing,
        passed=sum(len(shown) for _, shown in passing),
        ran=ran,
        history=history,
        facts_audit=facts_audit,
        facts_stale=facts_audit is not None and latest is not None and facts_audit.pk != latest.pk,
        network=node_network(node),
        state=states.node_state(node.last_audit_status, node.last_reached),
    )
