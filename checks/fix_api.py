"""Fix plan endpoints: `GET /api/v1/clusters/{name}/fix-plan` (JSON, or the playbook with `?format=ansible`)."""

from django.http import HttpResponse
from ninja import Router

from inventory.models import Cluster
from inventory.schemas import ErrorOut
from portal.api_plumbing import ApiError

from .services.fix import FixPlanUnavailable, cluster_fix_plan

router = Router(tags=["fix plans"])
READ_ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}


def _cluster(name: str) -> Cluster:
    cluster = Cluster.objects.filter(name=name).first()
    if cluster is None:
        raise ApiError(404, "not_found", f"no cluster named {name!r}")
    return cluster


@router.get(
    "/clusters/{name}/fix-plan",
    response={200: dict, **READ_ERRORS},
    openapi_extra={
        "responses": {
            200: {
                "description": "The plan (JSON), or with format=ansible the playbook",
                "content": {"application/yaml": {"schema": {"type": "string"}}},
            }
        }
    },
)
def fix_plan(request, name: str, audit: int | None = None, format: str = "json"):
    """The cluster's nodes grouped by the exact commands they need, in dependency order, from its latest finished
    audit (or `audit`); `newer_audit` says when the cluster has a newer one."""
    if format not in ("json", "ansible"):
        raise ApiError(
            422, "validation_error", "format is json or ansible", [{"field": "format", "message": "json or ansible"}]
        )
    cluster = _cluster(name)
    try:
        view = cluster_fix_plan(cluster=cluster, user=request.user, audit_id=audit)
    except FixPlanUnavailable as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    if format == "ansible":
        response = HttpResponse(view.playbook(), content_type="application/yaml")
        response["Content-Disposition"] = f'attachment; filename="preflight-{cluster.name}-fix.yml"'
        return response
    return view.as_dict()
