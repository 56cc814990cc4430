"""Waivers: accepting a known non-pass of one check on a cluster or a node until an expiry.

A waiver is applied when a result is recorded (a node's audit, its network checks after the matrix): the result
keeps its real status and gets a snapshot of the waiver in `CheckResult.waived`, and the node's status is the worst
of its results that are not waived. So an expired waiver stops applying at the next audit, and the history of an
audit stays as it was judged. `audit --ignore CHECK_ID` waives for one run only (`Audit.ignored`).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from inventory.models import Cluster, Node
from portal import permissions

from .. import models
from ..catalog import PASS, worst

IGNORED_BY = "audit --ignore"
IGNORED_REASON = "ignored for this run only (audit --ignore)"
# Statuses a waiver can accept: a pass needs none, and a skip already counts as ready.
WAIVABLE = ("warn", "fail", "error")


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def waiver_author(user) -> str:
    return (user.get_username() if user is not None else "") or "system"


def waiver_create(
    *,
    user,
    cluster: Cluster,
    check_id: str,
    reason: str,
    expires: datetime | None = None,
    node: Node | None = None,
) -> models.Waiver:
    """Create a waiver after the `waive_check` rule (PermissionDenied) and validation (ValidationError). Without
    `expires` it lasts the longest a waiver may (PREFLIGHT_WAIVER_MAX_DAYS)."""
    permissions.require(user, permissions.WAIVE_CHECK)
    if expires is None:
        expires = timezone.now() + timedelta(days=settings.PREFLIGHT_WAIVER_MAX_DAYS) - timedelta(minutes=1)
    waiver = models.Waiver(
        cluster=cluster,
        node=node,
        check_id=check_id,
        reason=(reason or "").strip(),
        expires=expires,
        created_by=user,
        author=waiver_author(user),
    )
    waiver.full_clean()
    waiver.save()
    return waiver


def waiver_update(*, user, waiver: models.Waiver, reason: str | None = None, expires=None) -> models.Waiver:
    """Change a waiver's reason or expiry: extending one is waiving again, so the same rule applies."""
    permissions.require(user, permissions.WAIVE_CHECK)
    if reason is not None:
        waiver.reason = reason.strip()
    if expires is not None:
        waiver.expires = expires
    waiver.full_clean()
    waiver.save(update_fields=["reason", "expires"])
    return waiver


InForce = dict[tuple[int | None, str], models.Waiver]


def _in_force(waivers: list[models.Waiver], now: datetime) -> InForce:
    """By (node id or None for the whole cluster, check id), of the waivers (in order of expiry) those that have
    not expired at `now`; of two for the same place, the one that lasts longer."""
    return {(waiver.node_id, waiver.check_id): waiver for waiver in waivers if waiver.expires > now}


def _cluster_waivers(cluster_id: int, now: datetime) -> list[models.Waiver]:
    return list(models.Waiver.objects.filter(cluster_id=cluster_id, expires__gt=now).order_by("expires"))


def waivers_in_force(*, cluster_id: int, now: datetime | None = None) -> InForce:
    """The cluster's waivers that have not expired, by (node id or None for the whole cluster, check id); of two
    for the same place, the one that lasts longer."""
    now = now or timezone.now()
    return _in_force(_cluster_waivers(cluster_id, now), now)


# Within one audit, the waivers a worker process read serve its next nodes for WAIVERS_REREAD_SECONDS: each node's
# results are stamped without a query of its own (it was one per node, 3,000 in a 3,000-node audit). A waiver made
# or deleted meanwhile applies from at most that long after; an expiry is checked against the clock at every use.
WAIVERS_REREAD_SECONDS = 2.0
_RECENT: dict[tuple[int, datetime], tuple[float, list[models.Waiver]]] = {}  # (audit id, created) -> read at, list
_RECENT_LOCK = threading.Lock()


def waivers_in_force_for_audit(*, audit: models.Audit, now: datetime | None = None) -> InForce:
    """waivers_in_force for the audit's cluster, read again at most every WAIVERS_REREAD_SECONDS per audit and
    process. Keyed by the audit's creation time too, so a reused id never matches."""
    now = now or timezone.now()
    key = (audit.pk, audit.created)
    with _RECENT_LOCK:
        entry = _RECENT.get(key)
    if entry is None or time.monotonic() - entry[0] > WAIVERS_REREAD_SECONDS:
        entry = (time.monotonic(), _cluster_waivers(audit.cluster_id, now))
        with _RECENT_LOCK:
            if len(_RECENT) >= 64:
                _RECENT.clear()
            _RECENT[key] = entry
    return _in_force(entry[1], now)


def waiver_snapshot(waiver: models.Waiver) -> dict:
    """What a waived result keeps of its waiver (the `waived` object of the output contract)."""
    return {
        "reason": waiver.reason,
        "by": waiver.author,
        "expires": _iso(waiver.expires),
        "waiver": waiver.pk,
        "scope": waiver.scope,
    }


def ignored_snapshot() -> dict:
    return {"reason": IGNORED_REASON, "by": IGNORED_BY, "expires": None, "waiver": None, "scope": "run"}


def waivers_stamp(
    *, rows: list, node_id: int, cluster_id: int, ignored=(), in_force: InForce | None = None, now=None
) -> str:
    """Set `waived` on each result row (CheckResult instances, saved or not) that a waiver in force or the run's
    `ignored` list accepts, clear it on the others, and return the node's status: the worst of the results that
    are not waived (a waived one counts as a pass)."""
    if in_force is None:
        in_force = waivers_in_force(cluster_id=cluster_id, now=now)
    for row in rows:
        waiver = None
        if row.status in WAIVABLE:
            waiver = in_force.get((node_id, row.check_id)) or in_force.get((None, row.check_id))
        if waiver is not None:
            row.waived = waiver_snapshot(waiver)
        elif row.status in WAIVABLE and row.check_id in ignored:
            row.waived = ignored_snapshot()
        else:
            row.waived = None
    return worst(PASS if row.waived else row.status for row in rows)


def node_audit_restamp(*, node_audit: models.NodeAudit, audit: models.Audit | None = None, now=None) -> str:
    """Apply waivers to every stored result of a node audit (after the matrix added its network results) and
    return the node's status; the caller records it."""
    rows = list(models.CheckResult.objects.filter(node_audit=node_audit))
    audit = audit or node_audit.audit
    status = waivers_stamp(
        rows=rows, node_id=node_audit.node_id, cluster_id=audit.cluster_id, ignored=audit.ignored or (), now=now
    )
    models.CheckResult.objects.bulk_update(rows, ["waived"])
    return status


def waivers_expiring(*, cluster: Cluster, within_days: int | None = None, now=None):
    """The cluster's waivers that are in force and expire within `within_days` (the dashboard's list)."""
    now = now or timezone.now()
    days = settings.PREFLIGHT_WAIVER_EXPIRING_DAYS if within_days is None else within_days
    return (
        models.Waiver.objects.filter(cluster=cluster, expires__gt=now, expires__lte=now + timedelta(days=days))
        .select_related("node")
        .order_by("expires")
    )


def waivers_for_node(*, node: Node, now=None):
    """Waivers in force for a node: its own and its cluster's."""
    now = now or timezone.now()
    return (
        models.Waiver.objects.filter(Q(node=node) | Q(node__isnull=True), cluster_id=node.cluster_id, expires__gt=now)
        .select_related("node")
        .order_by("check_id", "expires")
    )
