"""Finishing and sweeping: close an audit once every node audit is final (after its connectivity matrix, run as
its own task), and end runs a lost worker or broker left behind."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from inventory.choices import AuditStatus
from inventory.facts_summary import FactsSummary
from inventory.models import Node

from .. import clamp, models
from ..alerts.services import alerts_after_audit
from ..catalog import CHECK_IDS, ERROR, worst
from ..catalog.cluster import NodeIdentity, evaluate_cluster_deployment, evaluate_cluster_unique
from ..choices import NetworkState, RunState
from ..spec import profile_spec_from_model
from .network import (
    Progress,
    matrix_chunk_run,
    matrix_chunks_dispatch,
    matrix_chunks_sweep,
    matrix_time_budget,
    network_matrix_run,
)
from .queue import (
    DB_FAULT_NOTE,
    audit_dispatch,
    broker_flag,
    broker_held_node_audits,
    broker_marked,
    broker_name,
    celery_task,
    node_audits_send,
    note_database_fault,
)
from .waivers import waivers_in_force, waivers_stamp

logger = logging.getLogger(__name__)


def audit_fail_queued(audit_id: int, reason: str, *, never_ran: bool) -> None:
    """End the audit's queued node audits as `error` with `reason`, and close the audit. The reason is always
    Preflight's own (its broker refused the audit, no worker took the node): kept in portal_error, so the node, never
    tried, is not read as Unreachable."""
    queued = models.NodeAudit.objects.filter(audit_id=audit_id, state=RunState.QUEUED)
    for node_audit_id in list(queued.values_list("pk", flat=True)):
        node_audit_end_in_error(node_audit_id, reason, states=[RunState.QUEUED], portal=True)
    if never_ran:  # nothing of it ran: no connectivity matrix either
        models.Audit.objects.filter(pk=audit_id, network_state=NetworkState.PENDING).update(
            network_state=NetworkState.NONE
        )
        models.Audit.objects.filter(pk=audit_id, error="").update(error=reason)
    audit_finish(audit_id=audit_id)


def audit_finish(*, audit_id: int, matrix_inline: bool = False, progress: Progress | None = None) -> bool:
    """Close the audit once every node audit is final; safe to call any number of times.

    When the audit has a connectivity matrix, the first call that finds every node audit final claims it (a
    conditional UPDATE: exactly one caller wins) and starts it as its own Celery task, with a time budget that
    grows with the number of paths; that task closes the audit. `matrix_inline` runs it here instead (the CLI).
    """
    pending = models.NodeAudit.objects.filter(audit_id=audit_id, state__in=[RunState.QUEUED, RunState.RUNNING])
    if pending.exists():
        return False
    claimed = models.Audit.objects.filter(pk=audit_id, network_state=NetworkState.PENDING).update(
        network_state=NetworkState.RUNNING, network_started=timezone.now()
    )
    if claimed and matrix_inline:
        _matrix_run(audit_id, progress)
    elif claimed:
        budget = matrix_time_budget(audit_id)
        try:
            celery_task("checks.network_matrix").apply_async(
                (audit_id,),
                soft_time_limit=budget,
                time_limit=budget + 30,
                retry=True,
                retry_policy=settings.PREFLIGHT_PUBLISH_RETRY,
            )
        except Exception as exc:  # noqa: BLE001 - kombu/redis errors: the node results stand, the matrix says why
            logger.exception("connectivity matrix of audit %s not queued", audit_id)
            models.Audit.objects.filter(pk=audit_id, network_state=NetworkState.RUNNING).update(
                network_state=NetworkState.ERROR,
                error=f"the task queue did not accept the connectivity matrix ({broker_name()}): {exc}",
            )
        else:
            return False  # the matrix task closes the audit
    elif models.Audit.objects.filter(pk=audit_id, network_state=NetworkState.RUNNING).exists():
        return False  # the matrix is running and will close the audit
    if not models.Audit.objects.filter(pk=audit_id, state__in=[RunState.QUEUED, RunState.RUNNING]).exists():
        return False
    try:
        cluster_checks_run(audit_id=audit_id)
    except Exception:  # noqa: BLE001 - the node results stand; the audit still closes
        logger.exception("cluster checks of audit %s failed", audit_id)
    statuses = list(models.NodeAudit.objects.filter(audit_id=audit_id).values_list("status", flat=True))
    now = timezone.now()
    closed = models.Audit.objects.filter(pk=audit_id, state__in=[RunState.QUEUED, RunState.RUNNING]).update(
        state=RunState.DONE, status=worst(statuses), finished=now, started=Coalesce(F("started"), Value(now))
    )
    if closed:  # exactly once per audit: tell who asked what got worse (nothing when nothing did)
        try:
            alerts_after_audit(audit_id=audit_id)
        except Exception:  # noqa: BLE001 - the audit is closed; a broken alert must not undo or hide it
            logger.exception("regression alerts of audit %s failed", audit_id)
    return bool(closed)


def cluster_checks_run(*, audit_id: int) -> None:
    """`cluster.unique` over the nodes of one audit that were audited (their stored facts), one result each, naming
    the other nodes, and `gpustack.deployment` across them (image tags that differ). Safe to run more than once:
    each node's result is replaced, and its status recomputed.

    A fixed number of queries whatever the cluster's size: the node audits, all their results and the waivers in
    force are read once; the results are written with one bulk UPDATE and one bulk INSERT, the changed statuses
    with one UPDATE per status and one bulk UPDATE of the nodes (it was 8 to 10 queries per node, in the worker
    that closes the audit)."""
    node_audits = list(
        models.NodeAudit.objects.filter(audit_id=audit_id, state=RunState.DONE)
        .exclude(facts={})
        .select_related("node", "audit__profile")
        .defer("raw_output", "node__last_facts")  # the probe's whole output is not read here
    )
    if not node_audits:
        return
    audit = node_audits[0].audit
    identities = [
        NodeIdentity(
            name=na.node.name,
            hostname=facts.hostname,
            machine_id=facts.machine_id,
            product_uuid=facts.product_uuid,
            gpustack_images=facts.gpustack_images,
        )
        for na in node_audits
        for facts in [FactsSummary.from_json(na.facts)]
    ]
    unique = evaluate_cluster_unique(identities, profile_spec_from_model(audit.profile))
    deployment = evaluate_cluster_deployment(identities)
    stored: dict[int, list[models.CheckResult]] = {}
    for row in models.CheckResult.objects.filter(node_audit__audit_id=audit_id, node_audit__in=node_audits):
        stored.setdefault(row.node_audit_id, []).append(row)
    in_force = waivers_in_force(cluster_id=audit.cluster_id)
    changed: list[models.CheckResult] = []
    created: list[models.CheckResult] = []
    statuses: dict[str, list[int]] = {}
    nodes: list[Node] = []
    for node_audit in node_audits:
        name = node_audit.node.name
        rows = stored.get(node_audit.pk, [])
        by_check = {row.check_id: row for row in rows}
        before = {row.pk: row.waived for row in rows}
        own = by_check["gpustack.deployment"].status if "gpustack.deployment" in by_check else None
        results = [unique[name]]
        if name in deployment and own in ("pass", None):  # a node's own fail (mirrored name) stands
            results.append(deployment[name])
        fresh = []
        for result in results:
            values = {
                "status": result.status,
                "summary": clamp.text(result.summary, 500),
                "evidence": clamp.text(result.evidence),
                "remediation": clamp.text(str(result.remediation)),
                "commands": list(result.commands),
                "position": CHECK_IDS.index(result.check_id),
            }
            row = by_check.get(result.check_id)
            if row is None:
                row = models.CheckResult(node_audit_id=node_audit.pk, check_id=result.check_id, **values)
                rows.append(row)
                created.append(row)
            else:
                for field, value in values.items():
                    setattr(row, field, value)
                fresh.append(row)
        # the worst of its results that no waiver (or `audit --ignore`) accepts, cluster.unique included
        status = waivers_stamp(
            rows=rows,
            node_id=node_audit.node_id,
            cluster_id=audit.cluster_id,
            ignored=audit.ignored or (),
            in_force=in_force,
        )
        refreshed = {id(row) for row in fresh}
        changed.extend(
            row for row in rows if row.pk is not None and (id(row) in refreshed or row.waived != before[row.pk])
        )
        if status != node_audit.status:
            statuses.setdefault(status, []).append(node_audit.pk)
            node = node_audit.node
            node.last_audit_status, node.last_audited_at = status, node_audit.finished or timezone.now()
            nodes.append(node)
    with transaction.atomic():
        if changed:
            models.CheckResult.objects.bulk_update(
                changed,
                ["status", "summary", "evidence", "remediation", "commands", "position", "waived"],
                batch_size=500,
            )
        models.CheckResult.objects.bulk_create(created, batch_size=500)
        for status, ids in statuses.items():
            models.NodeAudit.objects.filter(pk__in=ids).update(status=status)
        Node.objects.bulk_update(nodes, ["last_audit_status", "last_audited_at"], batch_size=500)


def _matrix_run(audit_id: int, progress: Progress | None = None) -> None:
    try:
        network_matrix_run(audit_id=audit_id, progress=progress)
        models.Audit.objects.filter(pk=audit_id, network_state=NetworkState.RUNNING).update(
            network_state=NetworkState.DONE
        )
    except Exception as exc:  # noqa: BLE001 - the node results stand; the matrix says it failed
        logger.exception("connectivity matrix of audit %s failed", audit_id)
        models.Audit.objects.filter(pk=audit_id).update(
            network_state=NetworkState.ERROR, error=clamp.text(f"connectivity matrix failed: {exc!r}")
        )


def audit_network_run(*, audit_id: int) -> None:
    """The connectivity matrix task: split it into chunks that workers take, if it is still claimed (a duplicate
    message finds the chunks there), then close the audit (which waits while the chunks run)."""
    if models.Audit.objects.filter(pk=audit_id, network_state=NetworkState.RUNNING).exists():
        matrix_chunks_dispatch(audit_id=audit_id)  # its chunks run as tasks of their own; the last closes the audit
    audit_finish(audit_id=audit_id)


def audit_matrix_chunk_run(*, chunk_id: int) -> None:
    """The matrix chunk task: run the chunk; the audit closes when it was the last (audit_finish is a no-op
    while the matrix still runs)."""
    audit_id = models.MatrixChunk.objects.filter(pk=chunk_id).values_list("audit_id", flat=True).first()
    if audit_id is not None and matrix_chunk_run(chunk_id=chunk_id):
        audit_finish(audit_id=audit_id)


def node_audit_end_in_error(
    node_audit_id: int, reason: str, *, states: list[str], attempt: int | None = None, portal: bool = False
) -> bool:
    """End a node audit as `error` saying why (one ssh.connect result carries the reason), if it is still in one of
    `states` (and, given `attempt`, still that claim). `portal`: the cause is Preflight's own (its database, a lost
    worker), not the node's; it is also kept in `portal_error`, which pages show apart from the node's faults."""
    rows = models.NodeAudit.objects.filter(pk=node_audit_id, state__in=states)
    if attempt is not None:
        rows = rows.filter(attempts=attempt)
    with transaction.atomic():
        updated = rows.update(
            state=RunState.ERROR,
            status=AuditStatus.ERROR,
            reached=False,  # its one result, ssh.connect, is the error; a portal fault is told by portal_error
            finished=timezone.now(),
            lease_expires=None,
            error=clamp.text(reason),
            portal_error=clamp.text(reason) if portal else "",
        )
        if updated:
            models.CheckResult.objects.filter(node_audit_id=node_audit_id).delete()
            models.CheckResult.objects.create(
                node_audit_id=node_audit_id, check_id="ssh.connect", status=ERROR, summary=clamp.text(reason, 500)
            )
    return bool(updated)


def _last_activity(audit: models.Audit):
    """The audit's last sign of life: created, dispatched, or any of its node audits started or finished."""
    marks = models.NodeAudit.objects.filter(audit=audit).aggregate(started=Max("started"), finished=Max("finished"))
    return max(t for t in (audit.created, audit.dispatched, marks["started"], marks["finished"]) if t is not None)


