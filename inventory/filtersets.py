"""One FilterSet per model, serving the web lists and the API alike (NetBox's pattern)."""

from collections.abc import Callable

import django_filters
from django.db.models import Q, QuerySet

from portal import states

from .choices import VENDOR_CHOICES, AuditStatus, NodeRole
from .models import Cluster, Node

# What the dashboard counts as a ready node, and as one that is not.
READY = [AuditStatus.PASS, AuditStatus.WARN]
NOT_READY = [AuditStatus.FAIL, AuditStatus.ERROR]


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
        choices=[(v, f"{states.node_state(v).label} ({v})") for v in AuditStatus.values],
        label="Status",
    )
    readiness = django_filters.ChoiceFilter(
        method="by_readiness",
        choices=[
            ("ready", "Ready (pass or warn)"),
            ("not_ready", "Not ready (fail or error)"),
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
        statuses = {"ready": READY, "not_ready": NOT_READY, "unknown": [AuditStatus.UNKNOWN]}[value]
        return queryset.filter(last_audit_status__in=statuses)

    def by_vendor(self, queryset, name, value):
        return queryset.filter(accelerators__vendor=value, accelerators__gone_at__isnull=True).distinct()

    def by_failing_check(self, queryset, name, value):
        """Nodes whose latest finished audit has this check failing or in error (see checks.selectors.nodes)."""
        return RESULT_LOOKUPS["failing_check"](queryset, value)
