"""Run audits: start one, run a node's probe and rules, record results and facts, finish, sweep stuck runs.

Celery tasks and the `audit` command call these; neither holds logic of its own. Idempotency lives here: a node
audit is claimed with a conditional UPDATE (queued -> running), so a redelivered task finds nothing to do.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from inventory.choices import AuditStatus, HostKeyState, InstallKind, NodeRole, Transport
from inventory.crypto import SecretUnreadable
from inventory.models import Cluster, HostKey, Node
from inventory.services import node_record_facts, node_record_status

from .. import clamp, models
from ..catalog import CHECK_IDS, ERROR, FAIL, HOST_CHECK_IDS, PASS, CheckResult, evaluate_node, worst
from ..choices import NetworkState, RunState, Trigger
from ..node_facts import NodeFacts, build_facts
from ..probe import PROBE_SCRIPT, probe_command, probe_nonce, split_sections
from ..remediation import Remedy
from ..spec import NodeContext, profile_spec_from_model
from ..targets import target_address
from ..transport import ConnectFailure, LocalTransport, SshTransport, Target

logger = logging.getLogger(__name__)


class AuditRefused(Exception):
    """An audit cannot start (another is running, unknown nodes, nothing to audit); the message says why."""


class AuditAlreadyRunning(AuditRefused):
    """Another audit of the same cluster is queued or running."""


class AuditNotQueued(AuditRefused):
    """The broker did not accept the audit; it was closed as `error` so it blocks nothing."""


# --- starting -----------------------------------------------------------------------------------------------------


@transaction.atomic
def audit_start(
    *, cluster: Cluster, node_names: list[str] | None = None, trigger: str = Trigger.CLI, user=None
) -> models.Audit:
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
        network_state=NetworkState.PENDING if matrix else NetworkState.NONE,
    )
    models.NodeAudit.objects.bulk_create(models.NodeAudit(audit=audit, node=node) for node in nodes)
    return audit


def audit_enqueue(audit: models.Audit) -> None:
    """Hand the audit to Celery once the transaction that created it commits.

    If the broker does not take it (Redis down), the audit ends at once as `error` saying so, and AuditNotQueued
    is raised: an audit nobody will run must not block the next one for the sweep interval.
    """
    from ..tasks import audit_cluster_task

    def publish() -> None:
        try:
            audit_cluster_task.apply_async((audit.pk,), retry=True, retry_policy=settings.PREFLIGHT_PUBLISH_RETRY)
        except Exception as exc:  # noqa: BLE001 - kombu raises OperationalError, redis-py its own errors
            reason = f"the task queue did not accept the audit ({_broker_name()}): {exc}"
            logger.error("audit %s not queued: %s", audit.pk, reason)
            _audit_fail_queued(audit.pk, reason, never_ran=True)
            raise AuditNotQueued(f"audit {audit.pk} could not start: {reason}. Is Redis running?") from None

    transaction.on_commit(publish)


def _broker_name() -> str:
    from kombu.utils.url import maybe_sanitize_url

    return maybe_sanitize_url(settings.CELERY_BROKER_URL)


def audit_dispatch(*, audit_id: int) -> int:
    """Send one Celery task per node audit still queued; returns how many were sent. Safe to repeat: a node audit
    is claimed with a conditional UPDATE, so a duplicate message finds nothing to do."""
    from celery import group

    from ..tasks import audit_node_task

    ids = list(models.NodeAudit.objects.filter(audit_id=audit_id, state=RunState.QUEUED).values_list("pk", flat=True))
    if ids:
        group(audit_node_task.s(node_audit_id) for node_audit_id in ids).apply_async()
    models.Audit.objects.filter(pk=audit_id).update(dispatched=timezone.now(), dispatches=F("dispatches") + 1)
    return len(ids)


def _audit_fail_queued(audit_id: int, reason: str, *, never_ran: bool) -> None:
    """End the audit's queued node audits as `error` with `reason`, and close the audit."""
    queued = models.NodeAudit.objects.filter(audit_id=audit_id, state=RunState.QUEUED)
    for node_audit_id in list(queued.values_list("pk", flat=True)):
        _node_audit_end_in_error(node_audit_id, reason, states=[RunState.QUEUED])
    if never_ran:  # nothing of it ran: no connectivity matrix either
        models.Audit.objects.filter(pk=audit_id, network_state=NetworkState.PENDING).update(
            network_state=NetworkState.NONE
        )
        models.Audit.objects.filter(pk=audit_id, error="").update(error=reason)
    audit_finish(audit_id=audit_id)


