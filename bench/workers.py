"""Audit wall time with 1, 2 and 4 Celery worker processes on this machine against the same sshd test hosts.

Run as root after `bash scripts/test.sh` has set the machine up (.venv, redis-server and PostgreSQL installed):

    .venv/bin/python -m bench.workers [--hosts 100] [--processes 1,2,4] [--concurrency 16] [--split] [--runs 2]

The deployment is the README's (tests/lab/deployment.py): one Redis over TCP with a password, one PostgreSQL
database (scripts/postgres.sh's cluster, a throwaway database), N `celery worker` processes (threads pool,
`--concurrency` threads each; `--split`: the same total of threads split over the processes). A cluster of worker
nodes, host checks only (no matrix), is audited `--runs` times per N after one warm-up audit (host keys trusted on
first use). Printed per N: the audit's wall time (median), hosts/s, the speed-up against 1 process, how many node
audits each process ran, the workers' CPU seconds and the machine's, and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT
from bench.fleet import busy_seconds, process_seconds, timed_audit

UBUNTU = 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n'


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def succeeded(log: Path) -> int:
    text = log.read_text(errors="replace") if log.exists() else ""
    return len(re.findall(r"Task checks\.audit_node\[[^\]]+\] succeeded", text))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=16, help="threads per worker process")
    parser.add_argument("--split", action="store_true", help="split --concurrency threads over the processes")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    sys.path.insert(0, str(ROOT))
    from tests.lab.deployment import Deployment
    from tests.lab.hosts import Lab, NodeSpec

    lab = Lab()
    deploy = None
    try:
        deploy = Deployment(lab, output=Path(tempfile.mkdtemp(prefix="preflight-bench-workers-")))
        print(f"worker, Redis and beat logs in {deploy.output}")
        started = time.monotonic()
        deploy.start()
        os.environ.update(deploy.settings)
        os.environ["DATABASE_URL"] = deploy.database_url(direct=True)
        import django

        django.setup()
        from inventory.models import Cluster, Credential, Node, RequirementProfile
        from portal.celery import app

        assert app.conf.task_always_eager is False, "the benchmark must fan out through Redis"
        hosts = [lab.add(NodeSpec(f"dp-h{i:03d}", UBUNTU)) for i in range(args.hosts)]
        print(
            f"{len(hosts)} test hosts, Redis (TCP, password) and a PostgreSQL database up in "
            f"{time.monotonic() - started:.1f} s; {os.cpu_count()} cores; load average {load()}"
        )
        credential = Credential(name="bench", kind="private_key")
        credential.secret = lab.client_key
        credential.save()
        cluster = Cluster.objects.create(name="workers", profile=RequirementProfile.objects.get(key="gpustack-2.0"))
        Node.objects.bulk_create(
            Node(cluster=cluster, name=h.spec.name, address=h.address, credential=credential) for h in hosts
        )
        results: dict[int, float] = {}
        for n in counts:
            threads = max(1, args.concurrency // n) if args.split else args.concurrency
            deploy.start_workers([None] * n, concurrency=threads, loglevel="INFO")
            workers = list(deploy.workers)
            print(f"-- {n} worker process(es), {threads} threads each ({n * threads} in all); load {load()}")
            if not results:
                timed_audit(cluster, "   (warm-up, host keys trusted on first use)")
            walls = []
            for run in range(args.runs):
                time.sleep(1)  # the last task of the audit before logs its end after the audit closed
                before = [succeeded(w.log) for w in workers]
                cpu_before = [sum(process_seconds(w.process.pid)) for w in workers]
                busy, load_before = busy_seconds(), load()
                wall, _ = timed_audit(cluster, f"   run {run + 1}")
                busy = busy_seconds() - busy
                time.sleep(1)
                own = sum(sum(process_seconds(w.process.pid)) - c for w, c in zip(workers, cpu_before, strict=True))
                shares = [succeeded(w.log) - b for w, b in zip(workers, before, strict=True)]
                print(
                    f"   node audits per process {shares}; CPU: workers {own:.2f} s, machine {busy:.2f} s "
                    f"({busy / wall:.2f} cores busy); load average before {load_before}, after {load()}"
                )
                walls.append(wall)
            results[n] = statistics.median(walls)
            deploy.stop_workers()
        print(f"\nsummary ({len(hosts)} hosts, host checks; median of {args.runs} runs; load average now {load()}):")
        base = results[counts[0]]
        for n, wall in results.items():
            print(
                f"  {n} process(es): {wall:.2f} s, {len(hosts) / wall:.1f} hosts/s, "
                f"speed-up {base / wall:.2f}x against {counts[0]}"
            )
    finally:
        if deploy is not None:
            from django.db import connections

            connections.close_all()
            deploy.close()
        lab.close()


if __name__ == "__main__":
    main()
