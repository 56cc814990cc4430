"""The rules the refreshed profiles (gpustack-2.2 at v2.2.3, gpustack-2.3) add: cluster options choose the ports and
the paths, the OS table is advice, Docker Desktop fails on a worker, NVIDIA's driver and compute capability floors."""

import pytest

from checks.catalog import evaluate_node
from checks.connectivity import MatrixNode, plan_paths
from checks.spec import AcceleratorRuleSpec, NodeContext, PortRuleSpec, ProfileSpec

from .test_catalog import DOCKER_TOOLS, NVIDIA_PCI, NVIDIA_RULE, OS_TABLE, UBUNTU, by_id, node

PORTS = (
    PortRuleSpec("server", 80, 80, "tcp", "UI"),
    PortRuleSpec("server", 443, 443, "tcp", "TLS", "tls"),
    PortRuleSpec("server", 10161, 10161, "tcp", "metrics", reach="none"),
    PortRuleSpec("server", 30079, 30079, "tcp", "proxy", reach="none"),
    PortRuleSpec("server", 30080, 30080, "tcp", "internal API", "gateway_enabled", reach="none"),
    PortRuleSpec("server", 5432, 5432, "tcp", "PostgreSQL", "builtin_database", reach="none"),
    PortRuleSpec("server", 19090, 19090, "tcp", "Prometheus", "observability", reach="none"),
    PortRuleSpec("server", 15021, 15021, "tcp", "gateway health", "gateway_embedded", reach="none"),
    PortRuleSpec("server", 18443, 18443, "tcp", "gateway apiserver", "gateway_embedded", reach="none"),
    PortRuleSpec("worker", 10150, 10150, "tcp", "worker"),
    PortRuleSpec("worker", 10151, 10151, "tcp", "worker metrics"),
    PortRuleSpec("worker", 40000, 40063, "tcp", "inference", reach="direct_mode"),
    PortRuleSpec("worker", 41000, 41999, "tcp", "Ray", "distributed_vllm", True, reach="none"),
)
NVIDIA_23 = AcceleratorRuleSpec(
    **{
        **NVIDIA_RULE.__dict__,
        "min_version": "12.8",
        "min_version_of": "CUDA",
        "min_driver_version": "570",
        "min_compute_capability": "6.0",
        "warn_compute_capability": "7.0",
    }
)
PROFILE_23 = ProfileSpec(
    "gpustack-2.3",
    os_rules=OS_TABLE,
    accelerator_rules={"nvidia": NVIDIA_23},
    port_rules=PORTS,
    check_reserved_ports=True,
    os_table_advisory=True,
    docker_desktop_fails_on_worker=True,
)
SERVER = NodeContext("srv", "server")
WORKER = NodeContext("w1", "worker")


def _listening(*ports: int, address: str = "0.0.0.0") -> str:
    return "".join(f'LISTEN 0 511 {address}:{p} 0.0.0.0:* users:(("squatter",pid=4{p},fd=6))\n' for p in ports)


@pytest.mark.parametrize(
    ("_case", "ss", "context", "status", "summary"),
    [
        ("server holding the proxy port", _listening(30079), SERVER, "fail", "30079 held by squatter (pid 430079)"),
        ("server holding the gateway's 15021", _listening(15021), SERVER, "fail", "15021 held by squatter"),
        (
            "loopback-only gateway port held on 127.0.0.1",
            _listening(18443, address="127.0.0.1"),
            SERVER,
            "fail",
            "18443 held by squatter",
        ),
        ("worker holding 15021: no gateway on a worker", _listening(15021), WORKER, "pass", "required ports free"),
        (
            "gateway disabled: neither its ports nor 30080",
            _listening(15021, 30080),
            NodeContext("srv", "server", gateway="disabled"),
            "pass",
            "required ports free",
        ),
        (
            "external database frees 5432",
            _listening(5432),
            NodeContext("srv", "server", external_database=True),
            "pass",
            "required ports free",
        ),
        ("embedded PostgreSQL needs 5432", _listening(5432), SERVER, "fail", "5432 held by squatter"),
        (
            "observability off frees 19090",
            _listening(19090),
            NodeContext("srv", "server", builtin_observability=False),
            "pass",
            "required ports free",
        ),
    ],
)
def test_ports_available_follows_the_cluster_options(_case, ss, context, status, summary):
    # when
    result = by_id(evaluate_node(node(ss=ss), PROFILE_23, context))["ports.available"]
    # then
    assert result.status == status and summary in result.summary


