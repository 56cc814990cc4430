"""The cluster checks that close an audit (cluster.unique, gpustack.deployment) through the real services, with the
SSH session replayed: what they record, that waivers apply to them, that a second run replaces instead of adding,
and that they cost a fixed number of queries whatever the number of nodes (issue 24: no per-node ORM writes in the
worker that closes the audit); and the one renewal of the leases a worker holds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from checks.models import CheckResult, NodeAudit, Waiver
from checks.services import audit_run_inline, audit_start
from checks.services.finish import cluster_checks_run
from inventory.models import Node
from tests.factories import ClusterFactory, CredentialFactory, NodeFactory
from tests.replay import ReplayTransport, sections

pytestmark = pytest.mark.django_db

CLONED = "0123456789abcdef0123456789abcdef"


def _audited(name: str, workers: int, *, clones: int = 2):
    """`workers` + 1 workers (no server, so no connectivity matrix); `clones` of them, from the second on, share
    one machine-id. Audited to the end."""
    cluster = ClusterFactory(name=name)
    credential = CredentialFactory()
    printed = {}
    for i in range(workers + 1):
        address = f"127.0.{len(name)}.{i + 2}"
        NodeFactory(
            cluster=cluster,
            name=f"{name}{i}",
            role="worker",
            address=address,
            credential=credential,
        )
        printed[address] = sections(machine_id=CLONED) if 1 <= i <= clones else sections()
    audit = audit_run_inline(audit=audit_start(cluster=cluster), transport=ReplayTransport(printed))
    return cluster, audit


def _unique(audit, node: str) -> CheckResult:
    return CheckResult.objects.get(node_audit__audit=audit, node_audit__node__name=node, check_id="cluster.unique")


def test_clones_fail_cluster_unique_naming_each_other_and_a_waiver_keeps_the_node_ready():
    # given two workers with one machine-id, audited, then a waiver of cluster.unique for the first of them
    cluster, audit = _audited("c", 3)
    waiver = Waiver.objects.create(
        cluster=cluster,
        node=Node.objects.get(name="c1"),
        check_id="cluster.unique",
        reason="cloned on purpose",
        expires=timezone.now() + timedelta(days=1),
        author="ops",
    )
    # when the cluster checks run again (a sweep closing the audit twice, say)
    cluster_checks_run(audit_id=audit.pk)
    # then both clones fail cluster.unique, each naming the other; the others pass
    one, two = _unique(audit, "c1"), _unique(audit, "c2")
    assert one.status == two.status == "fail"
    assert "c2" in one.summary + one.evidence and "c1" in two.summary + two.evidence
    assert _unique(audit, "c3").status == "pass" and _unique(audit, "c0").status == "pass"
    # and the waived clone keeps its real status with the waiver's snapshot, and its node counts it as a pass
    assert one.waived["waiver"] == waiver.pk and two.waived is None
    statuses = dict(NodeAudit.objects.filter(audit=audit).values_list("node__name", "status"))
    nodes = dict(Node.objects.filter(cluster=cluster).values_list("name", "last_audit_status"))
    assert statuses["c2"] == nodes["c2"] == "fail"
    assert statuses["c1"] == nodes["c1"] != "fail"
    # and each node has one result per check: the second run replaced, it did not add
    assert CheckResult.objects.filter(node_audit__audit=audit, check_id="cluster.unique").count() == 4
    # and when the waiver goes and the checks run again, the clone fails too
    waiver.delete()
    cluster_checks_run(audit_id=audit.pk)
    assert _unique(audit, "c1").waived is None
    assert NodeAudit.objects.get(audit=audit, node__name="c1").status == "fail"
    assert Node.objects.get(name="c1").last_audit_status == "fail"


def test_cluster_checks_cost_a_fixed_number_of_queries():
    # given two audited clusters, the second 3 times the size, with clones in both
    _, small = _audited("s", 4)
    _, large = _audited("large", 14, clones=5)
    # when the cluster checks run again on each
    with CaptureQueriesContext(connection) as few:
        cluster_checks_run(audit_id=small.pk)
    with CaptureQueriesContext(connection) as many:
        cluster_checks_run(audit_id=large.pk)
    # then
    assert len(many) == len(few), [q["sql"][:120] for q in many.captured_queries]


def test_one_renewal_extends_the_leases_this_process_holds_and_no_other(settings):
    # given three running node audits: two held by this process (attempts 1 and 2), one whose attempt moved on
    from checks.services.node import _Leases

    _, audit = _audited("leases", 3, clones=0)
    rows = list(NodeAudit.objects.filter(audit=audit).order_by("pk"))
    old = timezone.now() - timedelta(seconds=5)
    for row, attempts in zip(rows, (1, 2, 3, 1), strict=True):
        NodeAudit.objects.filter(pk=row.pk).update(state="running", attempts=attempts, lease_expires=old)
    held = {rows[0].pk: 1, rows[1].pk: 2, rows[2].pk: 2}  # rows[2] was claimed again since (attempt 3)
    # when
    with CaptureQueriesContext(connection) as queries:
        _Leases.renew(held)
    # then the two held rows run for a whole lease more; the re-claimed one and the one not held are left alone
    leases = dict(NodeAudit.objects.filter(audit=audit).values_list("pk", "lease_expires"))
    assert leases[rows[0].pk] > timezone.now() + timedelta(seconds=settings.PREFLIGHT_LEASE_SECONDS - 5)
    assert leases[rows[1].pk] > timezone.now() + timedelta(seconds=settings.PREFLIGHT_LEASE_SECONDS - 5)
    assert leases[rows[2].pk] == old and leases[rows[3].pk] == old
    # and with one UPDATE per attempt number
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["UPDATE", "UPDATE"]
