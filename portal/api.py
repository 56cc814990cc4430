"""The REST API (/api/v1/): one NinjaAPI, bearer-token auth, and one JSON error shape for every failure.

Errors are `{"code": "...", "message": "...", "errors": [{"field": ..., "message": ...}]}` with a stable code per
status: bad_request 400, unauthenticated 401, forbidden 403, not_found 404, conflict 409, too_large 413,
validation_error 422, unavailable 503 (the task queue is down). Bad input never produces a 500.

This module mounts the apps' routers, so it imports them; they import only the leaf `portal.api_plumbing`.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import (
    BadRequest,
    ObjectDoesNotExist,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404, JsonResponse
from django.http.multipartparser import MultiPartParserError
from ninja import NinjaAPI, Swagger
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer

from portal.api_plumbing import ApiError
from portal.tokens import api_token_authenticate


class BearerToken(HttpBearer):
    def authenticate(self, request, token):
        user = api_token_authenticate(token)
        if user is not None:
            request.user = user
        return user


def _docs_login(view):
    """The API docs and the OpenAPI schema are for people logged in to the portal, or clients with a valid token."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            header = request.headers.get("Authorization", "")
            user = api_token_authenticate(header[7:].strip()) if header[:7].lower() == "bearer " else None
            if user is None:
                if request.path.endswith(".json"):
                    return JsonResponse(
                        {"code": "unauthenticated", "message": "log in or send a valid API token", "errors": []},
                        status=401,
                        headers={"WWW-Authenticate": "Bearer"},
                    )
                return redirect_to_login(request.get_full_path())
            request.user = user
        return view(request, *args, **kwargs)

    return wrapper


api = NinjaAPI(
    docs_decorator=_docs_login,
    title="Preflight API",
    version="1",
    description="Inventory, audits and results of GPU clusters checked for GPUStack. Authenticate with "
    "`Authorization: Bearer <token>` (create tokens on your [account page](/account/tokens/) or in the admin). Every "
    "error answers `{code, message, errors}`. [Back to the Preflight portal](/).",
    # No deep links: Swagger UI puts them as links inside each operation's button (nested interactive controls).
    docs=Swagger(settings={"deepLinking": False}),
    auth=BearerToken(),
    urls_namespace="api",
)


def _error(request, status: int, code: str, message: str, errors: list | None = None):
    response = api.create_response(request, {"code": code, "message": message, "errors": errors or []}, status=status)
    return response


@api.exception_handler(ApiError)
def _api_error(request, exc: ApiError):
    response = _error(request, exc.status, exc.code, exc.message, exc.errors)
    for key, value in (exc.headers or {}).items():
        response[key] = value
    return response


@api.exception_handler(ValidationError)
def _validation(request, exc: ValidationError):
    errors = [
        {
            "field": ".".join(
                str(part) for part in e.get("loc", ()) if part not in ("body", "payload", "query", "path")
            ),
            "message": e.get("msg", "invalid"),
        }
        for e in exc.errors
    ]
    fields = ", ".join(sorted({e["field"] for e in errors if e["field"]})) or "the request"
    return _error(request, 422, "validation_error", f"invalid value for {fields}", errors)


@api.exception_handler(DjangoValidationError)
def _model_validation(request, exc: DjangoValidationError):
    if hasattr(exc, "message_dict"):
        errors = [{"field": k, "message": " ".join(v)} for k, v in exc.message_dict.items()]
    else:
        errors = [{"field": "", "message": m} for m in exc.messages]
    return _error(request, 422, "validation_error", "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    response = _error(request, 401, "unauthenticated", "a valid, unexpired API token is required (Bearer)")
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(PermissionDenied)
def _forbidden(request, exc):
    return _error(request, 403, "forbidden", str(exc) or "you do not have permission for this")


@api.exception_handler(Http404)
def _not_found(request, exc):
    return _error(request, 404, "not_found", str(exc) or "not found")


@api.exception_handler(ObjectDoesNotExist)
def _does_not_exist(request, exc):
    return _error(request, 404, "not_found", str(exc) or "not found")


@api.exception_handler(IntegrityError)
def _conflict(request, exc):
    return _error(request, 409, "conflict", "this conflicts with an existing object (a name or address in use)")


@api.exception_handler(RequestDataTooBig)
def _too_large(request, exc):
    return _error(request, 413, "too_large", "the request body is larger than this server accepts")


@api.exception_handler(MultiPartParserError)
@api.exception_handler(BadRequest)
@api.exception_handler(SuspiciousOperation)
def _bad_request(request, exc):
    # A malformed multipart body (bad boundary, oversized part headers) and the like: say so in JSON, not HTML.
    return _error(request, 400, "bad_request", f"the request body could not be parsed: {exc}")


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    codes = {
        400: "bad_request",
        401: "unauthenticated",
        403: "forbidden",
        404: "not_found",
        405: "bad_request",
        409: "conflict",
        413: "too_large",
        422: "validation_error",
    }
    return _error(request, exc.status_code, codes.get(exc.status_code, "error"), str(exc))


def register_routers() -> None:
    from checks.api import router as checks_router
    from checks.fix_api import router as fix_router
    from checks.install_api import router as install_router
    from checks.waiver_api import router as waivers_router
    from inventory.api import router as inventory_router

    api.add_router("/", inventory_router)
    api.add_router("/", checks_router)
    api.add_router("/", waivers_router)
    api.add_router("/", install_router)
    api.add_router("/", fix_router)


register_routers()
