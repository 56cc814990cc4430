"""What the apps' API routers share: the error they raise, bounded pagination, the permission check.

A leaf: it imports neither the apps nor `portal.api` (which mounts the apps' routers), so the routers can import it
without a cycle; .importlinter holds that.
"""

from django.core.exceptions import PermissionDenied
from ninja import Field, Schema
from ninja.pagination import LimitOffsetPagination


class ApiError(Exception):
    """Raised by a handler; `portal.api` renders it in the one JSON error shape."""

    def __init__(self, status: int, code: str, message: str, errors: list | None = None, headers=None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors, self.headers = status, code, message, errors or [], headers


def require_perms(request, *permissions: str) -> None:
    """Django model permissions for the token's user: view for reads, add/change/delete for writes."""
    missing = [p for p in permissions if not request.user.has_perm(p)]
    if missing:
        raise PermissionDenied(f"missing permission: {', '.join(missing)}")


class BoundedPagination(LimitOffsetPagination):
    """limit/offset with upper bounds, so an absurd offset is a 422, not a database overflow."""

    class Input(Schema):
        limit: int = Field(100, ge=1, le=1000)
        offset: int = Field(0, ge=0, le=2_000_000_000)


class Paged:
    """A queryset whose rows are shaped by `shape` only once paged: BoundedPagination slices it (one query for the
    page) and counts it (one COUNT), so a list endpoint reads `limit` rows, never the whole table (3,000 nodes and
    their devices for a page of 100). Hand it to a @paginate handler in place of a list of dicts."""

    def __init__(self, queryset, shape) -> None:
        self.queryset, self.shape = queryset, shape

    def all(self):  # ninja counts with `.all().count()`
        return self.queryset

    def __len__(self) -> int:
        return self.queryset.count()

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.shape(row) for row in self.queryset[index]]
        return self.shape(self.queryset[index])
