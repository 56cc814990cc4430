from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import JsonResponse
from django.urls import include, path, re_path

from . import account, metrics
from .api import api

# A database or broker failure outside the views (a middleware reading the session) answers 503, not 500.
handler500 = "portal.faults.server_error"

admin.site.site_header = "Preflight"
admin.site.site_title = "Preflight"
admin.site.index_title = "GPUStack readiness: inventory and audits"
admin.site.site_url = "/"

urlpatterns = [
    path("", include("portal.ui_urls")),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/tokens/", account.tokens, name="account_tokens"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("metrics", metrics.metrics, name="metrics"),
    # Anything else under /api/ answers in the API's error shape, not with an HTML page.
    re_path(
        r"^api/",
        lambda request: JsonResponse(
            {"code": "not_found", "message": f"no API endpoint at {request.path}", "errors": []}, status=404
        ),
    ),
]
