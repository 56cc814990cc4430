import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

from .models import Node

STATUS_TEXT = {
    "pass": "Ready",
    "warn": "Warnings",
    "fail": "Not ready",
    "error": "Error",
    "skip": "Skipped",
    "unknown": "Not audited",
}


def status_badge(status: str) -> str:
    """A colored badge that also says its status in words (never color alone)."""
    return format_html('<span class="badge badge-{}">{}</span>', status, STATUS_TEXT.get(status, status))


class NodeTable(tables.Table):
    name = tables.Column(linkify=lambda record: reverse("ui:node_detail", args=[record.pk]))
    cluster = tables.Column(accessor="cluster__name", verbose_name="Cluster", order_by=("cluster__name",))
    role = tables.Column()
    address = tables.Column()
    last_audit_status = tables.Column(verbose_name="Status")
    os = tables.Column(accessor="last_facts", verbose_name="OS", orderable=False)
    accelerators = tables.Column(empty_values=(), verbose_name="Accelerators", orderable=False)
    last_audited_at = tables.DateTimeColumn(verbose_name="Last audit", format="Y-m-d H:i")

    class Meta:
        model = Node
        fields = ["name", "cluster", "role", "address", "last_audit_status", "os", "accelerators", "last_audited_at"]
        attrs = {"class": "table"}
        order_by = ("cluster", "name")
        per_page = 50

    def render_last_audit_status(self, record):
        return status_badge(record.last_audit_status)

    def render_os(self, value):
        os_facts = (value or {}).get("os") or {}
        return os_facts.get("pretty_name") or " ".join(filter(None, [os_facts.get("id"), os_facts.get("version_id")]))

    def render_accelerators(self, record):
        devices = getattr(record, "present_accelerators", [])
        if not devices:
            return "—"
        models = {}
        for device in devices:
            models[device.model or device.vendor] = models.get(device.model or device.vendor, 0) + 1
        return ", ".join(f"{count} × {model}" for model, count in models.items())
