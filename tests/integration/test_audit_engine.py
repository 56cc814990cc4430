"""The audit engine end to end: real sshd test hosts, a real Redis and a real Celery worker."""

import json
import re
import time

import pytest
from django.core.management import call_command

from checks.catalog import HOST_CHECK_IDS
from checks.choices import RunState
from checks.models import Audit, NodeAudit
from checks.services import audit_enqueue, audit_start
from inventory.choices import HostKeyState
from inventory.models import Accelerator, Credential, DriverInstall, HostKey
from inventory.services import host_key_accept
from tests.lab import nodes
from tests.lab.hosts import execs

from .fixtures import add_lab_nodes, checks_of, lab_credential, make_cluster, save_output, wait_for_audit

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

HOST_CHECKS = ("ssh.connect", *HOST_CHECK_IDS)


@pytest.fixture(scope="module")
def fleet(lab):
    """The test hosts of this module, started once."""
    specs = [
        nodes.nvidia_healthy("gpu-ok"),
        nodes.plain("mint", nodes.MINT_21),
        nodes.plain("bionic", nodes.UBUNTU_1804),
        nodes.ppc64le("power"),
        nodes.nvidia_broken_driver("gpu-nodriver"),
        nodes.ascend_without_runtime("npu-noruntime"),
        nodes.without_ntp("no-ntp"),
        nodes.hangs("stuck"),
        nodes.plain("wrong-key", authorized_key=_other_public_key()),
        nodes.plain("wrong-password", root_password="the-real-password"),
    ]
    return {spec.name: lab.add(spec) for spec in specs}


def _other_public_key() -> str:
    import subprocess
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{folder}/k"], check=True)
        return Path(f"{folder}/k.pub").read_text().strip()


def test_cluster_audit_through_celery(lab, fleet, celery_worker):
    # given: one cluster holding every case, the keyed nodes on the lab key, one node on a wrong password
    cluster = make_cluster("lab")
    key = lab_credential(lab)
    keyed = [n for name, n in fleet.items() if name != "wrong-password"]
    add_lab_nodes(cluster, keyed, key)
    wrong_password = Credential(name="wrong-pw", kind="password")
    wrong_password.secret = "not-the-password"
    wrong_password.save()
    add_lab_nodes(cluster, [fleet["wrong-password"]], wrong_password)
    started = time.monotonic()

    # when
    audit = audit_start(cluster=cluster)
    audit_enqueue(audit)
    audit = wait_for_audit(audit.pk)
    elapsed = time.monotonic() - started

    # then: every node reached a final state within the probe time-out, the hung one included
    assert audit.state == RunState.DONE and audit.status == "error"
    assert set(NodeAudit.objects.filter(audit=audit).values_list("state", flat=True)) == {"done"}
    assert elapsed < 8 + 20, f"the audit took {elapsed:.1f} s"
    save_output("audit-lab.json", json.dumps(_document(audit.pk), indent=2))

    ok = checks_of(audit.pk, "gpu-ok")
    # (no GPUStack container runs there yet: gpustack.deployment does not apply)
    assert {c: ok[c].status for c in HOST_CHECKS} == {
        **{c: "pass" for c in HOST_CHECKS},
        "gpustack.deployment": "skip",
    }
    assert ok["accelerator.nvidia.driver"].status == "pass"
    assert ok["accelerator.nvidia.driver"].summary == "1 x NVIDIA H100 80GB HBM3, driver 590.48.01, CUDA 13.1"
    assert ok["accelerator.nvidia.toolkit"].status == "pass"
    assert "runtime `nvidia` registered" in ok["accelerator.nvidia.toolkit"].summary
    assert ok["os.supported"].summary == "Ubuntu 22.04 (>= 20.04)"
    assert "accelerator.nvidia.version" not in ok  # gpustack-2.0 has no version floor

    mint = checks_of(audit.pk, "mint")["os.supported"]
    assert mint.status == "warn" and "not tested by GPUStack" in mint.summary and "Ubuntu" in mint.summary

    bionic = checks_of(audit.pk, "bionic")["os.supported"]
    assert bionic.status == "fail" and bionic.summary == "Ubuntu 18.04 is below GPUStack's minimum Ubuntu 20.04"
    assert "Ubuntu >= 20.04" in bionic.remediation and "Ubuntu 18.04" in bionic.remediation  # the floor and this node

    power = checks_of(audit.pk, "power")["os.architecture"]
    assert power.status == "fail" and power.summary.startswith("ppc64le is not AMD64 or ARM64")

    nodriver = checks_of(audit.pk, "gpu-nodriver")["accelerator.nvidia.driver"]
    assert nodriver.status == "fail"
    assert "nvidia-smi failed (exit 9)" in nodriver.summary and "couldn't communicate" in nodriver.summary
    assert "NVIDIA GPU Driver" in nodriver.remediation

    ascend = checks_of(audit.pk, "npu-noruntime")
    assert ascend["accelerator.ascend.driver"].status == "pass"
    assert ascend["accelerator.ascend.driver"].summary.startswith("8 x Ascend 910A, driver 22.0.3.1")
    assert ascend["accelerator.ascend.toolkit"].status == "fail"
    assert ascend["accelerator.ascend.toolkit"].summary == "Ascend Docker Runtime is not installed"

    ntp = checks_of(audit.pk, "no-ntp")["time.ntp"]
    assert ntp.status == "fail" and "no NTP implementation installed" in ntp.summary
    assert ntp.commands == [
        "DEBIAN_FRONTEND=noninteractive apt-get install -y chrony",
        "systemctl enable --now chrony",
    ]

    wrong_key = checks_of(audit.pk, "wrong-key")
    assert wrong_key["ssh.connect"].status == "fail"
    assert (
        wrong_key["ssh.connect"].summary.startswith("auth rejected: root@")
        and "key rejected" in wrong_key["ssh.connect"].summary
    )
    assert {wrong_key[c].status for c in HOST_CHECKS[1:]} == {"error"}

    wrong_pw = checks_of(audit.pk, "wrong-password")["ssh.connect"]
    assert wrong_pw.status == "fail" and "password rejected" in wrong_pw.summary

    stuck = NodeAudit.objects.get(audit=audit, node__name="stuck")
    assert stuck.status == "error" and "did not finish within 8 s" in stuck.error
    assert checks_of(audit.pk, "stuck")["ssh.connect"].status == "pass"
    assert checks_of(audit.pk, "stuck")["os.supported"].status == "error"
    assert (stuck.finished - stuck.started).total_seconds() < 8 + 5

    # the inventory learned the devices and installs
    h100 = Accelerator.objects.get(node__name="gpu-ok", node__cluster=cluster)
    assert (h100.vendor, h100.model, h100.memory_mib, h100.pci_address) == (
        "nvidia",
        "NVIDIA H100 80GB HBM3",
        81559,
        "0000:00:09.0",
    )
    installs = dict(DriverInstall.objects.filter(node__name="gpu-ok").values_list("name", "version"))
    assert installs["nvidia driver"] == "590.48.01" and installs["Docker Engine"] == "24.0.7"
    assert installs["NVIDIA Container Toolkit"] == "1.17.8"
    assert Accelerator.objects.filter(node__name="npu-noruntime").count() == 8


