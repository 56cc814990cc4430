"""History retention: old finished audits go with everything under them; the newest of each cluster and anything
still running stay; the CLI and the beat task run the same rule."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from checks.choices import RunState
from checks.models import Audit, CheckResult, NetworkPath, NodeAudit
from checks.services import audit_prune
from checks.tasks import prune_audits_task
from tests.factories import ClusterFactory, NodeFactory

pytestmark = pytest.mark.django_db
RETENTION = override_settings(PREFLIGHT_AUDIT_RETENTION_DAYS=30, PREFLIGHT_AUDIT_KEEP=2)


def _audit(cluster, nodes, *, days_ago: float, state: str = RunState.DONE) -> Audit:
    """A finished (or running) audit of `nodes`, created `days_ago`, with a result per node and a path between them."""
    when = timezone.now() - timedelta(days=days_ago)
    audit = Audit.objects.create(
        cluster=cluster,
        profile=cluster.profile,
        profile_key=cluster.profile.key,
        state=state,
        started=when,
        finished=when if state == RunState.DONE else None,
    )
    Audit.objects.filter(pk=audit.pk).update(created=when)  # (created is auto_now_add)
    for node in nodes:
        node_audit = NodeAudit.objects.create(audit=audit, node=node, state=state, status="pass")
        CheckResult.objects.create(node_audit=node_audit, check_id="time.ntp", status="pass", summary="ok")
    NetworkPath.objects.create(
        audit=audit, check_id="network.worker_to_worker", source=nodes[0], destination=nodes[1], status="pass"
    )
    return audit


@pytest.fixture
def history():
    """Cluster a: audits 400, 200, 100, 40 and 1 days old, and one still running from 90 days ago; cluster b: a
    single audit 365 days old."""
    a, b = ClusterFactory(name="a"), ClusterFactory(name="b")
    a_nodes = [NodeFactory(cluster=a), NodeFactory(cluster=a)]
    b_nodes = [NodeFactory(cluster=b), NodeFactory(cluster=b)]
    audits = {days: _audit(a, a_nodes, days_ago=days) for days in (400, 200, 100, 40, 1)}
    audits["running"] = _audit(a, a_nodes, days_ago=90, state=RunState.RUNNING)
    audits["b"] = _audit(b, b_nodes, days_ago=365)
    return audits


@RETENTION
def test_old_audits_go_with_their_node_audits_results_and_paths(history):
    report = audit_prune()
    # kept: the two newest finished audits of a (1 and 40 days: 40 is also past 30 days, kept as the second
    # newest), the running one, and b's only audit however old
    kept = {history[1].pk, history[40].pk, history["running"].pk, history["b"].pk}
    assert set(Audit.objects.values_list("pk", flat=True)) == kept
    assert (report.audits, report.node_audits, report.results, report.paths) == (3, 6, 6, 3)
    assert report.by_cluster == {"a": 3}
    assert set(NodeAudit.objects.values_list("audit_id", flat=True)) == kept
    assert set(CheckResult.objects.values_list("node_audit__audit_id", flat=True)) == kept
    assert set(NetworkPath.objects.values_list("audit_id", flat=True)) == kept
    # and a second run finds nothing more to do
    assert audit_prune().audits == 0


@RETENTION
def test_a_dry_run_counts_and_deletes_nothing(history):
    out = StringIO()
    call_command("prune_audits", "--dry-run", stdout=out)
    assert "would delete 3 audits (6 node audits, 6 check results, 3 connectivity paths)" in out.getvalue()
    assert "a: 3 audits" in out.getvalue()
    assert Audit.objects.count() == 7 and NetworkPath.objects.count() == 7


@RETENTION
def test_the_command_and_the_beat_task_apply_the_same_rule(history):
    out = StringIO()
    call_command("prune_audits", stdout=out)
    assert out.getvalue().startswith("deleted 3 audits")
    _audit(history[1].cluster, list(history[1].cluster.nodes.all()), days_ago=0)  # a third newest: 40 days goes
    prune_audits_task()
    assert not Audit.objects.filter(pk=history[40].pk).exists()
    assert Audit.objects.filter(pk=history[1].pk).exists()


def test_retention_runs_daily_by_default():
    task = PeriodicTask.objects.get(name="Prune old audits (daily)")
    assert task.task == "checks.prune_audits" and task.enabled and task.crontab.hour == "4"


@RETENTION
def test_deleting_a_big_matrix_takes_set_deletes_not_a_query_per_path(django_assert_max_num_queries):
    cluster = ClusterFactory()
    nodes = [NodeFactory(cluster=cluster) for _ in range(12)]
    old = _audit(cluster, nodes, days_ago=100)
    NetworkPath.objects.bulk_create(
        NetworkPath(audit=old, check_id="network.server_to_worker", source=s, destination=d, status="pass")
        for s in nodes
        for d in nodes
        if s != d
    )
    for days in (2, 1):
        _audit(cluster, nodes, days_ago=days)
    with django_assert_max_num_queries(20):  # 133 paths and 12 node audits: the count does not grow with them
        report = audit_prune()
    assert (report.audits, report.paths, report.node_audits) == (1, 133, 12)