def audit_run_inline(*, audit: models.Audit, transport=None) -> models.Audit:
    """Run every node audit of `audit` now, in threads (the CLI's path; Celery runs the same node service)."""
    ids = list(audit.node_audits.values_list("pk", flat=True))

    def one(node_audit_id: int) -> None:
        try:
            node_audit_run(node_audit_id=node_audit_id, transport=transport, close_audit=False)
        finally:
            connection.close()  # each worker thread has its own connection

    if connection.in_atomic_block or (connection.vendor == "sqlite" and connection.is_in_memory_db()):
        # Other threads' connections could not see this transaction's rows (or an in-memory database): stay here.
        for node_audit_id in ids:
            node_audit_run(node_audit_id=node_audit_id, transport=transport, close_audit=False)
    else:
        with ThreadPoolExecutor(max_workers=max(1, min(settings.PREFLIGHT_AUDIT_CONCURRENCY, len(ids)))) as pool:
            list(pool.map(one, ids))
    audit_finish(audit_id=audit.pk, matrix_inline=True)
    audit.refresh_from_db()
    return audit


# --- one node -----------------------------------------------------------------------------------------------------


def _host_key_verifier(node: Node):
    def verify(key_type: str, fingerprint: str, key_b64: str) -> None:
        known = list(HostKey.objects.filter(node=node))
        trusted = [k for k in known if k.state == HostKeyState.TRUSTED]
        if any(k.key_type == key_type and k.fingerprint == fingerprint for k in trusted):
            return
        if not trusted:
            HostKey.objects.create(
                node=node,
                key_type=key_type,
                fingerprint=fingerprint,
                public_key=key_b64,
                state=HostKeyState.TRUSTED,
                accepted_at=timezone.now(),
            )
            return
        HostKey.objects.get_or_create(
            node=node,
            key_type=key_type,
            fingerprint=fingerprint,
            defaults={"public_key": key_b64, "state": HostKeyState.PENDING},
        )
        was = ", ".join(f"{k.key_type} {k.fingerprint}" for k in trusted)
        raise ConnectFailure(
            "host key changed",
            f"host key changed: {node.address} offered {key_type} {fingerprint}, trusted is {was}. Nothing was run. "
            "If the change is expected (reinstall), accept the new key under Host keys in the admin.",
        )

    return verify


def _target(node: Node, address: str | None = None) -> Target:
    """How to log in to `node`. `address`: one already resolved and checked by target_address (the matrix resolves
    each node once for its listener and prober); otherwise the node's name is resolved and checked here, once."""
    if node.transport != Transport.LOCAL and address is None:
        address = target_address(node.address, node.ssh_port)
    credential = node.credential
    if credential is None and node.transport != Transport.LOCAL:
        raise ConnectFailure("credential", "the node has no credential: set a key or a password")
    try:
        password = credential.secret if credential and credential.kind == "password" else ""
        key = credential.secret if credential and credential.kind == "private_key" else ""
        passphrase = credential.passphrase if credential and key else ""
    except SecretUnreadable as exc:
        raise ConnectFailure("credential", str(exc)) from None
    return Target(
        address=address or node.address,
        port=node.ssh_port,
        user=node.ssh_user,
        password=password,
        private_key=key,
        passphrase=passphrase,
        verify_host_key=_host_key_verifier(node),
    )


def _transport_for(node: Node):
    if node.transport == Transport.LOCAL:
        return LocalTransport()
    return SshTransport(
        connect_timeout=settings.PREFLIGHT_SSH_CONNECT_TIMEOUT, auth_timeout=settings.PREFLIGHT_SSH_AUTH_TIMEOUT
    )


def connect_summary(failure: ConnectFailure) -> str:
    """ "reason: message", without saying the reason twice when the message already starts with it."""
    if failure.message.lower().startswith(failure.reason.lower()):
        return failure.message
    return f"{failure.reason}: {failure.message}"


def _unreachable_results(reason: str, summary: str, *, connect_status: str) -> list[CheckResult]:
    ssh = CheckResult("ssh.connect", connect_status, summary, reason, Remedy(_connect_advice(reason)))
    others = [CheckResult(check_id, ERROR, f"not checked: {summary}") for check_id in HOST_CHECK_IDS]
    return [ssh, *others]


