"""Run the connectivity matrix of a cluster audit: listeners on destinations, one prober command per source.

Listeners are always closed (closing their stdin ends them, and each has its own deadline besides), also when a
prober fails or the matrix raises. A node whose audit failed takes no part; its paths say why they were not tested.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max, Sum
from django.utils import timezone

from inventory.choices import NodeRole
from inventory.facts_summary import FactsSummary
from inventory.models import Node
from inventory.services import node_record_status
from portal.faults import retry_db_write, write_turn

from .. import clamp, models
from ..catalog import CHECK_IDS, EVIDENCE_LIMIT, SEVERITY, worst
from ..choices import NetworkState, RunState
from ..connectivity import (
    Chunk,
    EndView,
    Listener,
    MatrixNode,
    PathVerdict,
    Sampling,
    effective_plan,
    judge_path,
    listener_command,
    matrix_budget_seconds,
    not_needed,
    not_tested,
    parse_listener_line,
    parse_prober_output,
    path_key,
    plan_chunks,
    plan_paths,
    prober_command,
    prober_time_limit,
)
from ..rlimits import OpenFilesLimit, make_room_for_open_files
from ..spec import NodeContext, cluster_options, profile_spec_from_model
from ..targets import target_address
from ..transport import ConnectFailure
from .queue import note_database_fault
from .trust import login_target, transport_for
from .waivers import node_audit_restamp

logger = logging.getLogger(__name__)

# Hears what long work is doing: progress(event, **facts). The CLI draws a live line from it (manage.py audit).
Progress = Callable[..., None]


def audit_sampling(audit: models.Audit) -> Sampling:
    """The cluster's plan for this audit's matrix. Its round is fixed the first time the matrix runs: one more than
    the highest round of the cluster's earlier audits (pruning old audits keeps the newest, so the sequence goes on
    without repeats), and a matrix run again (the sweep) keeps its round: consecutive audits rotate the peers."""
    cluster = audit.cluster
    if audit.matrix_round is None:
        highest = models.Audit.objects.filter(
            cluster_id=cluster.pk, pk__lt=audit.pk, matrix_round__isnull=False
        ).aggregate(highest=Max("matrix_round"))["highest"]
        audit.matrix_round = 0 if highest is None else highest + 1
        models.Audit.objects.filter(pk=audit.pk, matrix_round__isnull=True).update(matrix_round=audit.matrix_round)
        audit.matrix_round = models.Audit.objects.values_list("matrix_round", flat=True).get(pk=audit.pk)
    return Sampling(
        plan=cluster.connectivity_plan,
        peers=cluster.sampled_peers,
        round=audit.matrix_round or 0,
        group_limit=cluster.group_full_mesh_limit,
    )


def matrix_time_budget(audit_id: int) -> float:
    """How long the connectivity matrix of an audit may take: grows with the number of paths (and with the
    waves of nodes the thread pool logs into), never less than PREFLIGHT_STUCK_AFTER. Once it runs in chunks, also
    long enough for every chunk to run one after the other, each as often as it may be claimed."""
    chunked = models.MatrixChunk.objects.filter(audit_id=audit_id).aggregate(total=Sum("budget"))["total"] or 0.0
    return max(_whole_matrix_budget(audit_id), chunked * settings.PREFLIGHT_NODE_ATTEMPTS)


def _whole_matrix_budget(audit_id: int) -> float:
    audit = models.Audit.objects.select_related("cluster").get(pk=audit_id)
    rows = list(models.NodeAudit.objects.filter(audit_id=audit_id).values_list("node__role", "node__network_group"))
    roles = [role for role, _ in rows]
    servers, workers = roles.count(NodeRole.SERVER), roles.count(NodeRole.WORKER)
    peers = workers + servers  # an upper bound: the server is a peer only when it runs a worker
    cluster = audit.cluster  # the number of paths does not depend on the round
    sampling = Sampling(
        plan=cluster.connectivity_plan, peers=cluster.sampled_peers, group_limit=cluster.group_full_mesh_limit
    )
    if effective_plan(sampling.plan, peers) == "full":
        peer_paths = peers * (peers - 1)
    else:
        sizes: dict[str, int] = {}
        for _, group in rows:
            if group:
                sizes[group] = sizes.get(group, 0) + 1
        inside = sum(n * (n - 1) for n in sizes.values() if n <= sampling.group_limit)
        peer_paths = peers * min(sampling.peers, max(0, peers - 1)) + inside
    return max(
        settings.PREFLIGHT_STUCK_AFTER,
        matrix_budget_seconds(
            nodes=len(roles),
            paths=2 * servers * workers + peer_paths,
            concurrency=settings.PREFLIGHT_AUDIT_CONCURRENCY,
            connect_timeout=settings.PREFLIGHT_SSH_CONNECT_TIMEOUT + settings.PREFLIGHT_SSH_AUTH_TIMEOUT,
            port_timeout=settings.PREFLIGHT_NETWORK_CONNECT_TIMEOUT,
        ),
    )


def _matrix_node(node_audit: models.NodeAudit) -> MatrixNode:
    node, facts = node_audit.node, FactsSummary.from_json(node_audit.facts)
    problem, audited = "", True
    if node_audit.state != RunState.DONE or not node_audit.facts:
        problem, audited = f"{node.name} could not be audited: {node_audit.error or node_audit.status}", False
    elif not facts.python:
        problem = f"python3 is not installed on {node.name}, so Preflight can neither listen nor connect from it"
    address = node.address
    if not problem:  # target policy: resolved once; the listener login and every prober connect use this address
        try:
            address = target_address(node.address, node.ssh_port)
        except ConnectFailure as failure:
            problem = failure.message
    return MatrixNode(
        name=node.name,
        role=node.role,
        address=address,
        python=facts.python,
        firewall=facts.firewall or "none",
        firewall_evidence=facts.firewall_evidence,
        problem=problem,
        audited=audited,
        group=node.network_group,
        order=node.pk,
    )


class _OpenListener:
    def __init__(self, node: Node, matrix_node: MatrixNode, ports: list[int], lifetime: float) -> None:
        self.node, self.matrix_node, self.ports, self.lifetime = node, matrix_node, ports, lifetime
        self.state = Listener()
        self.session = None
        self.process = None

    def open(self) -> None:
        lifetime = self.lifetime
        try:
            self.session = transport_for(self.node).connect(login_target(self.node, self.matrix_node.address))
            self.process = self.session.start(listener_command(self.matrix_node.python, self.ports, lifetime))
            while True:
                asked = time.monotonic()
                line = self.process.readline(timeout=15)
                if line is None:
                    if time.monotonic() - asked < 14:  # the output ended: the listener exited
                        self.state.error = "the listener exited before it was ready (is python3 working there?)"
                    else:
                        self.state.error = "the listener did not start (no READY within 15 s)"
                    return
                if parse_listener_line(line, self.state):
                    return
        except ConnectFailure as failure:
            self.state.error = f"could not log in to open a listener: {failure.message}"
        except Exception as exc:  # noqa: BLE001 - reported as the listener's error, never raised
            self.state.error = f"listener failed: {exc!r}"

    def shutdown(self) -> None:
        if self.process is not None:
            self.process.shutdown()

    def close(self) -> None:
        for closer in (self.process, self.session):
            if closer is not None:
                try:
                    closer.close()
                except Exception:  # noqa: BLE001
                    logger.warning("closing the listener on %s failed", self.node.name, exc_info=True)


def _probe_from(
    node: Node, matrix_node: MatrixNode, targets: list[tuple[str, int]], listener: _OpenListener | None = None
) -> tuple[dict, str]:
    """Connect from `node` to its targets. A node that also runs a listener is probed over the listener's SSH
    connection (a second channel): one login per node for the whole matrix instead of two."""
    timeout = settings.PREFLIGHT_NETWORK_CONNECT_TIMEOUT
    arguments = dict(
        command=prober_command(matrix_node.python, timeout),
        stdin="".join(f"{host} {port}\n" for host, port in targets),
        timeout=prober_time_limit(len(targets), timeout),
        max_bytes=8 * 1024 * 1024,
    )
    try:
        run = None
        if listener is not None and listener.session is not None and not listener.state.error:
            try:
                run = listener.session.run(**arguments)
            except Exception:  # noqa: BLE001 - the shared connection broke or refused a channel: log in afresh
                logger.info("probing from %s over the listener's connection failed; logging in again", node.name)
        if run is None:
            with transport_for(node).connect(login_target(node, matrix_node.address)) as session:
                run = session.run(**arguments)
    except ConnectFailure as failure:
        return {}, f"could not log in to {node.name} to connect from it: {failure.message}"
    except Exception as exc:  # noqa: BLE001
        return {}, f"connecting from {node.name} failed: {exc!r}"
    if run.timed_out:
        return parse_prober_output(run.output), f"the connect test from {node.name} did not finish in time"
    if run.exit_status not in (0, None):
        tail = clamp.text(run.output[-300:].strip(), 300)
        return (
            parse_prober_output(run.output),
            f"the connect test on {node.name} failed (exit status {run.exit_status}){': ' + tail if tail else ''}",
        )
    return parse_prober_output(run.output), ""


def _in_thread(function):
    """Run `function` in a pool thread and close that thread's database connection afterwards."""

    def wrapper(*args):
        try:
            return function(*args)
        finally:
            if threading.current_thread() is not threading.main_thread():
                connection.close()

    return wrapper


