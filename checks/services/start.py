"""Starting an audit: the one audit request every door (admin, web, API, CLI, beat) goes through, its checks
(one audit per cluster at a time), queueing, and running one inline for the `audit` command."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection, transaction

from inventory.choices import NodeRole
from inventory.models import Cluster, Node
from portal import permissions

from .. import models
from ..catalog import CHECK_IDS
from ..choices import NetworkState, RunState, Trigger
from .finish import audit_fail_queued, audit_finish
from .network import Progress
from .node import node_audit_run
from .queue import broker_name, celery_task

logger = logging.getLogger(__name__)


class AuditRefused(Exception):
    """An audit cannot start (another is running, unknown nodes, nothing to audit); the message says why."""


class AuditAlreadyRunning(AuditRefused):
    """Another audit of the same cluster is queued or running."""


class AuditNotQueued(AuditRefused):
    """The broker did not accept the audit; it was closed as `error` so it blocks nothing."""


@transaction.atomic
def audit_start(
    *,
    cluster: Cluster,
    node_names: list[str] | None = None,
    trigger: str = Trigger.CLI,
    user=None,
    ignore: list[str] | None = None,
) -> models.Audit:
    """Create the audit and its node audits. `ignore`: check ids waived for this run only (`audit --ignore`)."""
    unknown = sorted(set(ignore or ()) - set(CHECK_IDS))
    if unknown:
        raise AuditRefused(f"not a check id: {', '.join(unknown)} (see checks/catalog/registry.py)")
    cluster = Cluster.objects.select_for_update().select_related("profile").get(pk=cluster.pk)
    running = models.Audit.objects.filter(cluster=cluster, state__in=[RunState.QUEUED, RunState.RUNNING]).first()
    if running is not None:
        raise AuditAlreadyRunning(
            f"audit {running.pk} of cluster {cluster.name} is still {running.state}; wait for it "
            "to finish (stuck runs are swept to error automatically)"
        )
    nodes = Node.objects.filter(cluster=cluster, enabled=True)
    if node_names:
        nodes = nodes.filter(name__in=node_names)
        missing = sorted(set(node_names) - set(nodes.values_list("name", flat=True)))
        if missing:
            raise AuditRefused(f"no enabled node named {', '.join(missing)} in cluster {cluster.name}")
    nodes = list(nodes)
    if not nodes:
        raise AuditRefused(f"cluster {cluster.name} has no enabled nodes to audit")
    roles = {node.role for node in nodes}
    matrix = not node_names and {NodeRole.SERVER, NodeRole.WORKER} <= roles
    audit = models.Audit.objects.create(
        cluster=cluster,
        profile=cluster.profile,
        profile_key=cluster.profile.key,
        trigger=trigger,
        started_by=user if user is not None and getattr(user, "is_authenticated", False) else None,
        partial=bool(node_names),
        ignored=sorted(set(ignore or ())),
        network_state=NetworkState.PENDING if matrix else NetworkState.NONE,
    )
    models.NodeAudit.objects.bulk_create(models.NodeAudit(audit=audit, node=node) for node in nodes)
    return audit


def audit_enqueue(audit: models.Audit) -> None:
    """Hand the audit to Celery once the transaction that created it commits.

    If the broker does not take it (Redis down), the audit ends at once as `error` saying so, and AuditNotQueued
    is raised: an audit nobody will run must not block the next one for the sweep interval.
    """

    def publish() -> None:
        try:
            celery_task("checks.audit_cluster").apply_async(
                (audit.pk,), retry=True, retry_policy=settings.PREFLIGHT_PUBLISH_RETRY
            )
        except Exception as exc:  # noqa: BLE001 - kombu raises OperationalError, redis-py its own errors
            reason = f"the task queue did not accept the audit ({broker_name()}): {exc}"
            logger.error("audit %s not queued: %s", audit.pk, reason)
            audit_fail_queued(audit.pk, reason, never_ran=True)
            raise AuditNotQueued(f"audit {audit.pk} could not start: {reason}. Is Redis running?") from None

    transaction.on_commit(publish)


def audit_run_inline(*, audit: models.Audit, transport=None, progress: Progress | None = None) -> models.Audit:
    """Run every node audit of `audit` now, in threads (the CLI's path; Celery runs the same node service).

    `progress`, when given, hears `progress("start", nodes=N)`, `progress("node", name=..., status=...)` after each
    node audit, and the matrix's phases (see network_matrix_run); it must be thread-safe and must not raise."""
    ids = list(audit.node_audits.values_list("pk", flat=True))
    if progress is not None:
        progress("start", nodes=len(ids))

    def run(node_audit_id: int) -> None:
        node_audit_run(node_audit_id=node_audit_id, transport=transport, close_audit=False)
        if progress is not None:
            name, status = models.NodeAudit.objects.values_list("node__name", "status").get(pk=node_audit_id)
            progress("node", name=name, status=status)

    def one(node_audit_id: int) -> None:
        try:
            run(node_audit_id)
        finally:
            connection.close()  # each worker thread has its own connection

    if connection.in_atomic_block or (connection.vendor == "sqlite" and connection.is_in_memory_db()):
        # Other threads' connections could not see this transaction's rows (or an in-memory database): stay here.
        for node_audit_id in ids:
            run(node_audit_id)
    else:
        with ThreadPoolExecutor(max_workers=max(1, min(settings.PREFLIGHT_AUDIT_CONCURRENCY, len(ids)))) as pool:
            list(pool.map(one, ids))
    audit_finish(audit_id=audit.pk, matrix_inline=True, progress=progress)
    audit.refresh_from_db()
    return audit


def audit_request(*, cluster: Cluster, trigger: str, user=None, node_names: list[str] | None = None) -> models.Audit:
    """The one way every door (admin action, web UI, API, beat) starts an audit now: the permission check (for a
    person; `user=None` is the system itself, e.g. beat), start, and hand it to Celery. Raises PermissionDenied,
    AuditAlreadyRunning, AuditRefused, or AuditNotQueued (the broker is down; the audit is closed, blocking nothing).
    """
    if user is not None:
        permissions.require(user, permissions.START_AUDIT)
    audit = audit_start(cluster=cluster, node_names=node_names, trigger=trigger, user=user)
    audit_enqueue(audit)
    return audit
