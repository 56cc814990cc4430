from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import content_disposition_header

from inventory.admin import ClusterAdmin, NodeAdmin
from inventory.models import Cluster, Node
from portal import permissions

from .choices import Trigger
from .models import (
    AlertEmail,
    Audit,
    CheckResult,
    FixNodeRun,
    FixRun,
    NetworkPath,
    NodeAudit,
    Waiver,
    WebhookDelivery,
    WebhookEndpoint,
)
from .selectors.audits import node_remediation_script
from .services import AuditRefused, audit_request
from .services.apply import FixRefused, fix_approve
from .templatetags import states as states_tags


class ResultsRule:
    """Audit results (audits, node audits, check results, paths) are read with portal.permissions.VIEW_RESULTS and
    nothing else, as through every other door: no model permission of their own (view_nodeaudit, view_checkresult,
    view_networkpath). They are records of what a node said, never edited; deleting needs the model's delete
    permission as well."""

    def has_view_permission(self, request, obj=None):
        return permissions.allowed(request.user, permissions.VIEW_RESULTS)

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and permissions.allowed(  # type: ignore[misc]
            request.user, permissions.VIEW_RESULTS
        )


class ResultsAdmin(ResultsRule, admin.ModelAdmin):
    pass


class NodeAuditInline(ResultsRule, admin.TabularInline):
    model = NodeAudit
    extra = 0
    fields = ["node_link", "state", "status", "started", "finished", "error"]
    readonly_fields = fields
    can_delete = False

    @admin.display(description="Node")
    def node_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:checks_nodeaudit_change", args=[obj.pk]), obj.node)


class StatesMixin:
    """The states of a row in the portal's one vocabulary (portal.states), through the same badge as the pages."""

    @admin.display(description="Run", ordering="state")
    def run_state(self, obj):
        return states_tags.run_state(obj.state)

    @admin.display(description="Readiness", ordering="status")
    def readiness(self, obj):
        # a node audit also says whether it reached its node and whether Preflight lost it (an audit has neither)
        return states_tags.node_state(
            obj.status, reached=getattr(obj, "reached", None), portal_error=getattr(obj, "portal_error", "")
        )

    @admin.display(description="Outcome", ordering="status")
    def outcome(self, obj):
        return states_tags.check_status(obj.status)


@admin.register(Audit)
class AuditAdmin(StatesMixin, ResultsAdmin):
    list_display = [
        "id",
        "cluster",
        "profile_key",
        "run_state",
        "readiness",
        "trigger",
        "started_by",
        "created",
        "finished",
        "failing_nodes",
    ]
    list_filter = ["state", "status", "trigger", "cluster"]
    search_fields = ["cluster__name", "error"]
    list_select_related = ["cluster", "started_by"]
    readonly_fields = [f.name for f in Audit._meta.fields]
    inlines = [NodeAuditInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_failing=Count("node_audits", filter=Q(node_audits__status__in=["fail", "error"])))
        )

    @admin.display(description="Failing nodes", ordering="_failing")
    def failing_nodes(self, obj):
        return obj._failing


class CheckResultInline(ResultsRule, admin.TabularInline):
    model = CheckResult
    extra = 0
    fields = ["check_id", "status", "summary", "evidence", "remediation", "commands"]
    readonly_fields = fields
    can_delete = False


