"""Audit throughput on N real sshd test hosts, side by side with a bare paramiko floor and Ansible's fact gathering.

Run as root after `bash scripts/test.sh` has set the machine up (.venv and redis-server installed):

    .venv/bin/python -m bench.fleet [--hosts 50] [--concurrency 16] [--skip-ansible] [--runs 3]

It prints (a) a cluster audit through Redis and a real Celery worker, host checks only; (b) the same with the
connectivity matrix, 1 server and the rest workers; (c) the floor: a bare paramiko connect plus one exec per host
with the same parallelism; (c') a bare paramiko connect running the probe script itself, so (a)/(c') is the
portal's own overhead (Celery, parsing, rules, database); (d) `ansible -m setup -f N` from ansible-core installed
in a throwaway venv. Then hosts per second, p50/p95 node audit time, the worker's peak RSS, and the ratios (a)/(c),
(a)/(c') and (d)/(a); with --runs N, (a), (c) and (c') are run N times and the ratios are medians.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import ROOT, django_setup, scratch_folder, start_redis
from tests.lab.services import celery_worker_command

UBUNTU = 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n'


def busy_seconds() -> float:
    """CPU seconds spent by the whole machine (all cores, everything but idle and iowait) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user, system) of one process, its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / os.sysconf("SC_CLK_TCK"), int(fields[12]) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Where a phase's time went: the machine's CPU seconds in all, and those of the client processes (the Celery
    worker and its pool's children for (a), this process for (c) and (c')): the rest is sshd, the node's shell and
    its tools. `hosts`: also print the client's CPU per host."""

    def __init__(self, pid: int, hosts: int = 0, children: bool = False) -> None:
        self.pid, self.hosts, self.children = pid, hosts, children
        self.own = 0.0

    def _client_seconds(self) -> tuple[float, float]:
        pids = worker_pids(self.pid) if self.children else [self.pid]
        times = [process_seconds(pid) for pid in pids]
        return sum(user for user, _ in times), sum(system for _, system in times)

    def __enter__(self) -> CpuMeter:
        self.busy, self.split, self.wall = busy_seconds(), self._client_seconds(), time.monotonic()
        return self

    def __exit__(self, *exc_info) -> None:
        busy, (user, system) = busy_seconds() - self.busy, self._client_seconds()
        user, system = user - self.split[0], system - self.split[1]
        own = user + system
        wall = time.monotonic() - self.wall
        self.own = own
        per_host = f", {own / self.hosts * 1000:.1f} ms per host" if self.hosts else ""
        print(
            f"    CPU: {busy:.2f} s on the machine ({busy / wall:.2f} cores busy), the client process {own:.2f} s"
            f" (user {user:.2f}, system {system:.2f}{per_host}), the rest (sshd, shells, tools) {busy - own:.2f} s; "
            "load average "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )


def start_profile(pid: int, path: Path) -> subprocess.Popen:
    """py-spy (requirements-dev.txt) sampling the worker's threads that hold the GIL, as collapsed stacks, 250 times a
    second (PREFLIGHT_PROFILE_RATE: more samples, and more of py-spy's own CPU on the same two cores)."""
    rate = os.environ.get("PREFLIGHT_PROFILE_RATE", "250")
    spy = subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--gil", "--rate", rate]
        + ["--format", "raw", "--output", str(path), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)
    return spy


def stop_profile(spy: subprocess.Popen, path: Path) -> None:
    """Stop py-spy and print where the worker's GIL time went, by the first frame of ours or a library's."""
    spy.send_signal(signal.SIGINT)
    spy.wait(timeout=30)
    shares: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        shares[profile_bucket(stack)] = shares.get(profile_bucket(stack), 0) + int(count)
    print(f"    worker GIL samples: {total} ({path})")
    for bucket, count in sorted(shares.items(), key=lambda item: -item[1]):
        print(f"      {count / max(total, 1):6.1%} {bucket}")


