"""Real services for integration tests: sshd test hosts in network namespaces, Redis, and a Celery worker process."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from inventory.choices import CredentialKind, NodeRole
from inventory.models import Cluster, Credential, Node, RequirementProfile
from tests.conftest import REPO
from tests.lab.hosts import Lab, LabNode, lab_available

OUTPUT = REPO / "test-output"


@pytest.fixture(scope="session")
def lab():
    reason = lab_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the integration tests, but {reason}")
        pytest.skip(reason)
    the_lab = Lab()
    yield the_lab
    the_lab.close()
    assert the_lab.leftovers() == [], "the lab left namespaces or links behind"


@pytest.fixture(scope="session")
def redis_broker():
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the integration tests, but Redis is not answering: {exc}")
        pytest.skip(f"Redis is not answering at {settings.CELERY_BROKER_URL}: {exc}")
    client.flushdb()
    return client


class WorkerHandle:
    """The test's Celery worker process; a fault test may kill it and start a replacement."""

    def __init__(self, env: dict, log: Path) -> None:
        self.env, self.log, self.process = env, log, None

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                "8",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
                "--logfile",
                str(self.log),
                "-n",
                f"preflight-test-{os.getpid()}-{time.monotonic_ns()}@%h",
            ],
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
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="session")
def celery_worker(redis_broker, django_db_setup, django_db_blocker):
    """A real `celery worker` process on the test database file and the test Redis database."""
    from portal.celery import app

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
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    yield handle
    app.conf.task_always_eager = eager
    handle.stop()


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


def make_cluster(name: str, profile: str = "gpustack-2.0", **options) -> Cluster:
    return Cluster.objects.create(name=name, profile=RequirementProfile.objects.get(key=profile), **options)


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