@admin.register(NodeAudit)
class NodeAuditAdmin(StatesMixin, ResultsAdmin):
    list_display = ["id", "node", "audit", "run_state", "readiness", "started", "finished", "error"]
    list_filter = ["state", "status", "audit__cluster", "node__role"]
    search_fields = ["node__name", "node__address", "error"]
    list_select_related = ["node", "audit"]
    readonly_fields = [
        "audit",
        "node",
        "state",
        "status",
        "started",
        "finished",
        "attempts",
        "error",
        "facts",
        "clock_offset_seconds",
        "round_trip_seconds",
        "output_truncated",
        "remediation_script",
        "raw_output",
    ]
    exclude = ["nonce"]
    inlines = [CheckResultInline]

    def get_urls(self):
        return [
            path(
                "<int:pk>/remediation.sh",
                self.admin_site.admin_view(self.remediation_view),
                name="checks_nodeaudit_remediation",
            ),
            *super().get_urls(),
        ]

    def remediation_view(self, request, pk):
        permissions.require(request.user, permissions.VIEW_RESULTS)
        node_audit = get_object_or_404(NodeAudit.objects.select_related("node", "audit"), pk=pk)
        response = HttpResponse(
            node_audit_script := node_remediation_script(node_audit=node_audit), content_type="text/x-shellscript"
        )
        response["Content-Disposition"] = content_disposition_header(
            True, f"preflight-{node_audit.node.name}-remediation.sh"
        )
        response["Content-Length"] = str(len(node_audit_script.encode()))
        return response

    @admin.display(description="Remediation")
    def remediation_script(self, obj):
        url = reverse("admin:checks_nodeaudit_remediation", args=[obj.pk])
        return format_html('<a href="{}">Download the remediation script</a>', url)


@admin.register(CheckResult)
class CheckResultAdmin(StatesMixin, ResultsAdmin):
    list_display = ["check_id", "outcome", "summary", "node_audit"]
    list_filter = ["status", "check_id"]
    search_fields = ["check_id", "summary", "node_audit__node__name"]
    list_select_related = ["node_audit__node"]
    readonly_fields = [
        "node_audit",
        "check_id",
        "status",
        "summary",
        "evidence",
        "remediation",
        "commands",
        "position",
    ]


@admin.register(NetworkPath)
class NetworkPathAdmin(StatesMixin, ResultsAdmin):
    list_display = ["check_id", "source", "destination", "outcome", "summary", "audit"]
    list_filter = ["status", "check_id", "audit__cluster"]
    search_fields = ["source__name", "destination__name", "summary"]
    list_select_related = ["source", "destination", "audit"]
    readonly_fields = [
        "audit",
        "check_id",
        "source",
        "destination",
        "status",
        "summary",
        "outcomes",
        "listener",
        "evidence",
        "remediation",
        "commands",
    ]


class WaiverForm(forms.ModelForm):
    check_id = forms.ChoiceField(choices=[], help_text="The check this waiver accepts a non-pass of")

    class Meta:
        model = Waiver
        fields = ["cluster", "node", "check_id", "reason", "expires"]

    def __init__(self, *args, **kwargs):
        from .catalog import CHECK_IDS

        super().__init__(*args, **kwargs)
        self.fields["check_id"].choices = [(c, c) for c in CHECK_IDS]


@admin.register(Waiver)
class WaiverAdmin(admin.ModelAdmin):
    """Waivers: adding or changing one is waiving (portal.permissions.WAIVE_CHECK), as on the node page and the API."""

    form = WaiverForm
    list_display = ["check_id", "cluster", "node", "reason", "author", "created", "expires"]
    list_filter = ["cluster", "check_id"]
    search_fields = ["check_id", "reason", "node__name", "cluster__name"]
    list_select_related = ["cluster", "node"]
    readonly_fields = ["author", "created"]

    def has_add_permission(self, request):
        return super().has_add_permission(request) and permissions.allowed(request.user, permissions.WAIVE_CHECK)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and permissions.allowed(
            request.user, permissions.WAIVE_CHECK
        )

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
            obj.author = request.user.get_username()
        super().save_model(request, obj, form, change)


