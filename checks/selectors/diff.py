"""The comparison of two audits, read in the database (issue 25).

Two 500-node audits with a full matrix hold about 500,000 network paths. They are never loaded as objects: the
database joins each non-passing path of one audit to its counterpart in the other (a correlated lookup on the
unique (audit, check, source, destination) index) and returns grouped counts. Only paths that do not pass in at
least one of the two audits are ever looked at, and only counts, groups and one page of them leave the database.
Check results are compared the same way: only rows that do not pass on one side are read, as plain values.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import OuterRef, QuerySet, Subquery

from inventory.choices import AuditStatus
from inventory.facts_summary import FactsSummary
from inventory.models import Node

from ..catalog import SEVERITY
from ..models import Audit, CheckResult, NetworkPath, NodeAudit
from .pages import NOT_CHECKED, undouble

PASS = "pass"
_FAILING = [s for s in AuditStatus.values if s != PASS]  # an IN list seeks the (audit, status) index; <> cannot
NOT_RUN = "not run"
CAUSES_PER_PAGE = 25
PATHS_PER_PAGE = 50
NAMES_PER_CAUSE = 20


_FINGERPRINT = re.compile(r"\b(SHA256|MD5):[A-Za-z0-9+/=:]{8,}")


def cause_of(summary: str, *, name: str, address: str) -> str:
    """A summary as a cause shared by nodes: the node's own name, address and key fingerprints left out."""
    text = undouble(summary)
    if ":" in text:
        text = _FINGERPRINT.sub(r"\1:…", text)
    for own, placeholder in ((address, "‹address›"), (name, "‹node›")):
        if own and own in text:  # a regex per node name is compiled only when the name is there
            text = re.sub(rf"(?<![\w.-]){re.escape(own)}(?![\w-])", placeholder, text)
    return text


def change_kind(before: str, after: str) -> str:
    """newly failing, fixed, still failing (same non-pass status), or changed (between two non-pass statuses)."""
    if before == after:
        return "still failing"
    if after == PASS:
        return "fixed"
    if before == PASS or SEVERITY.get(after, 0) > SEVERITY.get(before, 0):
        return "newly failing"
    return "changed"


@dataclass
class Counts:
    newly_failing: int = 0
    fixed: int = 0
    still_failing: int = 0
    changed: int = 0

    def add(self, kind: str, n: int) -> None:
        attr = kind.replace(" ", "_")
        setattr(self, attr, getattr(self, attr) + n)


@dataclass
class NodeRef:
    pk: int
    name: str


class _NamedNodes:
    """A group of nodes shown by their first NAMES_PER_CAUSE names and a count of the rest."""

    nodes: list[NodeRef]

    @property
    def count(self) -> int:
        return len(self.nodes)

    @property
    def shown(self) -> list[NodeRef]:
        return self.nodes[:NAMES_PER_CAUSE]

    @property
    def more(self) -> int:
        return max(0, len(self.nodes) - NAMES_PER_CAUSE)


@dataclass
class CheckCause(_NamedNodes):
    """Nodes whose check went from one status to another with the same summary (the cause)."""

    check_id: str
    before: str
    after: str
    kind: str
    summary: str  # the cause: the newer summary without the node's own name, address and fingerprints
    nodes: list[NodeRef] = field(default_factory=list)


@dataclass
class PathCause:
    """Paths of one check that went from one status to another at one node: blocked into it, or not probed from it."""

    check_id: str
    before: str
    after: str
    kind: str
    side: str  # "into" (the destination refuses) or "from" (the source did not probe)
    node: NodeRef
    count: int


@dataclass
class CheckDiff:
    counts: Counts
    per_check: list[tuple[str, Counts]]
    causes: Page
    not_audited: dict[str, list[str]]
    not_run: list[str]


@dataclass
class PathDiff:
    counts: Counts
    per_check: list[tuple[str, Counts]]
    transitions: list[dict]
    causes: Page
    changes: Page
    compared: bool


