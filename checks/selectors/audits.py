"""Reads for audits: the output contract of `audit --json` and the API, with a constant number of queries."""

from __future__ import annotations

from django.db.models import Prefetch

from portal import states

from .. import models
from ..script import ScriptStep, render_script


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def audit_detail(*, audit_id: int) -> dict:
    """The audit output contract (REQUIREMENTS.md): audit, cluster, profile, times, nodes with facts and checks."""
    audit = models.Audit.objects.select_related("cluster").get(pk=audit_id)
    node_audits = (
        models.NodeAudit.objects.filter(audit=audit)
        .select_related("node")
        .prefetch_related(Prefetch("results", queryset=models.CheckResult.objects.order_by("position")))
        .order_by("node__role", "node__name")
    )
    return {
        "audit": audit.pk,
        "cluster": audit.cluster.name,
        "profile": audit.profile_key,
        "state": audit.state,
        "status": audit.status,
        "started": _iso(audit.started),
        "finished": _iso(audit.finished),
        "nodes": [
            {
                "name": na.node.name,
                "address": na.node.address,
                "role": na.node.role,
                "status": na.status,
                "readiness": states.node_state(na.status, na.reached, portal_fault=bool(na.portal_error)).value,
                "reached": na.reached,
                "state": na.state,
                "attempts": na.attempts,
                "portal_error": na.portal_error,
                "facts": na.facts or {},
                "checks": [
                    {
                        "id": r.check_id,
                        "status": r.status,
                        "summary": r.summary,
                        "evidence": r.evidence,
                        "remediation": r.remediation,
                        "commands": list(r.commands or []),
                        **({"waived": _waived(r.waived)} if r.waived else {}),
                    }
                    for r in na.results.all()
                ],
            }
            for na in node_audits
        ],
        "ignored": list(audit.ignored or []),
    }


def _waived(snapshot: dict) -> dict:
    """The `waived` object of the output contract: reason, by, expires (null for `--ignore`), and the scope."""
    return {
        "reason": snapshot.get("reason", ""),
        "by": snapshot.get("by", ""),
        "expires": snapshot.get("expires"),
        "scope": snapshot.get("scope", ""),
    }


def node_remediation_script(*, node_audit: models.NodeAudit) -> str:
    """Every fix of a node audit as one POSIX sh script, in check order, from `commands` alone (never prose)."""
    node = node_audit.node
    results = node_audit.results.exclude(status__in=("pass", "skip")).order_by("position")
    return render_script(
        title=f"Preflight remediation for {node.name} ({node.address}), audit {node_audit.audit_id}, "
        f"profile {node_audit.audit.profile_key}.",
        steps=[
            ScriptStep(r.check_id, r.status, r.summary, r.remediation, tuple(r.commands or ()))
            for r in results
            if r.remediation or r.commands
        ],
    )
