"""What one node audit costs the worker in queries: per-node ORM work was 40-50 % of its GIL time (issue 24), so the
statements of a node's audit are counted here, and those that need not be there stay out."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from checks.models import CheckResult, NodeAudit, Waiver
from checks.services import audit_start, node_audit_run
from checks.services.node import _LEASES
from inventory.models import Accelerator, DriverInstall
from tests.factories import ClusterFactory, CredentialFactory, NodeFactory
from tests.replay import ReplayTransport, nvidia_worker_sections

pytestmark = pytest.mark.django_db

# A node audited before (its devices and installs already known): claim, read, record (the node audit, its
# results, devices and installs read and marked seen, the node), and the audit's "anything left?" question.
STEADY_STATE_STATEMENTS = 10


def _statements(queries) -> list[str]:
    return [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


@pytest.fixture
def cluster():
    cluster = ClusterFactory()
    credential = CredentialFactory()
    for i in range(4):
        NodeFactory(cluster=cluster, name=f"w{i}", address=f"127.0.1.{i + 2}", role="worker", credential=credential)
    return cluster


def _audit_each(cluster, transport) -> list[list[str]]:
    audit = audit_start(cluster=cluster)
    statements = []
    for node_audit_id in audit.node_audits.order_by("pk").values_list("pk", flat=True):
        with CaptureQueriesContext(connection) as queries:
            node_audit_run(node_audit_id=node_audit_id, transport=transport, reload=False)
        statements.append(_statements(queries.captured_queries))
    return statements


def test_a_node_audited_again_costs_a_fixed_handful_of_statements(cluster):
    # given every node audited once (an NVIDIA worker: one device, six installs)
    transport = ReplayTransport({f"127.0.1.{i + 2}": nvidia_worker_sections() for i in range(4)})
    _audit_each(cluster, transport)
    # when the next audit runs them
    statements = _audit_each(cluster, transport)
    # then each node between the first (which marks the audit running and reads its waivers) and the last (which
    # closes it) takes the same few statements
    assert [len(s) for s in statements[1:-1]] == [STEADY_STATE_STATEMENTS] * 2, statements[1]
    # and what was recorded is whole: results, the device and installs seen again, nothing new
    first, last = (
        NodeAudit.objects.filter(audit__cluster=cluster, node__name="w1").order_by(order).first()
        for order in ("pk", "-pk")
    )
    assert first != last and last.state == "done"
    checked = [
        sorted(CheckResult.objects.filter(node_audit=na).values_list("check_id", flat=True)) for na in (first, last)
    ]
    assert checked[0] == checked[1] and "accelerator.nvidia.driver" in checked[1]
    assert Accelerator.objects.filter(node__cluster=cluster).count() == 4
    assert DriverInstall.objects.filter(node__cluster=cluster, gone_at__isnull=True).count() == 4 * 6


def test_devices_and_installs_are_read_without_joining_node_and_cluster(cluster):
    # (the models' default ordering is by node, then cluster and name: a join per read, only to sort)
    transport = ReplayTransport({f"127.0.1.{i + 2}": nvidia_worker_sections() for i in range(4)})
    statements = [sql for node in _audit_each(cluster, transport) for sql in node]
    reads = [
        sql
        for sql in statements
        if ' FROM "inventory_accelerator" ' in sql or ' FROM "inventory_driverinstall" ' in sql
    ]
    assert reads
    assert not [sql for sql in reads if "JOIN" in sql or "ORDER BY" in sql]


def test_waivers_are_read_once_per_audit_not_per_node(cluster):
    # given a waiver on the cluster
    Waiver.objects.create(
        cluster=cluster, check_id="time.ntp", reason="lab", author="t", expires="2999-01-01T00:00:00Z"
    )
    transport = ReplayTransport({f"127.0.1.{i + 2}": nvidia_worker_sections() for i in range(4)})
    # when an audit runs its four nodes
    statements = [sql for node in _audit_each(cluster, transport) for sql in node]
    # then the waivers were read once for its nodes (and once more when the audit closed)
    reads = [sql for sql in statements if ' FROM "checks_waiver" ' in sql]
    assert len(reads) == 2


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_node_ending_while_its_worker_runs_another_of_the_audit_leaves_the_closing_to_that_one(cluster):
    # given an audit of four nodes, three of which this worker process is still running
    audit = audit_start(cluster=cluster)
    first, *others = audit.node_audits.order_by("pk")
    for other in others:
        _LEASES.hold(other.pk, 1, audit.pk)
    transport = ReplayTransport({f"127.0.1.{i + 2}": nvidia_worker_sections() for i in range(4)})
    try:
        # when the first ends
        with CaptureQueriesContext(connection) as queries:
            node_audit_run(node_audit_id=first.pk, transport=transport, reload=False)
        # then it did not ask whether the audit's other nodes are final: those runs will
        pending = [
            sql
            for sql in _statements(queries.captured_queries)
            if sql.startswith('SELECT 1 AS "a" FROM "checks_nodeaudit"')
        ]
        assert pending == []
    finally:
        for other in others:
            _LEASES.release(other.pk)
    # and when the others end (nothing else held), the last closes the audit
    for other in others:
        node_audit_run(node_audit_id=other.pk, transport=transport, reload=False)
    audit.refresh_from_db()
    assert audit.state == "done" and not audit.node_audits.exclude(state="done").exists()
