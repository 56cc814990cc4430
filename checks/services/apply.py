"""Apply a fix plan with approval: preview (each node's script run with `--dry-run` on the node itself), approve
(the approver recorded, every refusal checked again), run (a Celery task per node, over the same SSH transport,
target policy and pinned host key as audits), then one re-audit of the nodes that ran.

Refusals, each a FixRefused with its `code`: `stale` (the plan is older than the node's latest audit),
`facts_changed` (the node's facts or login changed since the preview), `busy` (the node is already running a
fix), `host_key` (the node offered a different host key), `state` (not waiting for approval), `unknown`
(no such group or node in the plan), `empty` (nothing chosen to run).
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from inventory.choices import HostKeyState, Transport
from inventory.models import Cluster, HostKey, Node
from portal import permissions

from .. import clamp, models
from ..choices import Trigger
from ..fixplan import NodeFix
from ..fixplan.plan import commands_hash, fix_script
from ..transport import ConnectFailure, ProbeRun
from .fix import cluster_fix_plan
from .queue import celery_task
from .start import AuditAlreadyRunning, AuditRefused, audit_enqueue, audit_start
from .trust import login_target, transport_for

logger = logging.getLogger(__name__)
FixState, NodeState = models.FixRun.State, models.FixNodeRun.State
BUSY = (NodeState.QUEUED, NodeState.RUNNING)


class FixRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def facts_hash(node: Node) -> str:
    """What the preview saw of the node: its facts from the latest audit and how it is logged into."""
    seen = {
        "facts": node.last_facts,
        "login": [node.address, node.ssh_port, node.ssh_user, node.transport, node.credential_id],
    }
    return hashlib.sha256(json.dumps(seen, sort_keys=True, default=str).encode()).hexdigest()


def _remote_command(node: Node, *, dry_run: bool) -> str:
    if dry_run:
        return "sh -s -- --dry-run"
    if node.transport == Transport.LOCAL or node.ssh_user == "root":
        return "sh -s"
    return "sudo -n sh -s"


def _latest_node_audit_id(node: Node) -> int | None:
    return (
        models.NodeAudit.objects.filter(node=node, finished__isnull=False)
        .order_by("-audit_id")
        .values_list("pk", flat=True)
        .first()
    )


def _host_key_changed(row: models.FixNodeRun) -> bool:
    """The node offered another key since (a pending one), or the key trusted now is not the one the preview saw."""
    keys = HostKey.objects.filter(node=row.node)
    if keys.filter(state=HostKeyState.PENDING).exists():
        return True
    return bool(row.host_key) and not keys.filter(state=HostKeyState.TRUSTED, fingerprint=row.host_key).exists()


def _exec(node: Node, *, script: str, dry_run: bool, transport=None) -> ProbeRun:
    target = login_target(node)
    runner = transport or transport_for(node)
    return runner.run(
        target,
        command=_remote_command(node, dry_run=dry_run),
        stdin=script,
        timeout=_setting("PREFLIGHT_FIX_TIMEOUT", 60 if dry_run else 900),
        max_bytes=int(_setting("PREFLIGHT_FIX_MAX_BYTES", 256 * 1024)),
    )


def _choose(view, groups: list[str], node_names: list[str]) -> list[NodeFix]:
    chosen: dict[str, NodeFix] = {}
    keys = {g.key: g for g in view.plan.groups}
    for key in groups:
        if key not in keys:
            raise FixRefused("unknown", f"the plan of audit {view.audit.pk} has no group {key!r}")
        chosen.update({n.name: n for n in keys[key].nodes})
    for name in node_names:
        found = view.plan.node(name)
        if found is None:
            raise FixRefused("unknown", f"node {name!r} has nothing to run in the plan of audit {view.audit.pk}")
        chosen[name] = found
    if not chosen:
        raise FixRefused("empty", "choose at least one group or node of the plan")
    return list(chosen.values())


def _stale(node: Node, planned_node_audit_id: int | None) -> str | None:
    latest = _latest_node_audit_id(node)
    if latest is not None and latest != planned_node_audit_id:
        audit_id = models.NodeAudit.objects.filter(pk=latest).values_list("audit_id", flat=True).first()
        return f"{node.name}: the plan is older than the node's latest audit ({audit_id}); reload the plan"
    return None


def fix_sweep_stuck() -> int:
    """End node runs whose worker was lost (running past the run's time-out, or queued for an hour), so they block
    no later fix of their node; returns how many were ended."""
    now = timezone.now()
    ran_out = now - timedelta(seconds=_setting("PREFLIGHT_FIX_TIMEOUT", 900) + 120)
    ended = models.FixNodeRun.objects.filter(state=NodeState.RUNNING, started__lt=ran_out).update(
        state=NodeState.FAILED, finished=now, error="the worker running this fix was lost; audit the node again"
    )
    ended += models.FixNodeRun.objects.filter(
        state=NodeState.QUEUED, fix_run__approved__lt=now - timedelta(hours=1)
    ).update(state=NodeState.FAILED, finished=now, error="no worker picked this fix up within an hour")
    return ended


def _busy(node: Node, *, other_than: int | None = None) -> str | None:
    fix_sweep_stuck()
    running = models.FixNodeRun.objects.filter(node=node, state__in=BUSY)
    if other_than is not None:
        running = running.exclude(fix_run_id=other_than)
    first = running.first()
    return f"{node.name} is already running a fix (run {first.fix_run_id})" if first else None


def fix_preview(
    *, cluster: Cluster, user, audit_id: int, groups: list[str] = (), nodes: list[str] = (), transport=None
) -> models.FixRun:
    """Record what would run on each chosen node and its script's `--dry-run` output on the node itself."""
    if user is not None:
        permissions.require(user, permissions.APPLY_FIX)
    view = cluster_fix_plan(cluster=cluster, audit_id=audit_id)
    chosen = _choose(view, list(groups), list(nodes))
    node_rows = {n.pk: n for n in Node.objects.filter(pk__in=[c.node_id for c in chosen]).select_related("credential")}
    before = {
        na.node_id: na.pk
        for na in models.NodeAudit.objects.filter(node_id__in=node_rows, audit_id__in={c.audit_id for c in chosen})
        if any(c.node_id == na.node_id and c.audit_id == na.audit_id for c in chosen)
    }
    problems = [p for c in chosen for p in (_stale(node_rows[c.node_id], before.get(c.node_id)),) if p]
    problems += [p for c in chosen for p in (_busy(node_rows[c.node_id]),) if p]
    if problems:
        raise FixRefused("stale" if "older" in problems[0] else "busy", "; ".join(problems))
    steps = {
        c.node_id: [{"check_id": s.check_id, "command": cmd.text} for s in c.steps for cmd in s.commands]
        for c in chosen
    }
    run = models.FixRun.objects.create(
        cluster=cluster,
        audit=view.audit,
        groups=list(groups),
        commands_hash=commands_hash([f"{c.name}:{x}" for c in chosen for x in c.commands]),
        previewed_by=user if getattr(user, "is_authenticated", False) else None,
    )
    rows = {
        c.node_id: models.FixNodeRun.objects.create(
            fix_run=run,
            node=node_rows[c.node_id],
            before_id=before.get(c.node_id),
            commands=steps[c.node_id],
            commands_hash=commands_hash([s["command"] for s in steps[c.node_id]]),
            facts_hash=facts_hash(node_rows[c.node_id]),
        )
        for c in chosen
    }

    def dry(node_id: int):
        node = node_rows[node_id]
        try:
            return (
                node_id,
                _exec(
                    node,
                    script=fix_script(node_name=node.name, steps=steps[node_id]),
                    dry_run=True,
                    transport=transport,
                ),
                None,
            )
        except ConnectFailure as failure:
            return node_id, None, failure
        except Exception as exc:  # noqa: BLE001 - the preview says what went wrong for that node
            logger.exception("dry run on %s failed", node.name)
            return node_id, None, ConnectFailure("internal", repr(exc))

    def in_thread(node_id: int):
        try:
            return dry(node_id)
        finally:
            connection.close()  # each worker thread has its own connection

    if connection.in_atomic_block or (connection.vendor == "sqlite" and connection.is_in_memory_db()):
        outcomes = [dry(node_id) for node_id in rows]
    else:
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(rows)))) as pool:
            outcomes = list(pool.map(in_thread, rows))
    for node_id, result, failure in outcomes:
        row = rows[node_id]
        if failure is not None:
            row.state = NodeState.REFUSED
            row.error = clamp.text(failure.message, 2000)
        else:
            row.dry_run = clamp.text(result.output)
            row.host_key = result.host_key_fingerprint[:200]
            if result.exit_status != 0:
                row.state = NodeState.REFUSED
                row.error = f"the dry run ended with exit status {result.exit_status}"
        row.save(update_fields=["state", "error", "dry_run", "host_key"])
    return run


