import factory

from inventory.choices import CredentialKind, NodeRole
from inventory.models import Cluster, Credential, Node, RequirementProfile


def default_profile() -> RequirementProfile:
    return RequirementProfile.objects.get(key="gpustack-2.0")


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster

    name = factory.Sequence(lambda n: f"cluster-{n}")
    profile = factory.LazyFunction(default_profile)


class CredentialFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Credential

    name = factory.Sequence(lambda n: f"credential-{n}")
    kind = CredentialKind.PASSWORD
    secret = "correct horse battery staple"


class NodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Node

    cluster = factory.SubFactory(ClusterFactory)
    name = factory.Sequence(lambda n: f"node-{n:03d}")
    # Documentation addresses (RFC 5737): stored only, never connected to.
    address = factory.Sequence(lambda n: f"192.0.2.{n % 250 + 1}")
    role = NodeRole.WORKER


class FailingNtpResultFactory(factory.django.DjangoModelFactory):
    """A node audit's failing `time.ntp` result: an explanation carrying node-like text, and the commands that fix it.
    The explanation's payload must never reach a script line or a copy block."""

    class Meta:
        model = "checks.CheckResult"

    check_id = "time.ntp"
    status = "fail"
    summary = "no NTP"
    remediation = "Install chrony and start it at boot (not `touch /tmp/pfmark`)."
    commands = factory.LazyFunction(lambda: ["apt-get install -y chrony", "systemctl enable --now chrony"])
