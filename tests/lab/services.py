"""Command lines of the real services that tests and benchmarks run beside the test hosts: Redis and Celery
(worker and beat)."""

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
    """A private redis-server on a unix socket only (no TCP port), persisting as serve.sh's does: an append-only
    file fsynced every second (in the socket's folder), no RDB snapshots. A restart keeps every queued message."""
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
        "yes",
        "--appendfsync",
        "everysec",
        "--appendfilename",
        f"{socket_path.stem}.aof",
        "--appenddirname",
        f"{socket_path.stem}-aof",
        "--dir",
        str(socket_path.parent),
    ]


def celery_beat_command(*, log: Path, lock: Path, pidfile: Path) -> list[str]:
    """`celery beat` as serve.sh runs it: its own process under an flock, so a second one exits (code 75)."""
    return [
        "flock",
        "--nonblock",
        "--conflict-exit-code",
        "75",
        str(lock),
        sys.executable,
        "-m",
        "celery",
        "-A",
        "portal",
        "beat",
        "--loglevel",
        "INFO",
        "--logfile",
        str(log),
        "--pidfile",
        str(pidfile),
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
