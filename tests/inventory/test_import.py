"""Ansible inventory import: INI and YAML, groups, vars inheritance, ranges, idempotent re-import, all-or-nothing."""

import textwrap

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.core.management import call_command
from django.core.management.base import CommandError

from inventory.importers.ansible import InventoryError
from inventory.models import Cluster, Credential, Node
from inventory.services import inventory_import

pytestmark = pytest.mark.django_db


@pytest.fixture
def key_file(tmp_path):
    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    path = tmp_path / "keys" / "lab_ed25519"
    path.parent.mkdir()
    path.write_bytes(key)
    return path


INI = """\
# GPU lab
[gpustack_server]
srv1 ansible_host=10.0.0.1 ansible_user=ops ansible_password='s3cret pw'

[workers]
gpu[01:03]
gpu10 ansible_host=10.0.0.110 ansible_port=2222 ansible_user=admin

[workers:vars]
ansible_ssh_private_key_file=keys/lab_ed25519
ansible_user=ubuntu

[gpu:children]
workers

[gpu:vars]
ansible_port=2200

[storage]
nas1 ansible_host=10.0.0.200
"""

YAML = """\
all:
  vars:
    ansible_user: root
  children:
    server:
      hosts:
        head:
          ansible_host: 10.1.0.1
          ansible_password: hunter2
    workers:
      vars:
        ansible_user: gpu
        ansible_port: 2022
      hosts:
        node-[a:c]:
        node-z:
          ansible_host: 10.1.0.26
          ansible_user: special
      children:
        ascend:
          hosts:
            npu[1:5:2]:
          vars:
            ansible_port: 2023
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_ini_import_roles_vars_ranges_and_credentials(tmp_path, key_file):
    # given
    path = _write(tmp_path, "lab.ini", INI)
    # when
    report = inventory_import(text=path.read_text(), source=str(path), base_dir=tmp_path)
    # then
    cluster = Cluster.objects.get(name="lab")
    nodes = {n.name: n for n in cluster.nodes.select_related("credential")}
    assert cluster.profile.key == "gpustack-2.0"
    assert sorted(nodes) == ["gpu01", "gpu02", "gpu03", "gpu10", "srv1"]
    assert report.skipped == ["nas1"] and not Node.objects.filter(name="nas1").exists()
    srv = nodes["srv1"]
    assert (srv.role, srv.address, srv.ssh_user, srv.ssh_port) == ("server", "10.0.0.1", "ops", 22)
    assert srv.credential.kind == "password" and srv.credential.secret == "s3cret pw"
    gpu01 = nodes["gpu01"]
    # [gpu:vars] (parent) sets 2200; [workers:vars] (child, deeper) wins for the user.
    assert (gpu01.role, gpu01.address, gpu01.ssh_user, gpu01.ssh_port) == ("worker", "gpu01", "ubuntu", 2200)
    assert gpu01.credential.kind == "private_key" and gpu01.credential.secret == key_file.read_text()
    # host vars beat every group var
    assert (nodes["gpu10"].ssh_user, nodes["gpu10"].ssh_port, nodes["gpu10"].address) == ("admin", 2222, "10.0.0.110")
    assert len({n.credential_id for n in nodes.values() if n.role == "worker"}) == 1


def test_yaml_import_children_vars_ranges(tmp_path):
    # given
    path = _write(tmp_path, "prod.yml", YAML)
    # when
    inventory_import(text=path.read_text(), source=str(path), cluster_name="prod", profile_key="gpustack-2.2")
    # then
    cluster = Cluster.objects.get(name="prod")
    nodes = {n.name: n for n in cluster.nodes.all()}
    assert cluster.profile.key == "gpustack-2.2"
    assert sorted(nodes) == ["head", "node-a", "node-b", "node-c", "node-z", "npu1", "npu3", "npu5"]
    assert (nodes["head"].role, nodes["head"].ssh_user, nodes["head"].ssh_port) == ("server", "root", 22)
    assert (nodes["node-b"].role, nodes["node-b"].ssh_user, nodes["node-b"].ssh_port) == ("worker", "gpu", 2022)
    assert (nodes["node-z"].ssh_user, nodes["node-z"].address) == ("special", "10.1.0.26")
    # ascend is a child of workers: its role is worker and its deeper vars win
    assert (nodes["npu3"].role, nodes["npu3"].ssh_user, nodes["npu3"].ssh_port) == ("worker", "gpu", 2023)


def test_reimport_updates_in_place_without_duplicates(tmp_path, key_file):
    # given
    path = _write(tmp_path, "lab.ini", INI)
    inventory_import(text=path.read_text(), source=str(path), base_dir=tmp_path)
    ids = dict(Node.objects.values_list("name", "id"))
    credentials = Credential.objects.count()
    # when: same file again, then a changed address and user
    same = inventory_import(text=path.read_text(), source=str(path), base_dir=tmp_path)
    path.write_text(INI.replace("ansible_host=10.0.0.1 ansible_user=ops", "ansible_host=10.0.0.5 ansible_user=ops2"))
    changed = inventory_import(text=path.read_text(), source=str(path), base_dir=tmp_path)
    # then
    assert same.created == [] and same.updated == [] and len(same.unchanged) == 5
    assert changed.updated == ["srv1"] and changed.created == []
    assert dict(Node.objects.values_list("name", "id")) == ids
    assert Credential.objects.count() == credentials
    assert Node.objects.get(name="srv1").address == "10.0.0.5"


def test_host_in_server_and_worker_groups_sets_server_runs_worker(tmp_path):
    text = "[server]\nhead ansible_host=10.0.0.1\n[workers]\nhead\ngpu1 ansible_host=10.0.0.2\n"
    report = inventory_import(text=text, source="both.ini")
    assert report.server_runs_worker
    cluster = Cluster.objects.get(name="both")
    assert cluster.server_runs_worker and cluster.nodes.get(name="head").role == "server"


def test_format_detected_from_content_without_extension():
    inventory_import(text="[worker]\ngpu1\n", source="hosts", cluster_name="a")
    inventory_import(text="worker:\n  hosts:\n    gpu1:\n", source="hosts", cluster_name="b")
    assert Node.objects.filter(name="gpu1").count() == 2


MALFORMED = [
    ("unclosed section", "lab.ini", "[workers\ngpu1\n", 1, "missing its closing"),
    ("bad host var", "lab.ini", "[workers]\ngpu1 ansible_port\n", 2, "expected key=value"),
    ("unknown section type", "lab.ini", "[server]\nh1\n[workers:hosts]\ngpu1\n", 3, "unknown section type"),
    ("backwards range", "lab.ini", "[server]\nh1\n\n[workers]\ngpu[09:01]\n", 5, "runs backwards"),
    ("bad port", "lab.ini", "[server]\nh1\n[workers]\ngpu1 ansible_port=99999\n", 4, "not a port"),
    ("bad address", "lab.ini", "[workers]\ngpu1 ansible_host='10.0.0.1; rm -rf /'\n", 2, "not an IP address"),
    ("unclosed quote", "lab.ini", "[workers]\ngpu1 ansible_user='ops\n", 2, "cannot read line"),
    ("group cycle", "lab.ini", "[a:children]\nb\n[b:children]\na\n[workers]\ng1\n", 1, "group cycle"),
    ("bad yaml", "lab.yml", "workers:\n  hosts:\n    gpu1: {ansible_port: 22\n", 4, "invalid YAML"),
    ("yaml unknown key", "lab.yml", "workers:\n  hosts:\n    gpu1:\n  host_vars:\n    x: 1\n", 4, "unknown key"),
    ("yaml hosts as list", "lab.yml", "workers:\n  hosts:\n    - gpu1\n", 3, "must be a mapping"),
    ("yaml duplicate host", "lab.yml", "workers:\n  hosts:\n    gpu1:\n    gpu1:\n", 4, "duplicate key"),
    (
        "vaulted password",
        "lab.yml",
        "server:\n  hosts:\n    h1:\n      ansible_password: !vault |\n        $ANSIBLE_VAULT;1.1;AES256\n",
        4,
        "vaulted",
    ),
    ("templated host", "lab.ini", "[workers]\ngpu1 ansible_host={{lookup('env','X')}}\n", 2, "templated"),
    (
        "missing key file",
        "lab.ini",
        "[workers]\ngpu1 ansible_ssh_private_key_file=/nonexistent/key\n",
        2,
        "cannot read private key file",
    ),
    ("no role groups", "lab.ini", "[storage]\nnas1\n", None, "no hosts in a server group"),
]


@pytest.mark.parametrize(("_case", "name", "text", "line", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_inventory_rejected_with_line_and_nothing_written(_case, name, text, line, message, tmp_path):
    # given: a cluster that already exists, to prove it is not touched either
    inventory_import(text="[server]\nh0 ansible_host=10.0.0.9\n", source="lab.ini")
    before = (list(Node.objects.values_list("name", "address")), Credential.objects.count(), Cluster.objects.count())
    # when
    with pytest.raises(InventoryError) as exc:
        inventory_import(text=text, source=name, base_dir=tmp_path)
    # then
    assert exc.value.line == line
    assert message in str(exc.value)
    assert str(exc.value).startswith(f"{name}:{line}: " if line else f"{name}: ")
    after = (list(Node.objects.values_list("name", "address")), Credential.objects.count(), Cluster.objects.count())
    assert after == before


def test_failure_late_in_file_writes_nothing_of_earlier_hosts(tmp_path):
    text = (
        "[server]\nh1 ansible_host=10.0.0.1\n[workers]\n"
        + "".join(f"g{i}\n" for i in range(50))
        + "bad ansible_port=x\n"
    )
    with pytest.raises(InventoryError) as exc:
        inventory_import(text=text, source="big.ini")
    assert exc.value.line == 54
    assert not Cluster.objects.filter(name="big").exists() and Node.objects.count() == 0


def test_unknown_profile_refused():
    with pytest.raises(InventoryError) as exc:
        inventory_import(text="[server]\nh1\n", source="lab.ini", profile_key="gpustack-9")
    assert "unknown requirement profile 'gpustack-9'" in str(exc.value) and "gpustack-2.0" in str(exc.value)
    assert Cluster.objects.count() == 0


def test_command_imports_and_reports(tmp_path, key_file, capsys):
    path = _write(tmp_path, "lab.ini", INI)
    call_command("import_inventory", str(path), "--cluster", "gpu-lab", "--profile", "gpustack-2.2")
    out = capsys.readouterr().out
    assert "cluster gpu-lab (created, profile gpustack-2.2)" in out and "5 nodes created" in out
    assert Cluster.objects.get(name="gpu-lab").nodes.count() == 5


def test_command_refuses_malformed_file_with_line(tmp_path):
    path = _write(tmp_path, "lab.ini", "[workers]\ngpu1 ansible_port=abc\n")
    with pytest.raises(CommandError) as exc:
        call_command("import_inventory", str(path))
    assert (
        str(exc.value) == f"{path}:2: ansible_port 'abc' of host 'gpu1' is not a port (1-65535) (nothing was imported)"
    )
    assert Node.objects.count() == 0


RACKS = """\
[gpustack_server]
srv1 ansible_host=10.0.0.1