def fix_approve(*, fix_run_id: int, user) -> models.FixRun:
    """Approve a preview: every refusal is checked again, the approver recorded, one Celery task per node."""
    if user is not None:
        permissions.require(user, permissions.APPLY_FIX)
    with transaction.atomic():
        run = models.FixRun.objects.select_for_update().select_related("cluster").get(pk=fix_run_id)
        if run.state != FixState.PREVIEW:
            raise FixRefused(
                "state", f"fix run {run.pk} is {run.get_state_display().lower()}, not waiting for approval"
            )
        rows = list(run.nodes.filter(state=NodeState.PREVIEWED).select_related("node"))
        if not rows:
            raise FixRefused("empty", f"no node of fix run {run.pk} previewed cleanly: nothing to approve")
        # Lock the nodes (PostgreSQL): two approvals of the same node cannot both pass the busy check below.
        list(Node.objects.select_for_update().filter(pk__in=[r.node_id for r in rows]).values_list("pk", flat=True))
        for code, check in (
            ("stale", lambda r: _stale(r.node, r.before_id)),
            (
                "facts_changed",
                lambda r: (
                    None
                    if facts_hash(r.node) == r.facts_hash
                    else f"{r.node.name}: the node's facts or login changed since the preview; preview again"
                ),
            ),
            ("busy", lambda r: _busy(r.node, other_than=run.pk)),
            (
                "host_key",
                lambda r: (
                    f"{r.node.name}: host key changed since the preview; accept the new key under Host keys, "
                    "then preview again"
                    if _host_key_changed(r)
                    else None
                ),
            ),
        ):
            problems = [p for p in map(check, rows) if p]
            if problems:
                raise FixRefused(code, "; ".join(problems))
        run.state, run.approved, run.approved_by = (
            FixState.RUNNING,
            timezone.now(),
            user if getattr(user, "is_authenticated", False) else None,
        )
        run.save(update_fields=["state", "approved", "approved_by"])
        ids = [r.pk for r in rows]
        models.FixNodeRun.objects.filter(pk__in=ids).update(state=NodeState.QUEUED)
        run.nodes.filter(state=NodeState.PREVIEWED).update(state=NodeState.REFUSED, error="not approved")

        def dispatch() -> None:
            for node_run_id in ids:
                celery_task("checks.fix_node").apply_async((node_run_id,))

        transaction.on_commit(dispatch)
    return run


