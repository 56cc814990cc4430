"""One node's audit: claim it, connect, run the probe, judge the facts, record results and facts. Whatever the
node prints or does, its audit ends in a final state saying why, and the audit goes on."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from inventory.choices import InstallKind, NodeRole, Transport
from inventory.models import Cluster, Node
from inventory.services import node_record_facts, node_record_status
from portal.faults import db_fault, retry_db_write, write_turn
from portal.sql import insert_rows, update_rows

from .. import clamp, models
from ..catalog import CHECK_IDS, ERROR, FAIL, HOST_CHECK_IDS, PASS, RuleResult, evaluate_node
from ..choices import RunState
from ..node_facts import NodeFacts, build_facts
from ..probe import PROBE_SCRIPT, probe_command, probe_nonce, server_literal, split_sections
from ..remediation import Remedy
from ..spec import NodeContext, ProfileSpec, cluster_options, profile_spec_from_model
from ..transport import ConnectFailure
from .finish import audit_finish, node_audit_end_in_error
from .queue import note_database_fault
from .trust import login_target, transport_for
from .waivers import waivers_in_force_for_audit, waivers_stamp

logger = logging.getLogger(__name__)


def connect_summary(failure: ConnectFailure) -> str:
    """ "reason: message", without saying the reason twice when the message already starts with it."""
    if failure.message.lower().startswith(failure.reason.lower()):
        return failure.message
    return f"{failure.reason}: {failure.message}"


def _unreachable_results(reason: str, summary: str, *, connect_status: str) -> list[RuleResult]:
    ssh = RuleResult("ssh.connect", connect_status, summary, reason, Remedy(_connect_advice(reason)))
    others = [RuleResult(check_id, ERROR, f"not checked: {summary}") for check_id in HOST_CHECK_IDS]
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

    results: list[RuleResult]
    facts: NodeFacts | None = None
    summary: dict | None = None
    installs: list[dict] = field(default_factory=list)

    @property
    def reached(self) -> bool:
        """Whether the node was reached over SSH (its ssh.connect passed), whatever came of the probe after."""
        return any(r.check_id == "ssh.connect" and r.status == PASS for r in self.results)


T = TypeVar("T")
_PER_AUDIT: dict[tuple, object] = {}  # (what, audit id, created) -> what this process read for that audit
_PER_AUDIT_LOCK = threading.Lock()


def _once_per_audit(what: str, audit: models.Audit, read: Callable[[], T]) -> T:
    """`read()` once per audit and process, so every node of the audit that this process runs sees the same value
    (and saves its queries on every node). Keyed by the audit's creation time too, so a reused id (a database
    restored, a test's rolled back) never matches; bounded, as a worker lives through many audits."""
    key = (what, audit.pk, audit.created)
    if key in _PER_AUDIT:
        return _PER_AUDIT[key]  # type: ignore[return-value]
    # The first nodes of an audit start together on every thread of the worker: one reads, the others wait for it
    # (each of 16 threads read the profile's three tables at once). Reads of other audits wait too, briefly.
    with _PER_AUDIT_LOCK:
        if key not in _PER_AUDIT:
            if len(_PER_AUDIT) >= 256:
                _PER_AUDIT.clear()
            _PER_AUDIT[key] = read()
        return _PER_AUDIT[key]  # type: ignore[return-value]


def audit_profile_spec(audit: models.Audit) -> ProfileSpec:
    """The profile an audit judges by (three queries), the same rules for every node of the audit."""
    return _once_per_audit("profile", audit, lambda: profile_spec_from_model(audit.profile))


def audit_cluster_options(audit: models.Audit) -> dict:
    """The options of the audit's cluster (GPUStack's deployment settings the rules read): the node audit's own
    read needs no join to the cluster."""
    return _once_per_audit("options", audit, lambda: cluster_options(Cluster.objects.get(pk=audit.cluster_id)))


def audit_server_address(audit: models.Audit) -> str:
    """The address of the audit's cluster's (first) server, which every worker's probe is given."""
    return _once_per_audit(
        "server",
        audit,
        lambda: (
            Node.objects.filter(cluster_id=audit.cluster_id, role=NodeRole.SERVER)
            .order_by("pk")
            .values_list("address", flat=True)
            .first()
            or ""
        ),
    )


