"""Command lines of the real services that tests and benchmarks run beside the test hosts: Redis and Celery."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def stop_process(process: subprocess.Popen | None, *, wait: float = 20) -> None:
    """Terminate a service the tests started, and kill it if it has not exited after `wait` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        process.kill()


def redis_server_command(socket_path: Path) -> list[str]:
    """A private redis-server on a unix socket only (no TCP port), without persistence: a restart loses every
    queued message, the worst case."""
    return [
        "redis-server",
        "--port",
        "0",
        "--unixsocket",
        str(socket_path),
        "--unixsocketperm",
        "700",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(socket_path.parent),
    ]


def celery_worker_command(*, concurrency: int, log: Path, name: str, pool: str = "threads", loglevel: str = "INFO"):
    """`celery worker` for the portal app, without the cluster chatter (heartbeat, gossip, mingle) tests don't use."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "portal",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        loglevel,
        "--logfile",
        str(log),
        "-n",
        name,
    ]
