from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from portal import permissions

from .choices import HostKeyState
from .forms import CredentialForm, InventoryImportForm
from .importers.ansible import InventoryError
from .models import (
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
from .profile_diff import profile_diff_from_baseline
from .services import (
    host_key_accept,
    inventory_import,
    node_access_check,
    profile_duplicate,
    profile_get_default,
    upload_text,
)
from .tables import status_badge


class OsRuleInline(admin.TabularInline):
    model = OsRule
    extra = 0


class AcceleratorRuleInline(admin.TabularInline):
    model = AcceleratorRule
    extra = 0
    fields = [
        "vendor",
        "experimental",
        "driver_name",
        "toolkit_name",
        "docker_runtime",
        "min_version",
        "min_version_of",
        "min_driver_version",
        "min_compute_capability",
        "warn_compute_capability",
        "amd64_only",
    ]


class PortRuleInline(admin.TabularInline):
    model = PortRule
    extra = 0


@admin.register(RequirementProfile)
class RequirementProfileAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "gpustack_release", "is_default", "check_reserved_ports", "cluster_count", "updated"]
    list_filter = ["is_default", "check_reserved_ports", "os_table_advisory"]
    search_fields = ["key", "name", "description"]
    inlines = [OsRuleInline, AcceleratorRuleInline, PortRuleInline]
    actions = ["duplicate"]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        profile = self.get_object(request, object_id)
        diff = profile_diff_from_baseline(profile) if profile is not None else None
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "profile_diff": diff})

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_clusters=Count("clusters"))

    @admin.display(description="Clusters", ordering="_clusters")
    def cluster_count(self, obj):
        return obj._clusters

    @admin.action(description="Duplicate selected profiles (to tailor a copy)", permissions=["add"])
    def duplicate(self, request, queryset):
        for profile in queryset:
            copy = profile_duplicate(profile=profile)
            self.message_user(request, f"Copied {profile.key} to {copy.key}.", messages.SUCCESS)


@admin.register(OsRule)
class OsRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "distro_id", "min_version", "note", "profile"]
    list_filter = ["profile"]
    search_fields = ["name", "distro_id"]
    list_select_related = ["profile"]


@admin.register(AcceleratorRule)
class AcceleratorRuleAdmin(admin.ModelAdmin):
    list_display = ["vendor", "driver_name", "toolkit_name", "docker_runtime", "min_version", "amd64_only", "profile"]
    list_filter = ["profile", "vendor", "experimental", "amd64_only"]
    search_fields = ["driver_name", "toolkit_name"]
    list_select_related = ["profile"]


@admin.register(PortRule)
class PortRuleAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "role",
        "first_port",
        "last_port",
        "protocol",
        "condition",
        "worker_to_worker",
        "reach",
        "purpose",
        "profile",
    ]
    list_filter = ["profile", "role", "condition", "protocol", "worker_to_worker", "reach"]
    search_fields = ["purpose"]
    list_select_related = ["profile"]


class NodeAdminForm(forms.ModelForm):
    """The node form of the admin (change page and the cluster's inline): enforces who may point a node where, with
    which credential (inventory.services.node_access_check), whatever the POST contains."""

    user = None  # set per request by NodeAdmin.get_form / NodeInline.get_formset

    def clean(self):
        data = super().clean()
        before = Node.objects.filter(pk=self.instance.pk).first() if self.instance.pk else None
        values = {name: data[name] for name in ("address", "ssh_port", "transport") if name in data}
        if "credential" in data:
            values["credential_id"] = data["credential"].pk if data["credential"] else None
        try:
            note = node_access_check(user=self.user, values=values, before=before)
        except PermissionDenied as exc:
            field = "transport" if "transport" in str(exc) else "credential" if "credential" in self.fields else None
            self.add_error(field if field in self.fields else None, str(exc))
            return data
        self.credential_note = note
        if note:
            data["credential"] = None
            self.instance.credential = None
        return data


# A node's results (portal.permissions.VIEW_RESULTS): what its audits found. Without the rule the admin shows the
# inventory alone: name, cluster, role, address, SSH access, enabled.
NODE_RESULT_FIELDS = ("last_audit_status", "last_reached", "readiness", "last_audited_at", "last_facts", "facts")