class _Matrix:
    """An audit's planned matrix: its nodes, its paths, the verdicts of paths that cannot be probed (a node not
    audited, tunnel mode), and the indices of the paths to probe. Planning is deterministic (the round is fixed
    once), so every chunk's worker plans the same paths."""

    def __init__(self, audit_id: int) -> None:
        self.audit = models.Audit.objects.select_related("cluster", "profile").get(pk=audit_id)
        cluster = self.audit.cluster
        node_audits = list(self.audit.node_audits.select_related("node__credential", "node__cluster"))
        self.by_name = {na.node.name: na for na in node_audits}
        self.matrix_nodes = {na.node.name: _matrix_node(na) for na in node_audits}
        context = NodeContext("-", "worker", **cluster_options(cluster))
        self.plans = plan_paths(
            list(self.matrix_nodes.values()),
            profile_spec_from_model(self.audit.profile),
            context,
            audit_sampling(self.audit),
        )
        self.index = {path_key(plan): i for i, plan in enumerate(self.plans)}
        self.verdicts: dict[int, PathVerdict] = {}
        self.runnable: list[int] = []
        for i, plan in enumerate(self.plans):
            blocked = plan.source if plan.source.problem else plan.destination if plan.destination.problem else None
            if plan.not_needed:
                self.verdicts[i] = not_needed(plan)
            elif blocked is not None:
                self.verdicts[i] = not_tested(
                    plan, blocked.problem, at_fault=blocked.name, fault_is_own=blocked.audited
                )
            else:
                self.runnable.append(i)

    def chunks(self) -> list[Chunk]:
        return plan_chunks(
            [self.plans[i] for i in self.runnable], max_listeners=settings.PREFLIGHT_MATRIX_CHUNK_LISTENERS
        )

    def chunk_budget(self, chunk: Chunk) -> float:
        """A chunk's own time budget: the matrix budget of its nodes and paths (never less than a minute)."""
        return max(
            60.0,
            matrix_budget_seconds(
                nodes=len(set(chunk.listeners) | set(chunk.sources)),
                paths=len(chunk.paths),
                concurrency=settings.PREFLIGHT_AUDIT_CONCURRENCY,
                connect_timeout=settings.PREFLIGHT_SSH_CONNECT_TIMEOUT + settings.PREFLIGHT_SSH_AUTH_TIMEOUT,
                port_timeout=settings.PREFLIGHT_NETWORK_CONNECT_TIMEOUT,
            ),
        )


