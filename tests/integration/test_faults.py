"""Faults: a worker killed mid-audit, Redis restarted mid-audit, two audits at once. Nothing stays running."""

import json
import re
import signal
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from checks.choices import NetworkState, RunState
from checks.models import Audit, CheckResult, NetworkPath, NodeAudit
from checks.services import AuditAlreadyRunning, audit_enqueue, audit_start, audit_sweep_stuck
from portal.tokens import api_token_create
from tests.lab import nodes

from .fixtures import (
    OUTPUT,
    WorkerHandle,
    add_lab_nodes,
    checks_of,
    lab_credential,
    make_cluster,
    wait_for_audit,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture(scope="module")
def fault_fleet(lab):
    return {
        "ok-1": lab.add(nodes.plain("ok-1")),
        "ok-2": lab.add(nodes.plain("ok-2")),
        "slow": lab.add(nodes.hangs("slow")),
    }


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_worker_killed_mid_audit_is_run_again_when_its_lease_runs_out_and_finished_results_kept(
    lab, fault_fleet, celery_worker
):
    # given: an audit whose slow node keeps the worker busy
    cluster = make_cluster("kill")
    add_lab_nodes(cluster, list(fault_fleet.values()), lab_credential(lab))
    audit = audit_start(cluster=cluster)
    audit_enqueue(audit)
    _wait(
        lambda: NodeAudit.objects.filter(audit=audit, node__name="slow", state=RunState.RUNNING).exists(),
        30,
        "the slow node to start",
    )
    _wait(lambda: NodeAudit.objects.filter(audit=audit, state=RunState.DONE).count() == 2, 30, "the quick nodes")
    slow = NodeAudit.objects.get(audit=audit, node__name="slow")
    assert slow.lease_expires is not None and slow.lease_expires > timezone.now()
    # when: the worker is killed with SIGKILL, a new one starts, and the sweep runs once the lease has run out
    celery_worker.process.send_signal(signal.SIGKILL)
    celery_worker.process.wait(timeout=10)
    celery_worker.start()
    assert audit_sweep_stuck() == 0, "a lease that has not run out is left alone"
    NodeAudit.objects.filter(pk=slow.pk).update(lease_expires=timezone.now() - timedelta(seconds=1))
    swept = audit_sweep_stuck()
    # then: the slow node is audited again, to its own end (its probe time-out), not blamed on a lost worker
    finished = wait_for_audit(audit.pk, timeout=60)
    slow.refresh_from_db()
    assert swept == 1 and finished.state == RunState.DONE
    assert (slow.state, slow.attempts, slow.portal_error) == ("done", 2, "")
    assert "did not finish within 8 s" in checks_of(audit.pk, "slow")["os.supported"].summary
    assert checks_of(audit.pk, "ok-1")["os.supported"].status == "pass"
    assert not NodeAudit.objects.filter(state__in=[RunState.QUEUED, RunState.RUNNING]).exists()


def test_two_audits_at_once_are_refused_with_a_clear_message(lab, fault_fleet, capsys):
    cluster = make_cluster("twice")
    add_lab_nodes(cluster, [fault_fleet["ok-1"]], lab_credential(lab))
    first = audit_start(cluster=cluster)
    with pytest.raises(AuditAlreadyRunning, match=f"audit {first.pk} of cluster twice is still queued"):
        audit_start(cluster=cluster)
    with pytest.raises(Exception) as refused:
        call_command("audit", "--cluster", "twice")
    assert "is still queued" in str(refused.value) and getattr(refused.value, "returncode", None) == 2
    assert Audit.objects.filter(cluster=cluster).count() == 1


def test_redis_restarted_mid_audit_keeps_its_queue(
    lab, fault_fleet, redis_broker, celery_worker, client, django_user_model
):
    # given: a worker with two threads, both held by hung nodes, so the other two nodes' messages wait in Redis
    celery_worker.stop()
    celery_worker.start(concurrency=2)
    try:
        cluster = make_cluster("redis-restart")
        hung = [lab.add(nodes.hangs("hung-a")), lab.add(nodes.hangs("hung-b"))]
        add_lab_nodes(cluster, [*hung, fault_fleet["ok-1"], fault_fleet["ok-2"]], lab_credential(lab))
        audit = audit_start(cluster=cluster)
        audit_enqueue(audit)
        # (nodes are sent in name order, and Redis hands them out first in, first out)
        _wait(
            lambda: (
                set(NodeAudit.objects.filter(audit=audit, state=RunState.RUNNING).values_list("node__name", flat=True))
                == {"hung-a", "hung-b"}
            ),
            30,
            "the hung nodes",
        )
        # when: Redis stops and comes back
        other = make_cluster("while-redis-is-down")
        add_lab_nodes(other, [fault_fleet["ok-1"]], lab_credential(lab))
        _, token = api_token_create(user=django_user_model.objects.create_superuser("ops", password="x"), name="t")
        redis_broker.stop()
        try:
            answer = client.post(
                "/api/v1/audits",
                data=json.dumps({"cluster": other.name}),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {token}",
            )
        finally:
            redis_broker.start()
        assert answer.status_code == 503 and answer.json()["code"] == "unavailable", answer.content
        assert "the task queue did not accept the audit" in answer.json()["message"]
        refused = Audit.objects.get(cluster=other)
        # then: the worker survives and the running node audits end on their own probe time-out
        _wait(
            lambda: (
                NodeAudit.objects.filter(audit=audit, state=RunState.ERROR).count() == 0
                and NodeAudit.objects.filter(audit=audit, node__name__startswith="hung-", state=RunState.DONE).count()
                == 2
            ),
            30,
            "the hung nodes to time out",
        )
        assert celery_worker.process.poll() is None, "the Celery worker exited when Redis went away"
        # then: Redis kept the queued messages (append-only file), and the same worker runs them; no sweep needed
        finished = wait_for_audit(audit.pk, timeout=60)
        assert finished.state == RunState.DONE and finished.dispatches == 1
        assert checks_of(audit.pk, "ok-1")["os.supported"].status == "pass"
        hung_check = checks_of(audit.pk, "hung-a")["os.supported"]
        assert hung_check.status == "error" and "did not finish within 8 s" in hung_check.summary
        assert set(NodeAudit.objects.filter(audit=audit).values_list("attempts", flat=True)) == {1}
        assert not NodeAudit.objects.filter(state__in=[RunState.QUEUED, RunState.RUNNING]).exists()
        # and the audit refused while Redis was down blocks nothing: it ended, saying why
        refused.refresh_from_db()
        assert refused.state == RunState.DONE and refused.status == "error" and "did not accept" in refused.error
        assert refused.node_audits.get().state == RunState.ERROR and refused.network_state == NetworkState.NONE
        assert audit_start(cluster=other).pk != refused.pk
        assert celery_worker.process.poll() is None
    finally:
        redis_broker.start()  # a no-op when it runs
        celery_worker.stop()
        celery_worker.start()


def test_two_worker_processes_share_the_sqlite_database(lab, fault_fleet, celery_worker):
    # given: a second worker process beside the session's, both on the same SQLite file (WAL, IMMEDIATE, timeout)
    second = WorkerHandle(celery_worker.env, OUTPUT / "celery-worker-2.log")
    logs = [celery_worker.log, second.log]
    offsets = [path.stat().st_size if path.exists() else 0 for path in logs]
    second.start(concurrency=4)
    try:
        cluster = make_cluster("two-workers")
        credential = lab_credential(lab)
        add_lab_nodes(cluster, [lab.add(nodes.plain("mw-server"))], credential, role="server")
        fleet = [fault_fleet["ok-1"], fault_fleet["ok-2"]] + [lab.add(nodes.plain(f"mw-{i}")) for i in range(8)]
        add_lab_nodes(cluster, fleet, credential)
        # when
        audit = audit_start(cluster=cluster)
        audit_enqueue(audit)
        finished = wait_for_audit(audit.pk, timeout=120)
    finally:
        second.stop()
    # then: every node audit and the matrix finished, and both processes wrote results
    assert (finished.state, finished.network_state) == ("done", "done"), finished.error
    connect = CheckResult.objects.filter(node_audit__audit=audit, check_id="ssh.connect")
    assert sorted(connect.values_list("status", flat=True)) == ["pass"] * 11
    texts = [path.read_text()[offset:] for path, offset in zip(logs, offsets, strict=True)]
    ran = [len(re.findall(r"checks\.audit_node\[[^]]+\] succeeded", text)) for text in texts]
    assert all(ran) and sum(ran) >= 11, f"both worker processes should have run node audits: {ran}"
    assert not any("database is locked" in text for text in texts)
    assert NetworkPath.objects.filter(audit=audit).count() == 10 * 2 + 10 * 9
