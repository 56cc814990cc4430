"""The deployment of the README ("Deployment: web, worker and beat on separate machines"): two worker machines (two
network namespaces on the lab's bridge), each running a real `celery worker`, against one Redis over TCP with a
password and one PostgreSQL; beat and the audit's start on this machine, as on a web machine. 20 sshd test hosts
record which machine ran each probe (the client's address and the probe's nonce, tests/lab/deployment.py).

Short timings so a lost worker is taken over in seconds: a lease of 3 s renewed every second, a sweep every 2 s.
Each probe waits 1.5 s on the node first, so an audit lasts long enough to kill a worker in the middle of it.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from checks.choices import RunState
from inventory.choices import AuditStatus
from tests.conftest import missing_prerequisite
from tests.lab import nodes
from tests.lab.deployment import Deployment, Unavailable, logged_node, login_wrapper, probe_logins
from tests.lab.hosts import Lab, LabNode

from .fixtures import OUTPUT

pytestmark = [pytest.mark.integration]

NODES = 20
CONCURRENCY = 4  # threads per worker machine
PROBE_DELAY = 1.5
SWEEP_EVERY = 2
TIMINGS = {
    "PREFLIGHT_LEASE_SECONDS": "3",
    "PREFLIGHT_LEASE_RENEW": "1",
    "PREFLIGHT_NODE_ATTEMPTS": "3",
    "PREFLIGHT_REDELIVER_AFTER": "3",
    "PREFLIGHT_SWEEP_MIN_GAP": "1",
    "PREFLIGHT_VISIBILITY_TIMEOUT": "120",
}
CLUSTER = "dp-fleet"

_SETUP = """
import json
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks
from inventory.choices import CredentialKind, NodeRole
from inventory.models import Cluster, Credential, Node, RequirementProfile

spec = json.loads(open({spec!r}).read())
credential = Credential(name="lab-key", kind=CredentialKind.PRIVATE_KEY)
credential.secret = spec["key"]
credential.save()
# the test hosts share this machine's disk and memory: the profile's resource floors lowered, as make_cluster does
profile = RequirementProfile.objects.get(key="gpustack-2.0")
RequirementProfile.objects.filter(pk=profile.pk).update(
    worker_disk_warn_gib=1, worker_disk_fail_gib=1, worker_memory_warn_gib=1, server_disk_warn_gib=1
)
cluster = Cluster.objects.create(name=spec["cluster"], profile=profile)
for name, address in spec["nodes"]:
    Node.objects.create(cluster=cluster, name=name, address=address, role=NodeRole.WORKER, credential=credential)
every, _ = IntervalSchedule.objects.get_or_create(every=spec["sweep_every"], period="seconds")
PeriodicTask.objects.filter(name="Sweep stuck node audits").update(interval=every)
PeriodicTask.objects.exclude(name="Sweep stuck node audits").update(enabled=False)
PeriodicTasks.update_changed()
"""

_START = """
from checks.choices import Trigger
from checks.services import audit_request
from inventory.models import Cluster

