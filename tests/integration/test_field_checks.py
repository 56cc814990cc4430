"""Issue 20 on real sshd test hosts, profile gpustack-2.2: the field checks operators hit and the ninth vendor.

One lab for the module, a few hosts: a server, a worker whose NVIDIA runtime is not Docker's default, one whose
Docker service goes through an HTTPS proxy with NO_PROXY=10.0.0.0/8, two cloned workers sharing a machine-id, one on
two networks, and one with T-Head PPUs. Audits run the way `manage.py audit --json` runs them."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from inventory.choices import NodeRole
from inventory.models import AcceleratorRule, Node, RequirementProfile
from tests.lab import nodes
from tests.lab.hosts import NodeSpec
from tests.lab.nodes import TIME_TOOLS, UBUNTU_2204, cat, docker_tool, fixture

from .fixtures import add_lab_nodes, checks_of, lab_credential, make_cluster, save_output

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

CLONED_MACHINE_ID = "5f0c1e9a2b7d4c3e8a6f1b2c3d4e5f60"
THEAD_PCI = [(f"0000:{bus}:00.0", "0x1ded", "0x120000", "0x8000") for bus in ("a7", "a8", "a9")]


def _ppu_worker(lab, name: str) -> NodeSpec:
    """PPUs on the bus, `ppu-smi` printing the texts built from GPUStack's recorded detector output, the SDK under
    /usr/local/PPU_SDK and a CDI spec in /var/run/cdi, each only inside the node (tmpfs in its mount namespace)."""
    spec = NodeSpec(
        name=name,
        os_release=UBUNTU_2204,
        pci=THEAD_PCI,
        tools={
            "ppu-smi": 'case "$1" in -L) '
            + cat(fixture("ppu-smi/ppu-zw810e-x16_L_built.txt"))
            + ";; --query-ppu=*) "
            + cat(fixture("ppu-smi/ppu-zw810e-x16_query-ppu-csv-nounits_built.csv"))
            + ";; *) exit 2;; esac",
            "docker": docker_tool(fixture("docker-info/docker-archive_docker_v27.5.1.txt")),
            **TIME_TOOLS,
        },
    )
    bin_dir = lab.root / name / "bin"
    spec.setup = [
        "mount -t tmpfs preflight-usr-local /usr/local",
        "mkdir -p /usr/local/bin /usr/local/PPU_SDK/bin",
        f"mount --bind '{bin_dir}' /usr/local/bin",
        "mount -t tmpfs preflight-run /run",
        "mkdir -p /run/sshd /run/cdi",
        'echo \'{"cdiVersion": "0.6.0", "kind": "alibabacloud.com/ppu", "devices": []}\' '
        "> /run/cdi/alibabacloud.com-ppu.json",
    ]
    return spec


def _two_networks(name: str) -> NodeSpec:
    spec = nodes.plain(name)
    spec.setup = [
        "ip link add eth1 type veth peer name eth1peer || true",
        "ip addr add 192.168.77.5/24 dev eth1 || true",
        "ip link set eth1peer up",
        "ip link set eth1 up",
    ]
    return spec


def _behind_proxy(name: str) -> NodeSpec:
    spec = nodes.plain(name)
    spec.tools["systemctl"] = cat(fixture("proxy/systemctl-show-docker-environment_cidr-no-proxy.txt"))
    return spec


@pytest.fixture(scope="module")
def fleet(lab):
    specs = [
        nodes.plain("f-srv"),
        nodes.nvidia_runtime_not_default("f-runtime"),
        _behind_proxy("f-proxy"),
        nodes.plain("f-clone1", machine_id=CLONED_MACHINE_ID),
        nodes.plain("f-clone2", machine_id=CLONED_MACHINE_ID),
        _two_networks("f-twoif"),
        _ppu_worker(lab, "f-ppu"),
    ]
    return {spec.name: lab.add(spec) for spec in specs}


def _audit(cluster_name: str, capsys) -> dict:
    try:
        call_command("audit", "--cluster", cluster_name, "--json")
    except SystemExit:
        pass  # exit status 1: some check failed, as these nodes mean to
    output = capsys.readouterr().out
    save_output(f"field-{cluster_name}.json", output)
    return json.loads(output)


def _thead_rule() -> None:
    """gpustack-2.2 supports T-Head PPU (the profile's data row comes with the profile refresh; made here so this
    test stands alone, and left as it is when the row exists)."""
    AcceleratorRule.objects.get_or_create(
        profile=RequirementProfile.objects.get(key="gpustack-2.2"),
        vendor="thead",
        defaults={
            "experimental": True,
            "driver_name": "T-Head PPU driver",
            "toolkit_name": "T-Head PPU SDK",
            "toolkit_url": "https://help.aliyun.com/zh/document_detail/2879821.html",
        },
    )


def test_field_checks_on_a_gpustack_22_cluster(lab, fleet, capsys):
    # given: the server and five workers of the field cases, on profile gpustack-2.2
    cluster = make_cluster("field", "gpustack-2.2")
    key = lab_credential(lab)
    add_lab_nodes(cluster, [fleet["f-srv"]], key, role=NodeRole.SERVER)
    add_lab_nodes(cluster, [fleet[n] for n in ("f-runtime", "f-proxy", "f-clone1", "f-clone2", "f-twoif")], key)
    server = fleet["f-srv"].address
    # when
    document = _audit("field", capsys)
    audit = document["audit"]
    # then: NVIDIA registered but not the default warns container.runtime, with the `--runtime nvidia` advice
    runtime = checks_of(audit, "f-runtime")["container.runtime"]
    assert runtime.status == "warn" and "--runtime nvidia" in runtime.summary, runtime.summary
    assert "nvidia-ctk runtime configure --runtime=docker --set-as-default" in runtime.commands
    # HTTPS_PROXY with NO_PROXY=10.0.0.0/8 fails network.proxy, naming the missing addresses
    proxy = checks_of(audit, "f-proxy")["network.proxy"]
    assert proxy.status == "fail", proxy.summary
    assert f"does not list {server}, {fleet['f-proxy'].address}" in proxy.summary
    assert checks_of(audit, "f-srv")["network.proxy"].status == "pass"
    # two workers with one machine-id both fail cluster.unique, each naming the other
    one, two = checks_of(audit, "f-clone1")["cluster.unique"], checks_of(audit, "f-clone2")["cluster.unique"]
    assert (one.status, two.status) == ("fail", "fail")
    assert "same machine-id as f-clone2" in one.summary and "same machine-id as f-clone1" in two.summary
    assert checks_of(audit, "f-twoif")["cluster.unique"].status == "pass"
    # a worker with two global IPv4 interfaces and no NCCL_SOCKET_IFNAME warns network.address
    address = checks_of(audit, "f-twoif")["network.address"]
    assert address.status == "warn" and "no NCCL_SOCKET_IFNAME" in address.summary, address.summary
    assert "eth1 (192.168.77.5)" in address.summary
    assert checks_of(audit, "f-clone1")["network.address"].status == "pass"
    # the JSON carries the new checks like every other
    by_name = {node["name"]: node for node in document["nodes"]}
    assert {"cluster.unique", "network.proxy", "network.address", "host.resources"} <= {
        check["id"] for check in by_name["f-clone1"]["checks"]
    }
    assert by_name["f-clone1"]["status"] == "fail"


def test_thead_worker_shows_on_the_node_page_and_in_the_json(lab, fleet, capsys, client):
    # given: a PPU worker on a gpustack-2.2 cluster whose profile has a thead rule
    _thead_rule()
    cluster = make_cluster("ppu", "gpustack-2.2")
    add_lab_nodes(cluster, [fleet["f-ppu"]], lab_credential(lab))
    # when
    document = _audit("ppu", capsys)
    # then: detected from its PCI id, read from ppu-smi, the SDK and the CDI spec found
    node = document["nodes"][0]
    checks = {check["id"]: check for check in node["checks"]}
    assert checks["accelerator.present"]["summary"] == "accelerators found: 3 T-Head PPU"
    assert checks["accelerator.thead.driver"]["status"] == "pass"
    assert checks["accelerator.thead.driver"]["summary"] == "16 x PPU-ZW810E, driver 2.1.0-ra1f23041713"
    toolkit = checks["accelerator.thead.toolkit"]
    assert toolkit["status"] == "pass" and "/var/run/cdi/alibabacloud.com-ppu.json" in toolkit["evidence"]
    first = node["facts"]["accelerators"][0]
    assert (first["vendor"], first["model"], first["memory_mib"]) == ("thead", "PPU-ZW810E", 98304)
    # and on the node page
    client.force_login(get_user_model().objects.create_superuser("ppu-admin", password="x"))
    page = client.get(f"/nodes/{Node.objects.get(name='f-ppu').pk}/").content.decode()
    assert "accelerator.thead.driver" in page and "16 x PPU-ZW810E" in page and "T-Head PPU" in page
