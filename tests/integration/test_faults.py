"""Faults: a worker killed mid-audit, two audits at once. Nothing stays running."""

import signal
import time

import pytest
from django.core.management import call_command

from checks.models import Audit, NodeAudit
from checks.services import AuditAlreadyRunning, audit_enqueue, audit_start, audit_sweep_stuck
from tests.lab import nodes

from .conftest import add_lab_nodes, checks_of, lab_credential, make_cluster

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture(scope="module")
def fault_fleet(lab, shared_dir):
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


def test_worker_killed_mid_audit_is_swept_and_finished_results_kept(lab, fault_fleet, celery_worker):
    # given: an audit whose slow node keeps the worker busy
    cluster = make_cluster("kill")
    add_lab_nodes(cluster, list(fault_fleet.values()), lab_credential(lab))
    audit = audit_start(cluster=cluster)
    audit_enqueue(audit)
    _wait(
        lambda: NodeAudit.objects.filter(audit=audit, node__name="slow", state="running").exists(),
        30,
        "the slow node to start",
    )
    _wait(lambda: NodeAudit.objects.filter(audit=audit, state="done").count() == 2, 30, "the quick nodes")
    # when: the worker is killed with SIGKILL, then the sweep runs (as beat would, PREFLIGHT_STUCK_AFTER later)
    celery_worker.process.send_signal(signal.SIGKILL)
    celery_worker.process.wait(timeout=10)
    swept = audit_sweep_stuck(older_than=0)
    celery_worker.start()
    # then
    slow = NodeAudit.objects.get(audit=audit, node__name="slow")
    assert swept >= 1 and (slow.state, slow.status) == ("error", "error") and "worker killed or lost" in slow.error
    assert checks_of(audit.pk, "ok-1")["os.supported"].status == "pass"
    assert Audit.objects.get(pk=audit.pk).state == "done"
    assert not NodeAudit.objects.filter(state__in=["queued", "running"]).exists()


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