def _probe_and_judge(node_audit: models.NodeAudit, node: Node, transport) -> _Outcome:
    """Log in, run the probe, build facts and evaluate the rules. Every failure, whatever raised it (the
    transport, a parser, a rule), becomes the node's `error` with the reason: nothing a node prints escapes."""
    profile = audit_profile_spec(node_audit.audit)
    server_address = node.address if node.role == NodeRole.SERVER else audit_server_address(node_audit.audit)
    base_context = dict(
        name=node.name,
        role=node.role,
        address=node.address,
        server_address=server_address,
        **audit_cluster_options(node_audit.audit),
    )
    node_audit.portal_error = ""  # (this run's own: nothing a run before it left)
    try:
        target = login_target(node)
        runner = transport or transport_for(node)
        nonce = probe_nonce()
        node_audit.nonce = nonce
        run = runner.run(
            target,
            # the only input the probe takes from the inventory: the server's address, as a validated IP literal
            command=probe_command(nonce, settings.PREFLIGHT_TOOL_TIMEOUT, server_literal(server_address)),
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
        # Preflight's own failure (the transport's handlers turn whatever a node does into a ConnectFailure): no
        # verdict on the node, which keeps the status of its last audit.
        node_audit.portal_error = f"Preflight failed while auditing this node: internal error {exc!r}"
        return _Outcome(_unreachable_results(repr(exc), f"internal error: {exc!r}", connect_status=ERROR))

    node_audit.raw_output = run.output
    node_audit.output_truncated = run.truncated
    how = "locally" if node.transport == Transport.LOCAL else f"as {node.ssh_user}"
    key = f", host key {run.host_key_fingerprint}" if run.host_key_fingerprint else ""
    reached = f" at {run.address}" if run.address and run.address != node.address else ""
    connected = RuleResult(
        "ssh.connect", PASS, f"connected {how}{reached}{key}", f"address {node.address}:{node.ssh_port}{reached}"
    )
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
        return _Outcome([connected] + [RuleResult(c, ERROR, f"not checked: {why}", tail) for c in HOST_CHECK_IDS])
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
        return _Outcome([connected] + [RuleResult(c, ERROR, f"not checked: {why}") for c in HOST_CHECK_IDS])
    node_audit.facts = summary
    return _Outcome(results, facts, summary, installs)


# A result row's columns, in the order _record_node_audit writes them (portal.sql: no model instance is saved).
_RESULT_FIELDS = (
    "node_audit_id",
    "check_id",
    "status",
    "summary",
    "evidence",
    "remediation",
    "commands",
    "position",
    "waived",
)


class Superseded(Exception):
    """The run lost its claim (its lease ran out and the sweep re-queued it): its results are not recorded."""


def _record_node_audit(node_audit: models.NodeAudit, outcome: _Outcome) -> None:
    """Record the node's results, facts and final state in one transaction, if this run still holds the row (the
    same claim: state running, same attempt); raises Superseded otherwise. Safe to call again after a failure."""
    results = outcome.results
    finished = timezone.now()
    node = node_audit.node
    rows = [
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
    ]
    # The node's status: the worst of its results that no waiver (or `audit --ignore`) accepts.
    audit = node_audit.audit
    status = waivers_stamp(
        rows=rows,
        node_id=node.pk,
        cluster_id=audit.cluster_id,
        ignored=audit.ignored or (),
        in_force=waivers_in_force_for_audit(audit=audit),
    )
    with transaction.atomic():
        node_audit.raw_output = clamp.text(node_audit.raw_output)
        node_audit.error = clamp.text(node_audit.error)
        node_audit.facts = clamp.json_value(node_audit.facts or {})
        held = update_rows(
            models.NodeAudit,
            set={
                "status": status,
                "reached": outcome.reached,
                "state": RunState.DONE,
                "finished": finished,
                "lease_expires": None,
                "raw_output": node_audit.raw_output,
                "output_truncated": node_audit.output_truncated,
                "nonce": node_audit.nonce,
                "facts": node_audit.facts,
                "error": node_audit.error,
                "portal_error": clamp.text(node_audit.portal_error),
                "clock_offset_seconds": node_audit.clock_offset_seconds,
                "round_trip_seconds": node_audit.round_trip_seconds,
            },
            where={"id": node_audit.pk, "state": RunState.RUNNING, "attempts": node_audit.attempts},
        )
        if not held:
            raise Superseded(f"node audit {node_audit.pk} attempt {node_audit.attempts} was re-queued")
        node_audit.status, node_audit.state, node_audit.finished = status, RunState.DONE, finished
        node_audit.reached = outcome.reached
        if node_audit.attempts > 1:  # a run before this one may have left a result behind
            models.CheckResult.objects.filter(node_audit=node_audit).delete()
        insert_rows(models.CheckResult, _RESULT_FIELDS, ([getattr(r, f) for f in _RESULT_FIELDS] for r in rows))
        if outcome.summary is not None:
            node_record_facts(
                node=node,
                accelerators=[_accelerator_row(a) for a in outcome.summary["accelerators"]],
                installs=outcome.installs,
                status=status,
                facts=outcome.summary,
                when=finished,
                reached=outcome.reached,
            )
        elif not node_audit.portal_error:  # (a run Preflight itself failed says nothing of the node)
            node_record_status(node=node, status=status, when=finished, reached=outcome.reached)


class _Leases:
    """One thread per process renews the leases of every node audit this process runs, every
    PREFLIGHT_LEASE_RENEW seconds, on its own database connection, with one UPDATE per attempt number (usually one
    in all). A thread per node audit cost a thread start and a join on every node. A renewal the database refuses
    (locked, full) is tried again at the next tick, and noted in the broker so the sweep does not take the rows
    from a live worker meanwhile."""

    def __init__(self) -> None:
        self._held: dict[int, int] = {}  # node audit id -> the attempt this process holds
        self._audits: dict[int, int] = {}  # node audit id -> its audit's id
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, node_audit_id: int, attempt: int, audit_id: int) -> None:
        with self._lock:
            self._held[node_audit_id] = attempt
            self._audits[node_audit_id] = audit_id
            if self._thread is None or not self._thread.is_alive():  # (none yet, or this is a forked child)
                self._thread = threading.Thread(target=self._run, name="leases", daemon=True)
                self._thread.start()

    def release(self, node_audit_id: int) -> None:
        with self._lock:
            self._held.pop(node_audit_id, None)
            self._audits.pop(node_audit_id, None)

    def holds_audit(self, audit_id: int) -> bool:
        """Whether this process still runs a node audit of `audit_id`: that run closes the audit when it ends
        (or the sweep does, if this process dies), so a node that ends before it need not ask the database."""
        with self._lock:
            return audit_id in self._audits.values()

    def _run(self) -> None:
        tick = threading.Event()
        while not tick.wait(settings.PREFLIGHT_LEASE_RENEW):
            with self._lock:
                held = dict(self._held)
            if held:
                self.renew(held)

    @staticmethod
    def renew(held: dict[int, int]) -> None:
        by_attempt: dict[int, list[int]] = {}
        for node_audit_id, attempt in held.items():
            by_attempt.setdefault(attempt, []).append(node_audit_id)
        try:
            with write_turn():
                for attempt, ids in by_attempt.items():
                    models.NodeAudit.objects.filter(pk__in=ids, state=RunState.RUNNING, attempts=attempt).update(
                        lease_expires=lease_until()
                    )
        except Exception as exc:  # noqa: BLE001 - renewal is retried at the next tick
            note_database_fault(exc)
            logger.warning("renewing the leases of node audits %s failed: %s", sorted(held), exc)
        finally:
            if not connection.in_atomic_block:  # (the thread's own connection; a test calls this in its transaction)
                connection.close()


