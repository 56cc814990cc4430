"""Real services for integration and browser tests: sshd test hosts in network namespaces, Redis, a Celery worker.

Registered once by tests/conftest.py (pytest_plugins); tests import the helpers from here."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from inventory.choices import CredentialKind, NodeRole
from inventory.models import Cluster, Credential, Node, RequirementProfile
from tests.conftest import REPO, missing_prerequisite
from tests.lab.hosts import Lab, LabNode, lab_available
from tests.lab.services import celery_worker_command, redis_server_command, stop_process

OUTPUT = REPO / "test-output"


@pytest.fixture(scope="session")
def lab():
    reason = lab_available()
    if reason:
        missing_prerequisite(reason)
    the_lab = Lab()
    yield the_lab
    the_lab.close()
    assert the_lab.leftovers() == [], "the lab left namespaces or links behind"


class TestRedis:
    """The test session's own redis-server, on a unix socket in run/; a fault test restarts it."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path, self.process = socket_path, None
        self.client = redis.Redis(unix_socket_path=str(socket_path), socket_connect_timeout=2)

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        if shutil.which("redis-server") is None:
            missing_prerequisite("redis-server is not installed (scripts/test.sh installs it)")
        self.socket_path.parent.mkdir(exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            redis_server_command(self.socket_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        pytest.fail("redis-server did not answer on its socket in 10 s")

    def stop(self) -> None:
        stop_process(self.process, wait=10)
        self.client.connection_pool.disconnect()

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


@pytest.fixture(scope="session")
def redis_broker():
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis+socket://"):
        pytest.skip(f"the integration tests run their own Redis; CELERY_BROKER_URL is set to {url}")
    server = TestRedis(Path(url.removeprefix("redis+socket://")))
    # Its append-only file survives restarts within the session, never across sessions (ids are reused).
    shutil.rmtree(server.socket_path.parent / f"{server.socket_path.stem}-aof", ignore_errors=True)
    server.start()
    yield server
    server.stop()


class WorkerHandle:
    """The test's Celery worker process; a fault test may kill it and start a replacement."""

    def __init__(self, env: dict, log: Path) -> None:
        self.env, self.log, self.process, self.concurrency = env, log, None, 8

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self, concurrency: int = 8) -> None:
        self.concurrency = concurrency
        self.process = subprocess.Popen(
            celery_worker_command(
                concurrency=concurrency, log=self.log, name=f"preflight-test-{os.getpid()}-{time.monotonic_ns()}@%h"
            ),
            cwd=REPO,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        start = self.log.stat().st_size if self.log.exists() else 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the Celery worker exited: {self.log.read_text() if self.log.exists() else ''}")
            if self.log.exists() and "ready." in self.log.read_text()[start:]:
                return
            time.sleep(0.2)
        self.process.kill()
        pytest.fail("the Celery worker did not become ready in 60 s")

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture(scope="session")
def celery_worker_process(redis_broker, django_db_setup, django_db_blocker):
    """A real `celery worker` process on the test database file and the test Redis database, started once."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("the Celery integration tests run on the SQLite test database file")
    OUTPUT.mkdir(exist_ok=True)
    log = OUTPUT / "celery-worker.log"
    log.unlink(missing_ok=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "DATABASE_URL": f"sqlite:///{database['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    handle = WorkerHandle(env, log)
    handle.start()
    yield handle
    handle.stop()


@pytest.fixture
def celery_worker(celery_worker_process):
    """The worker, with tasks sent to it through Redis for this test only: the tests after it (pytest-django runs
    the transaction tests last, after the others) get the eager tasks of the test settings back."""
    from portal.celery import app

    # The app reads Django settings by their CELERY_ names; setting `task_always_eager` alone does not stick.
    eager = app.conf.CELERY_TASK_ALWAYS_EAGER
    app.conf.CELERY_TASK_ALWAYS_EAGER = False
    assert app.conf.task_always_eager is False, "tasks would run in the test process, not in the worker"
    yield celery_worker_process
    app.conf.CELERY_TASK_ALWAYS_EAGER = eager


def lab_credential(lab: Lab, name: str = "lab-key") -> Credential:
    credential = Credential.objects.filter(name=name).first() or Credential(name=name, kind=CredentialKind.PRIVATE_KEY)
    credential.secret = lab.client_key
    credential.save()
    return credential


def add_lab_nodes(cluster: Cluster, lab_nodes: list[LabNode], credential: Credential, role=NodeRole.WORKER):
    return [
        Node.objects.create(cluster=cluster, name=n.spec.name, address=n.address, role=role, credential=credential)
        for n in lab_nodes
    ]


def make_cluster(name: str, profile: str = "gpustack-2.0", *, small_machine: bool = True, **options) -> Cluster:
    """A cluster on a built-in profile. The lab's nodes share this test machine's disk and memory, far below a GPU
    server's: `small_machine` lowers the profile's host.resources thresholds to 1 GiB (profile data, as an operator
    would for small nodes), so a test sees host.resources fail only when it means to."""
    chosen = RequirementProfile.objects.get(key=profile)
    if small_machine:
        RequirementProfile.objects.filter(pk=chosen.pk).update(
            worker_disk_warn_gib=1, worker_disk_fail_gib=1, worker_memory_warn_gib=1, server_disk_warn_gib=1
        )
    return Cluster.objects.create(name=name, profile=chosen, **options)


def wait_for_audit(audit_id: int, timeout: float = 90):
    from checks.models import Audit

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        audit = Audit.objects.get(pk=audit_id)
        if audit.state in ("done", "error"):
            return audit
        time.sleep(0.25)
    raise AssertionError(f"audit {audit_id} did not finish in {timeout} s")


def checks_of(audit_id: int, node_name: str) -> dict[str, object]:
    from checks.models import CheckResult

    return {
        r.check_id: r
        for r in CheckResult.objects.filter(node_audit__audit_id=audit_id, node_audit__node__name=node_name)
    }


def save_output(name: str, text: str) -> Path:
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / name
    path.write_text(text)
    return path