def _listener_json(state: Listener) -> dict:
    return {
        "bound": sorted(state.bound),
        "busy": sorted(state.busy),
        "denied": {str(k): v for k, v in state.denied.items()},
        "error": state.error,
    }


def _probe_paths(
    matrix: _Matrix, indices: list[int], *, lifetime: float, tell: Callable[[str], None] = lambda phase: None
) -> tuple[dict[int, PathVerdict], dict[str, dict]]:
    """Listen on the destinations of `indices`, probe from their sources, judge: (verdict per path index, each
    listener's state by node name). The listeners are always closed, also when a prober fails or this raises
    (a chunk's time limit): closing their stdin ends them, and each has `lifetime` as its own deadline besides."""
    plans, by_name, matrix_nodes = matrix.plans, matrix.by_name, matrix.matrix_nodes
    wanted: dict[str, set[int]] = {}
    for i in indices:
        wanted.setdefault(plans[i].destination.name, set()).update(plans[i].ports)
    listeners = {
        name: _OpenListener(by_name[name].node, matrix_nodes[name], sorted(ports), lifetime)
        for name, ports in wanted.items()
    }
    threads = max(1, min(settings.PREFLIGHT_AUDIT_CONCURRENCY, len(listeners) + 1))
    try:  # a socket per listener login, held while the chunk runs, plus the probers' logins, the database, Redis
        make_room_for_open_files(len(listeners) + 2 * threads + 256)
    except OpenFilesLimit as exc:
        raise OpenFilesLimit(f"the connectivity matrix of {len(listeners)} listening nodes {exc}") from None
    timings = {"start": time.monotonic()}
    tell("listeners")
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(_in_thread(lambda listener: listener.open()), listeners.values()))
        timings["listeners"] = time.monotonic()
        tell("probing")
        targets: dict[str, list[tuple[str, int]]] = {}
        for i in indices:
            plan = plans[i]
            targets.setdefault(plan.source.name, []).extend((plan.destination.address, p) for p in plan.ports)
        with ThreadPoolExecutor(max_workers=max(1, min(settings.PREFLIGHT_AUDIT_CONCURRENCY, len(targets)))) as pool:
            futures = {
                name: pool.submit(
                    _in_thread(_probe_from), by_name[name].node, matrix_nodes[name], sorted(set(t)), listeners.get(name)
                )
                for name, t in targets.items()
            }
            results = {name: future.result() for name, future in futures.items()}
        timings["probes"] = time.monotonic()
    finally:
        for listener in listeners.values():  # all stop at once; then each close waits for its own to be gone
            listener.shutdown()
        for listener in listeners.values():
            listener.close()

    verdicts: dict[int, PathVerdict] = {}
    for i in indices:
        plan = plans[i]
        outcomes, error = results.get(plan.source.name, ({}, "no result"))
        untested = [port for port in plan.ports if (plan.destination.address, port) not in outcomes]
        if error and untested:  # the source's own prober failed (or ran out of time) before testing this path
            verdicts[i] = not_tested(plan, error, at_fault=plan.source.name, fault_is_own=True)
            continue
        per_port = {
            port: outcomes.get((plan.destination.address, port), ("not tested", error or "no answer line"))
            for port in plan.ports
        }
        listener = listeners[plan.destination.name].state
        verdict = judge_path(plan, per_port, listener)
        if listener.error and verdict.status != "fail":  # refusals prove nothing without a listener: its failure
            why = f"the listener on {plan.destination.name} failed: {listener.error}"
            verdict = not_tested(plan, why, at_fault=plan.destination.name, fault_is_own=True)
        verdicts[i] = verdict
    logger.info(
        "matrix of audit %s: %d paths; listeners up in %.1f s, probes %.1f s, closed and judged in %.1f s",
        matrix.audit.pk,
        len(indices),
        timings["listeners"] - timings["start"],
        timings["probes"] - timings["listeners"],
        time.monotonic() - timings["probes"],
    )
    return verdicts, {name: _listener_json(listener.state) for name, listener in listeners.items()}


