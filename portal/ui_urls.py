from django.urls import path

from checks import fix_views, node_views
from checks import views as checks_views
from inventory import jump as inventory_jump

app_name = "ui"

urlpatterns = [
    path("", checks_views.home, name="home"),
    path("clusters/<str:name>/", checks_views.dashboard, name="dashboard"),
    path("clusters/<str:name>/audit/", checks_views.audit_now, name="audit_now"),
    path("clusters/<str:name>/checks/<str:check_id>/", checks_views.check_detail, name="check"),
    path("clusters/<str:name>/diff/", checks_views.audit_diff, name="diff"),
    path("clusters/<str:name>/install/", checks_views.install_plan, name="install_plan"),
    path("clusters/<str:name>/matrix/", checks_views.matrix, name="matrix"),
    path("clusters/<str:name>/fix-plan/", fix_views.fix_plan, name="fix_plan"),
    path("clusters/<str:name>/fix-plan.yml", fix_views.fix_playbook, name="fix_playbook"),
    path("clusters/<str:name>/fix-runs/", fix_views.fix_run_create, name="fix_run_create"),
    path("fix-runs/<int:run_id>/", fix_views.fix_run, name="fix_run"),
    path("fix-runs/<int:run_id>/approve/", fix_views.fix_run_approve, name="fix_run_approve"),
    path("audits/<int:audit_id>/", checks_views.audit_page, name="audit"),
    path("audits/<int:audit_id>/progress/", checks_views.audit_progress, name="audit_progress"),
    path("paths/<int:path_id>/", checks_views.path_detail, name="path"),
    path("nodes/", node_views.node_list, name="node_list"),
    path("nodes/jump/", inventory_jump.node_jump, name="node_jump"),
    path("nodes/audit/", node_views.node_audit_selected, name="node_audit_selected"),
    path("nodes/export/", node_views.node_export_selected, name="node_export_selected"),
    path("nodes/<int:node_id>/", node_views.node_detail, name="node_detail"),
    path("nodes/<int:node_id>/audit/", node_views.node_audit, name="node_audit"),
    path("nodes/<int:node_id>/waive/", checks_views.node_waive, name="node_waive"),
    path("nodes/<int:node_id>/remediation.sh", node_views.node_remediation, name="node_remediation"),
]