def _requeue_lost_runs(now, limit, *, reclaim: bool, acted: list[int], touched: set[int]) -> list[int]:
    """Running node audits whose lease ran out (their worker was killed or lost; rows from before leases: started
    before `limit`) go back to the queue, or end as `error` once they were claimed PREFLIGHT_NODE_ATTEMPTS times.
    Returns the ids to send again."""
    expired = Q(lease_expires__lt=now) | Q(lease_expires__isnull=True, started__lt=limit)
    rows = models.NodeAudit.objects.filter(expired, state=RunState.RUNNING)
    if not rows.exists():
        return []
    if not reclaim:
        logger.warning("leases ran out while the database failed: the sweep waits for live workers to renew")
        return []
    if not _database_answers_at_once():
        logger.warning("the database made the sweep wait: leases are left alone this round")
        return []
    now = timezone.now()
    expired = Q(lease_expires__lt=now) | Q(lease_expires__isnull=True, started__lt=limit)
    again: list[int] = []
    for node_audit_id, audit_id, attempts in rows.filter(expired).values_list("pk", "audit_id", "attempts"):
        if attempts >= settings.PREFLIGHT_NODE_ATTEMPTS:
            reason = (
                f"swept: Preflight lost this node's run {attempts} times (its worker was killed or cut off before "
                "it finished); the node itself may be fine, audit it again"
            )
            if node_audit_end_in_error(node_audit_id, reason, states=[RunState.RUNNING], attempt=attempts, portal=True):
                acted.append(node_audit_id)
                touched.add(audit_id)
            continue
        requeued = models.NodeAudit.objects.filter(
            expired, pk=node_audit_id, state=RunState.RUNNING, attempts=attempts
        ).update(state=RunState.QUEUED, lease_expires=None, dispatched=None)
        if requeued:
            logger.warning("node audit %s: its worker was lost (lease ran out); queued again", node_audit_id)
            acted.append(node_audit_id)
            again.append(node_audit_id)
    return again