def network_matrix_run(*, audit_id: int, progress: Progress | None = None) -> list[models.NetworkPath]:
    """Plan, listen, probe, judge, record, in this process (the CLI): chunk after chunk, so the threads held stay
    bounded as they do on a Celery worker. `progress` hears ("matrix", phase=listeners|probing|recording|done,
    paths=N, runnable=R, chunk=i, chunks=C) as each phase starts."""
    matrix = _Matrix(audit_id)
    chunks = matrix.chunks()

    def teller(chunk: int) -> Callable[[str], None]:
        def tell(phase: str) -> None:
            if progress is not None:
                progress(
                    "matrix",
                    phase=phase,
                    paths=len(matrix.plans),
                    runnable=len(matrix.runnable),
                    chunk=chunk,
                    chunks=len(chunks),
                )

        return tell

    verdicts = dict(matrix.verdicts)
    listened: dict[int, dict] = {}
    for chunk in chunks:
        indices = [matrix.index[key] for key in chunk.paths]
        found, states = _probe_paths(
            matrix, indices, lifetime=_lifetime(matrix.chunk_budget(chunk)), tell=teller(chunk.index + 1)
        )
        verdicts.update(found)
        listened.update({i: states[matrix.plans[i].destination.name] for i in indices})
    teller(len(chunks))("recording")
    paths = _record(matrix.audit, matrix.plans, verdicts, _listener_states(matrix, listened), matrix.by_name)
    teller(len(chunks))("done")
    return paths