[rack_a]
gpu[01:03]

[rack_b]
gpu[04:05]

[workers:children]
rack_a
rack_b

[rack_a:vars]
preflight_network_group=rack-a

[rack_b:vars]
preflight_network_group=rack-b
"""


def test_network_group_comes_from_the_preflight_network_group_var(tmp_path):
    # given an inventory whose rack groups set preflight_network_group
    # when it is imported
    inventory_import(text=RACKS, source="racks.ini", base_dir=tmp_path)
    # then each worker carries its rack, the server none
    groups = dict(Node.objects.values_list("name", "network_group"))
    assert groups == {
        "srv1": "",
        "gpu01": "rack-a",
        "gpu02": "rack-a",
        "gpu03": "rack-a",
        "gpu04": "rack-b",
        "gpu05": "rack-b",
    }
    # and a re-import that moves a rack updates it in place
    report = inventory_import(text=RACKS.replace("=rack-b", "=rack-c"), source="racks.ini", base_dir=tmp_path)
    assert sorted(report.updated) == ["gpu04", "gpu05"] and Node.objects.get(name="gpu05").network_group == "rack-c"


def test_a_network_group_that_is_not_a_name_is_refused_with_its_line(tmp_path):
    with pytest.raises(InventoryError, match="preflight_network_group") as raised:
        inventory_import(text=RACKS.replace("=rack-b", "='rack b; rm'"), source="racks.ini", base_dir=tmp_path)
    assert raised.value.line == 18  # the [rack_b:vars] line that sets it
    assert not Node.objects.exists()
