"""Audit services against the database, with the local transport (the real probe on this machine)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from checks.choices import RunState
from checks.models import Audit, CheckResult, NodeAudit
from checks.selectors.audits import audit_detail
from checks.services import AuditRefused, audit_run_inline, audit_start, audit_sweep_stuck, node_audit_run
from inventory.models import Accelerator, DriverInstall
from inventory.services import node_record_facts
from portal.tokens import api_token_create
from tests.factories import ClusterFactory, NodeFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def local_node():
    return NodeFactory(name="self", address="127.0.0.1", transport="local", role="server")


def test_local_audit_and_claim_is_idempotent(local_node):
    # given
    audit = audit_start(cluster=local_node.cluster)
    node_audit = audit.node_audits.get()
    # when
    first = node_audit_run(node_audit_id=node_audit.pk)
    second = node_audit_run(node_audit_id=node_audit.pk)
    # then: the second delivery finds nothing to claim, and nothing was written twice
    assert first is not None and second is None
    assert CheckResult.objects.filter(node_audit=node_audit, check_id="os.supported").count() == 1
    node_audit.refresh_from_db()
    assert node_audit.state == RunState.DONE and node_audit.attempts == 1 and "@@PF:" in node_audit.raw_output
    audit.refresh_from_db()
    assert audit.state == RunState.DONE and audit.finished is not None
    local_node.refresh_from_db()
    assert local_node.last_facts["arch"] and local_node.last_audit_status == node_audit.status


def test_second_audit_refused_while_one_runs(local_node):
    audit_start(cluster=local_node.cluster)
    with pytest.raises(AuditRefused, match="is still queued"):
        audit_start(cluster=local_node.cluster)
    assert Audit.objects.count() == 1


def test_unknown_node_names_refused(local_node):
    with pytest.raises(AuditRefused, match="no enabled node named ghost"):
        audit_start(cluster=local_node.cluster, node_names=["ghost"])
    assert Audit.objects.count() == 0


def test_node_without_credential_errors_with_reason_and_others_finish(local_node):
    # given: a second node of the same cluster that has no credential
    NodeFactory(cluster=local_node.cluster, name="nocred", address="127.0.0.1", ssh_port=1)
    audit = audit_start(cluster=local_node.cluster)
    # when
    audit_run_inline(audit=audit)
    # then
    nocred = NodeAudit.objects.get(audit=audit, node__name="nocred")
    ssh = nocred.results.get(check_id="ssh.connect")
    assert (nocred.status, ssh.status) == ("error", "fail")
    assert ssh.summary == "credential: the node has no credential: set a key or a password"
    assert NodeAudit.objects.get(audit=audit, node__name="self").results.get(check_id="os.supported").status != "error"


def test_sweep_requeues_a_run_whose_lease_ran_out_and_it_is_run_again(local_node):
    # given: a node audit claimed once by a worker that died; its lease ran out a minute ago
    audit = audit_start(cluster=local_node.cluster)
    NodeAudit.objects.filter(audit=audit).update(
        state=RunState.RUNNING,
        attempts=1,
        started=timezone.now() - timedelta(minutes=2),
        lease_expires=timezone.now() - timedelta(minutes=1),
    )
    # when: the sweep re-queues and sends it (eager here: it runs at once)
    swept = audit_sweep_stuck()
    again = audit_sweep_stuck()
    # then: it ran a second time, to the end, and says so; nothing is blamed on the node
    node_audit = NodeAudit.objects.get(audit=audit)
    assert (swept, again) == (1, 0)
    assert (node_audit.state, node_audit.attempts, node_audit.portal_error) == (RunState.DONE, 2, "")
    assert node_audit.lease_expires is None and node_audit.results.filter(check_id="os.supported").count() == 1
    assert Audit.objects.get(pk=audit.pk).state == RunState.DONE


def test_sweep_ends_a_run_lost_too_often_as_preflights_error_and_closes_the_audit(local_node, settings):
    # given: the third claim's lease ran out too
    settings.PREFLIGHT_NODE_ATTEMPTS = 3
    audit = audit_start(cluster=local_node.cluster)
    NodeAudit.objects.filter(audit=audit).update(
        state=RunState.RUNNING,
        attempts=3,
        started=timezone.now() - timedelta(hours=1),
        lease_expires=timezone.now() - timedelta(seconds=1),
    )
    # when
    swept = audit_sweep_stuck()
    # then: an error whose cause is Preflight's, kept apart from the node's own faults
    node_audit = NodeAudit.objects.get(audit=audit)
    assert swept == 1 and (node_audit.state, node_audit.status) == ("error", "error")
    assert "lost this node's run 3 times" in node_audit.portal_error and node_audit.error == node_audit.portal_error
    assert Audit.objects.get(pk=audit.pk).state == RunState.DONE


def test_sweep_leaves_expired_leases_alone_right_after_a_database_fault(local_node):
    # given
    audit = audit_start(cluster=local_node.cluster)
    NodeAudit.objects.filter(audit=audit).update(
        state=RunState.RUNNING, attempts=1, started=timezone.now(), lease_expires=timezone.now() - timedelta(seconds=5)
    )
    # when: the sweep is told the database failed a moment ago (a live worker could not renew its lease)
    swept = audit_sweep_stuck(reclaim=False)
    # then
    assert swept == 0 and NodeAudit.objects.get(audit=audit).state == RunState.RUNNING


def test_fresh_running_audit_is_not_swept(local_node):
    audit = audit_start(cluster=local_node.cluster)
    NodeAudit.objects.filter(audit=audit).update(
        state=RunState.RUNNING, started=timezone.now(), lease_expires=timezone.now() + timedelta(seconds=30)
    )
    assert audit_sweep_stuck(older_than=600) == 0


def _age(audit, *, dispatches: int, hours: float = 1) -> None:
    """Make `audit` look created and dispatched `hours` ago, `dispatches` times."""
    then = timezone.now() - timedelta(hours=hours)
    Audit.objects.filter(pk=audit.pk).update(created=then, dispatched=then, dispatches=dispatches)


def test_queued_audit_that_lost_its_messages_is_sent_again(local_node):
    # given: queued for an hour, nothing moved anywhere (Redis restarted without persistence)
    audit = audit_start(cluster=local_node.cluster)
    _age(audit, dispatches=1)
    # when: the sweep sends the queued node audits again (eager here: they run at once)
    acted = audit_sweep_stuck(older_than=600)
    # then
    audit.refresh_from_db()
    assert acted == 1 and audit.dispatches == 2 and audit.state == RunState.DONE
    assert NodeAudit.objects.get(audit=audit).state == RunState.DONE


def test_queued_audit_sent_twice_with_no_worker_anywhere_ends_in_error(local_node):
    audit = audit_start(cluster=local_node.cluster)
    _age(audit, dispatches=2)
    assert audit_sweep_stuck(older_than=600) == 1
    node_audit = NodeAudit.objects.get(audit=audit)
    assert (node_audit.state, node_audit.status) == ("error", "error")
    assert "no Celery worker picked this node up in 600 s, even after it was sent again" in node_audit.error
    assert node_audit.results.get().check_id == "ssh.connect"
    # Preflight's own fault, never tried on the node: Not audited, not Unreachable
    assert node_audit.portal_error == node_audit.error and node_audit.reached is False
    assert audit_detail(audit_id=audit.pk)["nodes"][0]["readiness"] == "not-audited"
    assert Audit.objects.get(pk=audit.pk).state == RunState.DONE


def test_queued_audit_is_sent_again_not_failed_while_workers_are_busy_elsewhere(local_node):
    # given: this audit waited an hour, but another cluster's node audit finished a minute ago
    busy = NodeFactory(name="elsewhere", transport="local")
    other = audit_start(cluster=busy.cluster)
    NodeAudit.objects.filter(audit=other).update(state=RunState.RUNNING, started=timezone.now() - timedelta(minutes=1))
    audit = audit_start(cluster=local_node.cluster)
    _age(audit, dispatches=2)
    # when
    audit_sweep_stuck(older_than=600)
    # then
    audit.refresh_from_db()
    assert audit.dispatches == 3 and NodeAudit.objects.get(audit=audit).state == RunState.DONE


def test_big_audit_that_keeps_progressing_is_left_alone(local_node):
    # given: created an hour ago with one node still queued, but a node of it finished ten seconds ago
    second = NodeFactory(name="second", cluster=local_node.cluster, transport="local")
    audit = audit_start(cluster=local_node.cluster)
    _age(audit, dispatches=1)
    NodeAudit.objects.filter(audit=audit, node=second).update(
        state=RunState.DONE,
        started=timezone.now() - timedelta(seconds=20),
        finished=timezone.now() - timedelta(seconds=10),
    )
    # when / then
    assert audit_sweep_stuck(older_than=600) == 0
    assert NodeAudit.objects.get(audit=audit, node=local_node).state == RunState.QUEUED
    assert Audit.objects.get(pk=audit.pk).dispatches == 1


def test_devices_and_installs_that_disappear_are_marked_gone_not_deleted():
    # given
    node = NodeFactory()
    gpus = [
        {"vendor": "nvidia", "index": i, "model": "H100", "memory_mib": 81559, "uuid": f"GPU-{i}"} for i in range(2)
    ]
    installs = [{"kind": "driver", "vendor": "nvidia", "name": "nvidia driver", "version": "550.54"}]
    node_record_facts(node=node, accelerators=gpus, installs=installs, status="pass", facts={})
    # when: one GPU is gone and the driver was upgraded
    upgraded = [{**installs[0], "version": "570.86"}]
    node_record_facts(node=node, accelerators=gpus[:1], installs=upgraded, status="pass", facts={})
    # then
    assert Accelerator.objects.filter(node=node).count() == 2
    assert list(Accelerator.objects.filter(node=node, gone_at__isnull=False).values_list("index", flat=True)) == [1]
    history = [(i.version, i.gone_at is None) for i in DriverInstall.objects.filter(node=node).order_by("pk")]
    assert history == [("550.54", False), ("570.86", True)]


def test_a_different_device_at_the_same_index_retires_the_old_one_and_a_changed_one_is_updated():
    # given: two GPUs recorded
    node = NodeFactory()
    gpus = [
        {"vendor": "nvidia", "index": i, "model": "H100", "memory_mib": 81559, "uuid": f"GPU-{i}"} for i in range(2)
    ]
    node_record_facts(node=node, accelerators=gpus, installs=[], status="pass", facts={})
    first = {a.index: a.pk for a in Accelerator.objects.filter(node=node)}
    later = timezone.now() + timedelta(hours=1)
    # when: the board at index 0 was swapped (another UUID) and index 1 got a new driver
    swapped = {**gpus[0], "uuid": "GPU-new"}
    updated = {**gpus[1], "driver_version": "570.86"}
    node_record_facts(node=node, accelerators=[swapped, updated], installs=[], status="pass", facts={}, when=later)
    # then: the old board is gone at that time, the new one present; index 1 is the same row, with its new driver
    old = Accelerator.objects.get(pk=first[0])
    assert (old.uuid, old.gone_at) == ("GPU-0", later)
    present = {a.index: a for a in Accelerator.objects.filter(node=node, gone_at__isnull=True)}
    assert present[0].uuid == "GPU-new" and present[0].pk != first[0]
    assert (present[1].pk, present[1].driver_version, present[1].last_seen) == (first[1], "570.86", later)


def test_a_re_audit_that_finds_the_same_devices_touches_them_in_one_update_each_table(django_assert_num_queries):
    # given: eight GPUs, a driver and a toolkit, recorded once
    node = NodeFactory()
    gpus = [
        {"vendor": "nvidia", "index": i, "model": "H100", "memory_mib": 81559, "uuid": f"GPU-{i}"} for i in range(8)
    ]
    installs = [
        {"kind": "driver", "vendor": "nvidia", "name": "nvidia driver", "version": "550.54"},
        {"kind": "toolkit", "vendor": "nvidia", "name": "NVIDIA Container Toolkit", "version": "1.17.8"},
    ]
    node_record_facts(node=node, accelerators=gpus, installs=installs, status="pass", facts={})
    before = timezone.now()
    later = before + timedelta(hours=1)
    # when: the next audit finds them all unchanged
    # read the present GPUs, update them; read the installs, update them; the node
    with django_assert_num_queries(5):  # (it was 15: a save per GPU and per install, in a savepoint)
        node_record_facts(node=node, accelerators=gpus, installs=installs, status="pass", facts={}, when=later)
    # then: every one is still present, seen at the new audit's time
    assert set(Accelerator.objects.filter(node=node).values_list("last_seen", "gone_at")) == {(later, None)}
    assert set(DriverInstall.objects.filter(node=node).values_list("last_seen", "gone_at")) == {(later, None)}
    # and a changed GPU is still saved with its new values
    node_record_facts(
        node=node, accelerators=[{**gpus[0], "model": "H200"}, *gpus[1:]], installs=installs, status="pass", facts={}
    )
    assert Accelerator.objects.get(node=node, index=0).model == "H200"


def test_default_schedules_are_in_the_database():
    tasks = dict(PeriodicTask.objects.values_list("name", "task"))
    assert tasks["Audit every cluster (daily)"] == "checks.audit_all_clusters"
    assert tasks["Sweep stuck node audits"] == "checks.sweep_stuck"
    sweep = PeriodicTask.objects.get(name="Sweep stuck node audits").interval
    assert (sweep.every, sweep.period) == (30, "seconds")
    assert PeriodicTask.objects.get(name="Audit every cluster (daily)").crontab.hour == "3"


def test_cluster_without_enabled_nodes_refused():
    with pytest.raises(AuditRefused, match="no enabled nodes"):
        audit_start(cluster=ClusterFactory())


def test_a_node_ended_by_preflights_own_fault_says_so_apart_from_the_nodes_faults(
    local_node, client, django_user_model
):
    # given: a node whose run Preflight lost three times
    audit = audit_start(cluster=local_node.cluster)
    NodeAudit.objects.filter(audit=audit).update(
        state=RunState.RUNNING, attempts=3, started=timezone.now(), lease_expires=timezone.now() - timedelta(seconds=1)
    )
    audit_sweep_stuck()
    user = django_user_model.objects.create_superuser("ops", password="x")
    client.force_login(user)
    _, token = api_token_create(user=user, name="t")
    # when
    page = client.get(f"/nodes/{local_node.pk}/")
    api = client.get(f"/api/v1/audits/{audit.pk}", HTTP_AUTHORIZATION=f"Bearer {token}")
    # then: the page names Preflight's fault, not the node's; the API carries it in its own field
    assert b'id="portal-error"' in page.content and b"could not reach" not in page.content
    assert b"run 3 times: a worker was lost" in page.content
    node = api.json()["nodes"][0]
    assert node["attempts"] == 3 and "lost this node's run 3 times" in node["portal_error"]
