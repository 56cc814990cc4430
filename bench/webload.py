"""How keep-alive connections spread over gunicorn's workers, with `reuse_port` off (one listening socket that every
worker accepts from) and on (a socket per worker, the kernel spreading connections), as portal/gunicorn.conf.py
serves the portal. A small, bounded loopback load: C keep-alive clients (default 32, in 4 processes) for S seconds
(default 10) on `GET /api/v1/nodes?limit=50` (50 nodes) and `GET /api/v1/audits/<id>` (one audit of 30 nodes).

Prints requests per second in all and per worker. Run: .venv/bin/python -m bench.webload [--clients 32]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.common import ROOT, django_setup


def _client_process(port: int, paths: list[str], token: str, threads: int, seconds: float, out) -> None:
    counts = collections.Counter()
    stop = time.monotonic() + seconds

    def run(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        path = paths[index % len(paths)]
        while time.monotonic() < stop:
            connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            response = connection.getresponse()
            response.read()
            counts[response.status] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put(dict(counts))


def _serve(port: int, reuse_port: bool, folder: Path, env: dict) -> tuple[subprocess.Popen, Path]:
    log = folder / f"access-{int(reuse_port)}.log"
    conf = folder / f"gunicorn-{int(reuse_port)}.conf.py"
    conf.write_text(
        f"exec(open({str(ROOT / 'portal' / 'gunicorn.conf.py')!r}).read())\n"
        f"reuse_port = {reuse_port}\naccesslog = {str(log)!r}\naccess_log_format = '%(p)s %(s)s'\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(conf)],
        cwd=ROOT,
        env={**env, "PREFLIGHT_BIND": f"127.0.0.1:{port}", "WEB_WORKERS": "2"},
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "gunicorn.err", "ab"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, log
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    folder = django_setup()
    from django.contrib.auth import get_user_model

    from checks.choices import RunState
    from checks.models import Audit, NodeAudit
    from inventory.models import Cluster, Node, RequirementProfile
    from portal.tokens import api_token_create

    user = get_user_model().objects.create_superuser("bench", password="x")
    _, token = api_token_create(user=user, name="bench")
    profile = RequirementProfile.objects.get(key="gpustack-2.0")
    cluster = Cluster.objects.create(name="bench", profile=profile)
    nodes = [Node.objects.create(cluster=cluster, name=f"n{i:02d}", address=f"127.0.0.{i + 2}") for i in range(50)]
    audit = Audit.objects.create(cluster=cluster, profile=profile, profile_key=profile.key, state=RunState.DONE)
    done = RunState.DONE
    NodeAudit.objects.bulk_create(NodeAudit(audit=audit, node=n, state=done, status="pass") for n in nodes[:30])
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "DEBUG": "false",
        "PREFLIGHT_HTTPS": "false",
        "LOG_LEVEL": "WARNING",
    }
    paths = ["/api/v1/nodes?limit=50", f"/api/v1/audits/{audit.pk}"]
    print(f"{args.clients} keep-alive clients in {args.processes} processes, {args.seconds:g} s, 2 gunicorn workers")
    for reuse_port in (False, True):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server, log = _serve(port, reuse_port, folder, env)
        try:
            results = multiprocessing.Queue()
            per_process = args.clients // args.processes
            clients = [
                multiprocessing.Process(
                    target=_client_process, args=(port, paths, token, per_process, args.seconds, results)
                )
                for _ in range(args.processes)
            ]
            started = time.monotonic()
            for client in clients:
                client.start()
            statuses = collections.Counter()
            for _ in clients:
                statuses.update(results.get(timeout=args.seconds + 120))
            for client in clients:
                client.join()
            elapsed = time.monotonic() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
        per_worker = collections.Counter(line.split()[0] for line in log.read_text().splitlines() if line.strip())
        split = " / ".join(str(n) for n in sorted(per_worker.values(), reverse=True))
        total = sum(statuses.values())
        print(
            f"reuse_port {'on ' if reuse_port else 'off'}: {total / elapsed:.0f} req/s in all ({total} requests, "
            f"statuses {dict(statuses)}); requests per worker {split} "
            f"({', '.join(f'{n / elapsed:.0f}' for n in sorted(per_worker.values(), reverse=True))} req/s)"
        )


if __name__ == "__main__":
    main()