_LEASES = _Leases()


def lease_until():
    return timezone.now() + timedelta(seconds=settings.PREFLIGHT_LEASE_SECONDS)


def _claim(node_audit_id: int) -> bool:
    now = timezone.now()

    def claim() -> bool:  # one UPDATE: a transaction of its own
        claimed = update_rows(
            models.NodeAudit,
            set={"state": RunState.RUNNING, "started": now, "lease_expires": lease_until()},
            where={"id": node_audit_id, "state": RunState.QUEUED},
            increment=("attempts",),
        )
        return bool(claimed)

    return retry_db_write(
        claim,
        budget=settings.PREFLIGHT_DB_WRITE_BUDGET,
        what=f"claiming node audit {node_audit_id}",
        on_fault=note_database_fault,
    )


def _audit_mark_running(node_audit: models.NodeAudit) -> None:
    """The audit's first claimed node marks it running (read from the row the run loads anyway: no query on the
    other nodes). Not the node's concern if it fails: the audit still closes as done when its nodes end."""
    try:
        retry_db_write(
            lambda: models.Audit.objects.filter(pk=node_audit.audit_id, state=RunState.QUEUED).update(
                state=RunState.RUNNING, started=node_audit.started
            ),
            budget=min(10.0, settings.PREFLIGHT_DB_WRITE_BUDGET),
            what=f"marking audit {node_audit.audit_id} running",
            on_fault=note_database_fault,
        )
    except Exception:  # noqa: BLE001 - the node's audit goes on
        logger.warning("audit %s could not be marked running", node_audit.audit_id, exc_info=True)