def _connect_advice(reason: str) -> str:
    lowered = reason.lower()
    if "host key changed" in lowered:
        return (
            "Confirm with the node's owner that it was reinstalled, then accept the new key in the admin (Host keys)."
        )
    if "refused" in lowered:
        return "Start sshd on the node (`systemctl enable --now sshd`) or correct the SSH port in the inventory."
    if "timed out" in lowered or "unreachable" in lowered or "no ssh banner" in lowered:
        return "Check the address, routing and any firewall between the portal and the node (TCP to the SSH port)."
    if "rejected" in lowered or "credential" in lowered or "private key" in lowered:
        return "Fix the node's credential in the admin: the user, key or password Preflight logs in with."
    if "resolve" in lowered:
        return "Fix the node's address or its DNS record."
    return "See the evidence for what the SSH server answered."


def _installs(facts: NodeFacts, profile) -> list[dict]:
    installs = []
    for vendor, found in facts.vendors.items():
        rule = profile.accelerator_rules.get(vendor)
        if found.report.driver_version:
            installs.append(
                {
                    "kind": InstallKind.DRIVER,
                    "vendor": vendor,
                    "name": f"{vendor} driver",
                    "version": found.report.driver_version,
                }
            )
        runtime_version = found.report.runtime_version or found.rocm_version
        if runtime_version:
            installs.append(
                {
                    "kind": InstallKind.SDK,
                    "vendor": vendor,
                    "name": found.report.runtime_name or vendor,
                    "version": runtime_version,
                }
            )
        if found.toolkit_found:
            installs.append(
                {
                    "kind": InstallKind.TOOLKIT,
                    "vendor": vendor,
                    "name": rule.toolkit_name if rule else f"{vendor} toolkit",
                    "version": found.toolkit_version,
                }
            )
        if rule and rule.docker_runtime and facts.docker and rule.docker_runtime in facts.docker.runtimes:
            installs.append(
                {
                    "kind": InstallKind.CONTAINER_RUNTIME,
                    "vendor": vendor,
                    "name": f"docker runtime {rule.docker_runtime}",
                    "version": "",
                }
            )
    if facts.docker and facts.docker.server_version:
        installs.append({"kind": InstallKind.DOCKER, "name": "Docker Engine", "version": facts.docker.server_version})
    for implementation in facts.ntp_implementations:
        installs.append({"kind": InstallKind.NTP, "name": implementation, "version": ""})
    return installs


def _accelerator_row(item: dict) -> dict:
    """An accelerator as the Accelerator model stores it: strings cut to their columns, numbers in range."""
    return {
        "vendor": clamp.text(item.get("vendor"), 16),
        "index": clamp.integer(item.get("index"), 0, clamp.POSITIVE_INT_MAX) or 0,
        "model": clamp.text(item.get("model"), 200),
        "memory_mib": clamp.integer(item.get("memory_mib"), 0, clamp.POSITIVE_BIGINT_MAX),
        "uuid": clamp.text(item.get("uuid"), 128),
        "pci_address": clamp.text(item.get("pci_address"), 32),
        "driver_version": clamp.text(item.get("driver_version"), 64),
    }


def _install_row(item: dict) -> dict:
    return {
        **item,
        "vendor": clamp.text(item.get("vendor", ""), 16),
        "name": clamp.text(item.get("name"), 120),
        "version": clamp.text(item.get("version", ""), 64),
    }


@dataclass
class _Outcome:
    """What one node audit found, ready to record."""

    results: list[CheckResult]
    facts: NodeFacts | None = None
    summary: dict | None = None
    installs: list[dict] = field(default_factory=list)


