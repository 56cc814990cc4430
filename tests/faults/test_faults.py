"""The four faults of issue 21, each applied to a 30-node audit on sshd test hosts, on a whole Preflight as serve.sh
runs it (tests/lab/faultstack.py): a Celery worker killed with SIGKILL and started again, Redis stopped for 20 s,
SQLite locked for 30 s by another writer, the disk under SQLite full for 30 s.

For each: every node ends `done` within 90 s of the fault clearing, with exactly the results it had before (no
result lost, none recorded twice), no door answered 500 while the fault lasted (503 with the JSON error shape and
Retry-After instead), and exactly one beat runs afterwards. A node whose only trouble was the database is not
probed again (one login per node). A worker killed twice in one audit still ends it, with the attempts recorded.
The four share one lab and one stack; `python -m bench.faults` prints the same recovery times.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest

from tests.conftest import REPO
from tests.lab import nodes
from tests.lab.faultstack import FaultStack

pytestmark = [pytest.mark.integration]

HEALTHY = 28
SILENT = 2
RECOVERY_LIMIT = 90.0
CLUSTER, SIDE = "faults", "faults-side"
OUTPUT = REPO / "test-output" / "faults"


@dataclass
class Fleet:
    stack: FaultStack
    lab: object
    names: list[str]
    baseline: dict[str, tuple[str, int]]  # node -> (status, number of check results)


@pytest.fixture(scope="module")
def fleet(lab):
    healthy = [lab.add(nodes.slow(f"flt-{i:02d}", 3)) for i in range(HEALTHY)]
    silent = [lab.add(nodes.hangs_after_login(f"flt-silent-{i}")) for i in range(SILENT)]
    side = lab.add(nodes.plain("flt-side"))  # (its own host: its logins are not counted with the fleet's)
    stack = FaultStack(output=OUTPUT)
    try:
        stack.set_up(
            key=lab.client_key,
            clusters={
                CLUSTER: [(n.spec.name, n.address) for n in healthy + silent],
                SIDE: [(side.spec.name, side.address)],
            },
        )
        # A first audit learns the host keys and gives every node's results to compare with.
        audit_id = stack.start_audit(CLUSTER)
        stack.wait_audit(audit_id, timeout=120)
        yield Fleet(stack, lab, [n.spec.name for n in healthy + silent], _results(stack, audit_id))
    finally:
        stack.close()


def _results(stack: FaultStack, audit_id: int) -> dict[str, tuple[str, int]]:
    rows = stack.query(
        "SELECT n.name, na.status, (SELECT COUNT(*) FROM checks_checkresult r WHERE r.node_audit_id = na.id) "
        "FROM checks_nodeaudit na JOIN inventory_node n ON n.id = na.node_id WHERE na.audit_id = ?",
        audit_id,
    )
    return {name: (status, count) for name, status, count in rows}


def _logins(fleet: Fleet) -> dict[str, int]:
    return {name: fleet.lab.accepted_logins(fleet.lab.nodes[name]) for name in fleet.names}


def _settle(stack: FaultStack) -> None:
    """No audit of any cluster left running (a door's POST may have started one of the side cluster)."""
    deadline = time.monotonic() + 120
    while stack.query("SELECT COUNT(*) FROM checks_audit WHERE state IN ('queued', 'running')")[0][0]:
        assert time.monotonic() < deadline, "an audit was still running two minutes after the fault"
        time.sleep(0.5)


def _while_running(stack: FaultStack, audit_id: int, running: int = 12) -> None:
    deadline = time.monotonic() + 30
    while stack.node_states(audit_id).get("running", 0) < running:
        assert time.monotonic() < deadline, f"the audit did not get {running} nodes running"
        time.sleep(0.1)


def _check_recovery(fleet: Fleet, audit_id: int, cleared: float, answers, *, probed_once: bool) -> dict:
    stack = fleet.stack
    # every node ends `done` within 90 s of the fault clearing
    deadline = cleared + RECOVERY_LIMIT
    while stack.audit_state(audit_id) not in ("done", "error") and time.monotonic() < deadline:
        time.sleep(0.2)
    recovery = time.monotonic() - cleared
    states = stack.node_states(audit_id)
    assert states == {"done": HEALTHY + SILENT}, f"{states} {recovery:.0f} s after the fault cleared"
    assert stack.audit_state(audit_id) == "done" and recovery <= RECOVERY_LIMIT
    # no result lost, none recorded twice: each node has exactly the results of the audit before the fault
    assert _results(stack, audit_id) == fleet.baseline
    duplicates = stack.query(
        "SELECT COUNT(*) FROM (SELECT node_audit_id, check_id FROM checks_checkresult r JOIN checks_nodeaudit na "
        "ON na.id = r.node_audit_id WHERE na.audit_id = ? GROUP BY node_audit_id, check_id HAVING COUNT(*) > 1)",
        audit_id,
    )[0][0]
    assert duplicates == 0
    attempts = dict(
        stack.query(
            "SELECT n.name, na.attempts FROM checks_nodeaudit na JOIN inventory_node n ON n.id = na.node_id "
            "WHERE na.audit_id = ? AND na.portal_error = ''",
            audit_id,
        )
    )
    assert len(attempts) == HEALTHY + SILENT, "no node may end with Preflight's own error"
    if probed_once:
        assert set(attempts.values()) == {1}, attempts
    # no door answered 500 while the fault lasted; 503s carry the JSON shape and a retry hint
    doors = {a.door for a in answers}
    assert doors == {"dashboard", "GET /api/v1/nodes", "POST /api/v1/audits", "POST /api/v1/audits (side)"}
    assert not [a for a in answers if a.status >= 500 and a.status != 503 or a.status == 0], answers
    for answer in answers:
        if answer.status == 503:
            assert answer.retry_after and int(answer.retry_after) > 0
            if answer.door != "dashboard":
                assert json.loads(answer.body)["code"] == "unavailable"
            else:
                assert "Preflight is unavailable for a moment" in answer.body
    # exactly one beat afterwards
    assert len(stack.beat_processes()) == 1
    _settle(stack)
    statuses = sorted({a.status for a in answers})
    print(f"audit {audit_id}: done {recovery:.1f} s after the fault cleared; doors answered {statuses}")
    return {"recovery": recovery, "attempts": attempts, "answers": answers}


def test_worker_killed_mid_audit_costs_seconds_and_blames_no_node(fleet):
    # given: an audit with 16 nodes running in the worker and the rest queued
    stack = fleet.stack
    audit_id = stack.start_audit(CLUSTER)
    _while_running(stack, audit_id)
    doors = stack.doors(cluster=CLUSTER, side_cluster=SIDE)
    # when: the worker is killed with SIGKILL and started again, as serve.sh's loop does
    stack.kill_worker()
    time.sleep(2)
    stack.start_worker()
    cleared = time.monotonic()
    time.sleep(3)
    # then
    report = _check_recovery(fleet, audit_id, cleared, doors.finish(), probed_once=False)
    assert max(report["attempts"].values()) == 2, "the killed worker's nodes were claimed again"


def test_redis_stopped_for_20_s_loses_no_queued_node(fleet):
    # given
    stack = fleet.stack
    before = _logins(fleet)
    audit_id = stack.start_audit(CLUSTER)
    _while_running(stack, audit_id)
    doors = stack.doors(cluster=CLUSTER, side_cluster=SIDE)
    # when
    stack.stop_redis()
    time.sleep(20)
    stack.start_redis()
    cleared = time.monotonic()
    answers = doors.finish()
    # then: the queued nodes were kept by Redis (AOF) and run once
    _check_recovery(fleet, audit_id, cleared, answers, probed_once=True)
    assert {name: count - before[name] for name, count in _logins(fleet).items()} == dict.fromkeys(fleet.names, 1)
    # (a start while Redis is down answers 503, or 409 once an audit of the side cluster waits for Redis)
    assert {a.status for a in answers if a.door == "POST /api/v1/audits (side)"} <= {202, 409, 503}


def test_sqlite_locked_for_30_s_retries_the_writes_and_probes_no_node_twice(fleet):
    # given
    stack = fleet.stack
    before = _logins(fleet)
    audit_id = stack.start_audit(CLUSTER)
    _while_running(stack, audit_id)
    doors = stack.doors(cluster=CLUSTER, side_cluster=SIDE)
    # when: another process holds BEGIN EXCLUSIVE for 30 s
    locker = stack.lock_database(30)
    locker.wait(timeout=60)
    cleared = time.monotonic()
    answers = doors.finish()
    # then
    _check_recovery(fleet, audit_id, cleared, answers, probed_once=True)
    assert {name: count - before[name] for name, count in _logins(fleet).items()} == dict.fromkeys(fleet.names, 1)
    assert any(a.status == 503 for a in answers if a.door.startswith("POST")), "writes were refused for 30 s"


def test_disk_under_sqlite_full_for_30_s_retries_the_writes_and_probes_no_node_twice(fleet):
    # given
    stack = fleet.stack
    before = _logins(fleet)
    audit_id = stack.start_audit(CLUSTER)
    _while_running(stack, audit_id)
    doors = stack.doors(cluster=CLUSTER, side_cluster=SIDE)
    # when: a file fills the tmpfs under the database for 30 s
    stack.fill_disk()
    time.sleep(30)
    stack.free_disk()
    cleared = time.monotonic()
    answers = doors.finish()
    # then
    _check_recovery(fleet, audit_id, cleared, answers, probed_once=True)
    assert {name: count - before[name] for name, count in _logins(fleet).items()} == dict.fromkeys(fleet.names, 1)


def test_worker_killed_twice_in_one_audit_still_ends_it_with_the_attempts_recorded(fleet):
    # given
    stack = fleet.stack
    audit_id = stack.start_audit(CLUSTER)
    _while_running(stack, audit_id)
    doors = stack.doors(cluster=CLUSTER, side_cluster=SIDE)
    # when: killed, started again; killed again once the first kill's nodes run a second time
    stack.kill_worker()
    time.sleep(2)
    stack.start_worker()
    deadline = time.monotonic() + 60
    while not stack.query(
        "SELECT COUNT(*) FROM checks_nodeaudit WHERE audit_id = ? AND state = 'running' AND attempts = 2", audit_id
    )[0][0]:
        assert time.monotonic() < deadline, "no node was claimed a second time"
        time.sleep(0.2)
    stack.kill_worker()
    time.sleep(2)
    stack.start_worker()
    cleared = time.monotonic()
    time.sleep(3)
    # then
    report = _check_recovery(fleet, audit_id, cleared, doors.finish(), probed_once=False)
    assert 2 <= max(report["attempts"].values()) <= 3


def test_a_second_beat_does_not_start_and_two_sweeps_at_once_run_once(fleet):
    # given: the stack's one beat
    stack = fleet.stack
    assert len(stack.beat_processes()) == 1
    # when: a second beat is started beside it (a second serve.sh, or a unit started twice)
    second = stack.start_beat()
    # then: it finds the lock held and exits at once
    assert second.wait(timeout=15) == 75 and len(stack.beat_processes()) == 1
    # when: the sweep is sent twice at once (two beats that took no lock)
    log = OUTPUT / "worker.log"
    start = log.stat().st_size
    stack.manage("shell", "-c", "from checks.tasks import sweep_stuck_task as t; t.delay(); t.delay()")
    time.sleep(3)
    # then: one of them found the sweep's own lock taken
    assert "sweep skipped: another sweep ran less than" in log.read_text(errors="replace")[start:]