class WebhookEndpointForm(forms.ModelForm):
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="The HMAC-SHA256 key the receiver verifies X-Preflight-Signature with. Stored encrypted, never "
        "shown again; leave empty to keep the current one.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["cluster", "name", "url", "enabled"]

    def clean(self):
        cleaned = super().clean()
        if not self.instance.secret_encrypted and not cleaned.get("secret"):
            self.add_error("secret", "a new endpoint needs a secret")
        return cleaned

    def save(self, commit=True):
        if self.cleaned_data.get("secret"):
            self.instance.secret = self.cleaned_data["secret"]
        return super().save(commit)


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    fields = ["created", "audit", "state", "attempts", "response_status", "address", "error", "finished"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Where a cluster's regression alerts go; the delivery log is below each endpoint and under Webhook deliveries."""

    form = WebhookEndpointForm
    list_display = ["name", "cluster", "url", "enabled", "created"]
    list_filter = ["cluster", "enabled"]
    inlines = [WebhookDeliveryInline]


@admin.register(AlertEmail)
class AlertEmailAdmin(admin.ModelAdmin):
    list_display = ["address", "cluster", "enabled"]
    list_filter = ["cluster", "enabled"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log: read only."""

    list_display = ["id", "endpoint", "audit", "state", "attempts", "response_status", "created", "finished"]
    list_filter = ["state", "endpoint__cluster"]
    list_select_related = ["endpoint", "audit"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class FixNodeRunInline(admin.TabularInline):
    model = FixNodeRun
    extra = 0
    fields = ["node", "state", "before", "commands", "commands_hash", "host_key", "exit_status", "steps", "error"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(FixRun)
class FixRunAdmin(ResultsAdmin):
    """The audit trail of fixes, read-only: who previewed and approved what, when, the commands' hash and each
    node's outcome. "Approve and run" is the same approval as the web page and the API (apply_fix)."""

    list_display = ["id", "cluster", "state", "audit", "previewed_by", "approved_by", "approved", "reaudit"]
    list_filter = ["state", "cluster"]
    list_select_related = ["cluster", "previewed_by", "approved_by"]
    readonly_fields = [f.name for f in FixRun._meta.fields]
    inlines = [FixNodeRunInline]
    actions = ["approve"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Approve and run the selected previews")
    def approve(self, request, queryset):
        if not permissions.allowed(request.user, permissions.APPLY_FIX):
            self.message_user(request, permissions.missing(request.user, permissions.APPLY_FIX), messages.ERROR)
            return
        for run in queryset:
            try:
                fix_approve(fix_run_id=run.pk, user=request.user)
            except FixRefused as exc:
                self.message_user(request, f"fix run {run.pk}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"fix run {run.pk} approved", messages.SUCCESS)


# --- "Audit now" on inventory's cluster and node admins ------------------------------------------------------------
# Starting an audit is this app's: inventory's admins are registered again here with the action, so inventory never
# imports checks (.importlinter) and every door starts audits through the one audit request and its permission.


def _audit_now(modeladmin, request, clusters: dict) -> None:
    """Start an audit per cluster (of the selected nodes, if any) and hand it to Celery."""
    permissions.require(request.user, permissions.START_AUDIT)  # refuse the whole action before any cluster
    for cluster, node_names in clusters.items():
        try:
            audit = audit_request(cluster=cluster, node_names=node_names, trigger=Trigger.ADMIN, user=request.user)
        except AuditRefused as exc:  # includes AuditNotQueued: the broker is down
            modeladmin.message_user(request, str(exc), messages.ERROR)
            continue
        url = reverse("admin:checks_audit_change", args=[audit.pk])
        modeladmin.message_user(
            request,
            format_html('Audit <a href="{}">{}</a> of {} started.', url, audit.pk, cluster.name),
            messages.SUCCESS,
        )


class StartAuditAction:
    actions = ["audit_now"]

    def has_start_audit_permission(self, request):
        return permissions.allowed(request.user, permissions.START_AUDIT)


class ClusterAuditAdmin(StartAuditAction, ClusterAdmin):
    @admin.action(description="Audit now", permissions=["start_audit"])
    def audit_now(self, request, queryset):
        _audit_now(self, request, {cluster: None for cluster in queryset.select_related("profile")})


class NodeStartAuditAdmin(StartAuditAction, NodeAdmin):
    @admin.action(description="Audit now", permissions=["start_audit"])
    def audit_now(self, request, queryset):
        clusters: dict = {}
        for node in queryset.select_related("cluster"):
            clusters.setdefault(node.cluster, []).append(node.name)
        _audit_now(self, request, clusters)

    @admin.display(description="Readiness", ordering="last_audit_status")
    def readiness(self, obj):
        """The node's state through the one state tag, as on every page."""
        return states_tags.node_state(obj.last_audit_status, reached=obj.last_reached)


for model, model_admin in ((Cluster, ClusterAuditAdmin), (Node, NodeStartAuditAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, model_admin)