def _sees_results(request) -> bool:
    return permissions.allowed(request.user, permissions.VIEW_RESULTS)


class LabelledTabular:
    """A tabular inline's inputs carry their column's name (Django labels only the column header, which screen
    readers and axe-core do not tie to the input), and text inputs get a size that fits their content."""

    sizes: dict[str, int] = {}

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]
        if field is not None:
            field.widget.attrs.setdefault("aria-label", str(db_field.verbose_name).capitalize())
            if db_field.name in self.sizes:
                field.widget.attrs["size"] = self.sizes[db_field.name]
                field.widget.attrs["class"] = (field.widget.attrs.get("class", "") + " compact").strip()
        return field


class NodeInline(LabelledTabular, admin.TabularInline):
    model = Node
    form = NodeAdminForm
    extra = 0
    fields = ["name", "role", "address", "ssh_port", "ssh_user", "network_group", "enabled", "last_audit_status"]
    readonly_fields = ["last_audit_status"]
    show_change_link = True

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        return fields if _sees_results(request) else [f for f in fields if f not in NODE_RESULT_FIELDS]

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.form.user = request.user
        return formset


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "profile",
        "tls_enabled",
        "distributed_vllm",
        "server_runs_worker",
        "gateway",
        "proxy_mode",
        "connectivity_plan",
        "node_count",
        "updated",
    ]
    list_filter = [
        "profile",
        "tls_enabled",
        "distributed_vllm",
        "server_runs_worker",
        "gateway",
        "external_database",
        "builtin_observability",
        "proxy_mode",
        "connectivity_plan",
    ]
    search_fields = ["name", "description"]
    list_select_related = ["profile"]
    inlines = [NodeInline]
    change_list_template = "admin/inventory/cluster/change_list.html"
    # "Audit now" is checks.admin's (it starts audits): it registers this admin again with the action.

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        if "profile" not in initial:
            try:
                initial["profile"] = profile_get_default().pk
            except RequirementProfile.DoesNotExist:
                pass
        return initial

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        for inline_form in formset.forms:
            if getattr(inline_form, "credential_note", None):
                self.message_user(request, inline_form.credential_note, messages.WARNING)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_nodes=Count("nodes"))

    @admin.display(description="Nodes", ordering="_nodes")
    def node_count(self, obj):
        return obj._nodes

    def get_urls(self):
        extra = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_inventory_view),
                name="inventory_cluster_import",
            )
        ]
        return extra + super().get_urls()

    def import_inventory_view(self, request):
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        form = InventoryImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                text = upload_text(upload)
            except InventoryError as exc:
                form.add_error("file", f"{exc} (nothing was imported)")
            else:
                profile = form.cleaned_data.get("profile")
                try:
                    report = inventory_import(
                        text=text,
                        source=upload.name,
                        cluster_name=form.cleaned_data.get("cluster") or None,
                        profile_key=profile.key if profile else None,
                        fmt=form.cleaned_data.get("format") or None,
                        read_key_files=False,
                        user=request.user,
                    )
                except InventoryError as exc:
                    form.add_error("file", f"{exc} (nothing was imported)")
                else:
                    self.message_user(request, report.summary(), messages.SUCCESS)
                    return redirect(reverse("admin:inventory_cluster_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Import an Ansible inventory",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/inventory/cluster/import.html", context)


class ResultsOnly:
    """Devices and installs are found by audits: they are facts, so results (VIEW_RESULTS), besides the model's own
    permission for changing them."""

    def has_view_permission(self, request, obj=None):
        return _sees_results(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and _sees_results(request)  # type: ignore[misc]

    def has_add_permission(self, request, *args):
        return super().has_add_permission(request, *args) and _sees_results(request)  # type: ignore[misc]

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and _sees_results(request)  # type: ignore[misc]


class AcceleratorInline(LabelledTabular, ResultsOnly, admin.TabularInline):
    model = Accelerator
    extra = 0
    fields = ["vendor", "index", "model", "memory_mib", "uuid", "pci_address", "driver_version", "last_seen", "gone_at"]
    # last_seen and gone_at are what audits saw: shown, not typed (and the date-time widget made the row 2,174 px wide)
    readonly_fields = ["last_seen", "gone_at"]
    sizes = {"index": 3, "model": 14, "memory_mib": 7, "uuid": 9, "pci_address": 10, "driver_version": 8}


class DriverInstallInline(LabelledTabular, ResultsOnly, admin.TabularInline):
    model = DriverInstall
    extra = 0
    fields = ["kind", "vendor", "name", "version", "detected_at", "last_seen", "gone_at"]
    readonly_fields = ["detected_at", "last_seen", "gone_at"]
    sizes = {"name": 18, "version": 12}


HOST_KEY_FIELDS = ["node", "key_type", "fingerprint", "public_key", "state", "first_seen", "accepted_at", "accepted_by"]


class HostKeyTrust:
    """Keys come only from audits (trust on first use) and change state only through the accept action
    (ACCEPT_HOST_KEY, also POST /api/v1/nodes/{id}/host-key/accept): every field is read-only, none is added by
    hand, and forgetting a key (after which the next audit trusts whatever the node offers) is accepting too."""

    def has_add_permission(self, request, *args):
        return False

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and permissions.allowed(  # type: ignore[misc]
            request.user, permissions.ACCEPT_HOST_KEY
        )

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)  # type: ignore[attr-defined]


class HostKeyInline(HostKeyTrust, admin.TabularInline):
    model = HostKey
    extra = 0
    fields = ["key_type", "fingerprint", "state", "first_seen", "accepted_at", "accepted_by"]


FACT_ROWS = 120  # rows of facts shown; a node reports what it likes, the page stays bounded
FACT_VALUE = 300  # characters of one value


def facts_rows(facts: dict, *, limit: int = FACT_ROWS) -> list[tuple[str | None, str]]:
    """Flatten a node's facts to (dotted key, text) rows, sorted, each value cut to FACT_VALUE characters; past
    `limit` rows, a last (None, "<count>") row says how many were left out."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value, depth: int = 0) -> None:
        if depth > 6:  # deeper than any fact Preflight records: shown as text
            value = str(value)
        if isinstance(value, dict) and value:
            for key in sorted(value, key=str):
                walk(f"{prefix}.{key}" if prefix else str(key), value[key], depth + 1)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for index, item in enumerate(value):
                walk(f"{prefix}[{index}]", item, depth + 1)
        else:
            if isinstance(value, list):
                text = ", ".join(str(v) for v in value) or "(none)"
            elif value is None or value == {}:
                text = "(none)"
            else:
                text = str(value)
            rows.append((prefix, text if len(text) <= FACT_VALUE else text[: FACT_VALUE - 1] + "…"))

    walk("", facts)
    if len(rows) > limit:
        return [*rows[:limit], (None, str(len(rows) - limit))]  # type: ignore[list-item]
    return list(rows)


NODE_FILTERS_ON_RESULTS = ("last_audit_status", "accelerators__vendor")
NODE_RESULT_LOOKUPS = (*NODE_RESULT_FIELDS, "accelerators", "installs", "node_audits")


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "cluster",
        "role",
        "address",
        "ssh_port",
        "ssh_user",
        "network_group",
        "enabled",
        "readiness",
        "last_audited_at",
    ]
    list_filter = ["cluster", "role", "network_group", "last_audit_status", "enabled", "accelerators__vendor"]
    # Sorting by a result is reading it too: only list_display columns sort, and those are filtered below.
    search_fields = ["name", "address", "cluster__name"]
    list_select_related = ["cluster", "credential"]
    readonly_fields = ["readiness", "last_audited_at", "facts", "created", "updated"]
    inlines = [AcceleratorInline, DriverInstallInline, HostKeyInline]
    autocomplete_fields = ["credential"]
    form = NodeAdminForm  # "Audit now": checks.admin registers this admin again with the action

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        form.user = request.user
        return form

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not permissions.allowed(request.user, permissions.LOCAL_TRANSPORT):
            fields.append("transport")  # new nodes get SSH; only superusers may point a node at the portal itself
        return fields

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        return fields if _sees_results(request) else [f for f in fields if f not in NODE_RESULT_FIELDS]

    def get_list_display(self, request):
        fields = super().get_list_display(request)
        return fields if _sees_results(request) else [f for f in fields if f not in NODE_RESULT_FIELDS]

    @admin.display(description="Facts")
    def facts(self, obj):
        """The facts of the node's last audit as key/value rows (escaped, bounded), not raw JSON; results only, as
        the raw field was (NODE_RESULT_FIELDS)."""
        rows = facts_rows(obj.last_facts or {})
        if not rows:
            return "none recorded"
        more = format_html('<p class="help">{} more not shown.</p>', rows[-1][1]) if rows[-1][0] is None else ""
        body = format_html_join("", '<tr><th scope="row">{}</th><td>{}</td></tr>', (r for r in rows if r[0]))
        return format_html('<table class="facts-table"><tbody>{}</tbody></table>{}', body, more)

    @admin.display(description="Readiness", ordering="last_audit_status")
    def readiness(self, obj):
        """The node's state in the portal's one vocabulary (portal.states), as on every page."""
        return status_badge(obj.last_audit_status, obj.last_reached)

    def get_list_filter(self, request):
        fields = super().get_list_filter(request)
        return fields if _sees_results(request) else [f for f in fields if f not in NODE_FILTERS_ON_RESULTS]

    def lookup_allowed(self, lookup, value, request=None):
        # The admin lets any local field filter the list from the query string (?last_audit_status__exact=fail),
        # listed in list_filter or not: a filter on a result reads it.
        if lookup.split("__")[0] in NODE_RESULT_LOOKUPS and request is not None and not _sees_results(request):
            return False
        return super().lookup_allowed(lookup, value, request)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if getattr(form, "credential_note", None):
            self.message_user(request, form.credential_note, messages.WARNING)


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    form = CredentialForm
    list_display = ["name", "kind", "has_passphrase", "node_count", "updated"]
    list_filter = ["kind"]
    search_fields = ["name"]
    ordering = ["name"]  # (pages of an unordered list could repeat or skip a credential)
    fields = ["name", "kind", "new_secret", "new_passphrase", "clear_passphrase", "secret_state"]
    readonly_fields = ["secret_state"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_nodes=Count("nodes"))

    @admin.display(description="Nodes", ordering="_nodes")
    def node_count(self, obj):
        return obj._nodes

    @admin.display(boolean=True, description="Passphrase")
    def has_passphrase(self, obj):
        return bool(obj.passphrase_encrypted)

    @admin.display(description="Stored secret")
    def secret_state(self, obj):
        if not obj.pk:
            return "none yet"
        return f"set (encrypted), last changed {obj.updated:%Y-%m-%d %H:%M} UTC; never shown"


@admin.register(HostKey)
class HostKeyAdmin(HostKeyTrust, admin.ModelAdmin):
    list_display = ["node", "key_type", "fingerprint", "state", "first_seen", "accepted_at", "accepted_by"]
    list_filter = ["state", "key_type", "node__cluster"]
    search_fields = ["fingerprint", "node__name", "node__address"]
    list_select_related = ["node", "accepted_by"]
    fields = HOST_KEY_FIELDS
    actions = ["accept"]

    @admin.action(description="Accept selected keys (the node was reinstalled)", permissions=["accept_hostkey"])
    def accept(self, request, queryset):
        permissions.require(request.user, permissions.ACCEPT_HOST_KEY)
        for host_key in queryset.exclude(state=HostKeyState.TRUSTED):
            host_key_accept(host_key=host_key, user=request.user)
            self.message_user(request, f"{host_key.node}: now trusting {host_key.key_type} {host_key.fingerprint}")

    def has_accept_hostkey_permission(self, request):
        return permissions.allowed(request.user, permissions.ACCEPT_HOST_KEY)


@admin.register(Accelerator)
class AcceleratorAdmin(ResultsOnly, admin.ModelAdmin):
    list_display = ["node", "vendor", "index", "model", "memory_mib", "uuid", "driver_version", "gone_at"]
    list_filter = ["vendor", "node__cluster", ("gone_at", admin.EmptyFieldListFilter)]
    search_fields = ["model", "uuid", "node__name", "pci_address"]
    list_select_related = ["node"]


@admin.register(DriverInstall)
class DriverInstallAdmin(ResultsOnly, admin.ModelAdmin):
    list_display = ["node", "kind", "vendor", "name", "version", "detected_at", "gone_at"]
    list_filter = ["kind", "vendor", "node__cluster", ("gone_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "version", "node__name"]
    list_select_related = ["node"]
