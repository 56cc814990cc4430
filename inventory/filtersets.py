"""One FilterSet per model, serving the web lists and the API alike (NetBox's pattern)."""

import django_filters
from django.db.models import Exists, OuterRef, Q, Subquery

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
        """Nodes whose latest finished audit has this check failing or in error. A check that did not run ("not
        checked: ..." because the node was unreachable) is not failing: ssh.connect lists those nodes."""
        from checks.models import CheckResult, NodeAudit

        latest = NodeAudit.objects.filter(node=OuterRef(OuterRef("pk")), finished__isnull=False).order_by("-finished")
        failing = CheckResult.objects.filter(
            node_audit=Subquery(latest.values("pk")[:1]),
            check_id=value,
            status__in=["fail", "error"],
            waived__isnull=True,
        ).exclude(summary__startswith="not checked: ")
        return queryset.filter(Exists(failing))
