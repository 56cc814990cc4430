"""Audit history retention: finished audits older than PREFLIGHT_AUDIT_RETENTION_DAYS are deleted with their node
audits, results and connectivity paths, except the newest PREFLIGHT_AUDIT_KEEP of each cluster, which stay
whatever their age (so "what changed" always has a baseline, even for a cluster audited once a year). An audit
still queued or running is never touched. Beat runs it daily; `manage.py prune_audits` runs it by hand.

A matrix of 200 nodes stores about 40,000 paths per audit: without a bound, daily audits grow the database by
gigabytes a year.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import models
from ..choices import RunState

logger = logging.getLogger(__name__)


@dataclass
class PruneReport:
    audits: int = 0
    node_audits: int = 0
    results: int = 0
    paths: int = 0
    by_cluster: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"{self.audits} audits ({self.node_audits} node audits, {self.results} check results, "
            f"{self.paths} connectivity paths)"
        )


def prunable_audits(*, now: datetime | None = None) -> list[models.Audit]:
    """The audits the retention rule lets go, oldest first."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.PREFLIGHT_AUDIT_RETENTION_DAYS)
    keep = max(1, settings.PREFLIGHT_AUDIT_KEEP)
    finished = [RunState.DONE, RunState.ERROR]
    doomed: list[models.Audit] = []
    clusters = set(
        models.Audit.objects.filter(state__in=finished, created__lt=cutoff)
        .order_by()  # (the model's default ordering would make DISTINCT per cluster and date)
        .values_list("cluster_id", flat=True)
        .distinct()
    )
    for cluster_id in sorted(clusters):
        newest = list(
            models.Audit.objects.filter(cluster_id=cluster_id, state__in=finished)
            .order_by("-created", "-pk")
            .values_list("pk", flat=True)[:keep]
        )
        doomed.extend(
            models.Audit.objects.filter(cluster_id=cluster_id, state__in=finished, created__lt=cutoff)
            .exclude(pk__in=newest)
            .select_related("cluster")
            .order_by("created", "pk")
        )
    return doomed


def audit_prune(*, now: datetime | None = None, dry_run: bool = False) -> PruneReport:
    """Apply the retention rule; one transaction per audit, so a failure costs one audit, never a half-deleted one."""
    report = PruneReport()
    for audit in prunable_audits(now=now):
        # one count per table: counting node audits and paths in one query would join them (200 x 40,000 rows)
        node_audits = models.NodeAudit.objects.filter(audit=audit).count()
        paths = models.NetworkPath.objects.filter(audit=audit).count()
        results = models.CheckResult.objects.filter(node_audit__audit=audit).count()
        if not dry_run:  # (done and error are final states: a selected audit cannot start running again)
            with transaction.atomic():
                # The two biggest tables first, each as one set DELETE (nothing hangs off their rows), so the
                # cascade below does not load tens of thousands of rows to delete them one batch at a time.
                models.NetworkPath.objects.filter(audit=audit).delete()
                models.CheckResult.objects.filter(node_audit__audit=audit).delete()
                audit.delete()
        report.audits += 1
        report.node_audits += node_audits
        report.paths += paths
        report.results += results
        report.by_cluster[audit.cluster.name] = report.by_cluster.get(audit.cluster.name, 0) + 1
    if report.audits and not dry_run:
        logger.info("pruned %s", report)
    return report