def _steps(output: str, commands: list[str], exit_status: int | None) -> list[dict]:
    """Each step's exit status from the script's echoed `+ command` lines: under `set -eu` every step before the
    last echoed one succeeded, the last one ended the script with its status, the rest never ran."""
    printed, position = 0, 0
    for line in output.splitlines():
        if position < len(commands) and line == f"+ {commands[position]}":
            position += 1
            printed = position
    steps = []
    for i, command in enumerate(commands):
        if i < printed - 1:
            status: int | None = 0
        elif i == printed - 1:
            status = exit_status
        else:
            status = None
        steps.append({"command": command, "exit_status": status})
    return steps


def fix_node_run(*, fix_node_run_id: int, transport=None) -> models.FixNodeRun | None:
    """Run one approved node's script over SSH (sudo -n when the login user is not root); record output, each
    step's exit status and the outcome; the last node of the run starts the re-audit."""
    claimed = models.FixNodeRun.objects.filter(pk=fix_node_run_id, state=NodeState.QUEUED).update(
        state=NodeState.RUNNING, started=timezone.now()
    )
    if not claimed:
        return None
    row = models.FixNodeRun.objects.select_related("node__credential", "fix_run").get(pk=fix_node_run_id)
    commands = [s["command"] for s in row.commands]
    try:
        if commands_hash(commands) != row.commands_hash:
            raise FixRefused("state", "the stored commands do not match the approved hash; nothing was run")
        if facts_hash(row.node) != row.facts_hash:
            raise FixRefused("facts_changed", "the node's facts or login changed since the preview; nothing was run")
        result = _exec(
            row.node, script=fix_script(node_name=row.node.name, steps=row.commands), dry_run=False, transport=transport
        )
        row.output = clamp.text(result.output)
        row.exit_status = result.exit_status
        row.steps = _steps(result.output, commands, result.exit_status)
        row.state = NodeState.DONE if result.exit_status == 0 else NodeState.FAILED
        if result.timed_out or result.truncated:
            row.error = "the run timed out" if result.timed_out else "the run's output exceeded its cap"
    except FixRefused as refused:
        row.state, row.error = NodeState.REFUSED, refused.message
    except ValueError as invalid:  # a stored command that no longer renders from its template: nothing ran
        row.state, row.error = NodeState.REFUSED, f"{invalid}"
    except ConnectFailure as failure:
        row.state = NodeState.REFUSED if failure.reason == "host key changed" else NodeState.FAILED
        row.error = clamp.text(failure.message, 2000)
    except Exception as exc:  # noqa: BLE001 - the node's run ends, saying why
        logger.exception("fix node run %s crashed", fix_node_run_id)
        row.state, row.error = NodeState.FAILED, f"internal error: {exc!r}"
    row.finished = timezone.now()
    row.save(update_fields=["output", "exit_status", "steps", "state", "error", "finished"])
    _finish(row.fix_run_id)
    return row


