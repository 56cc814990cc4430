"""The install handoff in the API: `GET /api/v1/nodes/{id}/install` gives the GPUStack command for a node that is
ready (the token as "$GPUSTACK_TOKEN", for the operator to export), `POST` with {"token": ...} puts the token in;
it is never stored or logged. A node that is not ready answers 409 naming the failing check ids."""

from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema

from inventory.models import Node
from inventory.schemas import ErrorOut
from portal import permissions
from portal.api_plumbing import ApiError, require_perms

from .install_plan import NodeInstall, node_install

router = Router(tags=["install"])
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}


class InstallTokenIn(Schema):
    token: str = Field(..., min_length=1, max_length=512, description="The GPUStack registration token (not kept)")


class InstallCommandOut(Schema):
    role: str
    command: str
    runtime: str = Field("", description="The `--runtime` passed: the vendor runtime when it is not Docker's default")
    notes: list[str] = []


class InstallOut(Schema):
    node: str
    role: str
    audit: int | None
    vendor: str
    commands: list[InstallCommandOut]
    waived: list[str] = Field(default_factory=list, description="Check ids a waiver accepts on this node")
    warnings: list[str] = Field(default_factory=list, description="Check ids that warn: read them before installing")


def _answer(request, node_id: int, token: str = "") -> dict:
    permissions.require(request.user, permissions.VIEW_RESULTS)
    require_perms(request, "inventory.view_node")
    node = get_object_or_404(Node.objects.select_related("cluster"), pk=node_id)
    item: NodeInstall = node_install(node=node, token=token)
    if not item.ready:
        errors = [{"field": f["check_id"], "message": f"{f['status']}: {f['summary']}"} for f in item.failing]
        raise ApiError(409, "conflict", f"{node.name} is not ready for GPUStack: {item.reason}", errors)
    return {
        "node": node.name,
        "role": node.role,
        "audit": item.audit_id,
        "vendor": item.vendor,
        "commands": [
            {"role": c.role, "command": c.text, "runtime": c.runtime, "notes": list(c.notes)} for c in item.commands
        ],
        "waived": item.waived,
        "warnings": item.warnings,
    }


@router.get(
    "/nodes/{node_id}/install",
    summary="A node's GPUStack install command",
    description=(
        "The GPUStack command for this node's role and vendor, built from its latest audit; "
        "Preflight never runs it.\n\n"
        "**Who:** inventory.view_node and the results permission (checks.view_audit).\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permissions; 404 for "
        "an unknown node; 409 naming the failing checks when the node is not ready."
    ),
    response={200: InstallOut, **ERRORS},
)
def install_get(request, node_id: int):
    """The GPUStack command for this node's role and vendor; Preflight never runs it."""
    return _answer(request, node_id)


@router.post(
    "/nodes/{node_id}/install",
    summary="A node's install command with a token",
    description=(
        "The same command with the GPUStack registration token filled in (quoted); the token is "
        "not stored or logged.\n\n"
        "**Who:** inventory.view_node and the results permission (checks.view_audit).\n\n"
        "**Errors:** 401 without a valid token or session; 403 without the permissions; 404 for "
        "an unknown node; 409 when the node is not ready; 422 on a missing or too long token."
    ),
    response={200: InstallOut, **ERRORS},
)
def install_post(request, node_id: int, payload: InstallTokenIn):
    """The same, with the registration token filled in (quoted); the token is not stored."""
    return _answer(request, node_id, payload.token)
