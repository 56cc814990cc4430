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

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max

from inventory.choices import NodeRole
from inventory.facts_summary import FactsSummary
from inventory.models import Node
from inventory.services import node_record_status

from .. import clamp, models
from ..catalog import CHECK_IDS, EVIDENCE_LIMIT, SEVERITY, worst
from ..choices import RunState
from ..connectivity import (
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
    plan_paths,
    prober_command,
    prober_time_limit,
)
from ..rlimits import OpenFilesLimit, make_room_for_open_files
from ..spec import NodeContext, cluster_options, profile_spec_from_model
from ..targets import target_address
from ..transport import ConnectFailure
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
    waves of nodes the thread pool logs into), never less than PREFLIGHT_STUCK_AFTER."""
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


def network_matrix_run(*, audit_id: int, progress: Progress | None = None) -> list[models.NetworkPath]:
    """Plan, listen, probe, judge, record. `progress` hears ("matrix", phase=listeners|probing|recording|done,
    paths=N, runnable=R) as each phase starts."""

    def tell(phase: str) -> None:
        if progress is not None:
            progress("matrix", phase=phase, paths=len(plans), runnable=len(runnable))

    audit = models.Audit.objects.select_related("cluster", "profile").get(pk=audit_id)
    cluster = audit.cluster
    node_audits = list(audit.node_audits.select_related("node__credential", "node__cluster"))
    by_name = {na.node.name: na for na in node_audits}
    matrix_nodes = {na.node.name: _matrix_node(na) for na in node_audits}
    context = NodeContext("-", "worker", **cluster_options(cluster))
    plans = plan_paths(
        list(matrix_nodes.values()), profile_spec_from_model(audit.profile), context, audit_sampling(audit)
    )

    verdicts: dict[int, PathVerdict] = {}
    runnable = []
    for i, plan in enumerate(plans):
        blocked = plan.source if plan.source.problem else plan.destination if plan.destination.problem else None
        if plan.not_needed:
            verdicts[i] = not_needed(plan)
        elif blocked is not None:
            verdicts[i] = not_tested(plan, blocked.problem, at_fault=blocked.name, fault_is_own=blocked.audited)
        else:
            runnable.append(i)

    wanted: dict[str, set[int]] = {}
    for i in runnable:
        wanted.setdefault(plans[i].destination.name, set()).update(plans[i].ports)
    # A listener lives as long as the matrix may take (a big one outlasts the configured lifetime), never longer.
    lifetime = max(settings.PREFLIGHT_NETWORK_LISTENER_LIFETIME, min(matrix_time_budget(audit_id), 3600))
    listeners = {
        name: _OpenListener(by_name[name].node, matrix_nodes[name], sorted(ports), lifetime)
        for name, ports in wanted.items()
    }
    threads = max(1, min(settings.PREFLIGHT_AUDIT_CONCURRENCY, len(listeners) + 1))
    try:  # a socket per listener login, held for the whole matrix, plus the probers' logins, the database, Redis
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
        for i in runnable:
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

    for i in runnable:
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

    tell("recording")
    paths = _record(audit, plans, verdicts, listeners, by_name)
    tell("done")
    logger.info(
        "matrix of audit %s: %d paths; listeners up in %.1f s, probes %.1f s, closed, judged, recorded in %.1f s",
        audit_id,
        len(plans),
        timings["listeners"] - timings["start"],
        timings["probes"] - timings["listeners"],
        time.monotonic() - timings["probes"],
    )
    return paths


def _record(audit, plans, verdicts, listeners, by_name) -> list[models.NetworkPath]:
    paths = []
    for i, plan in enumerate(plans):
        verdict = verdicts[i]
        state = listeners.get(plan.destination.name)
        paths.append(
            models.NetworkPath(
                audit=audit,
                check_id=plan.check_id,
                source=by_name[plan.source.name].node,
                destination=by_name[plan.destination.name].node,
                status=verdict.status,
                summary=clamp.text(verdict.summary, 500),
                outcomes={str(port): list(value) for port, value in verdict.outcomes.items()},
                listener={
                    "bound": sorted(state.state.bound),
                    "busy": sorted(state.state.busy),
                    "denied": {str(k): v for k, v in state.state.denied.items()},
                    "error": state.state.error,
                }
                if state
                else {},
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
            node_record_status(node=node_audit.node, status=status, when=node_audit.finished)
    return paths