def _document(audit_id: int) -> dict:
    from checks.selectors.audits import audit_detail

    return audit_detail(audit_id=audit_id)


def test_changed_host_key_is_refused_until_accepted(lab, fleet, settings):
    # given: a node audited once, so its key is trusted on first use
    cluster = make_cluster("keys")
    node = add_lab_nodes(cluster, [fleet["mint"]], lab_credential(lab))[0]
    call_command("audit", "--cluster", "keys", "--json", stdout=open("/dev/null", "w"))
    first = HostKey.objects.get(node=node)
    assert first.state == HostKeyState.TRUSTED
    # when: the node is reinstalled with a new host key
    lab.replace_host_key(fleet["mint"])
    before = execs(fleet["mint"])
    with pytest.raises(SystemExit) as exit_info:
        call_command("audit", "--cluster", "keys", "--json", stdout=open("/dev/null", "w"))
    # then: refused, nothing run on it, the new key waits for an admin
    assert exit_info.value.code == 1
    audit = Audit.objects.filter(cluster=cluster).first()
    ssh = checks_of(audit.pk, "mint")["ssh.connect"]
    assert ssh.status == "fail" and ssh.summary.startswith("host key changed:") and first.fingerprint in ssh.summary
    assert execs(fleet["mint"]) == before
    pending = HostKey.objects.get(node=node, state=HostKeyState.PENDING)
    # when: an admin accepts the new key, the next audit goes through
    host_key_accept(host_key=pending)
    call_command("audit", "--cluster", "keys", "--json", stdout=open("/dev/null", "w"))
    latest = Audit.objects.filter(cluster=cluster).first()
    assert checks_of(latest.pk, "mint")["ssh.connect"].status == "pass"
    assert HostKey.objects.get(pk=first.pk).state == HostKeyState.RETIRED


def test_one_connection_and_one_exec_per_node(lab, fleet):
    # given
    cluster = make_cluster("count")
    add_lab_nodes(cluster, [fleet["gpu-ok"]], lab_credential(lab))
    logins, commands = lab.accepted_logins(fleet["gpu-ok"]), execs(fleet["gpu-ok"])
    connections = lab.connections(fleet["gpu-ok"])
    # when
    call_command("audit", "--cluster", "count", "--json", stdout=open("/dev/null", "w"))
    # then
    assert lab.connections(fleet["gpu-ok"]) - connections == 1
    assert lab.accepted_logins(fleet["gpu-ok"]) - logins == 1
    assert execs(fleet["gpu-ok"]) - commands == 1


