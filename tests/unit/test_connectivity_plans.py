"""Connectivity plans (issue 24): the sampled plan's rotation covers every worker pair in ceil((W-1)/k) audits,
small clusters and small network groups get their full mesh, and server<->worker paths are always all planned."""

import itertools
import math

import pytest

from checks.connectivity import (
    S2W,
    W2S,
    W2W,
    MatrixNode,
    Sampling,
    effective_plan,
    peer_pairs,
    plan_paths,
    rotation_offsets,
    rounds_to_cover,
)
from checks.spec import NodeContext, PortRuleSpec, ProfileSpec

PROFILE = ProfileSpec(
    "t",
    port_rules=(
        PortRuleSpec("server", 80, 80, "tcp", "UI"),
        PortRuleSpec("worker", 10150, 10151, "tcp", "worker"),
        PortRuleSpec("worker", 40064, 40095, "tcp", "distributed", worker_to_worker=True),
    ),
)


def workers(count: int, *, group_of=lambda i: "") -> list[MatrixNode]:
    return [
        MatrixNode(f"w{i:04d}", "worker", f"10.1.{i // 250}.{i % 250 + 1}", group=group_of(i), order=i)
        for i in range(count)
    ]


def names(pairs) -> set[tuple[str, str]]:
    return {(s.name, d.name) for s, d in pairs}


def test_after_ceil_499_over_3_audits_every_pair_of_500_workers_was_proven():
    # given 500 workers sampled with k=3
    nodes = workers(500)
    rounds = math.ceil(499 / 3)
    # when audits 0 .. rounds-1 each plan their pairs
    proven: set[tuple[str, str]] = set()
    per_audit = []
    for n in range(rounds):
        pairs = names(peer_pairs(nodes, Sampling(plan="sampled", peers=3, round=n)))
        per_audit.append(len(pairs))
        proven |= pairs
    # then each audit proves 3 peers per worker, and together they proved every ordered pair, both directions
    assert set(per_audit) == {1500}
    everyone = {(a.name, b.name) for a, b in itertools.permutations(nodes, 2)}
    assert proven == everyone
    assert rounds_to_cover(peers=500, k=3) == rounds == 167
    # and one audit fewer does not (the bound is tight for this rotation)
    fewer = set().union(*(names(peer_pairs(nodes, Sampling(plan="sampled", peers=3, round=n))) for n in range(166)))
    assert fewer != everyone


def test_any_window_of_consecutive_audits_covers_every_pair():
    # given 17 workers, k=4: ceil(16/4) = 4 audits
    nodes = workers(17)
    everyone = {(a.name, b.name) for a, b in itertools.permutations(nodes, 2)}
    for start in (0, 3, 1000):
        # when 4 consecutive audits from any round run
        proven = set().union(
            *(names(peer_pairs(nodes, Sampling(plan="sampled", peers=4, round=n))) for n in range(start, start + 4))
        )
        # then every pair is covered
        assert proven == everyone


@pytest.mark.parametrize(("count", "k"), [(2, 3), (3, 3), (4, 3), (2, 1)])
def test_k_plus_one_workers_or_fewer_get_the_full_mesh(count, k):
    # given at most k+1 workers
    nodes = workers(count)
    # when one sampled audit plans
    pairs = names(peer_pairs(nodes, Sampling(plan="sampled", peers=k, round=7)))
    # then it is the full mesh
    assert pairs == {(a.name, b.name) for a, b in itertools.permutations(nodes, 2)}
    assert rounds_to_cover(peers=count, k=k) == 1


def test_zero_or_one_worker_has_no_pairs():
    assert peer_pairs(workers(1), Sampling(plan="sampled")) == []
    assert peer_pairs([], Sampling(plan="sampled")) == []
    assert rotation_offsets(peers=1, k=3, round=0) == []


def test_auto_is_full_up_to_50_and_sampled_above():
    assert effective_plan("auto", 50) == "full"
    assert effective_plan("auto", 51) == "sampled"
    assert effective_plan("full", 3000) == "full"
    assert effective_plan("sampled", 5) == "sampled"
    # given 51 workers on auto, k=3: each worker has 3 peers
    assert len(peer_pairs(workers(51), Sampling(plan="auto", peers=3))) == 51 * 3
    # and 50 workers: the full mesh
    assert len(peer_pairs(workers(50), Sampling(plan="auto", peers=3))) == 50 * 49


def test_a_small_group_gets_its_full_mesh_and_a_large_group_is_sampled():
    # given 100 workers: a rack of 4, a rack of 70 (over the limit of 64), the rest without a group
    nodes = workers(100, group_of=lambda i: "rack-a" if i < 4 else "rack-b" if i < 74 else "")
    # when a sampled audit with k=1 plans
    pairs = names(peer_pairs(nodes, Sampling(plan="sampled", peers=1, round=5, group_limit=64)))
    # then rack-a's 12 ordered pairs are all in, rack-b is not meshed, and everyone still has its rotated peer
    rack_a = [n.name for n in nodes[:4]]
    assert {(a, b) for a, b in itertools.permutations(rack_a, 2)} <= pairs
    rack_b = [n.name for n in nodes[4:74]]
    assert len({(a, b) for a, b in itertools.permutations(rack_b, 2)} & pairs) < 70 * 69 // 10
    assert all(any(s == n.name for s, _ in pairs) for n in nodes)
    assert len(pairs) <= 100 + 12


def test_sampled_plan_keeps_every_server_worker_path_on_every_port():
    # given a server and 60 workers, sampled with k=2
    server = MatrixNode("srv", "server", "10.0.0.1", order=-1)
    nodes = [server, *workers(60)]
    # when the paths are planned
    plans = plan_paths(nodes, PROFILE, NodeContext("-", "worker"), Sampling(plan="sampled", peers=2, round=3))
    # then the server reaches every worker and every worker the server, each with all its ports
    s2w = [p for p in plans if p.check_id == S2W]
    w2s = [p for p in plans if p.check_id == W2S]
    assert len(s2w) == len(w2s) == 60
    full = plan_paths(nodes, PROFILE, NodeContext("-", "worker"), Sampling(plan="full"))
    ports = {(p.check_id, p.source.name, p.destination.name): p.ports for p in full if p.check_id != W2W}
    assert {(p.check_id, p.source.name, p.destination.name): p.ports for p in s2w + w2s} == ports
    assert 80 in ports[(W2S, "w0000", "srv")] and 10150 in ports[(S2W, "srv", "w0000")]
    # and worker to worker is 2 per worker, not 60*59
    assert len([p for p in plans if p.check_id == W2W]) == 120


def test_the_server_running_a_worker_is_a_sampled_peer():
    server = MatrixNode("srv", "server", "10.0.0.1", order=0)
    nodes = [server, *workers(5)]
    context = NodeContext("-", "worker", server_runs_worker=True)
    peers = {
        (p.source.name, p.destination.name)
        for n in range(3)
        for p in plan_paths(nodes, PROFILE, context, Sampling(plan="sampled", peers=2, round=n))
        if p.check_id == W2W
    }
    assert {("srv", f"w{i:04d}") for i in range(5)} <= peers
