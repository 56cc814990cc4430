"""Reads of fix runs: one run with its nodes, before and after (the node audit the plan read, and the re-audit)."""

from __future__ import annotations

from .. import models


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _user(user) -> str | None:
    return user.get_username() if user is not None else None


def _node_audit_out(node_audit: models.NodeAudit) -> dict:
    """A node audit as a fix run shows it: its status, whether it reached the node and whether Preflight lost it
    (the three the node's state is read from: portal.states.node_state)."""
    return {
        "audit": node_audit.audit_id,
        "status": node_audit.status,
        "reached": node_audit.reached,
        "portal_error": bool(node_audit.portal_error),
    }


def fix_run_detail(*, fix_run_id: int) -> dict:
    run = models.FixRun.objects.select_related("cluster", "approved_by", "previewed_by", "reaudit").get(pk=fix_run_id)
    rows = list(run.nodes.select_related("node", "before").order_by("node__name"))
    after = {}
    if run.reaudit_id is not None:
        after = {
            na.node_id: na
            for na in models.NodeAudit.objects.filter(audit_id=run.reaudit_id, node_id__in=[r.node_id for r in rows])
        }
    return {
        "id": run.pk,
        "cluster": run.cluster.name,
        "audit": run.audit_id,
        "state": run.state,
        "groups": list(run.groups),
        "commands_hash": run.commands_hash,
        "previewed_by": _user(run.previewed_by),
        "created": _iso(run.created),
        "approved_by": _user(run.approved_by),
        "approved": _iso(run.approved),
        "finished": _iso(run.finished),
        "reaudit": run.reaudit_id,
        "reaudit_state": run.reaudit.state if run.reaudit else None,
        "error": run.error,
        "nodes": [
            {
                "node": r.node.name,
                "node_id": r.node_id,
                "state": r.state,
                "commands": [s["command"] for s in r.commands],
                "commands_hash": r.commands_hash,
                "host_key": r.host_key,
                "dry_run": r.dry_run,
                "output": r.output,
                "steps": r.steps,
                "exit_status": r.exit_status,
                "error": r.error,
                "before": _node_audit_out(r.before) if r.before else None,
                "after": (
                    {**_node_audit_out(after[r.node_id]), "state": after[r.node_id].state}
                    if r.node_id in after
                    else None
                ),
            }
            for r in rows
        ],
    }


def recent_fix_runs(*, cluster, limit: int = 5) -> list[dict]:
    ids = models.FixRun.objects.filter(cluster=cluster).order_by("-pk").values_list("pk", flat=True)[:limit]
    return [fix_run_detail(fix_run_id=pk) for pk in ids]