def test_audit_command_json_contract_and_exit_codes(lab, fleet, capsys):
    import jsonschema

    # given
    cluster = make_cluster("contract")
    add_lab_nodes(cluster, [fleet["gpu-ok"]], lab_credential(lab))
    # when: a clean node
    call_command("audit", "--cluster", "contract", "--json")
    document = json.loads(capsys.readouterr().out)
    # then
    jsonschema.validate(document, AUDIT_SCHEMA)
    node = document["nodes"][0]
    assert (document["cluster"], document["profile"], node["name"], node["status"]) == (
        "contract",
        "gpustack-2.0",
        "gpu-ok",
        "pass",
    )
    assert node["facts"]["os"] == {"id": "ubuntu", "version_id": "22.04", "pretty_name": "Ubuntu 22.04.4 LTS"}
    assert node["facts"]["accelerators"][0]["memory_mib"] == 81559
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", document["started"])
    # when: a failing node, then bad usage
    add_lab_nodes(cluster, [fleet["bionic"]], lab_credential(lab))
    with pytest.raises(SystemExit) as failing:
        call_command("audit", "--cluster", "contract", "--json")
    jsonschema.validate(json.loads(capsys.readouterr().out), AUDIT_SCHEMA)
    assert failing.value.code == 1
    # bad usage, through manage.py itself for the real exit status
    for arguments, message in [
        (["--cluster", "no-such-cluster"], "no cluster named 'no-such-cluster'"),
        ([], "the following arguments are required: --cluster"),
        (["--cluster", "contract", "--node", "ghost"], "no enabled node named ghost"),
    ]:
        result = _manage("audit", "--json", *arguments)
        assert (result.returncode, message in result.stderr) == (2, True), result.stderr


def _manage(*arguments: str):
    import os
    import subprocess
    import sys

    from django.conf import settings

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "DATABASE_URL": f"sqlite:///{settings.DATABASES['default']['NAME']}",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(settings.BASE_DIR),
        timeout=60,
    )


CHECK_SCHEMA = {
    "type": "object",
    "required": ["id", "status", "summary", "evidence", "remediation", "commands"],
    "properties": {
        "id": {
            "type": "string",
            "pattern": r"^(ssh|os|time|container|host|gpustack|accelerator|ports|network|cluster)\.[a-z_.]+$",
        },
        "status": {"enum": ["pass", "warn", "fail", "error", "skip"]},
        "summary": {"type": "string", "minLength": 1},
        "evidence": {"type": "string"},
        "remediation": {"type": "string"},
        "commands": {"type": "array", "items": {"type": "string"}},
    },
}
AUDIT_SCHEMA = {
    "type": "object",
    "required": ["audit", "cluster", "profile", "started", "finished", "nodes"],
    "properties": {
        "audit": {"type": "integer"},
        "cluster": {"type": "string"},
        "profile": {"type": "string"},
        "started": {"type": "string"},
        "finished": {"type": "string"},
        "nodes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "address", "role", "status", "facts", "checks"],
                "properties": {
                    "role": {"enum": ["server", "worker"]},
                    "status": {"enum": ["pass", "warn", "fail", "error", "skip"]},
                    "facts": {
                        "type": "object",
                        "required": ["os", "arch", "accelerators"],
                        "properties": {
                            "os": {"type": "object", "required": ["id", "version_id"]},
                            "accelerators": {
                                "type": "array",
                                "items": {"type": "object", "required": ["vendor", "model", "memory_mib"]},
                            },
                        },
                    },
                    "checks": {"type": "array", "minItems": 1, "items": CHECK_SCHEMA},
                },
            },
        },
    },
}


def test_audit_through_the_api_end_to_end(lab, fleet, celery_worker, client, django_user_model):
    # given: an operator's token and a cluster of two lab nodes
    from portal.tokens import api_token_create

    user = django_user_model.objects.create_superuser("ops", password="x")
    _, token = api_token_create(user=user, name="pipeline")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    cluster = make_cluster("api")
    add_lab_nodes(cluster, [fleet["gpu-ok"], fleet["bionic"]], lab_credential(lab))
    # when: started through the API and polled
    started = client.post(
        "/api/v1/audits", data=json.dumps({"cluster": "api"}), content_type="application/json", **auth
    )
    assert started.status_code == 202, started.content
    deadline = time.monotonic() + 60
    while True:
        body = client.get(started["Location"], **auth).json()
        if body["state"] == "done" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    # then
    assert body["state"] == "done" and body["progress"]["finished"] == 2 and body["status"] == "fail"
    nodes = {n["name"]: n for n in body["nodes"]}
    assert nodes["gpu-ok"]["status"] == "pass"
    assert {c["id"]: c["status"] for c in nodes["bionic"]["checks"]}["os.supported"] == "fail"
    history = client.get(
        f"/api/v1/nodes/{cluster.nodes.get(name='bionic').pk}/checks?check_id=os.supported", **auth
    ).json()
    assert history["items"][0]["status"] == "fail"