@pytest.mark.parametrize(
    ("_case", "os_release", "status", "summary"),
    [
        ("listed, at its minimum", 'ID=debian\nVERSION_ID="11"\nPRETTY_NAME="Debian 11"', "pass", "Debian 11 (>= 11)"),
        (
            "listed, below its minimum",
            'ID=ubuntu\nVERSION_ID="18.04"\nPRETTY_NAME="Ubuntu 18.04.6 LTS"',
            "warn",
            "Ubuntu 18.04 is below Ubuntu 20.04: not in the list GPUStack 2.0 tested",
        ),
        (
            "another Linux",
            'ID="almalinux"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\nPRETTY_NAME="AlmaLinux 9.4"',
            "warn",
            "AlmaLinux 9.4 is not in the list GPUStack 2.0 tested; closest listed parent: RHEL",
        ),
    ],
)
def test_os_table_is_advice_in_the_refreshed_profiles(_case, os_release, status, summary):
    # when
    result = by_id(evaluate_node(node(os_release=os_release), PROFILE_23, WORKER))["os.supported"]
    # then
    assert (result.status, result.summary) == (status, summary)


def test_not_linux_still_fails_with_an_advisory_table():
    # given
    facts = node(os_release=UBUNTU)
    facts.kernel = "Darwin"
    # when
    result = by_id(evaluate_node(facts, PROFILE_23, WORKER))["os.supported"]
    # then
    assert (result.status, result.summary) == ("fail", "Darwin is not Linux")


@pytest.mark.parametrize(
    ("_case", "context", "status"),
    [
        ("worker", WORKER, "fail"),
        ("server", SERVER, "warn"),
        ("server running a worker", NodeContext("s", "server", server_runs_worker=True), "fail"),
    ],
)
def test_docker_desktop_fails_on_a_worker(_case, context, status):
    # given
    facts = node(tools=DOCKER_TOOLS, docker_info="Server Version: 27.2.0\nOperating System: Docker Desktop\n")
    # when
    result = by_id(evaluate_node(facts, PROFILE_23, context))["container.docker"]
    # then
    assert result.status == status and "Docker Desktop 27.2.0" in result.summary


def _nvidia(read_fixture, table: str, compute_cap: str = ""):
    extra = {"nvidia_smi_cc": read_fixture(compute_cap)} if compute_cap else {}
    return node(
        pci=NVIDIA_PCI, tools=DOCKER_TOOLS + "nvidia-smi /usr/bin/nvidia-smi\n", nvidia_smi=read_fixture(table), **extra
    )


def test_cuda_12_4_and_driver_550_fail_naming_both_floors(read_fixture):
    # given
    facts = _nvidia(read_fixture, "own:nvidia-smi/slackr31337-wyoming-piper-gpu-pr20_tesla-p4_550.135_table.txt")
    # when
    result = by_id(evaluate_node(facts, PROFILE_23, WORKER))["accelerator.nvidia.version"]
    # then
    assert result.status == "fail"
    assert result.summary == "CUDA 12.4 is below the required 12.8; driver 550.135 is below the required 570"
    assert "at least 12.8 (this node has 12.4)" in result.remediation
    assert "GPU 0 Tesla P4: compute capability (not reported)" in result.evidence


