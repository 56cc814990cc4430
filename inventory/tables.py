import django_tables2 as tables
from django.db.models import Case, IntegerField, Value, When
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from checks.selectors.pages import SEVERITY_ORDER, undouble
from portal import states

from .facts_summary import FactsSummary
from .models import Node

STATUS_TEXT = {value: states.node_state(value).label for value in ("pass", "warn", "fail", "error", "skip", "unknown")}

# Worst first when the Status column is sorted ascending: error, fail, warn, pass, skip, unknown.
SEVERITY_RANK = Case(
    *(When(last_audit_status=status, then=Value(i)) for i, status in enumerate(SEVERITY_ORDER)),
    default=Value(len(SEVERITY_ORDER)),
    output_field=IntegerField(),
)


def status_badge(status: str) -> str:
    """A colored badge that also says its state in words (never color alone): the vocabulary of portal.states."""
    state = states.node_state(status)
    return format_html('<span class="badge {}" data-state="node:{}">{}</span>', state.css, state.value, state.label)


def accelerator_text(devices) -> str:
    """'2 x NVIDIA H100 80GB, 1 x AMD MI300X': devices counted by model (vendor when the model is unknown)."""
    models: dict[str, int] = {}
    for device in devices:
        models[device.model or device.vendor] = models.get(device.model or device.vendor, 0) + 1
    return ", ".join(f"{count} x {model}" for model, count in models.items())


def os_text(facts) -> str:
    return FactsSummary.from_json(facts).os_text


def why_text(record) -> str:
    """The first failing check of the node's latest audit, from the annotations of `nodes_with_why`."""
    check = getattr(record, "why_check", None)
    if not check:
        return ""
    return f"{check}: {undouble(record.why_summary or '')}"


class NodeTable(tables.Table):
    name = tables.Column(linkify=lambda record: reverse("ui:node_detail", args=[record.pk]))
    cluster = tables.Column(accessor="cluster__name", verbose_name="Cluster", order_by=("cluster__name",))
    role = tables.Column()
    last_audit_status = tables.Column(verbose_name="Status")
    why = tables.Column(empty_values=(), verbose_name="Why", orderable=False, attrs={"td": {"class": "why-cell"}})
    address = tables.Column()
    os = tables.Column(accessor="last_facts", verbose_name="OS", orderable=False)
    accelerators = tables.Column(empty_values=(), verbose_name="Accelerators", orderable=False)
    last_audited_at = tables.DateTimeColumn(verbose_name="Last audit", format="Y-m-d H:i")

    class Meta:
        model = Node
        fields = ["name", "cluster", "role", "last_audit_status", "address", "last_audited_at"]
        # Status and why right after the name: on a phone they are what shows before the table scrolls.
        sequence = [
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
        per_page = 50
        template_name = "inventory/_node_table.html"
        empty_text = "No node matches these filters."

    def order_last_audit_status(self, queryset, is_descending):
        queryset = queryset.annotate(severity=SEVERITY_RANK).order_by(
            ("-" if is_descending else "") + "severity", "cluster__name", "name"
        )
        return queryset, True

    def render_last_audit_status(self, record):
        return status_badge(record.last_audit_status)

    def render_why(self, record):
        text = why_text(record)
        if not text:
            return "—"
        return format_html('<span title="{}">{}</span>', text, Truncator(text).chars(90))

    def render_os(self, value):
        return os_text(value)

    def render_accelerators(self, record):
        return accelerator_text(getattr(record, "present_accelerators", [])) or "—"
