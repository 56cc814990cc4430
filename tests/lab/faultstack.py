"""A whole Preflight, as scripts/serve.sh runs it, for fault tests and the fault bench: Redis (AOF) on a unix socket,
a Celery worker (threads, 16), beat as its own process under an flock, gunicorn, and SQLite on a small tmpfs of
its own, so that its disk can be filled. Each part is a real process that a fault can kill, stop or starve:

- `kill_worker()`: SIGKILL of the Celery worker (then `start_worker()`, as serve.sh's loop does after 2 s);
- `stop_redis()` / `start_redis()`: Redis stopped (SIGTERM: it writes its append-only file) and started again;
- `lock_database(seconds)`: another process holds `BEGIN EXCLUSIVE` on the SQLite file;
- `fill_disk()` / `free_disk()`: a file fills the tmpfs under the database, then is removed.

`doors()` polls the dashboard, `GET /api/v1/nodes` and `POST /api/v1/audits` while a fault lasts, and keeps every
answer. The test process reads the database with the sqlite3 module only; everything else goes through the doors
or `manage.py`. Timings are short (`FAULT_ENV`): a lease of 8 s renewed every second, a sweep every 3 s.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .services import celery_beat_command, celery_worker_command, redis_server_command, stop_process

REPO = Path(__file__).resolve().parents[2]

# Short timings, so a fault and its recovery take seconds. The write budget outlasts the 30 s database faults.
FAULT_ENV = {
    "DJANGO_SETTINGS_MODULE": "portal.settings.test",
    "CELERY_TASK_ALWAYS_EAGER": "false",
    "PREFLIGHT_LEASE_SECONDS": "8",
    "PREFLIGHT_LEASE_RENEW": "1",
    "PREFLIGHT_NODE_ATTEMPTS": "3",
    "PREFLIGHT_REDELIVER_AFTER": "5",
    "PREFLIGHT_SWEEP_MIN_GAP": "2",
    "PREFLIGHT_VISIBILITY_TIMEOUT": "120",
    "PREFLIGHT_DB_WRITE_BUDGET": "75",
    "PREFLIGHT_PROBE_TIMEOUT": "40",
    "PREFLIGHT_TOOL_TIMEOUT": "10",
    "PREFLIGHT_PROBE_IDLE_TIMEOUT": "12",
    "PREFLIGHT_SSH_CONNECT_TIMEOUT": "5",
    "DATABASE_CONN_MAX_AGE": "60",
    "WEB_WORKERS": "2",
    "DEBUG": "false",
    "PREFLIGHT_HTTPS": "false",
    "LOG_LEVEL": "INFO",
}
SWEEP_EVERY = 3  # seconds, set on the sweep's Periodic task in this stack's database

_SETUP = """
import sys
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks
from django.utils import timezone
from inventory.choices import CredentialKind, NodeRole
from inventory.models import Cluster, Credential, Node, RequirementProfile
from portal.tokens import api_token_create
from django.contrib.auth import get_user_model

spec = __import__("json").loads(open(sys.argv[-1]).read())
user = get_user_model().objects.create_superuser("ops", password=spec["password"])
_, token = api_token_create(user=user, name="faults")
credential = Credential(name="lab-key", kind=CredentialKind.PRIVATE_KEY)
credential.secret = spec["key"]
credential.save()
profile = RequirementProfile.objects.get(key="gpustack-2.0")
for cluster_name, nodes in spec["clusters"].items():
    cluster = Cluster.objects.create(name=cluster_name, profile=profile)
    for name, address in nodes:
        Node.objects.create(cluster=cluster, name=name, address=address, role=NodeRole.WORKER, credential=credential)
