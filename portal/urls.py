from django.contrib import admin
from django.http import JsonResponse
from django.urls import path, re_path
from django.views.generic import RedirectView

from .api import api

admin.site.site_header = "Preflight"
admin.site.site_title = "Preflight"
admin.site.index_title = "GPUStack readiness: inventory and audits"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    # Anything else under /api/ answers in the API's error shape, not with an HTML page.
    re_path(
        r"^api/",
        lambda request: JsonResponse(
            {"code": "not_found", "message": f"no API endpoint at {request.path}", "errors": []}, status=404
        ),
    ),
]
