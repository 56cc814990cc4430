"""The connectivity matrix in chunks on a real Celery worker (issue 24 item 2): the same results as the matrix run in
one go, nothing left listening on any host, the worker's threads under the printed bound, and a worker killed
mid-chunk costs a retry of that chunk, not a node's blame nor a path."""

import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from checks.connectivity import matrix_thread_bound
from checks.models import Audit, CheckResult, MatrixChunk, NetworkPath
from checks.services import audit_enqueue, audit_run_inline, audit_start, audit_sweep_stuck
from tests.lab import nodes

from .fixtures import add_lab_nodes, lab_credential, make_cluster, save_output, wait_for_audit

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
SERVER, WORKERS = "mxs", ("mx1", "mx2", "mx3", "mx4", "mx5")
CHUNK_LISTENERS, CONCURRENCY, TASKS = 2, 2, 2  # per chunk; chunks a worker runs at once (its Celery concurrency)
NETWORK = ("network.server_to_worker", "network.worker_to_server", "network.worker_to_worker")


@pytest.fixture(scope="module")
def mesh(lab):
    return {name: lab.add(nodes.plain(name)) for name in (SERVER, *WORKERS)}


@pytest.fixture
def chunked_worker(celery_worker):
    """The session's worker, restarted so that a chunk holds at most 2 listeners and 2 pool threads, and it runs 2
    tasks at once (its pool is threads: one process)."""
    saved = dict(celery_worker.env)
    celery_worker.stop()
    celery_worker.env = {
        **saved,
        "PREFLIGHT_MATRIX_CHUNK_LISTENERS": str(CHUNK_LISTENERS),
        "PREFLIGHT_AUDIT_CONCURRENCY": str(CONCURRENCY),
    }
    celery_worker.start(concurrency=TASKS)
    try:
        yield celery_worker
    finally:
        _kill_children(celery_worker.process.pid)
        celery_worker.stop()
        celery_worker.env = saved
        celery_worker.start()


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _kill_children(pid: int) -> None:
    for child in _children(pid):
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


