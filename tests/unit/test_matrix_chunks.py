"""The matrix in chunks (issue 24 item 2): every planned path lands in exactly one chunk, a chunk's listeners are the
destinations of its paths and never more than the bound, and the threads a worker holds do not grow with the
cluster."""

import collections
import shlex
import socket
import subprocess
import sys

import pytest

from checks.connectivity import (
    S2W,
    W2S,
    W2W,
    MatrixNode,
    Sampling,
    listener_command,
    matrix_thread_bound,
    path_key,
    plan_chunks,
    plan_paths,
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


def cluster(workers: int, *, group_of=lambda i: "") -> list[MatrixNode]:
    server = MatrixNode("srv", "server", "10.0.0.1", order=0)
    return [server] + [
        MatrixNode(f"w{i:04d}", "worker", f"10.1.{i // 250}.{i % 250 + 1}", group=group_of(i), order=i)
        for i in range(1, workers + 1)
    ]


def plans_of(nodes, sampling, *, server_runs_worker=False):
    context = NodeContext("-", "worker", server_runs_worker=server_runs_worker)
    return plan_paths(nodes, PROFILE, context, sampling)


@pytest.mark.parametrize(
    "workers, sampling, limit",
    [
        (499, Sampling(plan="sampled", peers=3, round=0), 64),
        (499, Sampling(plan="sampled", peers=3, round=57), 64),
        (120, Sampling(plan="full"), 16),
        (200, Sampling(plan="sampled", peers=5, round=3, group_limit=20), 32),
        (7, Sampling(plan="full"), 64),
        (30, Sampling(plan="full"), 2),
    ],
)
def test_every_planned_path_is_in_exactly_one_chunk_and_listeners_stay_bounded(workers, sampling, limit):
    # given a planned matrix (sampled or full, with network groups of 10)
    plans = plans_of(cluster(workers, group_of=lambda i: f"rack{i // 10}"), sampling)
    by_key = {path_key(plan): plan for plan in plans}
    # when it is split into chunks of at most `limit` listeners
    chunks = plan_chunks(plans, max_listeners=limit)
    # then every path is in exactly one chunk
    counted = collections.Counter(key for chunk in chunks for key in chunk.paths)
    assert set(counted) == set(by_key) and set(counted.values()) == {1}
    for i, chunk in enumerate(chunks):
        assert chunk.index == i
        # its listeners are exactly the destinations of its paths, within the bound; its sources are theirs
        assert set(chunk.listeners) == {by_key[key].destination.name for key in chunk.paths}
        assert 0 < len(chunk.listeners) <= limit
        assert set(chunk.sources) == {by_key[key].source.name for key in chunk.paths}
    # and no chunk is needlessly small: each (but the last) was closed because the next worker did not fit
    assert all(len(chunk.listeners) >= limit - 1 for chunk in chunks[:-1])


def test_sampled_chunks_log_in_to_each_node_a_bounded_number_of_times_so_logins_grow_linearly():
    # given 1 server + 499 workers, sampled k=3, chunks of 64 listeners, in a round whose peers are 16-18 on
    plans = plans_of(cluster(499), Sampling(plan="sampled", peers=3, round=5))
    # when chunked
    chunks = plan_chunks(plans, max_listeners=64)
    # then 8 chunks; the server listens in each (every worker proves worker -> server)
    assert len(chunks) == 8
    assert all("srv" in chunk.listeners for chunk in chunks)
    # and each chunk logs in once per node it uses (a prober rides on that node's listener connection): a worker
    # is used by at most 3 chunks (its own, and its peers', which are consecutive: at most one chunk boundary)
    uses = collections.Counter(name for chunk in chunks for name in set(chunk.listeners) | set(chunk.sources))
    assert uses["srv"] == 8
    assert max(count for name, count in uses.items() if name != "srv") <= 3
    assert sum(uses.values()) < 2.2 * 500
    # and the checks are all there: 499 server -> worker, 499 worker -> server, 3 peers each
    kinds = collections.Counter(key[0] for chunk in chunks for key in chunk.paths)
    assert kinds == {S2W: 499, W2S: 499, W2W: 1497}


def test_chunking_is_deterministic_so_every_worker_plans_the_same_chunks():
    # given the same matrix planned twice, its nodes listed in another order
    nodes = cluster(150)
    first = plan_chunks(plans_of(nodes, Sampling(plan="sampled", peers=3, round=9)), max_listeners=40)
    again = plan_chunks(plans_of(nodes[::-1], Sampling(plan="sampled", peers=3, round=9)), max_listeners=40)
    # then the chunks are the same
    assert first == again


def test_the_server_running_a_worker_is_a_peer_in_its_own_chunk():
    # given a server that also runs a worker: it is one of the peers
    plans = plans_of(cluster(5), Sampling(plan="full"), server_runs_worker=True)
    # when chunked with room for 3 listeners
    chunks = plan_chunks(plans, max_listeners=3)
    # then the server's incoming peer paths are planned, and no chunk holds more than 3 listeners
    keys = {key for chunk in chunks for key in chunk.paths}
    assert {(W2W, f"w{i:04d}", "srv") for i in range(1, 6)} <= keys
    assert max(len(chunk.listeners) for chunk in chunks) <= 3


def test_a_chunk_bound_below_two_still_fits_a_worker_and_the_server():
    # given a bound of 1 (a worker's paths need its own listener and the server's)
    plans = plans_of(cluster(3), Sampling(plan="full"))
    # when chunked
    chunks = plan_chunks(plans, max_listeners=1)
    # then each chunk holds two listeners at most, and every path is planned
    assert max(len(chunk.listeners) for chunk in chunks) == 2
    assert sum(len(chunk.paths) for chunk in chunks) == len(plans)


def test_the_thread_bound_does_not_grow_with_the_cluster():
    # given the settings' bound on listeners per chunk, the audit concurrency and a worker's Celery concurrency
    bound = matrix_thread_bound(max_listeners=64, concurrency=16, tasks=4)
    # then it is a fixed number: per chunk its pool thread, the listeners' transports, the probers' pool and their
    # transports, its lease; and the worker's own few
    assert bound == 8 + 4 * (1 + 64 + 2 * 16 + 1)
    assert matrix_thread_bound(max_listeners=64, concurrency=16) == 8 + 98
    assert matrix_thread_bound(max_listeners=0, concurrency=0, tasks=0) == 8 + 1 + 2 + 2 + 1


def _listener(port: int, lifetime: int = 20):
    process = subprocess.Popen(
        shlex.split(listener_command(sys.executable, [port], lifetime)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = []
    while not lines or lines[-1] != "READY":
        lines.append(process.stdout.readline().strip())
    return process, lines


def test_two_chunks_listeners_share_a_port_and_one_closing_leaves_the_other_listening():
    # given a free port on loopback, and a first chunk's listener on it
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first, first_lines = _listener(port)
    # when a second chunk running at the same time opens its own listener on the same node and port
    second, second_lines = _listener(port)
    try:
        # then both bound it
        assert first_lines == [f"BOUND {port}", "READY"] and second_lines == [f"BOUND {port}", "READY"]
        # and after the first chunk closes its listener, the port still accepts connections (the second's)
        first.stdin.close()
        first.wait(timeout=10)
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
    finally:
        second.stdin.close()
        second.wait(timeout=10)
        first.kill()


def test_a_port_held_by_another_program_is_still_busy():
    # given a program (not Preflight) listening on a port without SO_REUSEPORT
    with socket.socket() as held:
        held.bind(("", 0))
        held.listen()
        port = held.getsockname()[1]
        # when a chunk's listener tries it
        process, lines = _listener(port)
        process.stdin.close()
        process.wait(timeout=10)
    # then it reports the port busy, as before
    assert lines[0].startswith(f"BUSY {port}")
