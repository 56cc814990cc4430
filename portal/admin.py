"""The admin of the portal's own models: personal API tokens."""

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import reverse

from . import permissions
from .models import ApiToken
from .tokens import api_token_create, api_token_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are shown once, on the page that answers their creation (never in a message, which travels in a
    cookie); only their hash is stored. Staff create tokens for themselves; only superusers for someone else, and
    nobody can move a token to another user afterwards."""

    list_display = ["name", "user", "prefix", "created", "expires", "last_used", "revoked"]
    list_filter = ["revoked", "expires"]
    search_fields = ["name", "user__username", "prefix"]
    list_select_related = ["user"]
    actions = ["revoke"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if permissions.allowed(request.user, permissions.TOKEN_FOR_OTHERS):
            return queryset
        return queryset.filter(user=request.user)

    def get_fields(self, request, obj=None):
        if obj is None:
            if permissions.allowed(request.user, permissions.TOKEN_FOR_OTHERS):
                return ["user", "name", "expires"]
            return ["name", "expires"]
        return ["user", "name", "expires", "prefix", "created", "last_used", "revoked"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["user", "prefix", "created", "last_used", "revoked"]

    def get_changeform_initial_data(self, request):
        return {"user": request.user.pk}

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        if "user" not in form.cleaned_data or obj.user_id is None:
            obj.user = request.user
        if obj.user_id != request.user.pk:
            permissions.require(request.user, permissions.TOKEN_FOR_OTHERS)
        record, token = api_token_create(user=obj.user, name=obj.name, expires=obj.expires)
        obj.pk, obj.prefix, obj.digest = record.pk, record.prefix, record.digest
        obj._clear_token = token

    def response_add(self, request, obj, post_url_continue=None):
        context = {
            **self.admin_site.each_context(request),
            "title": "API token created",
            "opts": self.model._meta,
            "token": obj,
            "clear_token": getattr(obj, "_clear_token", ""),
            "list_url": reverse("admin:portal_apitoken_changelist"),
        }
        response = TemplateResponse(request, "admin/portal/apitoken/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        for token in queryset:
            api_token_revoke(token=token)