def node_audit_run(
    *, node_audit_id: int, transport=None, close_audit: bool = True, reload: bool = True
) -> models.NodeAudit | None:
    """Audit one node: one connection, one probe exec; never raises for anything the node does, and always ends
    the node audit in a final state. The run holds a lease on the row, renewed while it works. A write the
    database refuses for a while (locked, full) is tried again from memory (the node is not probed again); past
    PREFLIGHT_DB_WRITE_BUDGET the node ends as `error` with Preflight's own cause, kept apart in `portal_error`."""
    if not _claim(node_audit_id):
        return None
    node_audit = None
    leased = False
    try:
        node_audit = (
            models.NodeAudit.objects.select_related("node__credential", "audit")
            .defer("node__last_facts")  # the node's previous facts are not read here, only replaced
            .get(pk=node_audit_id)
        )
        if node_audit.audit.state == RunState.QUEUED:  # the first node of the audit marks it running
            _audit_mark_running(node_audit)
        if not connection.in_atomic_block:  # (in a test's transaction no other connection could see the row)
            _LEASES.hold(node_audit_id, node_audit.attempts, node_audit.audit_id)
            leased = True
        outcome = _probe_and_judge(node_audit, node_audit.node, transport)
        retry_db_write(
            lambda: _record_node_audit(node_audit, outcome),
            budget=settings.PREFLIGHT_DB_WRITE_BUDGET,
            what=f"recording node audit {node_audit_id}",
            on_fault=note_database_fault,
        )
    except Superseded:
        logger.warning("node audit %s was re-queued while this run worked: its results are dropped", node_audit_id)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: the node ends as `error`, saying why
        fault = db_fault(exc)
        if fault:
            note_database_fault(exc)
            reason = f"Preflight could not record this node: {fault} ({exc})"
        else:
            reason = f"Preflight could not record this node: internal error {exc!r}"
        logger.exception("node audit %s could not be recorded", node_audit_id)
        try:
            retry_db_write(
                lambda: node_audit_end_in_error(
                    node_audit_id,
                    reason,
                    states=[RunState.RUNNING],
                    attempt=node_audit.attempts if node_audit is not None else None,
                    portal=True,
                ),
                budget=min(10.0, settings.PREFLIGHT_DB_WRITE_BUDGET),
                what=f"ending node audit {node_audit_id} in error",
            )
        except Exception:  # noqa: BLE001 - still running: its lease runs out and the sweep takes it again
            logger.exception("node audit %s: its error could not be recorded either", node_audit_id)
    finally:
        if leased:
            _LEASES.release(node_audit_id)
    audit_id = node_audit.audit_id if node_audit is not None else None
    try:
        if audit_id is None:
            audit_id = models.NodeAudit.objects.filter(pk=node_audit_id).values_list("audit_id", flat=True).first()
        # Every node but the last asked the database whether the audit's others were final (a query per node):
        # while this process still runs another of its nodes, that one asks when it ends.
        if close_audit and not (leased and _LEASES.holds_audit(audit_id)):
            audit_finish(audit_id=audit_id)
    except Exception:  # noqa: BLE001 - the node audit is final; the sweep closes the audit if this failed
        logger.exception("closing audit %s after node audit %s failed", audit_id, node_audit_id)
    if node_audit is not None and reload:  # (the Celery task has no use for the final row: one query saved)
        node_audit.refresh_from_db()
    return node_audit