PROFILE_BUCKETS = [
    ("django/db", "the ORM and the database driver"),
    ("sqlite3", "the ORM and the database driver"),
    ("psycopg", "the ORM and the database driver"),
    ("paramiko", "paramiko (SSH)"),
    ("cryptography", "paramiko (SSH)"),
    ("checks/parsers", "parsing the probe output"),
    ("checks/catalog", "judging (rules)"),
    ("checks/node_facts", "parsing the probe output"),
    ("celery", "Celery and kombu"),
    ("kombu", "Celery and kombu"),
    ("redis", "Celery and kombu"),
    ("threading", "threads (paramiko's, the pool's, the leases')"),
    # Our own frames last: a library frame inside them (the ORM, paramiko) is innermost and wins, and our frames
    # win over Celery's, which are outside every task (they used to take our code's samples into "Celery").
    ("checks/", "Preflight's own code"),
    ("inventory/", "Preflight's own code"),
    ("portal/", "Preflight's own code"),
]


def profile_bucket(stack: str) -> str:
    """The innermost frame that names a known part: the ORM inside a service counts as the ORM."""
    for frame in reversed(stack.split(";")):
        for needle, bucket in PROFILE_BUCKETS:
            if needle in frame:
                return bucket
    return "other"


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [parent, *(int(c) for c in children)]


def start_worker(database: str, broker: str, concurrency: int, log: Path, pool: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "DATABASE_URL": database,
        "CELERY_BROKER_URL": broker,
        "PREFLIGHT_PROBE_TIMEOUT": "60",
    }
    process = subprocess.Popen(
        celery_worker_command(
            concurrency=concurrency, log=log, name=f"bench-{os.getpid()}@%h", pool=pool, loglevel="WARNING"
        ),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(4)
    return process


def timed_audit(cluster, label: str) -> tuple[float, list[float]]:
    from checks.models import Audit, NodeAudit
    from checks.services import audit_enqueue, audit_start

    started, wall = time.monotonic(), time.time()
    audit = audit_start(cluster=cluster)
    audit_enqueue(audit)
    while not (ended := Audit.objects.get(pk=audit.pk)).has_ended:
        if time.monotonic() - started > 600:
            raise SystemExit(f"{label}: audit {audit.pk} did not finish in 600 s")
        time.sleep(0.1)
    # From before the audit was created to the moment the worker closed it (its own `finished`, on this machine's
    # clock): polling every 0.1 s would add up to 0.1 s that is the bench's, not the portal's.
    elapsed = ended.finished.timestamp() - wall
    rows = [na for na in NodeAudit.objects.filter(audit=audit) if na.finished and na.started]
    durations = [(na.finished - na.started).total_seconds() for na in rows]
    events = sorted([(na.started, 1) for na in rows] + [(na.finished, -1) for na in rows])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    first, last = min(na.started for na in rows), max(na.finished for na in rows)
    print(
        f"    first node started {(first - audit.created).total_seconds():.2f} s after the audit was created; "
        f"at most {peak} node audits ran at once; the audit closed {(ended.finished - last).total_seconds():.3f} s "
        "after its last node"
    )
    statuses = sorted(set(NodeAudit.objects.filter(audit=audit).values_list("status", flat=True)))
    print(
        f"{label}: {elapsed:.2f} s, {len(durations) / elapsed:.1f} hosts/s, node audit p50 "
        f"{statistics.median(durations):.2f} s p95 {statistics.quantiles(durations, n=20)[18]:.2f} s, "
        f"node statuses {statuses}"
    )
    return elapsed, durations


def paramiko_floor(lab, hosts, concurrency: int) -> float:
    import io

    import paramiko

    key = paramiko.Ed25519Key.from_private_key(io.StringIO(lab.client_key))

    def one(host):
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(host.address, username="root", pkey=key, allow_agent=False, look_for_keys=False, timeout=10)
        _, stdout, _ = client.exec_command("uname -a")
        stdout.read()
        client.close()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, hosts))
    elapsed = time.monotonic() - started
    print(f"(c) bare paramiko connect + one exec: {elapsed:.2f} s, {len(hosts) / elapsed:.1f} hosts/s")
    return elapsed