def _database_answers_at_once() -> bool:
    """Take the write lock and let it go: False when that took longer than a lease renewal. The database was then
    locked or busy a moment ago, so live workers may not have renewed their leases yet; the sweep must not take
    their rows (it would record nothing of theirs, and the nodes would be probed again)."""
    started = time.monotonic()
    with transaction.atomic():
        models.NodeAudit.objects.filter(pk=-1).update(lease_expires=None)
    return time.monotonic() - started < settings.PREFLIGHT_LEASE_RENEW


def _lost_messages(now) -> list[int] | None:
    """Queued node audits of live audits whose task no broker holds (sent more than PREFLIGHT_REDELIVER_AFTER
    ago, or never sent): Redis lost it, or the worker it was delivered to died before claiming it. None when the
    broker cannot be listed."""
    held = broker_held_node_audits(delivered_within=settings.PREFLIGHT_REDELIVER_AFTER)
    if held is None:
        return None
    cutoff = now - timedelta(seconds=settings.PREFLIGHT_REDELIVER_AFTER)
    queued = models.NodeAudit.objects.filter(
        Q(dispatched__lt=cutoff) | Q(dispatched__isnull=True, audit__created__lt=cutoff),
        state=RunState.QUEUED,
        audit__state__in=[RunState.QUEUED, RunState.RUNNING],
    ).values_list("pk", flat=True)
    return [node_audit_id for node_audit_id in queued if node_audit_id not in held]


