"""The deployment the README describes, on one machine: Celery workers on several "machines" (network namespaces on
the lab's bridge, tests/lab/hosts.py `Lab.add_machine`) against one Redis over TCP with a password and one
PostgreSQL database, plus beat, every process with the same settings.

- Redis: a private redis-server bound to the lab bridge's address only (the host side of the lab's /24), on a free
  port, `requirepass` in its config file (mode 600, never on a command line), no persistence.
- PostgreSQL: the machine's test cluster as scripts/postgres.sh sets it up (`ensure_postgres`), with a database of
  this deployment's own, migrated, dropped on close. That cluster listens on loopback only (Debian's
  `listen_addresses = 'localhost'`; restarting it to add the lab's address would cut every other test's
  connections), so a TCP relay on the bridge address stands in for `listen_addresses`: the namespaces reach
  PostgreSQL at `<bridge address>:<relay port>`, exactly as worker machines reach a database host.
- Nothing listens anywhere but loopback and the lab's own bridge address.

`logged_node` makes a test host whose sshd records, for each login, the client's address and whether it ran the
probe (with the probe's nonce): the node's own view of which machine audited it, and when.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .hosts import Lab, LabNode, NodeSpec
from .services import celery_beat_command, celery_worker_command, stop_process

REPO = Path(__file__).resolve().parents[2]


class Unavailable(RuntimeError):
    """A prerequisite (PostgreSQL, redis-server) is missing on this machine."""


def ensure_postgres() -> str:
    """Start the machine's PostgreSQL test cluster as scripts/test.sh does; returns its URL (PREFLIGHT_TEST_PG_URL)."""
    if shutil.which("pg_lsclusters") is None or not Path("/usr/lib/postgresql").is_dir():
        raise Unavailable("PostgreSQL is not installed (scripts/test.sh installs it)")
    script = (
        'source scripts/bootstrap.sh; source scripts/postgres.sh; ensure_postgres; printf %s "$PREFLIGHT_TEST_PG_URL"'
    )
    result = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not result.stdout.startswith("postgres://"):
        raise Unavailable(f"ensure_postgres failed: {result.stderr[-2000:]}")
    return result.stdout.strip()


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class TcpRelay:
    """Accepts TCP connections on (host, a free port) and forwards each to `target`, byte for byte, both ways."""

    def __init__(self, host: str, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server((host, 0))
        self.host, self.port = host, self.server.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self.clients: set[str] = set()  # the addresses that connected through it
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, (address, *_) = self.server.accept()
            except OSError:
                return
            self.clients.add(address)
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._closed.set()
        self.server.close()
        for end in self._sockets:
            try:
                end.close()
            except OSError:
                pass


@dataclass
class Worker:
    name: str
    machine: LabNode | None  # None: this machine's own namespace
    process: subprocess.Popen
    log: Path


class Deployment:
    """Redis (TCP, password) and a PostgreSQL database for Celery workers on the lab's machines; see the module."""

    def __init__(self, lab: Lab, *, output: Path, settings: dict[str, str] | None = None) -> None:
        if shutil.which("redis-server") is None:
            raise Unavailable("redis-server is not installed (scripts/test.sh installs it)")
        self.lab, self.output = lab, output
        output.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="preflight-deploy-"))
        self.address = f"{lab.subnet}.1"  # the bridge: the host side of the lab's /24
        self.redis = self.beat = None
        self.relay: TcpRelay | None = None
        self.workers: list[Worker] = []
        self.database = ""
        self._logs: list = []
        pg = urlsplit(ensure_postgres())
        self.pg_user, self.pg_password = pg.username or "", pg.password or ""
        self.pg_target = (pg.hostname or "127.0.0.1", pg.port or 5432)
        if not ipaddress.ip_address(self.pg_target[0]).is_loopback:
            raise ValueError("the test PostgreSQL must be on loopback")
        self.redis_password = secrets.token_hex(16)
        self.redis_port = free_port(self.address)
        self.settings = {
            "DJANGO_SETTINGS_MODULE": "portal.settings.test",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "CELERY_BROKER_URL": f"redis://:{self.redis_password}@{self.address}:{self.redis_port}/0",
            "DATABASE_CONN_MAX_AGE": "60",
            **(settings or {}),
        }

    # --- the shared services --------------------------------------------------------------------------------

    def start(self) -> None:
        """Redis, the relay, and a fresh database, migrated."""
        self.start_redis()
        self.relay = TcpRelay(self.address, self.pg_target)
        self.database = f"preflight_deploy_{secrets.token_hex(4)}"
        self._admin_sql(f'CREATE DATABASE "{self.database}"')
        self.manage("migrate", "--noinput", "-v0", timeout=300)

    def database_url(self, *, direct: bool = False) -> str:
        """What a worker machine puts in DATABASE_URL (through the bridge address); `direct`: over loopback, for
        processes of this machine's own namespace and for reading results."""
        host, port = self.pg_target if direct else (self.address, self.relay.port)
        return f"postgres://{self.pg_user}:{self.pg_password}@{host}:{port}/{self.database}"

    def env(self, *, direct: bool = False) -> dict[str, str]:
        return {**os.environ, **self.settings, "DATABASE_URL": self.database_url(direct=direct)}

    def _admin_sql(self, sql: str) -> None:
        import psycopg

        host, port = self.pg_target
        with psycopg.connect(
            host=host, port=port, user=self.pg_user, password=self.pg_password, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(sql)

    def start_redis(self) -> None:
        config = self.root / "redis.conf"
        config.write_text(
            f"bind {self.address}\nport {self.redis_port}\nrequirepass {self.redis_password}\nprotected-mode yes\n"
            f'save ""\nappendonly no\ndir {self.root}\n'
        )
        config.chmod(0o600)
        self.redis = subprocess.Popen(
            ["redis-server", str(config)], stdout=self._log("redis.log"), stderr=subprocess.STDOUT
        )
        _wait(self._redis_answers, 10, "redis-server to answer with its password")

    def _redis_answers(self) -> bool:
        try:
            with socket.create_connection((self.address, self.redis_port), timeout=1) as client:
                client.sendall(f"AUTH {self.redis_password}\r\nPING\r\n".encode())
                answer = b""
                while answer.count(b"\r\n") < 2:
                    chunk = client.recv(64)
                    if not chunk:
                        break
                    answer += chunk
                return answer == b"+OK\r\n+PONG\r\n"
        except OSError:
            return False

    def redis_refuses_without_password(self) -> bool:
        with socket.create_connection((self.address, self.redis_port), timeout=2) as client:
            client.sendall(b"PING\r\n")
            return client.recv(64).startswith(b"-NOAUTH")

    # --- Django, from this machine ----------------------------------------------------------------------------

    def manage(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed: {result.stderr[-3000:]}")
        return result.stdout

    def django(self, code: str, *, timeout: float = 120) -> str:
        """Run `code` in a Django process with the deployment's settings (as the web machine would); its stdout."""
        result = subprocess.run(
            [sys.executable, "-c", "import django\ndjango.setup()\n" + code],
            cwd=REPO,
            env={**self.env(), "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"a Django script failed: {result.stderr[-3000:]}")
        return result.stdout

    def query(self, sql: str, *params) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.database_url(direct=True), autocommit=True) as connection:
            return connection.execute(sql, params).fetchall()

    # --- processes --------------------------------------------------------------------------------------------

    def _log(self, name: str):
        handle = open(self.output / name, "ab")
        self._logs.append(handle)
        return handle

    def start_workers(self, machines: list[LabNode | None], *, concurrency: int, loglevel: str = "INFO") -> None:
        """One `celery worker` per machine (None: this machine's namespace), started together; returns once each
        has said it is ready."""
        started = []
        for i, machine in enumerate(machines):
            name = machine.spec.name if machine is not None else f"local{len(self.workers) + i}"
            log = self.output / f"worker-{name}.log"
            log.unlink(missing_ok=True)
            command = celery_worker_command(concurrency=concurrency, log=log, name=f"{name}@%h", loglevel=loglevel)
            if machine is not None:
                command = ["ip", "netns", "exec", machine.namespace, *command]
            process = subprocess.Popen(
                command,
                cwd=REPO,
                env=self.env(direct=machine is None),
                stdout=subprocess.DEVNULL,
                stderr=self._log(f"worker-{name}.err"),
            )
            started.append(Worker(name, machine, process, log))
        self.workers += started
        for worker in started:
            _wait(
                lambda w=worker: w.process.poll() is None and w.log.exists() and "ready." in w.log.read_text(),
                90,
                f"the worker on {worker.name} (see {worker.log})",
            )

    def kill(self, worker: Worker) -> None:
        """SIGKILL: the machine died under it."""
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(timeout=10)

    def stop_workers(self) -> None:
        for worker in self.workers:
            stop_process(worker.process, wait=20)
        self.workers = []

    def start_beat(self) -> None:
        self.beat = subprocess.Popen(
            celery_beat_command(
                log=self.output / "beat.log", lock=self.root / "beat.lock", pidfile=self.root / "beat.pid"
            ),
            cwd=REPO,
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=self._log("beat.err"),
            start_new_session=True,
        )

    def close(self) -> None:
        self.stop_workers()
        if self.beat is not None and self.beat.poll() is None:
            os.killpg(self.beat.pid, signal.SIGTERM)
            try:
                self.beat.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.beat.pid, signal.SIGKILL)
        stop_process(self.redis, wait=10)
        if self.relay is not None:
            self.relay.close()
        if self.database:
            self._admin_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        for handle in self._logs:
            handle.close()
        shutil.rmtree(self.root, ignore_errors=True)


# --- test hosts that record who logged in ---------------------------------------------------------------------

_LOGIN_WRAPPER = """#!/bin/sh
# ForceCommand of a lab node: note the client's address and, for the probe (`sh -s -- NONCE ...`), its nonce; then
# run the command asked for. A probe waits PROBE_DELAY seconds first, so an audit lasts long enough to be cut.
log=$1
delay=$2
client=${SSH_CONNECTION%% *}
case "$SSH_ORIGINAL_COMMAND" in
  "sh -s -- "*)
    nonce=$(printf '%s' "$SSH_ORIGINAL_COMMAND" | cut -d' ' -f4 | tr -cd '0-9a-f')
    echo "$client probe $nonce" >> "$log"
    sleep "$delay"
    ;;
  *) echo "$client other" >> "$log" ;;
esac
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
"""


def login_wrapper(folder: Path) -> Path:
    """The ForceCommand script of `logged_node`, written once into `folder`."""
    path = folder / "login-wrapper.sh"
    path.write_text(_LOGIN_WRAPPER)
    path.chmod(0o755)
    return path


def logged_node(spec: NodeSpec, *, wrapper: Path, log: Path, probe_delay: float = 0.0) -> NodeSpec:
    """`spec`, with sshd running every command through `wrapper`, which appends `<client address> probe <nonce>`
    (or `<client address> other`) to `log` for each."""
    spec.sshd_options = [*spec.sshd_options, f"ForceCommand {wrapper} {log} {probe_delay:g}"]
    return spec


def probe_logins(log: Path) -> list[tuple[str, str]]:
    """(client address, nonce) of each probe the node ran, in order."""
    if not log.exists():
        return []
    found = []
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "probe":
            found.append((parts[0], parts[2]))
    return found


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