every, _ = IntervalSchedule.objects.get_or_create(every=spec["sweep_every"], period="seconds")
PeriodicTask.objects.filter(name="Sweep stuck node audits").update(interval=every)
PeriodicTask.objects.exclude(name="Sweep stuck node audits").update(enabled=False)
PeriodicTasks.update_changed()
print("TOKEN=" + token)
"""


@dataclass
class Answer:
    door: str
    status: int
    seconds: float
    body: str
    retry_after: str | None
    at: float


@dataclass
class DoorPoll:
    answers: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def finish(self) -> list[Answer]:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=90)
        return self.answers


class FaultStack:
    def __init__(self, *, output: Path, tmpfs_mib: int = 48) -> None:
        self.output = output
        output.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="preflight-faults-"))
        self.db_dir = self.root / "db"
        self.db_dir.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={tmpfs_mib}m,mode=700", "preflight-faults", str(self.db_dir)],
            check=True,
        )
        self.database = self.db_dir / "faults.sqlite3"
        self.redis_socket = self.root / "redis" / "redis.sock"
        self.redis_socket.parent.mkdir(mode=0o700)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **FAULT_ENV,
            "DATABASE_URL": f"sqlite:///{self.database}",
            "CELERY_BROKER_URL": f"redis+socket://{self.redis_socket}",
            "PREFLIGHT_BIND": f"127.0.0.1:{self.port}",
        }
        self.redis = self.worker = self.beat = self.web = self.locker = None
        self.filler = self.db_dir / "filler"
        self.password = "faults-" + os.urandom(6).hex()
        self.token = ""
        self._logs: list = []

    # --- set-up ---------------------------------------------------------------------------------------------

    def manage(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed: {result.stderr[-3000:]}")
        return result.stdout

    def set_up(self, *, key: str, clusters: dict[str, list[tuple[str, str]]]) -> None:
        """Migrate, create the admin, a token, the credential and the clusters; then start every process."""
        self.manage("migrate", "--noinput", "-v0", timeout=300)
        spec = self.root / "spec.json"
        spec.write_text(
            json.dumps({"password": self.password, "key": key, "clusters": clusters, "sweep_every": SWEEP_EVERY})
        )
        spec.chmod(0o600)
        script = self.root / "setup.py"
        script.write_text("import django, sys\ndjango.setup()\n" + _SETUP)
        result = subprocess.run(
            [sys.executable, str(script), str(spec)],
            cwd=REPO,
            env={**self.env, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"setting up the fault stack failed: {result.stderr[-3000:]}")
        self.token = re.search(r"TOKEN=(\S+)", result.stdout).group(1)
        spec.unlink()
        self.start_redis()
        self.start_worker()
        self.start_beat()
        self.start_web()

    def _log(self, name: str):
        handle = open(self.output / name, "ab")
        self._logs.append(handle)
        return handle

    # --- processes ------------------------------------------------------------------------------------------

    def start_redis(self) -> None:
        self.redis_socket.unlink(missing_ok=True)
        self.redis = subprocess.Popen(
            redis_server_command(self.redis_socket), stdout=self._log("redis.log"), stderr=subprocess.STDOUT
        )
        _wait(lambda: _redis_ping(self.redis_socket), 10, "redis-server to answer")

    def stop_redis(self) -> None:
        stop_process(self.redis, wait=10)

    def start_worker(self) -> None:
        log = self.output / "worker.log"
        start = log.stat().st_size if log.exists() else 0
        self.worker = subprocess.Popen(
            celery_worker_command(concurrency=16, log=log, name=f"faults-{time.monotonic_ns()}@%h"),
            cwd=REPO,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._log("worker.err"),
        )
        _wait(lambda: log.exists() and "ready." in log.read_text(errors="replace")[start:], 60, "the worker")

    def kill_worker(self) -> None:
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait(timeout=10)

    def start_beat(self) -> subprocess.Popen:
        beat = subprocess.Popen(
            celery_beat_command(
                log=self.output / "beat.log", lock=self.root / "beat.lock", pidfile=self.root / "beat.pid"
            ),
            cwd=REPO,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._log("beat.err"),
            start_new_session=True,
        )
        if self.beat is None or self.beat.poll() is not None:
            self.beat = beat
        return beat

    def beat_processes(self) -> list[int]:
        """Celery beat processes of this stack (by their log file), from /proc."""
        marker = str(self.output / "beat.log").encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"beat" in argv and marker in argv and not any(a.endswith(b"flock") for a in argv[:1]):
                found.append(int(entry.name))
        return found

    def start_web(self) -> None:
        self.web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "portal/gunicorn.conf.py"],
            cwd=REPO,
            env=self.env,
            stdout=self._log("gunicorn.log"),
            stderr=subprocess.STDOUT,
        )
        _wait(lambda: _http_ok(f"{self.url}/login/"), 60, "gunicorn")

    # --- faults ---------------------------------------------------------------------------------------------

    def lock_database(self, seconds: float) -> subprocess.Popen:
        """Another writer: a process that holds BEGIN EXCLUSIVE on the database for `seconds`; returns once it
        holds the lock."""
        code = (
            "import sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n"
            "db.execute('ROLLBACK')\n"
        )
        self.locker = subprocess.Popen(
            [sys.executable, "-c", code, str(self.database), str(seconds)], stdout=subprocess.PIPE, text=True
        )
        assert self.locker.stdout.readline().strip() == "locked"
        return self.locker

    def fill_disk(self) -> int:
        """Fill the tmpfs under the database with a file, after moving the WAL's pages into the database and
        truncating it (so the next write needs new space). Returns the bytes the file took."""
        with sqlite3.connect(self.database, timeout=30) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        written = 0
        with open(self.filler, "wb", buffering=0) as filler:  # unbuffered: nothing is left to flush on close
            for size in (1 << 20, 4096):  # megabytes, then the last few pages
                try:
                    while True:
                        written += filler.write(b"\0" * size)
                except OSError:
                    pass
        return written

    def free_disk(self) -> None:
        self.filler.unlink(missing_ok=True)

    # --- reading ----------------------------------------------------------------------------------------------

    def query(self, sql: str, *params) -> list[tuple]:
        db = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=30)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def audit_state(self, audit_id: int) -> str:
        return self.query("SELECT state FROM checks_audit WHERE id = ?", audit_id)[0][0]

    def node_states(self, audit_id: int) -> dict[str, int]:
        rows = self.query("SELECT state, COUNT(*) FROM checks_nodeaudit WHERE audit_id = ? GROUP BY state", audit_id)
        return dict(rows)

    def wait_audit(self, audit_id: int, timeout: float) -> float:
        """Seconds until the audit is done (raises past `timeout`)."""
        started = time.monotonic()
        _wait(lambda: self.audit_state(audit_id) in ("done", "error"), timeout, f"audit {audit_id} to end")
        return time.monotonic() - started

    # --- the doors ------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, body: dict | None = None, opener=None, timeout: float = 90):
        headers = {"Authorization": f"Bearer {self.token}"} if path.startswith("/api/") else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with (opener or urllib.request.build_opener()).open(request, timeout=timeout) as response:
                return response.status, response.read().decode(errors="replace"), response.headers
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace"), error.headers

    def start_audit(self, cluster: str) -> int:
        status, body, headers = self.request("POST", "/api/v1/audits", body={"cluster": cluster})
        if status != 202:
            raise RuntimeError(f"POST /api/v1/audits answered {status}: {body[:500]}")
        return int(headers["Location"].rstrip("/").rsplit("/", 1)[-1])

    def login(self):
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        opener.open(f"{self.url}/login/", timeout=30).read()
        csrf = next(c.value for c in jar if c.name == "csrftoken")
        form = urllib.parse.urlencode({"username": "ops", "password": self.password, "csrfmiddlewaretoken": csrf})
        request = urllib.request.Request(
            f"{self.url}/login/", data=form.encode(), headers={"Referer": f"{self.url}/login/"}, method="POST"
        )
        opener.open(request, timeout=30).read()
        if not any(c.name == "sessionid" for c in jar):
            raise RuntimeError("could not log in to the fault stack's portal")
        return opener

    def doors(self, *, cluster: str, side_cluster: str) -> DoorPoll:
        """Poll the doors until `finish()`: the dashboard (a logged-in page), GET /api/v1/nodes, POST
        /api/v1/audits for the cluster under audit (409 while it runs) and for a one-node side cluster."""
        poll = DoorPoll()
        opener = self.login()
        calls = {
            "dashboard": lambda: self.request("GET", f"/clusters/{cluster}/", opener=opener),
            "GET /api/v1/nodes": lambda: self.request("GET", "/api/v1/nodes?limit=50"),
            "POST /api/v1/audits": lambda: self.request("POST", "/api/v1/audits", body={"cluster": cluster}),
            "POST /api/v1/audits (side)": lambda: self.request(
                "POST", "/api/v1/audits", body={"cluster": side_cluster}
            ),
        }

        def loop(door: str, call) -> None:
            while not poll.stop.is_set():
                started = time.monotonic()
                try:
                    status, body, headers = call()
                    retry_after = headers.get("Retry-After")
                except OSError as exc:  # no answer at all counts as a failed door too
                    status, body, retry_after = 0, repr(exc), None
                poll.answers.append(Answer(door, status, time.monotonic() - started, body[:400], retry_after, started))
                poll.stop.wait(0.5)

        for door, call in calls.items():
            thread = threading.Thread(target=loop, args=(door, call), daemon=True)
            thread.start()
            poll.threads.append(thread)
        return poll

    # --- tear-down ------------------------------------------------------------------------------------------

    def close(self) -> None:
        if self.locker is not None and self.locker.poll() is None:
            self.locker.kill()
        self.free_disk()
        for process in (self.web, self.worker):
            stop_process(process)
        if self.beat is not None and self.beat.poll() is None:
            os.killpg(self.beat.pid, signal.SIGTERM)
            try:
                self.beat.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.beat.pid, signal.SIGKILL)
        self.stop_redis()
        for handle in self._logs:
            handle.close()
        subprocess.run(["umount", "-l", str(self.db_dir)], check=False)
        subprocess.run(["rm", "-rf", str(self.root)], check=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _redis_ping(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(1)
            client.connect(str(path))
            client.sendall(b"PING\r\n")
            return client.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