def audit_sweep_stuck(*, older_than: float | None = None, reclaim: bool = True) -> int:
    """Nothing stays queued or running forever. Returns how many node audits, audits or matrices were acted on.

    - A running node audit whose lease ran out lost its worker: it is queued and sent again, until it was claimed
      PREFLIGHT_NODE_ATTEMPTS times; then it ends as `error` with Preflight's own cause. `reclaim=False` leaves
      them (the database failed a moment ago, so a live worker may not have been able to renew its lease).
    - A queued node audit whose message no broker holds is sent again (the row says when it was sent).
    - When the broker cannot be listed: an audit whose queued node audits saw no progress for the limit
      (`older_than`, default PREFLIGHT_STUCK_AFTER) is sent again; if that already happened and no node audit
      anywhere moved since, no worker is consuming: they end as `error` saying so.
    - An audit whose node audits are all final is closed; a connectivity matrix running past its budget ends as
      `error`.
    """
    window = older_than if older_than is not None else settings.PREFLIGHT_STUCK_AFTER
    now = timezone.now()
    limit = now - timedelta(seconds=window)
    acted: list[int] = []
    touched: set[int] = set()
    resend = _requeue_lost_runs(now, limit, reclaim=reclaim, acted=acted, touched=touched)
    lost = _lost_messages(now)
    if lost:
        logger.warning("%d queued node audits are held by no broker: sending them again", len(lost))
        acted.extend(pk for pk in lost if pk not in resend)
        resend.extend(pk for pk in lost if pk not in resend)
    if resend:
        try:
            node_audits_send(resend)
        except Exception:  # noqa: BLE001 - the broker is down: they stay queued, the next sweep sends them
            logger.exception("sending %d node audits again failed", len(resend))
    acted.extend(_unmoved_audits(limit, window))
    chunks, recorded = matrix_chunks_sweep()  # chunks of a matrix whose worker was lost: sent again, or ended
    touched |= recorded
    stuck_matrix = [
        audit_id
        for audit_id, network_started in models.Audit.objects.filter(
            network_state=NetworkState.RUNNING, network_started__lt=limit
        ).values_list("pk", "network_started")
        if older_than is not None or network_started < now - timedelta(seconds=matrix_time_budget(audit_id) + 60)
    ]
    models.Audit.objects.filter(pk__in=stuck_matrix, network_state=NetworkState.RUNNING).update(
        network_state=NetworkState.ERROR, error="swept: the connectivity matrix did not finish in time"
    )
    for audit_id in touched | set(stuck_matrix):
        audit_finish(audit_id=audit_id)
    # An audit whose last node audit ended while the database refused the closing write: close it now.
    unclosed = models.Audit.objects.filter(state__in=[RunState.QUEUED, RunState.RUNNING]).exclude(
        node_audits__state__in=[RunState.QUEUED, RunState.RUNNING]
    )
    for audit_id in unclosed.exclude(pk__in=touched | set(stuck_matrix)).values_list("pk", flat=True):
        if audit_finish(audit_id=audit_id):
            logger.warning("audit %s: every node audit had ended; closed by the sweep", audit_id)
    return len(acted) + len(stuck_matrix) + chunks