def _lifetime(chunk_budget: float) -> float:
    """A chunk's listeners end when the chunk closes their stdin. Their own deadline is the chunk's hard time limit
    (its budget + 30 s), at least PREFLIGHT_NETWORK_LISTENER_LIFETIME: a worker killed mid-chunk drops their SSH
    connections, which ends them at once; a connection left half-open (the worker's machine died) ends them at
    this deadline."""
    return max(settings.PREFLIGHT_NETWORK_LISTENER_LIFETIME, chunk_budget + 30)


def _listener_states(matrix: _Matrix, listened: dict[int, dict]) -> dict[int, dict]:
    """The listener state to record with each path: the one its chunk saw; for a path not probed, the state of any
    listener its destination had (as when one listener served the whole matrix), else none."""
    by_node: dict[str, dict] = {}
    for i, state in listened.items():
        by_node.setdefault(matrix.plans[i].destination.name, state)
    return {i: listened.get(i, by_node.get(plan.destination.name, {})) for i, plan in enumerate(matrix.plans)}


# Chunks on Celery workers. The matrix task plans the chunks and sends one task each; a chunk is claimed with a
# conditional UPDATE and held by a lease; its verdicts wait on its row; the last chunk in records every path and
# closes the audit (exactly once: the conditional UPDATE of `recorded`). A worker killed mid-chunk leaves a lease
# that runs out: the sweep queues the chunk again (its listeners died with the worker's SSH connections, or at
# their deadline), and after PREFLIGHT_NODE_ATTEMPTS claims its paths end as `skip`, Preflight's fault, no node's.


def matrix_chunks_dispatch(*, audit_id: int) -> int:
    """Plan the audit's chunks and send one task each; returns how many were sent. A duplicate matrix message
    finds the chunks there and sends nothing. With nothing to probe, the matrix is recorded at once."""
    try:
        matrix = _Matrix(audit_id)
        chunks = matrix.chunks()
        with transaction.atomic():
            if models.MatrixChunk.objects.filter(audit_id=audit_id).exists():
                return 0
            now = timezone.now()
            rows = models.MatrixChunk.objects.bulk_create(
                models.MatrixChunk(
                    audit_id=audit_id,
                    index=chunk.index,
                    paths=[list(key) for key in chunk.paths],
                    listeners=list(chunk.listeners),
                    budget=matrix.chunk_budget(chunk),
                    dispatched=now,
                )
                for chunk in chunks
            )
        if not rows:
            _matrix_close(audit_id, matrix)
            return 0
        _chunks_send([(row.pk, row.budget) for row in rows])
        return len(rows)
    except Exception as exc:  # noqa: BLE001 - the node results stand; the matrix says it failed
        logger.exception("connectivity matrix of audit %s could not be planned or sent", audit_id)
        _matrix_failed(audit_id, f"connectivity matrix failed: {exc!r}")
        return 0


def _matrix_failed(audit_id: int, why: str) -> None:
    """The matrix ends in error saying why (the node results stand); the caller closes the audit."""
    models.Audit.objects.filter(pk=audit_id, network_state=NetworkState.RUNNING).update(
        network_state=NetworkState.ERROR, error=clamp.text(why)
    )


def _chunks_send(chunks: list[tuple[int, float]]) -> None:
    from .queue import celery_task

    task = celery_task("checks.matrix_chunk")
    for chunk_id, chunk_budget in chunks:
        task.apply_async(
            (chunk_id,),
            soft_time_limit=chunk_budget,
            time_limit=chunk_budget + 30,
            retry=True,
            retry_policy=settings.PREFLIGHT_PUBLISH_RETRY,
        )


class _ChunkLease(threading.Thread):
    """Renews a running chunk's lease every PREFLIGHT_LEASE_RENEW seconds until stopped (its own connection)."""

    def __init__(self, chunk_id: int, attempt: int) -> None:
        super().__init__(name=f"chunk-lease-{chunk_id}", daemon=True)
        self.chunk_id, self.attempt, self.stopped = chunk_id, attempt, threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.PREFLIGHT_LEASE_RENEW):
                try:
                    with write_turn():  # (in its process's turn on SQLite, like every other write)
                        models.MatrixChunk.objects.filter(
                            pk=self.chunk_id, state=RunState.RUNNING, attempts=self.attempt
                        ).update(lease_expires=_lease_until())
                except Exception as exc:  # noqa: BLE001 - renewal is tried again at the next tick
                    note_database_fault(exc)  # (the sweep then waits before taking a live worker's chunk)
                    logger.warning("matrix chunk %s: renewing its lease failed: %s", self.chunk_id, exc)
                    connection.close()
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


