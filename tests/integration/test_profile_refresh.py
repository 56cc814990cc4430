"""The refreshed gpustack-2.2 profile on real sshd test hosts: the ports GPUStack's prerun binds, tunnel mode, and
NVIDIA's CUDA and compute capability floors. One small lab (a server and three workers) serves every test here."""

import subprocess
import time

import pytest
from django.core.management import call_command

from checks.choices import NetworkState, RunState
from checks.models import Audit, NetworkPath
from inventory.choices import NodeRole
from tests.lab import nodes

from .fixtures import add_lab_nodes, checks_of, lab_credential, make_cluster, save_output

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

HOLD = (
    "import socket, sys, time\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(); time.sleep(600)\n"
)


def _nvidia(name: str, table: str, compute_cap: str = "") -> nodes.NodeSpec:
    spec = nodes.nvidia_healthy(name)
    answer = nodes.cat(nodes.fixture(compute_cap)) if compute_cap else "exit 0"
    spec.tools["nvidia-smi"] = (
        f'case "$1" in --query-gpu=index,compute_cap*) {answer};; --query-gpu*) exit 0;; '
        f"*) {nodes.cat(nodes.fixture(table))};; esac"
    )
    return spec


@pytest.fixture(scope="module")
def hosts(lab):
    return {
        "pr-srv": lab.add(nodes.plain("pr-srv")),
        "pr-w1": lab.add(nodes.plain("pr-w1")),
        "cuda124": lab.add(
            _nvidia("cuda124", "nvidia-smi/slackr31337-wyoming-piper-gpu-pr20_tesla-p4_550.135_table.txt")
        ),
        "pascal": lab.add(
            _nvidia(
                "pascal",
                "nvidia-smi/built_tesla-p100_580.95.05_table.txt",
                "nvidia-smi/built_query-gpu-compute-cap_tesla-p100.csv",
            )
        ),
    }


@pytest.fixture
def hold(hosts):
    """Hold TCP ports on a host with a python3 listener each; all are stopped after the test."""
    started = []

    def start(name: str, *ports: int) -> None:
        for port in ports:
            started.append(
                subprocess.Popen(["ip", "netns", "exec", hosts[name].namespace, "python3", "-c", HOLD, str(port)])
            )
        for _ in range(50):
            listening = hosts[name].exec("ss -Hltn").stdout
            if all(f":{port} " in listening for port in ports):
                return
            time.sleep(0.1)
        raise AssertionError(f"{name} did not start listening on {ports}")

    yield start
    for process in started:
        process.kill()
        process.wait()


def _audit(lab, hosts, name: str, **options) -> Audit:
    cluster = make_cluster(name, profile="gpustack-2.2", **options)
    key = lab_credential(lab)
    add_lab_nodes(cluster, [hosts["pr-srv"]], key, role=NodeRole.SERVER)
    add_lab_nodes(cluster, [hosts["pr-w1"], hosts["cuda124"], hosts["pascal"]], key)
    try:
        call_command("audit", "--cluster", name, "--json", stdout=open("/dev/null", "w"))
    except SystemExit:
        pass
    audit = Audit.objects.get(cluster=cluster)
    assert audit.state == RunState.DONE and audit.network_state == NetworkState.DONE, audit.error
    save_output(
        f"profile-refresh-{name}.txt",
        "\n".join(f"{p.check_id} {p.status}: {p.summary}" for p in audit.paths.all()),
    )
    return audit


def test_gpustack_2_2_in_tunnel_mode_on_real_hosts(lab, hosts, hold):
    # given: the server holds the proxy port and the gateway's health port (each its own process); a worker holds
    # the gateway's health port too
    hold("pr-srv", 30079, 15021)
    hold("pr-w1", 15021)
    # when
    audit = _audit(lab, hosts, "tunnel", proxy_mode="tunnel")
    # then: prerun's ports are checked on the server, and the gateway's only there
    server = checks_of(audit.pk, "pr-srv")["ports.available"]
    assert server.status == "fail"
    assert "15021 held by python3 (pid " in server.summary and "30079 held by python3 (pid " in server.summary
    assert checks_of(audit.pk, "pr-w1")["ports.available"].status == "pass"
    # and: in tunnel mode no server-to-worker path is tested, and the workers still reach the server
    s2w = NetworkPath.objects.filter(audit=audit, check_id="network.server_to_worker")
    assert s2w.count() == 3 and {p.status for p in s2w} == {"skip"}
    assert {p.summary.split(": ", 1)[1] for p in s2w} == {"not needed: tunnel mode"}
    assert not any(p.outcomes for p in s2w)
    for name in ("pr-srv", "pr-w1", "cuda124", "pascal"):
        result = checks_of(audit.pk, name)["network.server_to_worker"]
        assert result.status == "skip" and "not needed: tunnel mode" in result.summary
    w2s = NetworkPath.objects.filter(audit=audit, check_id="network.worker_to_server")
    assert {p.status for p in w2s} == {"pass"} and all(set(p.outcomes) == {"80"} for p in w2s)
    # and: NVIDIA's floors, named with the number missed
    cuda = checks_of(audit.pk, "cuda124")["accelerator.nvidia.version"]
    assert cuda.status == "fail" and cuda.summary.startswith("CUDA 12.4 is below the required 12.8")
    pascal = checks_of(audit.pk, "pascal")["accelerator.nvidia.version"]
    assert pascal.status == "warn"
    assert pascal.summary.startswith("GPU 0 Tesla P100-PCIE-16GB has compute capability 6.0, below 7.0")


def test_worker_mode_proves_only_the_worker_ports_from_the_server(lab, hosts):
    # when
    audit = _audit(lab, hosts, "workermode", proxy_mode="worker")
    # then: 10150 and 10151 (metrics, scraped by the server), not the inference range
    s2w = NetworkPath.objects.filter(audit=audit, check_id="network.server_to_worker")
    assert s2w.count() == 3 and {p.status for p in s2w} == {"pass"}
    assert all(set(p.outcomes) == {"10150", "10151"} for p in s2w)
    assert checks_of(audit.pk, "pr-srv")["ports.available"].status == "pass"
