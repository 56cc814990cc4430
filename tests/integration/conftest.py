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
    process = subprocess.Popen(
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
            str(log),
            "-n",
            f"preflight-test-{os.getpid()}@%h",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited: {log.read_text() if log.exists() else ''}")
        if log.exists() and "ready." in log.read_text():
            break
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the Celery worker did not become ready in 60 s")
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    yield process
    app.conf.task_always_eager = eager
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


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