def _lease_until():
    return timezone.now() + timedelta(seconds=settings.PREFLIGHT_LEASE_SECONDS)


def _verdict_json(plan, verdict: PathVerdict, listener: dict) -> dict:
    return {
        "key": list(path_key(plan)),
        "status": verdict.status,
        "summary": verdict.summary,
        "evidence": verdict.evidence,
        "remediation": verdict.remediation,
        "outcomes": {str(port): list(value) for port, value in verdict.outcomes.items()},
        "blocked_at": verdict.blocked_at,
        "ends": {
            name: [view.status, view.summary, view.remediation, list(view.commands)]
            for name, view in verdict.ends.items()
        },
        "commands": list(verdict.commands),
        "listener": listener,
    }


def _verdict_from_json(data: dict) -> PathVerdict:
    return PathVerdict(
        status=data["status"],
        summary=data["summary"],
        evidence=data["evidence"],
        remediation=data["remediation"],
        outcomes={int(port): (value[0], value[1]) for port, value in data["outcomes"].items()},
        blocked_at=data["blocked_at"],
        ends={name: EndView(v[0], v[1], v[2], tuple(v[3])) for name, v in data["ends"].items()},
        commands=tuple(data["commands"]),
    )


def matrix_chunk_run(*, chunk_id: int) -> bool:
    """One chunk on a Celery worker: claim it, probe its paths under a lease, keep their verdicts on its row, and
    record the matrix when it was the last (finish.audit_matrix_chunk_run then closes the audit). False when the
    chunk was not there to claim (a duplicate message) or its claim was lost meanwhile."""
    now = timezone.now()
    claimed = models.MatrixChunk.objects.filter(pk=chunk_id, state=RunState.QUEUED).update(
        state=RunState.RUNNING, started=now, attempts=F("attempts") + 1, lease_expires=_lease_until()
    )
    if not claimed:
        return False
    chunk = models.MatrixChunk.objects.get(pk=chunk_id)
    lease = _ChunkLease(chunk.pk, chunk.attempts)
    lease.start()
    try:
        matrix = _Matrix(chunk.audit_id)
        indices = [matrix.index[(key[0], key[1], key[2])] for key in chunk.paths]
        try:
            found, states = _probe_paths(matrix, indices, lifetime=_lifetime(chunk.budget))
            state, error = RunState.DONE, ""
            rows = [_verdict_json(matrix.plans[i], found[i], states[matrix.plans[i].destination.name]) for i in indices]
        except Exception as exc:  # noqa: BLE001 - its time limit (SoftTimeLimitExceeded) or a fault of ours: no node's
            logger.exception("matrix chunk %s of audit %s failed", chunk.index, chunk.audit_id)
            why = (
                f"Preflight's matrix chunk {chunk.index + 1} did not finish in its time budget ({chunk.budget:.0f} s)"
                if type(exc).__name__ == "SoftTimeLimitExceeded"
                else f"Preflight's matrix chunk {chunk.index + 1} failed: {exc!r}"
            )
            state, error = RunState.ERROR, clamp.text(why)
            rows = [_verdict_json(matrix.plans[i], not_tested(matrix.plans[i], why), {}) for i in indices]
        # The verdicts are in memory: a database locked or full for a while delays their recording (retried), it
        # does not send the chunk's paths to be probed again.
        done = retry_db_write(
            lambda: models.MatrixChunk.objects.filter(
                pk=chunk.pk, state=RunState.RUNNING, attempts=chunk.attempts
            ).update(state=state, verdicts=rows, error=error, finished=timezone.now(), lease_expires=None),
            budget=settings.PREFLIGHT_DB_WRITE_BUDGET,
            what=f"recording matrix chunk {chunk.index + 1} of audit {chunk.audit_id}",
            on_fault=note_database_fault,
        )
    finally:
        lease.stop()
    if done:
        matrix_chunks_close(audit_id=chunk.audit_id)
    return bool(done)


def matrix_chunks_close(*, audit_id: int) -> bool:
    """Once every chunk of the audit is final, exactly one caller records every path and closes the audit."""
    chunks = models.MatrixChunk.objects.filter(audit_id=audit_id)
    if chunks.filter(state__in=[RunState.QUEUED, RunState.RUNNING]).exists():
        return False
    if not models.Audit.objects.filter(pk=audit_id, network_state=NetworkState.RUNNING).exists():
        return False
    if not chunks.filter(recorded=False).update(recorded=True):
        return False  # another caller records it
    _matrix_close(audit_id)
    return True


