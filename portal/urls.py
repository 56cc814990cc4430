from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

admin.site.site_header = "Preflight"
admin.site.site_title = "Preflight"
admin.site.index_title = "GPUStack readiness: inventory and audits"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
]
