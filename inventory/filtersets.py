"""One FilterSet per model, serving the web lists and the API alike (NetBox's pattern)."""

import operator
from collections.abc import Callable
from functools import reduce

import django_filters
from django.db.models import Q, QuerySet

from portal import states

from .choices import VENDOR_CHOICES, AuditStatus, NodeRole
from .models import Cluster, Node

# The readiness filter's choices (the public values of the web list and /api/v1/nodes), each the node states it
# lists: "not_ready" is every audited node not proven ready (as the dashboard counts "not ready": the unreachable
# ones too), "unreachable" the nodes audits did not reach only.
READINESS = {
    "ready": (states.READY.value,),
    "not_ready": (states.NOT_READY.value, states.UNREACHABLE.value),
    "unreachable": (states.UNREACHABLE.value,),
    "unknown": (states.NOT_AUDITED.value,),
}


def readiness_q(choice: str, prefix: str = "") -> Q:
    """The nodes of a readiness choice in SQL, by the one rule (portal.states.node_state_where) on the node's
    last_audit_status and last_reached; `prefix` reaches them through a relation ("nodes__")."""
    terms = []
    for value in READINESS[choice]:
        for statuses, reached in states.node_state_where(value):
            term = Q(**{f"{prefix}last_audit_status__in": statuses})
            if reached is True:
                term &= Q(**{f"{prefix}last_reached": True})
            elif reached is False:
                term &= Q(**{f"{prefix}last_reached": False}) | Q(**{f"{prefix}last_reached__isnull": True})
            terms.append(term)
    return reduce(operator.or_, terms)


def _status_label(value: str) -> str:
    """A status filter choice in the one vocabulary: "Ready (warn)"; an error is either of two states."""
    if value == AuditStatus.ERROR:
        return f"{states.UNREACHABLE.label} or {states.NOT_READY.label.lower()}: checks could not run ({value})"
    return f"{states.node_state(value).label} ({value})"


class ClusterFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    profile = django_filters.CharFilter(field_name="profile__key")

    class Meta:
        model = Cluster
        fields = ["name", "profile", "tls_enabled", "distributed_vllm"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))


# Filters on audit results that only the checks app can answer (it reads audits; inventory never imports it):
# checks registers them when it starts (checks.apps). {"failing_check": (nodes, check_id) -> nodes}
RESULT_LOOKUPS: dict[str, Callable[[QuerySet, str], QuerySet]] = {}


class NodeFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    cluster = django_filters.CharFilter(field_name="cluster__name", label="Cluster")
    role = django_filters.ChoiceFilter(choices=NodeRole.choices)
    status = django_filters.ChoiceFilter(
        field_name="last_audit_status",
        # the node's worst result in the one vocabulary (portal.states): "Ready (warn)", "Unreachable (error)"
        choices=[(v, _status_label(v)) for v in AuditStatus.values],
        label="Status",
    )
    readiness = django_filters.ChoiceFilter(
        method="by_readiness",
        choices=[
            ("ready", "Ready (pass or warn)"),
            ("not_ready", "Not ready or unreachable (fail or error)"),
            ("unreachable", "Unreachable (not reached)"),
            ("unknown", "Not audited"),
        ],
        label="Readiness",
    )
    vendor = django_filters.ChoiceFilter(method="by_vendor", choices=VENDOR_CHOICES, label="Accelerator vendor")
    os = django_filters.CharFilter(field_name="last_facts__os__id", lookup_expr="iexact", label="OS (os-release ID)")
    failing_check = django_filters.CharFilter(method="by_failing_check", label="Failing check")

    class Meta:
        model = Node
        fields = ["cluster", "role", "status", "enabled"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(address__icontains=value))

    def by_readiness(self, queryset, name, value):
        return queryset.filter(readiness_q(value))

    def by_vendor(self, queryset, name, value):
        return queryset.filter(accelerators__vendor=value, accelerators__gone_at__isnull=True).distinct()

    def by_failing_check(self, queryset, name, value):
        """Nodes whose latest finished audit has this check failing or in error (see checks.selectors.nodes)."""
        return RESULT_LOOKUPS["failing_check"](queryset, value)