def _probe_and_judge(node_audit: models.NodeAudit, node: Node, transport) -> _Outcome:
    """Log in, run the probe, build facts and evaluate the rules. Every failure, whatever raised it (the
    transport, a parser, a rule), becomes the node's `error` with the reason: nothing a node prints escapes."""
    cluster = node.cluster
    profile = profile_spec_from_model(node_audit.audit.profile)
    base_context = dict(
        name=node.name,
        role=node.role,
        tls_enabled=cluster.tls_enabled,
        distributed_vllm=cluster.distributed_vllm,
        server_runs_worker=cluster.server_runs_worker,
    )
    try:
        target = _target(node)
        runner = transport or _transport_for(node)
        nonce = probe_nonce()
        node_audit.nonce = nonce
        run = runner.run(
            target,
            command=probe_command(nonce, settings.PREFLIGHT_TOOL_TIMEOUT),
            stdin=PROBE_SCRIPT,
            timeout=settings.PREFLIGHT_PROBE_TIMEOUT,
            max_bytes=settings.PREFLIGHT_PROBE_MAX_BYTES,
            idle_timeout=settings.PREFLIGHT_PROBE_IDLE_TIMEOUT,
        )
    except ConnectFailure as failure:
        node_audit.error = failure.message
        return _Outcome(_unreachable_results(failure.message, connect_summary(failure), connect_status=FAIL))
    except Exception as exc:  # noqa: BLE001 - a node must end in a final state whatever went wrong
        logger.exception("node audit %s crashed", node_audit.pk)
        node_audit.error = repr(exc)
        return _Outcome(_unreachable_results(repr(exc), f"internal error: {exc!r}", connect_status=ERROR))

    node_audit.raw_output = run.output
    node_audit.output_truncated = run.truncated
    how = "locally" if node.transport == Transport.LOCAL else f"as {node.ssh_user}"
    key = f", host key {run.host_key_fingerprint}" if run.host_key_fingerprint else ""
    connected = CheckResult("ssh.connect", PASS, f"connected {how}{key}", f"address {node.address}:{node.ssh_port}")
    sections = split_sections(run.output, nonce)
    if run.timed_out or run.truncated or "done" not in sections:  # (silent after `done`: nothing was lost)
        last = list(sections)[-1] if sections else "none"
        if run.idle:
            after = f"after section {last}" if sections else "after login (no section started)"
            why = f"the probe printed nothing for {settings.PREFLIGHT_PROBE_IDLE_TIMEOUT:g} s {after}"
        elif run.timed_out:
            why = f"the probe did not finish within {settings.PREFLIGHT_PROBE_TIMEOUT:g} s (last section: {last})"
        elif run.truncated:
            why = f"the probe's output exceeded {settings.PREFLIGHT_PROBE_MAX_BYTES} bytes (last section: {last})"
        else:
            why = f"the probe ended early (exit status {run.exit_status}, last section: {last})"
        node_audit.error = why
        tail = run.output[-1500:]
        return _Outcome([connected] + [CheckResult(c, ERROR, f"not checked: {why}", tail) for c in HOST_CHECK_IDS])
    try:
        facts = build_facts(sections)
        context = NodeContext(**base_context)
        if facts.clock is not None and run.first_byte is not None:
            reference = (run.started + run.first_byte) / 2
            context = NodeContext(
                **base_context,
                clock_offset_seconds=facts.clock - reference,
                round_trip_seconds=run.first_byte - run.started,
            )
            node_audit.clock_offset_seconds = clamp.real(context.clock_offset_seconds)
            node_audit.round_trip_seconds = clamp.real(context.round_trip_seconds)
        results = [connected, *evaluate_node(facts, profile, context)]
        summary = clamp.json_value(facts.summary())
        installs = [_install_row(i) for i in _installs(facts, profile)]
    except Exception as exc:  # noqa: BLE001 - whatever the node printed, its audit ends, saying why
        logger.warning("node audit %s: reading the probe output failed", node_audit.pk, exc_info=True)
        why = f"Preflight could not read what the probe printed: {exc}"
        node_audit.error = why
        node_audit.clock_offset_seconds = node_audit.round_trip_seconds = None
        return _Outcome([connected] + [CheckResult(c, ERROR, f"not checked: {why}") for c in HOST_CHECK_IDS])
    node_audit.facts = summary
    return _Outcome(results, facts, summary, installs)


def _record_node_audit(node_audit: models.NodeAudit, outcome: _Outcome) -> None:
    results = outcome.results
    status = worst(r.status for r in results)
    finished = timezone.now()
    node = node_audit.node
    with transaction.atomic():
        models.CheckResult.objects.filter(node_audit=node_audit).delete()
        models.CheckResult.objects.bulk_create(
            models.CheckResult(
                node_audit=node_audit,
                check_id=r.check_id,
                status=r.status,
                summary=clamp.text(r.summary, 500),
                evidence=clamp.text(r.evidence),
                remediation=clamp.text(r.remediation),
                commands=r.commands,
                position=i,
            )
            for i, r in enumerate(sorted(results, key=lambda r: CHECK_IDS.index(r.check_id)))
        )
        node_audit.status = status
        node_audit.state = RunState.DONE
        node_audit.finished = finished
        node_audit.raw_output = clamp.text(node_audit.raw_output)
        node_audit.error = clamp.text(node_audit.error)
        node_audit.facts = clamp.json_value(node_audit.facts or {})
        node_audit.save(
            update_fields=[
                "status",
                "state",
                "finished",
                "raw_output",
                "output_truncated",
                "nonce",
                "facts",
                "error",
                "clock_offset_seconds",
                "round_trip_seconds",
            ]
        )
        if outcome.summary is not None:
            node_record_facts(
                node=node,
                accelerators=[_accelerator_row(a) for a in outcome.summary["accelerators"]],
                installs=outcome.installs,
                status=status,
                facts=outcome.summary,
                when=finished,
            )
        else:
            node_record_status(node=node, status=status, when=finished)


