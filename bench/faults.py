"""Recovery time per fault: the four faults of issue 21 applied to an audit of N nodes (default 30) on sshd test hosts,
against a whole Preflight run as serve.sh runs it (tests/lab/faultstack.py: Redis with AOF, a Celery worker with 16
threads, beat on its own, gunicorn, SQLite on a tmpfs of its own) with short lease and sweep timings.

For each fault it prints how long the audit took to end after the fault cleared, what the doors answered meanwhile,
and how many times nodes were claimed. Run as root: .venv/bin/python -m bench.faults [--nodes 30] [--faults kill,...]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

FAULTS = ("kill", "redis", "lock", "full")
DESCRIPTION = {
    "kill": "Celery worker killed (SIGKILL), started again 2 s later",
    "redis": "Redis stopped for 20 s, then started",
    "lock": "SQLite locked for 30 s by another writer (BEGIN EXCLUSIVE)",
    "full": "the disk under SQLite full for 30 s",
}


def _apply(stack, fault: str) -> None:
    if fault == "kill":
        stack.kill_worker()
        time.sleep(2)
        stack.start_worker()
    elif fault == "redis":
        stack.stop_redis()
        time.sleep(20)
        stack.start_redis()
    elif fault == "lock":
        stack.lock_database(30).wait(timeout=60)
    elif fault == "full":
        stack.fill_disk()
        time.sleep(30)
        stack.free_disk()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=30)
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, from " + ", ".join(FAULTS))
    parser.add_argument("--probe-seconds", type=float, default=3, help="how long each node's probe is made to take")
    args = parser.parse_args()
    from tests.lab import nodes
    from tests.lab.faultstack import FaultStack
    from tests.lab.hosts import Lab

    lab = Lab()
    stack = FaultStack(output=Path(tempfile.mkdtemp(prefix="preflight-bench-faults-")))
    try:
        started = time.monotonic()
        hosts = [lab.add(nodes.slow(f"b{i:02d}", args.probe_seconds)) for i in range(args.nodes)]
        side = lab.add(nodes.plain("side"))
        stack.set_up(
            key=lab.client_key,
            clusters={"bench": [(h.spec.name, h.address) for h in hosts], "side": [("side", side.address)]},
        )
        took = time.monotonic() - started
        print(f"{args.nodes} test hosts and the stack up in {took:.1f} s (logs in {stack.output})")
        audit_id = stack.start_audit("bench")
        print(f"audit without a fault (host keys learnt): {stack.wait_audit(audit_id, timeout=300):.1f} s")
        audit_id = stack.start_audit("bench")
        print(f"audit without a fault: {stack.wait_audit(audit_id, timeout=300):.1f} s")
        print("fault | audit start to fault | fault cleared to audit done | claims per node | doors answered")
        for fault in args.faults.split(","):
            audit_id = stack.start_audit("bench")
            begun = time.monotonic()
            while stack.node_states(audit_id).get("running", 0) < min(12, args.nodes):
                time.sleep(0.1)
            doors = stack.doors(cluster="bench", side_cluster="side")
            applied = time.monotonic()
            _apply(stack, fault)
            cleared = time.monotonic()
            answers = doors.finish()
            stack.wait_audit(audit_id, timeout=600)
            recovery = time.monotonic() - cleared
            rows = stack.query("SELECT attempts FROM checks_nodeaudit WHERE audit_id = ?", audit_id)
            claims = collections.Counter(attempts for (attempts,) in rows)
            states = stack.node_states(audit_id)
            statuses = collections.Counter(a.status for a in answers)
            print(
                f"{DESCRIPTION[fault]} | {applied - begun:.1f} s | {recovery:.1f} s | "
                f"{dict(sorted(claims.items()))} | {dict(sorted(statuses.items()))} (nodes {states}, "
                f"beats {len(stack.beat_processes())})",
                flush=True,
            )
            while stack.query("SELECT COUNT(*) FROM checks_audit WHERE state IN ('queued', 'running')")[0][0]:
                time.sleep(0.5)
    finally:
        stack.close()
        lab.close()


if __name__ == "__main__":
    main()
