"""The cluster fix plan, read from one audit: the one function the page, the API and `manage.py fix_plan` call.

A plan is bound to the audit it was built from: each enabled node's latest finished result up to that audit. It
says when the cluster has a newer finished audit, so a reader never mistakes an old plan for the current one.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Max, Prefetch

from inventory.models import Cluster
from portal import permissions

from .. import models
from ..fixplan import FixPlan, NodeResults, ResultRow, build_plan, plan_hash, render_playbook


class FixPlanUnavailable(Exception):
    """No plan can be built (no finished audit, or the audit asked for is not this cluster's)."""


@dataclass(frozen=True)
class ClusterFixPlan:
    cluster: Cluster
    audit: models.Audit
    latest_audit_id: int
    plan: FixPlan

    @property
    def newer_audit(self) -> bool:
        return self.latest_audit_id != self.audit.pk

    @property
    def hash(self) -> str:
        return plan_hash(self.plan)

    def as_dict(self) -> dict:
        return {
            "cluster": self.cluster.name,
            "audit": self.audit.pk,
            "audit_finished": self.audit.finished.isoformat().replace("+00:00", "Z") if self.audit.finished else None,
            "latest_audit": self.latest_audit_id,
            "newer_audit": self.newer_audit,
            "hash": self.hash,
            "groups": [
                {
                    "key": g.key,
                    "label": g.label,
                    "title": f"{len(g.nodes)} node{'s' if len(g.nodes) != 1 else ''}: {g.label}",
                    "check_ids": list(g.check_ids),
                    "nodes": [n.name for n in g.nodes],
                    "steps": [{"check_id": s.check_id, "commands": [c.text for c in s.commands]} for s in g.steps],
                    "commands": list(g.commands),
                }
                for g in self.plan.groups
            ],
            "nothing_to_run": [n.name for n in self.plan.nothing_to_run],
            "manual": [
                {"node": n.name, "check_ids": list(n.manual)}
                for n in (*(m for g in self.plan.groups for m in g.nodes), *self.plan.nothing_to_run)
                if n.manual
            ],
        }

    def playbook(self) -> str:
        return render_playbook(self.plan)


def _finished(cluster: Cluster):
    return models.Audit.objects.filter(cluster=cluster, finished__isnull=False)


def node_results(*, cluster: Cluster, audit_id: int, node_ids: list[int] | None = None) -> list[NodeResults]:
    """Each enabled node's latest finished node audit up to `audit_id`, as plain data for the plan."""
    nodes = cluster.nodes.filter(enabled=True)
    if node_ids is not None:
        nodes = nodes.filter(pk__in=node_ids)
    latest = (
        models.NodeAudit.objects.filter(node__in=nodes, audit_id__lte=audit_id, finished__isnull=False)
        .values("node_id")
        .annotate(last=Max("audit_id"))
    )
    wanted = [(row["node_id"], row["last"]) for row in latest]
    if not wanted:
        return []
    node_audits = (
        models.NodeAudit.objects.filter(node_id__in=[n for n, _ in wanted], audit_id__in={a for _, a in wanted})
        .select_related("node")
        .prefetch_related(Prefetch("results", queryset=models.CheckResult.objects.order_by("position")))
    )
    chosen = set(wanted)
    return [
        NodeResults(
            node_id=na.node_id,
            name=na.node.name,
            status=na.status,
            audit_id=na.audit_id,
            results=tuple(
                ResultRow(r.check_id, r.status, tuple(str(c) for c in (r.commands or [])), r.position)
                for r in na.results.all()
            ),
        )
        for na in node_audits
        if (na.node_id, na.audit_id) in chosen
    ]


def cluster_fix_plan(*, cluster: Cluster, user=None, audit_id: int | None = None) -> ClusterFixPlan:
    """The fix plan of `cluster` from `audit_id` (default: its latest finished audit). Raises PermissionDenied
    (needs view_results) or FixPlanUnavailable."""
    if user is not None:
        permissions.require(user, permissions.VIEW_RESULTS)
    latest = _finished(cluster).order_by("-pk").first()
    if latest is None:
        raise FixPlanUnavailable(f"cluster {cluster.name} has no finished audit yet: audit it first")
    audit = latest if audit_id is None else _finished(cluster).filter(pk=audit_id).first()
    if audit is None:
        raise FixPlanUnavailable(f"cluster {cluster.name} has no finished audit {audit_id}")
    plan = build_plan(audit_id=audit.pk, nodes=node_results(cluster=cluster, audit_id=audit.pk))
    return ClusterFixPlan(cluster=cluster, audit=audit, latest_audit_id=latest.pk, plan=plan)