def _matrix_close(audit_id: int, matrix: _Matrix | None = None) -> None:
    """Record every path from the chunks' verdicts; the matrix is then done (or in error, saying which chunk
    failed). The caller closes the audit (finish.audit_finish)."""
    errors: list[str] = []
    try:
        matrix = matrix or _Matrix(audit_id)
        verdicts = dict(matrix.verdicts)
        listened: dict[int, dict] = {}
        for rows, error in models.MatrixChunk.objects.filter(audit_id=audit_id).values_list("verdicts", "error"):
            if error:
                errors.append(error)
            for row in rows:
                i = matrix.index.get((row["key"][0], row["key"][1], row["key"][2]))
                if i is not None:
                    verdicts[i] = _verdict_from_json(row)
                    listened[i] = row["listener"]
        missing = [i for i in range(len(matrix.plans)) if i not in verdicts]
        for i in missing:  # never expected: a path no chunk answered is shown as not tested, not dropped
            verdicts[i] = not_tested(matrix.plans[i], "no matrix chunk answered for it")
        _record(matrix.audit, matrix.plans, verdicts, _listener_states(matrix, listened), matrix.by_name)
        models.MatrixChunk.objects.filter(audit_id=audit_id).update(verdicts=[])
    except Exception as exc:  # noqa: BLE001 - the node results stand; the matrix says it failed
        logger.exception("connectivity matrix of audit %s could not be recorded", audit_id)
        _matrix_failed(audit_id, f"connectivity matrix failed: {exc!r}")
        return
    if errors:
        models.Audit.objects.filter(pk=audit_id, network_state=NetworkState.RUNNING).update(
            network_state=NetworkState.ERROR, error=clamp.text("; ".join(errors))
        )
    else:
        models.Audit.objects.filter(pk=audit_id, network_state=NetworkState.RUNNING).update(
            network_state=NetworkState.DONE
        )


def matrix_chunks_sweep() -> tuple[int, set[int]]:
    """Chunks whose lease ran out lost their worker: queued and sent again, until claimed PREFLIGHT_NODE_ATTEMPTS
    times; then their paths end as `skip` (not tested, Preflight's own fault, no node's) and the matrix is closed.
    Returns how many chunks were acted on, and the audits whose matrix it recorded (for the caller to close)."""
    now = timezone.now()
    lost = models.MatrixChunk.objects.filter(state=RunState.RUNNING, lease_expires__lt=now)
    resend: list[tuple[int, float]] = []
    closing: set[int] = set()
    for chunk in lost:
        if chunk.attempts >= settings.PREFLIGHT_NODE_ATTEMPTS:
            why = (
                f"Preflight lost its matrix chunk {chunk.index + 1} {chunk.attempts} times (its worker was killed or "
                "cut off); the nodes may be fine, audit again"
            )
            matrix = _Matrix(chunk.audit_id)
            plans = [matrix.plans[matrix.index[(key[0], key[1], key[2])]] for key in chunk.paths]
            rows = [_verdict_json(plan, not_tested(plan, why), {}) for plan in plans]
            if models.MatrixChunk.objects.filter(pk=chunk.pk, state=RunState.RUNNING, attempts=chunk.attempts).update(
                state=RunState.ERROR, verdicts=rows, error=why, finished=now, lease_expires=None
            ):
                closing.add(chunk.audit_id)
            continue
        if models.MatrixChunk.objects.filter(pk=chunk.pk, state=RunState.RUNNING, attempts=chunk.attempts).update(
            state=RunState.QUEUED, lease_expires=None, dispatched=now
        ):
            logger.warning(
                "matrix chunk %s of audit %s: its worker was lost (lease ran out); queued again",
                chunk.index,
                chunk.audit_id,
            )
            resend.append((chunk.pk, chunk.budget))
    # A queued chunk whose message went with a killed worker (prefetched, never claimed) or was lost by the broker:
    # sent again once its last sending is older than PREFLIGHT_REDELIVER_AFTER. A duplicate message is harmless (the
    # claim is a conditional UPDATE: the second finds the chunk taken and does nothing).
    cutoff = now - timedelta(seconds=settings.PREFLIGHT_REDELIVER_AFTER)
    resent = {pk for pk, _ in resend}
    stale = [
        (pk, budget)
        for pk, budget in models.MatrixChunk.objects.filter(
            state=RunState.QUEUED, dispatched__lt=cutoff, audit__network_state=NetworkState.RUNNING
        ).values_list("pk", "budget")
        if pk not in resent
    ]
    if stale:
        models.MatrixChunk.objects.filter(pk__in=[pk for pk, _ in stale], state=RunState.QUEUED).update(dispatched=now)
        logger.warning(
            "%d queued matrix chunks not claimed for %g s: sent again", len(stale), settings.PREFLIGHT_REDELIVER_AFTER
        )
        resend.extend(stale)
    if resend:
        try:
            _chunks_send(resend)
        except Exception:  # noqa: BLE001 - the broker is down: the matrix's own budget ends it
            logger.exception("sending %d matrix chunks again failed", len(resend))
    # A last chunk whose closing write failed (the database was locked) left its matrix unrecorded: record it now.
    unrecorded = (
        models.MatrixChunk.objects.filter(recorded=False, audit__network_state=NetworkState.RUNNING)
        .exclude(audit__matrix_chunks__state__in=[RunState.QUEUED, RunState.RUNNING])
        .values_list("audit_id", flat=True)
        .distinct()
    )
    closing.update(unrecorded)
    recorded = {audit_id for audit_id in closing if matrix_chunks_close(audit_id=audit_id)}
    return len(resend) + len(closing), recorded


