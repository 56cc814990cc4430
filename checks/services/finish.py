"""Finishing and sweeping: close an audit once every node audit is final (after its connectivity matrix, run as
its own task), and end runs a lost worker or broker left behind."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from inventory.choices import AuditStatus
from inventory.services import node_record_status

from .. import clamp, models
from ..alerts.services import alerts_after_audit
from ..catalog import CHECK_IDS, ERROR, worst
from ..catalog.cluster import NodeIdentity, evaluate_cluster_deployment, evaluate_cluster_unique
from ..choices import NetworkState, RunState
from ..spec import profile_spec_from_model
from .network import matrix_time_budget, network_matrix_run
from .queue import audit_dispatch, broker_name, celery_task
from .waivers import node_audit_restamp

logger = logging.getLogger(__name__)


def audit_fail_queued(audit_id: int, reason: str, *, never_ran: bool) -> None:
    """End the audit's queued node audits as `error` with `reason`, and close the audit."""
    queued = models.NodeAudit.objects.filter(audit_id=audit_id, state=RunState.QUEUED)
    for node_audit_id in list(queued.values_list("pk", flat=True)):
        node_audit_end_in_error(node_audit_id, reason, states=[RunState.QUEUED])
    if never_ran:  # nothing of it ran: no connectivity matrix either
        models.Audit.objects.filter(pk=audit_id, network_state=NetworkState.PENDING).update(
            network_state=NetworkState.NONE
        )
        models.Audit.objects.filter(pk=audit_id, error="").update(error=reason)
    audit_finish(audit_id=audit_id)


def audit_finish(*, audit_id: int, matrix_inline: bool = False) -> bool:
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
        _matrix_run(audit_id)
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
    each node's result is replaced, and its status recomputed."""
    node_audits = list(
        models.NodeAudit.objects.filter(audit_id=audit_id, state=RunState.DONE)
        .exclude(facts={})
        .select_related("node", "audit__profile")
    )
    if not node_audits:
        return
    identities = [
        NodeIdentity(
            name=na.node.name,
            hostname=str(na.facts.get("hostname") or ""),
            machine_id=str((na.facts.get("identity") or {}).get("machine_id") or ""),
            product_uuid=str((na.facts.get("identity") or {}).get("product_uuid") or ""),
            gpustack_images=tuple(str(i) for i in na.facts.get("gpustack_images") or [] if isinstance(i, str)),
        )
        for na in node_audits
    ]
    unique = evaluate_cluster_unique(identities, profile_spec_from_model(node_audits[0].audit.profile))
    deployment = evaluate_cluster_deployment(identities)
    with transaction.atomic():
        for node_audit in node_audits:
            name = node_audit.node.name
            results = [unique[name]]
            own = node_audit.results.filter(check_id="gpustack.deployment").values_list("status", flat=True).first()
            if name in deployment and own in ("pass", None):  # a node's own fail (mirrored name) stands
                results.append(deployment[name])
            for result in results:
                models.CheckResult.objects.update_or_create(
                    node_audit=node_audit,
                    check_id=result.check_id,
                    defaults={
                        "status": result.status,
                        "summary": clamp.text(result.summary, 500),
                        "evidence": clamp.text(result.evidence),
                        "remediation": clamp.text(str(result.remediation)),
                        "commands": list(result.commands),
                        "position": CHECK_IDS.index(result.check_id),
                    },
                )
            # the worst of its results that no waiver (or `audit --ignore`) accepts, cluster.unique included
            status = node_audit_restamp(node_audit=node_audit, audit=node_audit.audit)
            if status != node_audit.status:
                models.NodeAudit.objects.filter(pk=node_audit.pk).update(status=status)
                node_record_status(node=node_audit.node, status=status, when=node_audit.finished)


def _matrix_run(audit_id: int) -> None:
    try:
        network_matrix_run(audit_id=audit_id)
        models.Audit.objects.filter(pk=audit_id, network_state=NetworkState.RUNNING).update(
            network_state=NetworkState.DONE
        )
    except Exception as exc:  # noqa: BLE001 - the node results stand; the matrix says it failed
        logger.exception("connectivity matrix of audit %s failed", audit_id)
        models.Audit.objects.filter(pk=audit_id).update(
            network_state=NetworkState.ERROR, error=clamp.text(f"connectivity matrix failed: {exc!r}")
        )


def audit_network_run(*, audit_id: int) -> None:
    """The connectivity matrix task: run it if it is still claimed (a duplicate message finds it over), then
    close the audit."""
    if models.Audit.objects.filter(pk=audit_id, network_state=NetworkState.RUNNING).exists():
        _matrix_run(audit_id)
    audit_finish(audit_id=audit_id)


def node_audit_end_in_error(node_audit_id: int, reason: str, *, states: list[str]) -> bool:
    with transaction.atomic():
        updated = models.NodeAudit.objects.filter(pk=node_audit_id, state__in=states).update(
            state=RunState.ERROR, status=AuditStatus.ERROR, finished=timezone.now(), error=clamp.text(reason)
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


def audit_sweep_stuck(*, older_than: float | None = None) -> int:
    """Nothing stays queued or running forever. Returns how many node audits or matrices were acted on.

    - A node audit running for longer than the limit lost its worker (killed): it ends as `error`.
    - An audit whose queued node audits saw no progress for the limit lost its messages (Redis restarted without
      persistence) or has no worker: they are sent again (claims make a duplicate harmless). If that already
      happened and no node audit anywhere moved since, no worker is consuming: they end as `error` saying so.
      A big audit that is merely waiting for busy workers keeps making progress, so it is never touched.
    - A connectivity matrix running for longer than the limit ends as `error`.
    """
    window = older_than if older_than is not None else settings.PREFLIGHT_STUCK_AFTER
    now = timezone.now()
    limit = now - timedelta(seconds=window)
    acted = 0
    touched: set[int] = set()
    for node_audit_id, audit_id in models.NodeAudit.objects.filter(
        state=RunState.RUNNING, started__lt=limit
    ).values_list("pk", "audit_id"):
        if node_audit_end_in_error(
            node_audit_id, "swept: the run did not finish in time (worker killed or lost)", states=[RunState.RUNNING]
        ):
            acted += 1
            touched.add(audit_id)
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
        acted += 1
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
    return acted + len(stuck_matrix)
