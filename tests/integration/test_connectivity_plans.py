"""The sampled connectivity plan over real test hosts (issue 24): inside a small network group the mesh is full, so a
DROP between two nodes of one group is found in the first audit, while pairs across groups are sampled."""

import pytest
from django.core.management import call_command

from checks.choices import NetworkState, RunState
from checks.connectivity import W2W
from checks.models import Audit
from inventory.choices import NodeRole
from inventory.models import Node
from tests.lab import nodes

from .fixtures import add_lab_nodes, checks_of, lab_credential, make_cluster, save_output

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
RACK_A, RACK_B = ("ra1", "ra2", "ra3"), ("rb1", "rb2", "rb3")


@pytest.fixture(scope="module")
def net(lab):
    return {name: lab.add(nodes.plain(name)) for name in ("psrv", *RACK_A, *RACK_B)}


def test_a_drop_inside_a_group_is_found_in_the_first_sampled_audit(lab, net):
    # given 1 server + 6 workers in two racks of 3, sampled with k=1: the rotation pairs each worker with the next
    cluster = make_cluster("racks", connectivity_plan="sampled", sampled_peers=1, group_full_mesh_limit=3)
    key = lab_credential(lab)
    add_lab_nodes(cluster, [net["psrv"]], key, role=NodeRole.SERVER)
    for rack, names in (("rack-a", RACK_A), ("rack-b", RACK_B)):
        for node in add_lab_nodes(cluster, [net[n] for n in names], key):
            Node.objects.filter(pk=node.pk).update(network_group=rack)
    # and ra3 drops new connections from ra1 (ra1 -> ra3 is two steps on: only the rack's mesh proves it)
    rule = f"-A INPUT -s {net['ra1'].address} -p tcp --syn -j DROP"
    assert net["ra3"].exec(f"iptables {rule}").returncode == 0
    try:
        # when the first audit runs
        try:
            call_command("audit", "--cluster", "racks", "--json", stdout=open("/dev/null", "w"))
        except SystemExit:
            pass
    finally:
        net["ra3"].exec("iptables -F INPUT")
    # then
    audit = Audit.objects.get(cluster__name="racks")
    assert audit.state == RunState.DONE and audit.network_state == NetworkState.DONE, audit.error
    peers = {
        (p.source.name, p.destination.name): p
        for p in audit.paths.filter(check_id=W2W).select_related("source", "destination")
    }
    save_output("sampled-racks.txt", "\n".join(f"{s} -> {d}: {p.status} {p.summary}" for (s, d), p in peers.items()))
    # the DROP is found: ra1 -> ra3 fails on timeouts, and ra3's worker-to-worker check says so
    blocked = peers[("ra1", "ra3")]
    assert blocked.status == "fail" and "timed out" in blocked.summary
    assert checks_of(audit.pk, "ra3")["network.worker_to_worker"].status == "fail"
    # both racks have their full mesh (6 + 6 ordered pairs), across racks only the rotation's one pair each way
    for rack in (RACK_A, RACK_B):
        assert {(s, d) for s in rack for d in rack if s != d} <= set(peers)
    across = {(s, d) for s, d in peers if (s in RACK_A) != (d in RACK_A)}
    assert across == {("ra3", "rb1"), ("rb3", "ra1")}
    # every other worker pair passed, and every server <-> worker path was proven
    assert {k for k, p in peers.items() if p.status != "pass"} == {("ra1", "ra3")}
    assert audit.paths.exclude(check_id=W2W).count() == 12
    assert set(audit.paths.exclude(check_id=W2W).values_list("status", flat=True)) == {"pass"}