def _record(audit, plans, verdicts, listeners: dict[int, dict], by_name) -> list[models.NetworkPath]:
    paths = []
    for i, plan in enumerate(plans):
        verdict = verdicts[i]
        paths.append(
            models.NetworkPath(
                audit=audit,
                check_id=plan.check_id,
                source=by_name[plan.source.name].node,
                destination=by_name[plan.destination.name].node,
                status=verdict.status,
                summary=clamp.text(verdict.summary, 500),
                outcomes={str(port): list(value) for port, value in verdict.outcomes.items()},
                listener=listeners.get(i, {}),
                evidence=clamp.text(verdict.evidence),
                remediation=clamp.text(verdict.remediation),
                commands=list(verdict.commands),
            )
        )
    # Each node gets one result per network check it takes part in, over the paths in and out of it, each path as
    # that end sees it (judge_path / not_tested): a block counts against the node where it is.
    grouped: dict[tuple[str, str], list[tuple[int, EndView]]] = {}
    for i, plan in enumerate(plans):
        for name, view in verdicts[i].ends.items():
            grouped.setdefault((name, plan.check_id), []).append((i, view))
    with transaction.atomic():
        models.NetworkPath.objects.filter(audit=audit).delete()
        models.NetworkPath.objects.bulk_create(paths)
        touched = set()
        for (node_name, check_id), views in grouped.items():
            node_audit = by_name[node_name]
            if node_audit.state != RunState.DONE:
                continue  # a node audit that ended in error keeps its own results
            status = worst(view.status for _, view in views)
            if status == "pass" and any(view.status == "skip" for _, view in views):
                status = "skip"  # not every path was tested: say so (skip counts as ready, like pass)
            failing = [view for _, view in views if view.status != "pass"]
            if failing:
                summary = "; ".join(view.summary for view in sorted(failing, key=lambda v: -SEVERITY[v.status]))
            else:
                summary = "all paths open: " + ", ".join(view.summary.split(":")[0] for _, view in views)
            ordered = sorted(views, key=lambda item: -SEVERITY[item[1].status])
            evidence = "\n\n".join(verdicts[i].evidence for i, _ in ordered)
            models.CheckResult.objects.update_or_create(
                node_audit=node_audit,
                check_id=check_id,
                defaults={
                    "status": status,
                    "summary": clamp.text(summary, 500),
                    "evidence": clamp.text(evidence[: EVIDENCE_LIMIT * 4]),
                    "remediation": clamp.text(
                        "\n".join(dict.fromkeys(v.remediation for v in failing if v.remediation))
                    ),
                    "commands": list(dict.fromkeys(c for v in failing for c in v.commands)),
                    "position": CHECK_IDS.index(check_id),
                },
            )
            touched.add(node_name)
        for node_name in touched:
            node_audit = by_name[node_name]
            # The worst of its results that no waiver accepts.
            status = node_audit_restamp(node_audit=node_audit, audit=audit)
            models.NodeAudit.objects.filter(pk=node_audit.pk).update(status=status)
            node_record_status(
                node=node_audit.node, status=status, when=node_audit.finished, reached=node_audit.reached
            )
    return paths