def audit_sweep_scheduled() -> int | None:
    """The beat's sweep: runs unless another ran less than PREFLIGHT_SWEEP_MIN_GAP seconds ago (a lock in the
    broker that expires by itself, so two beats, or a sweep queued twice, never sweep twice). Leases that ran out
    are left alone while the database failed recently (a live worker could not renew its lease meanwhile)."""
    if not broker_flag("sweep", ttl=settings.PREFLIGHT_SWEEP_MIN_GAP):
        logger.info("sweep skipped: another sweep ran less than %g s ago", settings.PREFLIGHT_SWEEP_MIN_GAP)
        return None
    try:
        return audit_sweep_stuck(reclaim=not broker_marked(DB_FAULT_NOTE))
    except Exception as exc:
        note_database_fault(exc)
        raise


def _unmoved_audits(limit, window: float) -> list[int]:
    """Fall back on progress (the broker may not be listable, or no worker consumes). Audits with queued node
    audits that saw no progress since `limit` are sent again once; after that, with no node audit moving
    anywhere, they end as `error`."""
    acted = []
    workers_alive = models.NodeAudit.objects.filter(Q(started__gte=limit) | Q(finished__gte=limit)).exists()
    waiting = models.Audit.objects.filter(
        state__in=[RunState.QUEUED, RunState.RUNNING], node_audits__state=RunState.QUEUED
    ).distinct()
    for audit in waiting:
        if _last_activity(audit) >= limit:
            continue
        if audit.dispatches < 2 or workers_alive:
            try:
                sent = audit_dispatch(audit_id=audit.pk)
            except Exception:  # noqa: BLE001 - the broker is down again: the next sweep tries again
                logger.exception("audit %s: sending its queued node audits again failed", audit.pk)
                continue
            logger.warning(
                "audit %s made no progress for %g s: sent its %d queued node audits again", audit.pk, window, sent
            )
        else:
            audit_fail_queued(
                audit.pk,
                f"swept: no Celery worker picked this node up in {window:g} s, even after it was sent again; check "
                f"that a worker is running and connected to the broker ({broker_name()})",
                never_ran=False,
            )
        acted.append(audit.pk)
    return acted