def _per_check(rows: dict[str, Counts]) -> list[tuple[str, Counts]]:
    return sorted(rows.items(), key=lambda kv: (-kv[1].newly_failing, -kv[1].still_failing, kv[0]))


def check_diff(*, old: Audit, new: Audit, node: str | None, page: str | None) -> CheckDiff:
    """Checks of nodes both audits covered whose status is not pass in at least one of them, grouped by cause."""
    audited = NodeAudit.objects.filter(audit__in=[old, new])
    if node:
        audited = audited.filter(node__name=node)
    covered: dict[int, set[int]] = {old.pk: set(), new.pk: set()}
    names: dict[int, str] = {}
    addresses: dict[int, str] = {}
    for audit_id, node_id, name, address in audited.values_list("audit_id", "node_id", "node__name", "node__address"):
        covered[audit_id].add(node_id)
        names[node_id], addresses[node_id] = name, address
    both = covered[old.pk] & covered[new.pk]
    not_audited = {
        "old": sorted(names[n] for n in covered[new.pk] - covered[old.pk]),
        "new": sorted(names[n] for n in covered[old.pk] - covered[new.pk]),
    }

    def counterpart(audit: Audit, column: str) -> Subquery:
        return Subquery(
            CheckResult.objects.filter(
                node_audit__audit=audit, node_audit__node=OuterRef("node_audit__node"), check_id=OuterRef("check_id")
            )
            .order_by()
            .values(column)[:1]
        )

    def side(audit: Audit, other: Audit) -> QuerySet:
        rows = CheckResult.objects.filter(node_audit__audit=audit, node_audit__node__in=both).exclude(status=PASS)
        return rows.annotate(other=counterpart(other, "status"), other_summary=counterpart(other, "summary"))

    fields = ("node_audit__node_id", "check_id", "status", "summary", "other", "other_summary")
    rows: list[tuple[int, str, str, str, str, str]] = []  # node, check, before, after, summary (the newer), before's
    for node_id, check, status, summary, other, other_summary in side(new, old).values_list(*fields):
        rows.append((node_id, check, other or NOT_RUN, status, summary, other_summary or ""))
    for node_id, check, status, summary, other, other_summary in side(old, new).values_list(*fields):
        if other == PASS or other is None:  # a non-pass on both sides came from the first query
            rows.append((node_id, check, status, other or NOT_RUN, other_summary or summary, summary))
    not_run: set[str] = set()
    groups: dict[tuple[str, str, str, str], CheckCause] = {}
    counts = Counts()
    per_check: dict[str, Counts] = defaultdict(Counts)
    for node_id, check, before, after, summary, before_summary in rows:
        if summary.startswith(NOT_CHECKED) or before_summary.startswith(NOT_CHECKED):
            not_run.add(names[node_id])  # the probe did not run on one side: ssh.connect says why, once
            continue
        kind = change_kind(before, after)
        text = cause_of(summary, name=names[node_id], address=addresses[node_id])
        counts.add(kind, 1)
        per_check[check].add(kind, 1)
        key = (check, before, after, text)
        if key not in groups:
            groups[key] = CheckCause(check_id=check, before=before, after=after, kind=kind, summary=text)
        groups[key].nodes.append(NodeRef(pk=node_id, name=names[node_id]))
    order = {"newly failing": 0, "changed": 1, "fixed": 2, "still failing": 3}
    causes = sorted(groups.values(), key=lambda c: (order[c.kind], -c.count, c.check_id, c.summary))
    for cause in causes:
        cause.nodes.sort(key=lambda n: n.name)
    return CheckDiff(
        counts=counts,
        per_check=_per_check(per_check),
        causes=Paginator(causes, CAUSES_PER_PAGE).get_page(page),
        not_audited=not_audited,
        not_run=sorted(not_run),
    )


class _Counted(Paginator):
    """A paginator over a query whose row count is already known from the grouped counts (no COUNT(*) scan)."""

    def __init__(self, object_list, per_page: int, *, count: int) -> None:
        super().__init__(object_list, per_page)
        self._known = count

    @property
    def count(self) -> int:  # type: ignore[override]
        return self._known


