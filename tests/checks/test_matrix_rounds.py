"""The sampled plan's round: fixed when an audit's matrix first runs, one more than the cluster's highest, kept when
the matrix runs again, and never repeated after old audits are pruned (issue 24). And the matrix's time budget
follows the plan's path count."""

import pytest
from django.utils import timezone

from checks.choices import RunState
from checks.models import Audit, NodeAudit
from checks.services.network import audit_sampling, matrix_time_budget
from inventory.models import Node
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db


def _audit(cluster) -> Audit:
    return Audit.objects.create(
        cluster=cluster, profile=cluster.profile, state=RunState.RUNNING, started=timezone.now()
    )


def test_rounds_follow_the_clusters_audits_and_survive_pruning():
    # given a cluster and another one whose audits interleave
    cluster, other = ClusterFactory(name="a", connectivity_plan="sampled"), ClusterFactory(name="b")
    first, _, second = _audit(cluster), _audit(other), _audit(cluster)
    # when their matrices run (the first twice, as after a sweep)
    rounds = [audit_sampling(first).round, audit_sampling(second).round, audit_sampling(first).round]
    # then the cluster's audits are rounds 0 and 1, and a re-run keeps its round
    assert rounds == [0, 1, 0]
    assert audit_sampling(_audit(other)).round == 0
    # and after the older audits are pruned the next audit goes on at 2, not back to 0 or 1
    Audit.objects.filter(pk=first.pk).delete()
    third = _audit(cluster)
    assert audit_sampling(third).round == 2 and Audit.objects.get(pk=third.pk).matrix_round == 2


def test_the_matrix_budget_follows_the_plan():
    # given 1 server and 120 workers, audited
    cluster = ClusterFactory(name="big", connectivity_plan="full")
    Node.objects.bulk_create(
        Node(cluster=cluster, name=f"n{i:03d}", address=f"192.0.2.{i + 1}", role="server" if i == 0 else "worker")
        for i in range(121)
    )
    audit = _audit(cluster)
    NodeAudit.objects.bulk_create(NodeAudit(audit=audit, node=node) for node in Node.objects.all())
    # when the budget is asked for the full mesh and for the sampled plan
    full = matrix_time_budget(audit.pk)
    cluster.connectivity_plan = "sampled"
    cluster.save()
    sampled = matrix_time_budget(audit.pk)
    # then the sampled matrix (240 + 360 paths) is given far less time than the full one (240 + 14,520)
    assert sampled < full
    assert full - sampled > (14520 - 360) * 0.02 * 0.9
