"""The node list's table: columns, sorting (Status worst first) and the header; the rows are written by
templates/inventory/_node_table.html from checks.selectors.nodes.NodeRow."""

import django_tables2 as tables
from django.db.models import Case, IntegerField, Value, When

from inventory.models import Node

from .selectors.pages import SEVERITY_ORDER

# Worst first when the Status column is sorted ascending: error, fail, warn, pass, skip, unknown; an error on a node
# that was reached (Not ready, portal.states.node_state) sorts with the failures, after the unreachable nodes.
SEVERITY_RANK = Case(
    When(last_audit_status="error", last_reached=True, then=Value(SEVERITY_ORDER.index("fail"))),
    *(When(last_audit_status=status, then=Value(i)) for i, status in enumerate(SEVERITY_ORDER)),
    default=Value(len(SEVERITY_ORDER)),
    output_field=IntegerField(),
)

PAGE_SIZES = (25, 50, 100, 250)
DEFAULT_PAGE_SIZE = 50


class NodeTable(tables.Table):
    select = tables.CheckBoxColumn(
        accessor="pk",
        orderable=False,
        attrs={
            "th": {"class": "select-cell"},
            "th__input": {"id": "select-all", "form": "bulk", "aria-label": "Select every node on this page"},
        },
    )
    name = tables.Column()
    cluster = tables.Column(accessor="cluster__name", verbose_name="Cluster", order_by=("cluster__name",))
    role = tables.Column()
    last_audit_status = tables.Column(verbose_name="Status")
    why = tables.Column(empty_values=(), verbose_name="Why", orderable=False, attrs={"th": {"class": "why-cell"}})
    address = tables.Column()
    os = tables.Column(accessor="last_facts", verbose_name="OS", orderable=False)
    accelerators = tables.Column(empty_values=(), verbose_name="Accelerators", orderable=False)
    last_audited_at = tables.DateTimeColumn(verbose_name="Last audit", format="Y-m-d H:i")

    class Meta:
        model = Node
        fields = ["name", "cluster", "role", "last_audit_status", "address", "last_audited_at"]
        # Status and why right after the name: on a phone they are what shows before the table scrolls.
        sequence = [
            "select",
            "name",
            "last_audit_status",
            "why",
            "cluster",
            "role",
            "address",
            "os",
            "accelerators",
            "last_audited_at",
        ]
        attrs = {"class": "table", "id": "nodes"}
        order_by = ("cluster", "name")
        per_page = DEFAULT_PAGE_SIZE
        template_name = "inventory/_node_table.html"
        empty_text = "No node matches these filters."

    def order_last_audit_status(self, queryset, is_descending):
        queryset = queryset.annotate(severity=SEVERITY_RANK).order_by(
            ("-" if is_descending else "") + "severity", "cluster__name", "name"
        )
        return queryset, True