def paramiko_probe_floor(lab, hosts, concurrency: int) -> float:
    """(c') the same bare paramiko connect, running the probe script itself (the portal's one exec per node) and
    reading all its output: what the portal would cost with nothing of its own (Celery, parsing, rules, database)."""
    import io

    import paramiko

    from checks.probe import PROBE_SCRIPT, probe_command, probe_nonce

    key = paramiko.Ed25519Key.from_private_key(io.StringIO(lab.client_key))

    def one(host) -> int:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(host.address, username="root", pkey=key, allow_agent=False, look_for_keys=False, timeout=10)
        stdin, stdout, _ = client.exec_command(probe_command(probe_nonce(), 20))
        stdin.write(PROBE_SCRIPT)
        stdin.channel.shutdown_write()
        size = len(stdout.read())
        client.close()
        return size

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        sizes = list(pool.map(one, hosts))
    elapsed = time.monotonic() - started
    print(
        f"(c') bare paramiko connect + the probe script: {elapsed:.2f} s, {len(hosts) / elapsed:.1f} hosts/s, "
        f"median output {statistics.median(sizes) / 1024:.1f} KiB"
    )
    return elapsed


def ansible_setup(lab, hosts) -> float | None:
    folder = scratch_folder("preflight-ansible-")
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "ansible-core"], check=True)
    key = folder / "key"
    key.write_text(lab.client_key)
    key.chmod(0o600)
    inventory = folder / "hosts.ini"
    inventory.write_text("[lab]\n" + "".join(f"{h.spec.name} ansible_host={h.address}\n" for h in hosts))
    env = {
        **os.environ,
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=no",
    }
    started = time.monotonic()
    result = subprocess.run(
        [
            str(venv / "bin/ansible"),
            "lab",
            "-i",
            str(inventory),
            "-m",
            "setup",
            "-f",
            str(len(hosts)),
            "-u",
            "root",
            "--private-key",
            str(key),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    elapsed = time.monotonic() - started
    ok = result.stdout.count("SUCCESS")
    print(f"(d) ansible -m setup -f {len(hosts)}: {elapsed:.2f} s, {ok}/{len(hosts)} hosts gathered")
    return elapsed


def server_side_pages(nodes: int = 2000, audits: int = 20) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from checks.choices import RunState
    from checks.models import Audit, CheckResult, NodeAudit
    from inventory.models import Cluster, Node, RequirementProfile

    cluster = Cluster.objects.create(name="pages", profile=RequirementProfile.objects.get(key="gpustack-2.0"))
    Node.objects.bulk_create(
        Node(
            cluster=cluster,
            name=f"n{i:05d}",
            address=f"10.231.250.{i % 250 + 1}",
            last_audit_status="fail" if i % 7 == 0 else "pass",
        )
        for i in range(nodes)
    )
    all_nodes = list(Node.objects.filter(cluster=cluster))
    for _ in range(audits):
        audit = Audit.objects.create(
            cluster=cluster,
            profile=cluster.profile,
            profile_key="gpustack-2.0",
            state=RunState.DONE,
            status="fail",
            started=timezone.now(),
            finished=timezone.now(),
        )
        NodeAudit.objects.bulk_create(
            NodeAudit(
                audit=audit,
                node=n,
                state=RunState.DONE,
                status=n.last_audit_status,
                started=timezone.now(),
                finished=timezone.now(),
            )
            for n in all_nodes
        )
        CheckResult.objects.bulk_create(
            CheckResult(node_audit=na, check_id="time.ntp", status=na.status, summary="x")
            for na in NodeAudit.objects.filter(audit=audit)
        )
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(get_user_model().objects.create_superuser("bench", password="x"))
    for label, url in [("node list", "/nodes/?cluster=pages"), ("dashboard", "/clusters/pages/")]:
        client.get(url)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            assert client.get(url).status_code == 200
            times.append(time.perf_counter() - started)
        print(
            f"{label} with {nodes} nodes and {audits} audits: median {statistics.median(times) * 1000:.0f} ms "
            "server-side"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--name-prefix", default="h", help="test host names (unique across labs sharing a machine)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--skip-ansible", action="store_true")
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork"])
    parser.add_argument("--skip-matrix", action="store_true")
    parser.add_argument(
        "--profile", type=Path, help="record the worker's stacks holding the GIL during the first (a) with py-spy"
    )
    parser.add_argument("--skip-pages", action="store_true", help="skip the 2,000-node page timings (bench.pages)")
    parser.add_argument("--runs", type=int, default=1, help="repeat (a), (c) and (c') this often; ratios are medians")
    args = parser.parse_args()
    redis_server, broker = start_redis()
    os.environ["CELERY_BROKER_URL"] = broker
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    folder = django_setup()
    from checks.models import Audit
    from inventory.models import Cluster, Credential, Node, RequirementProfile
    from portal.celery import app
    from tests.lab.hosts import Lab, NodeSpec

    assert app.conf.task_always_eager is False, "the benchmark must fan out through Redis"
    lab = Lab()
    worker = None
    try:
        started = time.monotonic()
        hosts = [lab.add(NodeSpec(f"{args.name_prefix}{i:03d}", UBUNTU)) for i in range(args.hosts)]
        print(f"{len(hosts)} test hosts up in {time.monotonic() - started:.1f} s; concurrency {args.concurrency}")
        worker = start_worker(os.environ["DATABASE_URL"], broker, args.concurrency, folder / "worker.log", args.pool)
        credential = Credential(name="bench", kind="private_key")
        credential.secret = lab.client_key
        credential.save()
        profile = RequirementProfile.objects.get(key="gpustack-2.0")
        workers_only = Cluster.objects.create(name="hosts", profile=profile)
        for host in hosts:
            Node.objects.create(cluster=workers_only, name=host.spec.name, address=host.address, credential=credential)
        timed_audit(workers_only, "(warm-up, host keys trusted on first use)")
        runs = []
        for run in range(args.runs):
            if args.runs > 1:
                print(f"-- run {run + 1} of {args.runs}")
            spy = start_profile(worker.pid, args.profile) if args.profile and run == 0 else None
            with CpuMeter(worker.pid, len(hosts), children=True) as worker_cpu:
                a, _ = timed_audit(workers_only, "(a) cluster audit, host checks")
            if spy is not None:
                stop_profile(spy, args.profile)
            with CpuMeter(os.getpid()):
                c = paramiko_floor(lab, hosts, args.concurrency)
            with CpuMeter(os.getpid(), len(hosts)) as client_cpu:
                c_probe = paramiko_probe_floor(lab, hosts, args.concurrency)
            runs.append((a, c, c_probe, worker_cpu.own / len(hosts), client_cpu.own / len(hosts)))
        a = statistics.median(r[0] for r in runs)
        c = statistics.median(r[1] for r in runs)
        with_matrix = None if args.skip_matrix else Cluster.objects.create(name="matrix", profile=profile)
        for i, host in enumerate(hosts if with_matrix is not None else []):
            Node.objects.create(
                cluster=with_matrix,
                name=host.spec.name,
                address=host.address,
                credential=credential,
                role="server" if i == 0 else "worker",
            )
        if with_matrix is not None:
            timed_audit(with_matrix, "(warm-up with matrix)")
            b, _ = timed_audit(with_matrix, "(b) cluster audit with connectivity matrix")
            audit = Audit.objects.filter(cluster=with_matrix).first()
            statuses = sorted(set(audit.paths.values_list("status", flat=True)))
            print(
                f"    matrix alone: {(audit.finished - audit.network_started).total_seconds():.2f} s, "
                f"{audit.paths.count()} paths, path statuses {statuses}"
            )
        rss = [peak_rss_mib(pid) for pid in worker_pids(worker.pid)]
        print(
            f"worker peak RSS per process (MiB): {', '.join(f'{r:.0f}' for r in rss)} ({args.pool} pool, "
            f"concurrency {args.concurrency})"
        )
        over_c = statistics.median(r[0] / r[1] for r in runs)
        over_c_probe = statistics.median(r[0] / r[2] for r in runs)
        print(
            f"ratio (a)/(c) = {over_c:.2f}   ratio (a)/(c') = {over_c_probe:.2f} (the portal's own overhead; goal "
            f"<= 1.2)   time per host (a) = {a / len(hosts) * 1000:.0f} ms"
            + (f"   (medians of {args.runs} runs)" if args.runs > 1 else "")
        )
        print(
            f"CPU per node: the Celery worker {statistics.median(r[3] for r in runs) * 1000:.1f} ms, the bare "
            f"client (c') {statistics.median(r[4] for r in runs) * 1000:.1f} ms"
            + (f" (medians of {args.runs} runs)" if args.runs > 1 else "")
            + f"; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        if not args.skip_ansible:
            d = ansible_setup(lab, hosts)
            if d:
                print(f"ratio (d)/(a) = {d / a:.1f}")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        lab.close()
        redis_server.terminate()
    if not args.skip_pages:
        server_side_pages()


if __name__ == "__main__":
    main()
