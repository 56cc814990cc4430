"""The rebinding resolver against real sshd test hosts: nodes known only by names whose answers come from the fake
resolver; the audit and the connectivity matrix connect to the addresses that were checked, and a name that rebinds
outside the policy between the node audits and the matrix is not connected to by the matrix."""

import pytest
from django.core.management import call_command
from django.test import override_settings

from checks.models import Audit
from inventory.choices import NodeRole
from inventory.models import Node
from tests.integration.fixtures import checks_of, lab_credential, make_cluster
from tests.lab import nodes

from . import fake_dns

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
NETWORK = ("network.server_to_worker", "network.worker_to_server")


@pytest.fixture(scope="module")
def pair(lab):
    return {name: lab.add(nodes.plain(name)) for name in ("rb-srv", "rb-w1")}


def _cluster(lab, pair, name):
    cluster = make_cluster(name)
    key = lab_credential(lab)
    for host, role in (("rb-srv", NodeRole.SERVER), ("rb-w1", NodeRole.WORKER)):
        Node.objects.create(cluster=cluster, name=host, address=f"{host}.rebind.test", role=role, credential=key)
    return cluster


def _audit(name: str) -> Audit:
    try:
        call_command("audit", "--cluster", name, "--json", stdout=open("/dev/null", "w"))
    except SystemExit:
        pass
    return Audit.objects.get(cluster__name=name)


def _policy(pair):
    subnet = pair["rb-srv"].address.rsplit(".", 1)[0]
    return override_settings(
        PREFLIGHT_TARGET_NETWORKS=[f"{subnet}.0/24"],
        PREFLIGHT_TARGET_ALLOW_NAMES=True,
        PREFLIGHT_TARGET_RESOLVER="tests.security.fake_dns.rebinding",
    )


def test_names_are_resolved_once_per_use_and_connected_at_the_checked_address(lab, pair):
    fake_dns.reset(**{f"{h}.rebind.test": [pair[h].address] for h in pair})
    with _policy(pair):
        _cluster(lab, pair, "rebind-ok")
        audit = _audit("rebind-ok")
    for host in pair:
        checks = checks_of(audit.pk, host)
        assert checks["ssh.connect"].status == "pass", checks["ssh.connect"].summary
    assert {checks_of(audit.pk, "rb-w1")[c].status for c in NETWORK} == {"pass"}
    # one lookup per name for its node audit and one for the matrix (its listener login and the probers' targets)
    assert sorted(fake_dns.CALLS) == sorted([f"{h}.rebind.test" for h in pair] * 2)


def test_a_name_rebinding_outside_the_policy_before_the_matrix_is_not_connected_to(lab, pair):
    # given: rb-w1 answers its lab address once, then this machine's loopback (outside the lab-only policy)
    fake_dns.reset(
        **{"rb-srv.rebind.test": [pair["rb-srv"].address], "rb-w1.rebind.test": [pair["rb-w1"].address, "127.0.0.1"]}
    )
    with _policy(pair):
        _cluster(lab, pair, "rebind-bad")
        audit = _audit("rebind-bad")
    assert checks_of(audit.pk, "rb-w1")["ssh.connect"].status == "pass"
    paths = list(audit.paths.all())
    assert paths and all(p.status == "error" and "outside the networks" in p.summary for p in paths)


def test_a_name_whose_first_answer_does_not_answer_is_logged_into_at_its_next(lab, pair):
    # given: rb-w1's name answers first with an address of the lab's own subnet where no host is (as a dual-stack
    # name whose IPv6 address is unreachable would), then with its real address
    subnet = pair["rb-w1"].address.rsplit(".", 1)[0]
    fake_dns.reset(
        **{
            "rb-srv.rebind.test": [pair["rb-srv"].address],
            "rb-w1.rebind.test": [[f"{subnet}.250", pair["rb-w1"].address]],
        }
    )
    with _policy(pair):
        _cluster(lab, pair, "fallback")
        audit = _audit("fallback")
    # then: the login falls through to the answer that works, and says where it connected
    connect = checks_of(audit.pk, "rb-w1")["ssh.connect"]
    assert connect.status == "pass" and f"at {pair['rb-w1'].address}" in connect.summary, connect.summary
    assert checks_of(audit.pk, "rb-w1")["os.supported"].status != "error"
