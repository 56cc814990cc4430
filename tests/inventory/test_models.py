"""Database constraints and model validation: what must hold in the inventory holds in the database itself."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from inventory.choices import HostKeyState, InstallKind, Vendor
from inventory.models import (
    Accelerator,
    AcceleratorRule,
    Cluster,
    Credential,
    DriverInstall,
    HostKey,
    Node,
    OsRule,
    PortRule,
    RequirementProfile,
)
from tests.factories import ClusterFactory, NodeFactory, default_profile

pytestmark = pytest.mark.django_db


def _violates(make) -> bool:
    try:
        with transaction.atomic():
            make()
    except IntegrityError:
        return True
    return False


@pytest.mark.parametrize(
    ("_case", "first", "last", "rejected"),
    [
        ("single port", 80, 80, False),
        ("range", 40000, 40063, False),
        ("highest port", 65535, 65535, False),
        ("zero", 0, 10, True),
        ("above 65535", 65535, 65536, True),
        ("reversed", 10151, 10150, True),
    ],
)
def test_port_rule_range_constraint(_case, first, last, rejected):
    # given
    profile = RequirementProfile.objects.create(key="ports-only", name="p", architectures=[])
    # when
    violated = _violates(
        lambda: PortRule.objects.create(profile=profile, role="worker", first_port=first, last_port=last, purpose="t")
    )
    # then
    assert violated is rejected


def test_port_rule_clean_names_the_field():
    rule = PortRule(profile=default_profile(), role="worker", first_port=10, last_port=5, purpose="t")
    with pytest.raises(ValidationError) as exc:
        rule.full_clean()
    assert "last_port" in exc.value.message_dict


def test_port_rule_duplicate_rejected():
    profile = default_profile()
    existing = profile.port_rules.get(first_port=10150)
    assert _violates(
        lambda: PortRule.objects.create(
            profile=profile,
            role=existing.role,
            protocol=existing.protocol,
            first_port=10150,
            last_port=10150,
            condition=existing.condition,
            purpose="again",
        )
    )


def test_profile_keys_unique_and_one_default():
    assert _violates(lambda: RequirementProfile.objects.create(key="gpustack-2.0", name="dup", architectures=[]))
    assert _violates(lambda: RequirementProfile.objects.create(key="another", name="x", is_default=True))
    assert RequirementProfile.objects.filter(is_default=True).count() == 1


def test_profile_skew_thresholds_ordered():
    assert _violates(
        lambda: RequirementProfile.objects.create(
            key="bad-skew", name="x", time_skew_warn_seconds=5, time_skew_fail_seconds=1
        )
    )
    assert _violates(lambda: RequirementProfile.objects.create(key="zero-skew", name="x", time_skew_warn_seconds=0))


def test_os_rule_unique_per_profile_and_needs_minimum():
    profile = default_profile()
    assert _violates(lambda: OsRule.objects.create(profile=profile, distro_id="ubuntu", name="U", min_version="22.04"))
    assert _violates(lambda: OsRule.objects.create(profile=profile, distro_id="arch", name="Arch", min_version=""))


def test_accelerator_rule_unique_vendor_and_min_version_names_what():
    profile = default_profile()
    assert _violates(
        lambda: AcceleratorRule.objects.create(profile=profile, vendor="nvidia", driver_name="d", toolkit_name="t")
    )
    other = RequirementProfile.objects.create(key="custom", name="c", architectures=[])
    assert _violates(
        lambda: AcceleratorRule.objects.create(
            profile=other, vendor="nvidia", driver_name="d", toolkit_name="t", min_version="12.8"
        )
    )


def test_cluster_name_unique_and_profile_protected():
    ClusterFactory(name="lab")
    assert _violates(lambda: Cluster.objects.create(name="lab", profile=default_profile()))
    with pytest.raises(Exception) as exc:
        default_profile().delete()
    assert type(exc.value).__name__ == "ProtectedError"


def test_node_name_unique_within_cluster_only():
    a, b = ClusterFactory(), ClusterFactory()
    NodeFactory(cluster=a, name="gpu01")
    NodeFactory(cluster=b, name="gpu01")
    assert _violates(lambda: Node.objects.create(cluster=a, name="gpu01", address="192.0.2.9"))


@pytest.mark.parametrize(("_case", "port", "rejected"), [("22", 22, False), ("0", 0, True), ("70000", 70000, True)])
def test_node_ssh_port_constraint(_case, port, rejected):
    cluster = ClusterFactory()
    assert (
        _violates(lambda: Node.objects.create(cluster=cluster, name="n", address="192.0.2.1", ssh_port=port))
        is rejected
    )


def test_node_address_required_in_database():
    cluster = ClusterFactory()
    assert _violates(lambda: Node.objects.create(cluster=cluster, name="n", address=""))


@pytest.mark.parametrize(
    ("_case", "address", "valid"),
    [
        ("ipv4", "10.1.2.3", True),
        ("ipv6", "fd00::11", True),
        ("dns", "gpu-01.lab.example.com", True),
        ("short name", "gpu01", True),
        ("trailing dot", "gpu01.lab.", True),
        ("bad ipv4", "10.1.2.300", False),
        ("shell", "gpu01;rm -rf /", False),
        ("space", "gpu 01", False),
        ("url", "ssh://gpu01", False),
        ("leading dash", "-gpu01", False),
        ("port suffix", "gpu01:22", False),
    ],
)
def test_node_address_validation(_case, address, valid):
    node = Node(cluster=ClusterFactory(), name="n", address=address)
    if valid:
        node.full_clean()
    else:
        with pytest.raises(ValidationError) as exc:
            node.full_clean()
        assert "address" in exc.value.message_dict


def test_node_ssh_user_validation():
    node = Node(cluster=ClusterFactory(), name="n", address="192.0.2.1", ssh_user="root; id")
    with pytest.raises(ValidationError) as exc:
        node.full_clean()
    assert "ssh_user" in exc.value.message_dict


def test_credential_requires_secret_and_unique_name():
    assert _violates(lambda: Credential.objects.create(name="empty", kind="password", secret_encrypted=""))
    first = Credential(name="ops", kind="password")
    first.secret = "pw"
    first.save()
    second = Credential(name="ops", kind="password")
    second.secret = "pw2"
    assert _violates(second.save)


def test_host_key_one_trusted_key_per_type():
    node = NodeFactory()
    HostKey.objects.create(node=node, key_type="ssh-ed25519", fingerprint="SHA256:a", public_key="AAAA")
    HostKey.objects.create(
        node=node, key_type="ssh-ed25519", fingerprint="SHA256:b", public_key="BBBB", state=HostKeyState.PENDING
    )
    assert _violates(
        lambda: HostKey.objects.create(node=node, key_type="ssh-ed25519", fingerprint="SHA256:c", public_key="C")
    )
    assert _violates(
        lambda: HostKey.objects.create(
            node=node, key_type="ssh-ed25519", fingerprint="SHA256:a", public_key="AAAA", state=HostKeyState.RETIRED
        )
    )


def test_accelerator_index_unique_among_present_devices_only():
    node = NodeFactory()
    gone = Accelerator.objects.create(node=node, vendor=Vendor.NVIDIA, index=0, model="A100")
    assert _violates(lambda: Accelerator.objects.create(node=node, vendor=Vendor.NVIDIA, index=0, model="H100"))
    gone.gone_at = gone.first_seen
    gone.save()
    Accelerator.objects.create(node=node, vendor=Vendor.NVIDIA, index=0, model="H100")
    assert node.accelerators.count() == 2


def test_driver_install_unique_among_present_only():
    node = NodeFactory()
    DriverInstall.objects.create(node=node, kind=InstallKind.DRIVER, vendor=Vendor.NVIDIA, name="nvidia", version="550")
    assert _violates(
        lambda: DriverInstall.objects.create(node=node, kind=InstallKind.DRIVER, name="nvidia", version="560")
    )
