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