def test_pascal_at_compute_capability_6_0_warns_naming_7_0_and_the_gpu(read_fixture):
    # given
    facts = _nvidia(
        read_fixture,
        "own:nvidia-smi/built_tesla-p100_580.95.05_table.txt",
        "own:nvidia-smi/built_query-gpu-compute-cap_tesla-p100.csv",
    )
    # when
    result = by_id(evaluate_node(facts, PROFILE_23, WORKER))["accelerator.nvidia.version"]
    # then
    assert result.status == "warn"
    assert result.summary.startswith("GPU 0 Tesla P100-PCIE-16GB has compute capability 6.0, below 7.0")
    assert "vLLM" in result.remediation and result.commands == []


def test_compute_capability_below_6_0_fails(read_fixture):
    # given: a Maxwell-class answer (5.2) for the same GPU row
    facts = _nvidia(read_fixture, "own:nvidia-smi/built_tesla-p100_580.95.05_table.txt")
    facts.vendors["nvidia"].report.devices[0].compute_capability = "5.2"
    # when
    result = by_id(evaluate_node(facts, PROFILE_23, WORKER))["accelerator.nvidia.version"]
    # then
    assert result.status == "fail" and "compute capability 5.2, below GPUStack's floor 6.0" in result.summary


def test_a_driver_that_does_not_know_compute_cap_is_judged_on_the_rest(read_fixture):
    # given
    facts = _nvidia(
        read_fixture,
        "shared:nvidia-smi/nge-capture_h100-80gb-hbm3_590.48.01_idle_table.txt",
        "own:nvidia-smi/built_query-gpu-compute-cap_unknown-field.txt",
    )
    # when
    result = by_id(evaluate_node(facts, PROFILE_23, WORKER))["accelerator.nvidia.version"]
    # then
    assert (result.status, result.summary) == ("pass", "CUDA 13.1 (>= 12.8); driver 590.48.01 (>= 570)")


SRV = MatrixNode("srv", "server", "10.0.0.1")
W1, W2 = MatrixNode("w1", "worker", "10.0.0.11"), MatrixNode("w2", "worker", "10.0.0.12")


def _paths(**options) -> dict[str, set[tuple[int, int]]]:
    plans = plan_paths([SRV, W1, W2], PROFILE_23, NodeContext("-", "worker", **options))
    by_check: dict[str, set[tuple[int, int]]] = {}
    for plan in plans:
        if not plan.not_needed:
            by_check.setdefault(plan.check_id, set()).update((r.first_port, r.last_port) for r in plan.rules)
    return by_check


@pytest.mark.parametrize(
    ("_case", "options", "to_worker"),
    [
        ("worker mode", {"proxy_mode": "worker"}, {(10150, 10150), (10151, 10151)}),
        ("direct mode", {"proxy_mode": "direct"}, {(10150, 10150), (10151, 10151), (40000, 40063)}),
        ("tunnel mode", {"proxy_mode": "tunnel"}, None),
    ],
)
def test_proxy_mode_chooses_the_server_to_worker_ports(_case, options, to_worker):
    # when
    paths = _paths(**options)
    # then
    assert paths.get("network.server_to_worker") == to_worker
    assert paths["network.worker_to_server"] == {(80, 80)}  # loopback and node-local ports are never path-checked


def test_tunnel_mode_plans_server_to_worker_paths_as_not_needed():
    # when
    plans = plan_paths(
        [SRV, W1, W2], PROFILE_23, NodeContext("-", "worker", proxy_mode="tunnel", distributed_vllm=True)
    )
    # then
    s2w = [p for p in plans if p.check_id == "network.server_to_worker"]
    assert len(s2w) == 2 and {p.not_needed for p in s2w} == {"not needed: tunnel mode"}
    w2w = [p for p in plans if p.check_id == "network.worker_to_worker"]
    assert len(w2w) == 2 and all(not p.not_needed and p.ports[0] == 41000 for p in w2w)