def node_audit_run(*, node_audit_id: int, transport=None, close_audit: bool = True) -> models.NodeAudit | None:
    """Audit one node: one connection, one probe exec; never raises for anything the node does, and always ends
    the node audit in a final state (recording included: a row the database refuses ends it as `error`)."""
    now = timezone.now()
    claimed = models.NodeAudit.objects.filter(pk=node_audit_id, state=RunState.QUEUED).update(
        state=RunState.RUNNING, started=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    node_audit = None
    try:
        node_audit = models.NodeAudit.objects.select_related("node__cluster", "node__credential", "audit__profile").get(
            pk=node_audit_id
        )
        models.Audit.objects.filter(pk=node_audit.audit_id, state=RunState.QUEUED).update(
            state=RunState.RUNNING, started=now
        )
        _record_node_audit(node_audit, _probe_and_judge(node_audit, node_audit.node, transport))
    except Exception as exc:  # noqa: BLE001 - the last line of defence: the node ends as `error`, saying why
        logger.exception("node audit %s could not be recorded", node_audit_id)
        _node_audit_end_in_error(
            node_audit_id, f"internal error while recording this node's audit: {exc!r}", states=[RunState.RUNNING]
        )
    audit_id = node_audit.audit_id if node_audit is not None else None
    if audit_id is None:
        audit_id = models.NodeAudit.objects.filter(pk=node_audit_id).values_list("audit_id", flat=True).first()
    try:
        if close_audit:
            audit_finish(audit_id=audit_id)
    except Exception:  # noqa: BLE001 - the node audit is final; the sweep closes the audit if this failed
        logger.exception("closing audit %s after node audit %s failed", audit_id, node_audit_id)
    if node_audit is not None:
        node_audit.refresh_from_db()
    return node_audit


# --- finishing and sweeping ----------------------------------------------------------------------------------------


def matrix_time_budget(audit_id: int) -> float:
    """How long the connectivity matrix of an audit may take: grows with the number of paths (and with the
    waves of nodes the thread pool logs into), never less than PREFLIGHT_STUCK_AFTER."""
    from ..connectivity import matrix_time_budget as budget

    roles = list(models.NodeAudit.objects.filter(audit_id=audit_id).values_list("node__role", flat=True))
    servers, workers = roles.count(NodeRole.SERVER), roles.count(NodeRole.WORKER)
    return max(
        settings.PREFLIGHT_STUCK_AFTER,
        budget(
            nodes=len(roles),
            paths=2 * servers * workers + (workers + servers) * (workers + servers - 1),
            concurrency=settings.PREFLIGHT_AUDIT_CONCURRENCY,
            connect_timeout=settings.PREFLIGHT_SSH_CONNECT_TIMEOUT + settings.PREFLIGHT_SSH_AUTH_TIMEOUT,
            port_timeout=settings.PREFLIGHT_NETWORK_CONNECT_TIMEOUT,
        ),
    )


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
        from ..tasks import network_matrix_task

        budget = matrix_time_budget(audit_id)
        try:
            network_matrix_task.apply_async(
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
                error=f"the task queue did not accept the connectivity matrix ({_broker_name()}): {exc}",
            )
        else:
            return False  # the matrix task closes the audit
    elif models.Audit.objects.filter(pk=audit_id, network_state=NetworkState.RUNNING).exists():
        return False  # the matrix is running and will close the audit
    statuses = list(models.NodeAudit.objects.filter(audit_id=audit_id).values_list("status", flat=True))
    now = timezone.now()
    closed = models.Audit.objects.filter(pk=audit_id, state__in=[RunState.QUEUED, RunState.RUNNING]).update(
        state=RunState.DONE, status=worst(statuses), finished=now, started=Coalesce(F("started"), Value(now))
    )
    return bool(closed)


def _matrix_run(audit_id: int) -> None:
    from .network import network_matrix_run

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


def _node_audit_end_in_error(node_audit_id: int, reason: str, *, states: list[str]) -> bool:
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
        if _node_audit_end_in_error(
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
            _audit_fail_queued(
                audit.pk,
                f"swept: no Celery worker picked this node up in {window:g} s, even after it was sent again; check "
                f"that a worker is running and connected to the broker ({_broker_name()})",
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