def _finish(fix_run_id: int) -> None:
    if models.FixNodeRun.objects.filter(fix_run_id=fix_run_id, state__in=BUSY).exists():
        return
    closed = models.FixRun.objects.filter(pk=fix_run_id, state=FixState.RUNNING).update(
        state=FixState.DONE, finished=timezone.now()
    )
    if closed:
        celery_task("checks.fix_reaudit").apply_async((fix_run_id,))


def fix_reaudit(*, fix_run_id: int) -> bool:
    """Audit again the nodes whose fix ran; False when another audit of the cluster is running (try later)."""
    run = models.FixRun.objects.select_related("cluster", "approved_by").get(pk=fix_run_id)
    if run.reaudit_id is not None:
        return True
    names = list(run.nodes.filter(state__in=[NodeState.DONE, NodeState.FAILED]).values_list("node__name", flat=True))
    if not names:
        return True
    try:
        with transaction.atomic():
            audit = audit_start(cluster=run.cluster, node_names=names, trigger=Trigger.FIX, user=run.approved_by)
            models.FixRun.objects.filter(pk=run.pk).update(reaudit=audit)
            audit_enqueue(audit)
    except AuditAlreadyRunning:
        return False
    except AuditRefused as exc:
        models.FixRun.objects.filter(pk=run.pk).update(error=f"re-audit not started: {exc}")
    return True