# One side of the comparison, as SQL: a non-passing path of audit `one` joined to its counterpart in audit `two` on
# the unique (audit, check, source, destination) index. A path that errs was not probed (its source could not run
# the prober): its cause is its source; any other non-pass is refused at its destination.
_SIDE = """
SELECT one.id AS id, one.check_id AS check_id, one.source_id AS source_id, one.destination_id AS destination_id,
       {before} AS before, {after} AS after,
       CASE WHEN one.status = 'error' THEN 'from' ELSE 'into' END AS side,
       CASE WHEN one.status = 'error' THEN one.source_id ELSE one.destination_id END AS blamed
FROM checks_networkpath one
JOIN checks_networkpath two ON two.audit_id = %s AND two.check_id = one.check_id
     AND two.source_id = one.source_id AND two.destination_id = one.destination_id
WHERE one.audit_id = %s AND one.status IN ({failing}) {extra} {nodes}
"""


def _sides(*, old: Audit, new: Audit, node_ids: list[int] | None) -> tuple[str, list]:
    """The newer audit's non-passing paths with their older status, and the older's non-passing paths that now pass."""
    nodes, node_params = "", []
    if node_ids is not None:
        marks = ", ".join(["%s"] * len(node_ids)) or "NULL"
        nodes = f"AND (one.source_id IN ({marks}) OR one.destination_id IN ({marks}))"
        node_params = [*node_ids, *node_ids]
    failing = ", ".join(["%s"] * len(_FAILING))
    # the fixed side's "now passes" is written so that no index serves it: the planner must start from the older
    # audit's few non-passing paths, never from the newer audit's 250,000 passing ones
    worse = _SIDE.format(before="two.status", after="one.status", failing=failing, extra="", nodes=nodes)
    fixed = _SIDE.format(
        before="one.status",
        after="two.status",
        failing=failing,
        extra="AND COALESCE(two.status, '') = 'pass'",
        nodes=nodes,
    )
    sql = f"{worse} UNION ALL {fixed}"
    return sql, [old.pk, new.pk, *_FAILING, *node_params, new.pk, old.pk, *_FAILING, *node_params]


