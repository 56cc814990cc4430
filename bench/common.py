"""Shared set-up for the benchmarks: a throwaway database, migrated, and the sshd test hosts of tests/lab."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def scratch_folder(prefix: str) -> Path:
    """A temporary folder removed when the benchmark exits (PREFLIGHT_BENCH_KEEP=1 keeps it, to read its logs): a
    benchmark's database is 100-200 MB, and they piled up in /tmp."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if os.environ.get("PREFLIGHT_BENCH_KEEP") != "1":
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def django_setup() -> Path:
    """Point Django at a fresh SQLite file (outside the repository) and migrate it."""
    sys.path.insert(0, str(ROOT))
    folder = scratch_folder("preflight-bench-")
    os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'bench.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
    os.environ.setdefault("PREFLIGHT_PROBE_TIMEOUT", "60")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return folder


def start_redis() -> tuple[subprocess.Popen, str]:
    """A private redis-server on a unix socket in a temporary folder: the benchmark's broker, nothing shared."""
    from tests.lab.services import redis_server_command

    folder = scratch_folder("preflight-bench-redis-")
    socket_path = folder / "redis.sock"
    process = subprocess.Popen(
        redis_server_command(socket_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not socket_path.exists():
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit("redis-server did not start (is it installed? bash scripts/test.sh installs it)")
        time.sleep(0.05)
    return process, f"redis+socket://{socket_path}"