print(audit_request(cluster=Cluster.objects.get(name={cluster!r}), trigger=Trigger.API).pk)
"""


@dataclass
class Fleet:
    deploy: Deployment
    hosts: list[LabNode]
    machines: list[LabNode]
    logins: Path

    def start_audit(self) -> int:
        return int(self.deploy.django(_START.format(cluster=CLUSTER)).strip())

    def rows(self, audit_id: int) -> dict[str, dict]:
        found = self.deploy.query(
            "SELECT n.name, na.state, na.status, na.attempts, na.nonce, na.error, na.portal_error "
            "FROM checks_nodeaudit na JOIN inventory_node n ON n.id = na.node_id WHERE na.audit_id = %s",
            audit_id,
        )
        keys = ("state", "status", "attempts", "nonce", "error", "portal_error")
        return {row[0]: dict(zip(keys, row[1:], strict=True)) for row in found}

    def wait_final(self, audit_id: int, timeout: float) -> float:
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            state = self.deploy.query("SELECT state FROM checks_audit WHERE id = %s", audit_id)[0][0]
            if state in (RunState.DONE, RunState.ERROR):
                return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(f"audit {audit_id} did not end in {timeout:g} s: {self.rows(audit_id)}")

    def probes(self, name: str) -> list[tuple[str, str]]:
        """(client address, nonce) of each probe the node ran."""
        return probe_logins(self.logins / f"{name}.log")


@pytest.fixture(scope="module")
def fleet(lab: Lab):
    try:
        deploy = Deployment(lab, output=OUTPUT / "deployment", settings=TIMINGS)
    except Unavailable as exc:
        missing_prerequisite(str(exc))
    hosts: list[LabNode] = []
    machines: list[LabNode] = []
    try:
        with ThreadPoolExecutor(1) as pool:  # Redis, the database and its migrations while the hosts start
            services = pool.submit(deploy.start)
            wrapper = login_wrapper(deploy.root)
            logins = deploy.root / "logins"
            logins.mkdir()
            for i in range(NODES):
                name = f"dp-n{i:02d}"
                spec = logged_node(
                    nodes.plain(name), wrapper=wrapper, log=logins / f"{name}.log", probe_delay=PROBE_DELAY
                )
                hosts.append(lab.add(spec))
            machines = [lab.add_machine("dp-machine-a"), lab.add_machine("dp-machine-b")]
            services.result()
        spec_file = deploy.root / "spec.json"
        spec_file.write_text(
            json.dumps(
                {
                    "key": lab.client_key,
                    "cluster": CLUSTER,
                    "nodes": [(h.spec.name, h.address) for h in hosts],
                    "sweep_every": SWEEP_EVERY,
                }
            )
        )
        spec_file.chmod(0o600)
        deploy.django(_SETUP.format(spec=str(spec_file)))
        spec_file.unlink()
        deploy.start_workers(machines, concurrency=CONCURRENCY)
        deploy.start_beat()
        yield Fleet(deploy, hosts, machines, logins)
    finally:
        deploy.close()
        for node in machines + hosts:
            lab.remove(node)


def test_two_worker_machines_share_an_audit_and_audit_each_node_exactly_once(fleet):
    # given: two worker machines against one Redis that refuses a client without its password
    machine_a, machine_b = fleet.machines
    assert fleet.deploy.redis_refuses_without_password()
    # when: an audit of the 20 nodes is started on this (web) machine
    audit_id = fleet.start_audit()
    took = fleet.wait_final(audit_id, timeout=60)
    # then: every node done, claimed once, and probed once, by one of the two machines; both took part
    rows = fleet.rows(audit_id)
    assert len(rows) == NODES
    outcomes = {(r["state"], r["attempts"], r["error"], r["portal_error"]) for r in rows.values()}
    assert outcomes == {(RunState.DONE, 1, "", "")}
    by_machine: dict[str, list[str]] = {}
    for name, row in rows.items():
        probes = fleet.probes(name)
        assert len(probes) == 1, f"{name} was probed {len(probes)} times: {probes}"
        address, nonce = probes[0]
        assert nonce == row["nonce"], "the recorded results are those of the one probe the node ran"
        by_machine.setdefault(address, []).append(name)
    assert set(by_machine) == {machine_a.address, machine_b.address}
    # each machine reached Redis over TCP with the password, and PostgreSQL, over the lab network
    deploy = fleet.deploy
    for worker in deploy.workers:
        assert f"Connected to redis://:**@{deploy.address}:{deploy.redis_port}/0" in worker.log.read_text()
    assert {machine_a.address, machine_b.address} <= deploy.relay.clients
    print(
        f"audit of {NODES} nodes on 2 worker machines in {took:.1f} s: "
        + ", ".join(f"{address} audited {len(names)}" for address, names in sorted(by_machine.items()))
    )


def test_a_worker_machine_killed_mid_audit_leaves_every_node_final_done_by_the_other(fleet):
    # given: an audit running on both machines
    deploy = fleet.deploy
    worker_a, worker_b = deploy.workers
    machine_a, machine_b = worker_a.machine, worker_b.machine
    before = {h.spec.name: len(fleet.probes(h.spec.name)) for h in fleet.hosts}
    audit_id = fleet.start_audit()

    def fresh_probes_of_a(seen: dict[str, int]) -> set[str]:
        """Running nodes whose probe machine A started since the last look (a probe waits PROBE_DELAY on the node
        first, so A is in the middle of it), once the audit is under way (some nodes done)."""
        rows = fleet.rows(audit_id)
        fresh = set()
        for name, row in rows.items():
            probes = fleet.probes(name)
            new, seen[name] = probes[seen.get(name, before[name]) :], len(probes)
            if row["state"] == RunState.RUNNING and any(address == machine_a.address for address, _ in new):
                fresh.add(name)
        return fresh if sum(row["state"] == RunState.DONE for row in rows.values()) >= CONCURRENCY else set()

    seen: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while not fresh_probes_of_a(seen):
        assert time.monotonic() < deadline, "machine A never ran a probe while others were done"
        time.sleep(0.05)
    done_before = {name for name, row in fleet.rows(audit_id).items() if row["state"] == RunState.DONE}
    # when: machine A dies (SIGKILL of its worker) in the middle of those node audits
    deploy.kill(worker_a)
    took = fleet.wait_final(audit_id, timeout=60)  # from the kill
    # then: every node ends done with the node's own results (the same for all 20 identical hosts), no error
    rows = fleet.rows(audit_id)
    assert {(r["state"], r["error"], r["portal_error"]) for r in rows.values()} == {(RunState.DONE, "", "")}
    statuses = {r["status"] for r in rows.values()}
    assert len(statuses) == 1 and statuses <= {AuditStatus.PASS, AuditStatus.WARN}
    # the nodes A was probing when it died (A's probe is not the one recorded) were claimed again once their lease
    # ran out, and finished by machine B; nodes A finished before keep A's results, claimed once
    lost, by_a = [], []
    for name, row in rows.items():
        probes = fleet.probes(name)[before[name] :]
        recorded_by = next((address for address, nonce in probes if nonce == row["nonce"]), None)
        assert recorded_by is not None, f"{name}: the recorded results are those of a probe the node ran"
        if recorded_by == machine_a.address:
            by_a.append(name)
            assert row["attempts"] == 1, f"{name}: {row}"
        elif any(address == machine_a.address for address, _ in probes):
            lost.append(name)
        if row["attempts"] == 2:
            assert recorded_by == machine_b.address, f"{name}: {row}, probes {probes}"
        assert row["attempts"] in (1, 2), f"{name}: {row}"
    assert lost, "the kill landed in the middle of A's probes"
    assert all(rows[name]["attempts"] == 2 for name in lost)
    assert all(rows[name]["attempts"] == 1 for name in done_before)
    taken_over = sorted(name for name, r in rows.items() if r["attempts"] == 2)
    summary = (
        f"machine A killed after finishing {len(by_a)} nodes, while it probed {len(lost)} ({len(taken_over)} claimed "
        f"twice in all); the audit ended {took:.1f} s after the kill, every node done"
    )
    (OUTPUT / "deployment" / "kill-summary.txt").write_text(summary + "\n")
    print(summary)
