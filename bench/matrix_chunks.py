"""The connectivity matrix in chunks on Celery workers (issue 24): 1 server + N workers (default 499) as real sshd
test hosts, the `sampled` plan (k=3), audited through Redis by 1 and then 2 worker processes. Prints the host audit
time and the matrix time, whether every sampled path passed, whether a listener was left on any host (`ss` in each
host's namespace), and each worker process's peak thread count against the bound (checks.connectivity.
matrix_thread_bound). The machine is shared: the load average is printed with the figures.

Run as root: .venv/bin/python -m bench.matrix_chunks [--workers 499] [--processes 1,2] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import ROOT, django_setup, start_redis


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def start_workers(count: int, concurrency: int, folder: Path) -> list[subprocess.Popen]:
    from tests.lab.services import celery_worker_command

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test"}
    processes = []
    for i in range(count):
        log = folder / f"worker-{count}-{i}.log"
        processes.append(
            subprocess.Popen(
                celery_worker_command(
                    concurrency=concurrency, log=log, name=f"bench-{os.getpid()}-{count}-{i}@%h", loglevel="WARNING"
                ),
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    time.sleep(5)
    for process in processes:
        if process.poll() is not None:
            raise SystemExit(f"a Celery worker exited at start: see {folder}")
    return processes


class ThreadPeak(threading.Thread):
    """Each worker process's peak thread count, sampled every 50 ms."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids, self.peaks, self.stopped = pids, dict.fromkeys(pids, 0), threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            for pid in self.pids:
                try:
                    self.peaks[pid] = max(self.peaks[pid], len(os.listdir(f"/proc/{pid}/task")))
                except OSError:
                    continue

    def stop(self) -> dict[int, int]:
        self.stopped.set()
        self.join()
        return self.peaks


def listeners_left(hosts, matrix_ports: set[str]) -> list[str]:
    """Hosts where something still listens on a port the matrix probed (sshd's 22 is not one)."""

    def held(host) -> str:
        lines = host.exec("ss -Hltn").stdout.splitlines()
        ports = [line.split()[3].rsplit(":", 1)[-1] for line in lines if len(line.split()) > 3]
        return host.spec.name if any(port in matrix_ports for port in ports) else ""

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [name for name in pool.map(held, hosts) if name]


def run(cluster, hosts, processes: int, concurrency: int, folder: Path) -> None:
    from django.conf import settings

    from checks.connectivity import matrix_thread_bound
    from checks.models import Audit, MatrixChunk
    from checks.services import audit_enqueue, audit_start

    print(f"-- {processes} worker process(es), {concurrency} Celery threads each; {load()}")
    workers = start_workers(processes, concurrency, folder)
    peak = ThreadPeak([w.pid for w in workers])
    peak.start()
    try:
        started = time.monotonic()
        audit = audit_start(cluster=cluster)
        audit_enqueue(audit)
        while Audit.objects.get(pk=audit.pk).state not in ("done", "error"):
            if time.monotonic() - started > 1800:
                raise SystemExit(f"audit {audit.pk} did not finish in 1800 s")
            time.sleep(0.5)
        wall = time.monotonic() - started
    finally:
        peaks = peak.stop()
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
    audit = Audit.objects.get(pk=audit.pk)
    hosts_time = (audit.network_started - audit.created).total_seconds()
    matrix_time = (audit.finished - audit.network_started).total_seconds()
    node_states = sorted(set(audit.node_audits.values_list("state", "status")))
    statuses = {s: audit.paths.filter(status=s).count() for s in set(audit.paths.values_list("status", flat=True))}
    chunks = list(MatrixChunk.objects.filter(audit=audit))
    bound = matrix_thread_bound(
        max_listeners=settings.PREFLIGHT_MATRIX_CHUNK_LISTENERS,
        concurrency=settings.PREFLIGHT_AUDIT_CONCURRENCY,
        tasks=concurrency,
    )
    probed = {port for outcomes in audit.paths.values_list("outcomes", flat=True) for port in outcomes}
    left = listeners_left(hosts, probed)
    print(
        f"    host audit {hosts_time:.1f} s + matrix {matrix_time:.1f} s = {hosts_time + matrix_time:.1f} s "
        f"(wall {wall:.1f} s); audit {audit.state}, matrix {audit.network_state} {audit.error[:200]}"
    )
    print(f"    node audits (state, status): {node_states}")
    print(
        f"    {audit.paths.count()} sampled paths, by status {statuses}: "
        + ("every path passed" if set(statuses) == {"pass"} else "NOT every path passed")
    )
    print(
        f"    {len(chunks)} chunks of at most {settings.PREFLIGHT_MATRIX_CHUNK_LISTENERS} listeners, claims "
        f"{sorted({c.attempts for c in chunks})}; listeners left on hosts: {left or 'none'}"
    )
    print(
        f"    peak threads per worker process {sorted(peaks.values())} against the bound {bound} "
        f"({'under' if max(peaks.values()) <= bound else 'OVER'}); {load()}"
    )
    for path in audit.paths.exclude(status="pass").select_related("source", "destination")[:5]:
        print(f"      {path.source.name} -> {path.destination.name} {path.status}: {path.summary[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=499)
    parser.add_argument("--peers", type=int, default=3)
    parser.add_argument("--processes", default="1,2", help="worker process counts to run, in turn")
    parser.add_argument("--concurrency", type=int, default=16, help="Celery threads per worker process")
    args = parser.parse_args()
    from tests.lab import nodes
    from tests.lab.hosts import Lab

    # The production SSH handshake time-out (the test settings' 3 s is for tests of a handful of hosts: 500 logins
    # queued on two cores miss it); the workers inherit it.
    os.environ.setdefault("PREFLIGHT_SSH_CONNECT_TIMEOUT", "10")
    print(
        f"bench.matrix_chunks: 1 server + {args.workers} workers, sampled k={args.peers}, SSH connect time-out "
        f"{os.environ['PREFLIGHT_SSH_CONNECT_TIMEOUT']} s; {load()} (the load average counts the bench's own sshd "
        "logins and probes too)"
    )
    lab = Lab(wide=args.workers > 230)
    os.environ["PREFLIGHT_TARGET_NETWORKS"] = f"127.0.0.0/8,{lab.network}"
    redis_server = None
    try:
        redis_server, broker = start_redis()
        os.environ["CELERY_BROKER_URL"] = broker
        os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
        folder = django_setup()
        from inventory.models import Cluster, Credential, Node, RequirementProfile
        from portal.celery import app

        assert app.conf.task_always_eager is False, "the benchmark must fan out through Redis"
        started = time.monotonic()
        hosts = [lab.add(nodes.plain(f"mx{i:03d}")) for i in range(args.workers + 1)]
        print(f"{len(hosts)} test hosts up in {time.monotonic() - started:.1f} s; {load()}")
        credential = Credential(name="bench", kind="private_key")
        credential.secret = lab.client_key
        credential.save()
        cluster = Cluster.objects.create(
            name="chunks",
            profile=RequirementProfile.objects.get(key="gpustack-2.0"),
            connectivity_plan="sampled",
            sampled_peers=args.peers,
        )
        for i, host in enumerate(hosts):
            Node.objects.create(
                cluster=cluster,
                name=host.spec.name,
                address=host.address,
                credential=credential,
                role="server" if i == 0 else "worker",
            )
        for processes in (int(p) for p in args.processes.split(",")):
            run(cluster, hosts, processes, args.concurrency, folder)
    finally:
        lab.close()
        if redis_server is not None:
            redis_server.terminate()


if __name__ == "__main__":
    main()