class ThreadPeak(threading.Thread):
    """The most threads any process of the Celery worker (a prefork pool's children included) held, sampled every
    20 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopped = pid, 0, threading.Event()
        self.peaks: dict[int, int] = {}

    def run(self) -> None:
        while not self.stopped.wait(0.02):
            for process in [self.pid, *_children(self.pid)]:
                try:
                    count = len(os.listdir(f"/proc/{process}/task"))
                except OSError:
                    continue
                self.peak = max(self.peak, count)
                self.peaks[process] = max(self.peaks.get(process, 0), count)

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        return self.peak


def _cluster(lab, mesh, name):
    cluster = make_cluster(name, connectivity_plan="full")
    key = lab_credential(lab)
    add_lab_nodes(cluster, [mesh[SERVER]], key, role="server")
    add_lab_nodes(cluster, [mesh[n] for n in WORKERS], key)
    return cluster


def _results(audit_id):
    paths = {
        (p.check_id, p.source.name, p.destination.name): (p.status, p.summary)
        for p in NetworkPath.objects.filter(audit_id=audit_id).select_related("source", "destination")
    }
    checks = {
        (r.node_audit.node.name, r.check_id): (r.status, r.summary)
        for r in CheckResult.objects.filter(node_audit__audit_id=audit_id, check_id__in=NETWORK).select_related(
            "node_audit__node"
        )
    }
    return paths, checks


def _listening(mesh, ports: set[int]) -> dict[str, list[str]]:
    """Sockets listening on a matrix port, per host (`ss` in the host's network namespace)."""
    left = {}
    for name, host in mesh.items():
        lines = host.exec("ss -Hltn").stdout.splitlines()
        held = [line for line in lines if line.split()[3].rsplit(":", 1)[-1] in {str(p) for p in ports}]
        if held:
            left[name] = held
    return left


def test_chunks_on_a_celery_worker_give_the_same_results_leave_nothing_listening_and_bound_threads(
    lab, mesh, chunked_worker
):
    # given 1 server + 5 workers, full mesh, and mx3 dropping new connections from mx1
    cluster = _cluster(lab, mesh, "mxchunks")
    drop = f"INPUT -s {mesh['mx1'].address} -p tcp --syn -j DROP"
    assert mesh["mx3"].exec(f"iptables -A {drop}").returncode == 0
    try:
        # and the matrix run in one go in this process (one chunk: the bound here is the default, 64)
        before = audit_run_inline(audit=audit_start(cluster=cluster))
        assert MatrixChunk.objects.filter(audit=before).count() == 0
        # when the same audit runs on the Celery worker, in chunks of at most 2 listeners
        peak = ThreadPeak(chunked_worker.process.pid)
        peak.start()
        audit = audit_start(cluster=cluster)
        audit_enqueue(audit)
        audit = wait_for_audit(audit.pk, timeout=240)
        threads = peak.stop()
    finally:
        mesh["mx3"].exec(f"iptables -D {drop}")
    # then the matrix ran in several chunks, each claimed once, and the audit closed once with its matrix done
    chunks = list(MatrixChunk.objects.filter(audit=audit))
    assert len(chunks) >= 3
    assert {(c.state, c.attempts, c.recorded) for c in chunks} == {("done", 1, True)}
    assert all(len(c.listeners) <= CHUNK_LISTENERS for c in chunks)
    assert (audit.state, audit.network_state) == ("done", "done"), audit.error
    # and the results are the same as in one go: every path, its status and summary, each node's network checks
    paths, checks = _results(audit.pk)
    expected_paths, expected_checks = _results(before.pk)
    save_output("matrix-chunks.txt", "\n".join(f"{k}: {v}" for k, v in sorted(paths.items())))
    assert len(paths) == 2 * 5 + 5 * 4 == len(expected_paths)
    assert paths == expected_paths and checks == expected_checks
    # the DROP is found and blamed as before: on mx3, the rest passes
    assert {k for k, (status, _) in paths.items() if status != "pass"} == {("network.worker_to_worker", "mx1", "mx3")}
    assert checks[("mx3", "network.worker_to_worker")][0] == "fail"
    # and nothing listens on a matrix port on any host, and the worker's threads stayed under the bound
    ports = {int(p) for o in NetworkPath.objects.filter(audit=audit).values_list("outcomes", flat=True) for p in o}
    assert ports and _listening(mesh, ports) == {}
    bound = matrix_thread_bound(max_listeners=CHUNK_LISTENERS, concurrency=CONCURRENCY, tasks=TASKS)
    save_output(
        "matrix-chunks-threads.txt",
        f"peak threads {threads}, bound {bound}, {peak.peaks} (main {chunked_worker.process.pid})",
    )
    assert 0 < threads <= bound


def test_a_worker_killed_mid_chunk_costs_a_retry_of_that_chunk_not_a_path_nor_a_node(lab, mesh, chunked_worker):
    # given the same cluster audited on the worker, stopped while a chunk of its matrix runs
    cluster = _cluster(lab, mesh, "mxkill")
    audit = audit_start(cluster=cluster)
    audit_enqueue(audit)
    deadline = time.monotonic() + 180
    while not MatrixChunk.objects.filter(audit=audit, state="running").exists():
        assert time.monotonic() < deadline, "no matrix chunk started"
        time.sleep(0.05)
    # when the worker and its pool processes are killed (SIGKILL: no clean-up of theirs runs)
    _kill_children(chunked_worker.process.pid)
    chunked_worker.process.send_signal(signal.SIGKILL)
    chunked_worker.process.wait(timeout=10)
    lost = MatrixChunk.objects.filter(audit=audit, state="running")
    lost_ids = set(lost.values_list("pk", flat=True))
    assert lost_ids
    # then the killed worker's listeners are gone with its SSH connections (or at their own deadline)
    ports = {10150, 10151, 40064, 40095}
    deadline = time.monotonic() + 30
    while _listening(mesh, ports) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _listening(mesh, ports) == {}
    # when a new worker starts and the sweep finds the lease run out
    chunked_worker.start(concurrency=TASKS)
    MatrixChunk.objects.filter(pk__in=lost_ids).update(lease_expires=timezone.now() - timedelta(seconds=1))
    # (and the chunks it had taken from the queue but not claimed yet went with it: their sending is old)
    MatrixChunk.objects.filter(audit=audit, state="queued").update(
        dispatched=timezone.now() - timedelta(seconds=settings.PREFLIGHT_REDELIVER_AFTER + 1)
    )
    assert audit_sweep_stuck() >= len(lost_ids)
    audit = wait_for_audit(audit.pk, timeout=240)
    # then the lost chunk ran again, and every path is there, proven, blamed on no node
    assert (audit.state, audit.network_state) == ("done", "done"), audit.error
    assert all(
        attempts == 2 for attempts in MatrixChunk.objects.filter(pk__in=lost_ids).values_list("attempts", flat=True)
    )
    paths, checks = _results(audit.pk)
    assert len(paths) == 30 and {status for status, _ in paths.values()} == {"pass"}
    assert {status for status, _ in checks.values()} == {"pass"}
    assert Audit.objects.get(pk=audit.pk).status != "error"