def path_diff(*, old: Audit, new: Audit, node: str | None, cause_page: str | None, path_page: str | None) -> PathDiff:
    """Paths present in both audits that do not pass in at least one: counts per check and transition, causes (the
    node a path is blocked into, or the node that could not probe), and one page of the changed paths."""
    if not NetworkPath.objects.filter(audit=old).exists() or not NetworkPath.objects.filter(audit=new).exists():
        empty = Paginator([], PATHS_PER_PAGE).get_page(1)
        return PathDiff(Counts(), [], [], empty, empty, compared=False)
    node_ids = None
    if node:
        node_ids = list(
            NodeAudit.objects.filter(audit__in=[old, new], node__name=node).values_list("node_id", flat=True)
        )
    sides, params = _sides(old=old, new=new, node_ids=node_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT check_id, before, after, side, blamed, COUNT(*) FROM ({sides}) AS changed GROUP BY 1, 2, 3, 4, 5",
            params,
        )
        grouped = cursor.fetchall()
    names = dict(Node.objects.filter(pk__in={row[4] for row in grouped}).values_list("pk", "name"))

    counts = Counts()
    per_check: dict[str, Counts] = defaultdict(Counts)
    transitions: Counter[tuple[str, str, str]] = Counter()
    causes: list[PathCause] = []
    for check, before, after, side, blamed, n in grouped:
        kind = change_kind(before, after)
        counts.add(kind, n)
        per_check[check].add(kind, n)
        transitions[(check, before, after)] += n
        causes.append(
            PathCause(
                check_id=check,
                before=before,
                after=after,
                kind=kind,
                side=side,
                node=NodeRef(pk=blamed, name=names.get(blamed, "?")),
                count=n,
            )
        )
    order = {"newly failing": 0, "changed": 1, "fixed": 2, "still failing": 3}
    causes.sort(key=lambda c: (order[c.kind], -c.count, c.node.name, c.check_id))

    # one page of the paths whose status changed (still failing paths are counted and grouped, not listed)
    changed_count = counts.newly_failing + counts.fixed + counts.changed
    page = _Counted([], PATHS_PER_PAGE, count=changed_count).get_page(path_page)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, check_id, source_id, destination_id, before, after FROM ({sides}) AS changed "
            "WHERE before <> after "
            "ORDER BY source_id, destination_id, check_id LIMIT %s OFFSET %s",
            [*params, PATHS_PER_PAGE, page.start_index() - 1 if changed_count else 0],
        )
        rows = cursor.fetchall()
    names.update(Node.objects.filter(pk__in={r[2] for r in rows} | {r[3] for r in rows}).values_list("pk", "name"))
    page.object_list = [
        {
            "pk": pk,
            "check": check,
            "source": NodeRef(pk=source_id, name=names.get(source_id, "?")),
            "destination": NodeRef(pk=destination_id, name=names.get(destination_id, "?")),
            "before": before,
            "after": after,
            "closed": after != PASS,
        }
        for pk, check, source_id, destination_id, before, after in rows
    ]
    return PathDiff(
        counts=counts,
        per_check=_per_check(per_check),
        transitions=[
            {"check": c, "before": b, "after": a, "kind": change_kind(b, a), "count": n}
            for (c, b, a), n in sorted(transitions.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        causes=Paginator(causes, CAUSES_PER_PAGE).get_page(cause_page),
        changes=page,
        compared=True,
    )


@dataclass
class InventoryChange(_NamedNodes):
    """A device or driver that appeared or went away between two audits, with the nodes it concerns."""

    change: str  # "device gone", "device appeared", "gone", "appeared"
    what: str
    nodes: list[NodeRef] = field(default_factory=list)

    @property
    def worse(self) -> bool:
        return self.change.endswith("gone")


def _inventory(audit: Audit, node: str | None) -> tuple[set, set, dict[int, str]]:
    devices: set[tuple[int, str]] = set()
    drivers: set[tuple[int, str]] = set()
    names: dict[int, str] = {}
    rows = NodeAudit.objects.filter(audit=audit)
    if node:
        rows = rows.filter(node__name=node)
    for node_id, name, stored in rows.values_list("node_id", "node__name", "facts"):
        names[node_id] = name
        facts = FactsSummary.from_json(stored)
        devices.update((node_id, device.text) for device in facts.accelerators)
        for driver in facts.drivers:
            drivers.add((node_id, f"{driver.vendor} driver {driver.driver_version}".strip()))
            if driver.toolkit:
                drivers.add((node_id, f"{driver.vendor} toolkit {' '.join(driver.toolkit)}"))
        if facts.docker_version:
            drivers.add((node_id, f"Docker {facts.docker_version}"))
            drivers.update((node_id, f"docker runtime {runtime}") for runtime in facts.docker_runtimes)
    return devices, drivers, names


def inventory_diff(*, old: Audit, new: Audit, node: str | None) -> list[InventoryChange]:
    """Devices and drivers that went away or appeared, grouped by what changed: "nvidia driver 550.54: 480 nodes"
    once, not 480 rows. Gone first, then the most nodes."""
    old_devices, old_drivers, names = _inventory(old, node)
    new_devices, new_drivers, new_names = _inventory(new, node)
    names.update(new_names)
    groups: dict[tuple[str, str], InventoryChange] = {}
    for change, rows in (
        ("device gone", old_devices - new_devices),
        ("device appeared", new_devices - old_devices),
        ("gone", old_drivers - new_drivers),
        ("appeared", new_drivers - old_drivers),
    ):
        for node_id, what in rows:
            group = groups.setdefault((change, what), InventoryChange(change, what))
            group.nodes.append(NodeRef(node_id, names[node_id]))
    for group in groups.values():
        group.nodes.sort(key=lambda n: n.name)
    return sorted(groups.values(), key=lambda g: (not g.worse, -g.count, g.change, g.what))
