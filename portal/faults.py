"""When Preflight's own services fail, not a node: the database (locked, busy, read-only, full, gone) or the broker.

- `db_fault(exc)` names a transient database failure ("the database is full") or returns None for anything else
  (a bug, a constraint): SQLite's and PostgreSQL's OperationalError variants, read by message or SQLSTATE.
- `broker_fault(exc)` does the same for the task queue (kombu's OperationalError, redis-py's connection errors).
- `retry_db_write(fn, budget=...)` runs a write again with backoff while it fails with a transient database fault,
  within a time budget (tenacity), then lets the last error through.
- `UnavailableMiddleware` and `server_error` (the 500 handler) answer such failures, in any door, with 503, a
  `Retry-After` header, and the API's JSON error shape (`code: unavailable`) or a page with a banner; the web pages
  show a banner for a minute after this process met one.

A leaf like `portal.api_plumbing`: it imports no app, so services and doors can all use it.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import TypeVar

from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)
T = TypeVar("T")

# SQLite's messages (sqlite3.OperationalError carries no code on Python 3.11) and what they mean to an operator.
_SQLITE = (
    ("database or disk is full", "the database is full"),
    ("disk i/o error", "the database's disk failed to write"),
    ("database is locked", "the database is locked"),
    ("database table is locked", "the database is locked"),
    ("readonly database", "the database is read-only"),
    ("unable to open database file", "the database is unavailable"),
)
# PostgreSQL SQLSTATE prefixes (and whole codes) that a later try can get past.
_POSTGRES = (
    ("53100", "the database is full"),
    ("53", "the database is out of resources"),
    ("55P03", "the database is locked"),
    ("40P01", "the database is busy"),
    ("40001", "the database is busy"),
    ("25006", "the database is read-only"),
    ("57P", "the database is unavailable"),
    ("08", "the database is unavailable"),
)
RETRY_AFTER_DATABASE = 10
RETRY_AFTER_BROKER = 15


def db_fault(exc: BaseException | None) -> str | None:
    """What is wrong with the database, if `exc` is a transient failure of it; None for any other error."""
    if not isinstance(exc, DatabaseError):
        return None
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    if sqlstate:
        for prefix, meaning in _POSTGRES:
            if sqlstate.startswith(prefix):
                return meaning
        return None
    message = str(exc).lower()
    for text, meaning in _SQLITE:
        if text in message:
            return meaning
    if isinstance(exc, InterfaceError) or (isinstance(exc, OperationalError) and connection.vendor != "sqlite"):
        return "the database is unavailable"  # a dropped or refused connection carries no SQLSTATE
    return None


def broker_fault(exc: BaseException | None) -> str | None:
    """What is wrong with the task queue, if `exc` says it cannot be reached; None for any other error."""
    from kombu.exceptions import OperationalError as KombuOperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(exc, (KombuOperationalError, RedisConnectionError, RedisTimeoutError)):
        return "the task queue (Redis) is unavailable"
    return None


def retry_db_write(
    fn: Callable[[], T],
    *,
    budget: float,
    what: str = "a write",
    on_fault: Callable[[BaseException], None] | None = None,
) -> T:
    """`fn()`, tried again with exponential backoff (0.1 s doubling to 2 s, with jitter) while it fails with a
    transient database fault, until `budget` seconds have passed; then the last error is raised. `fn` must be
    its own transaction: inside an outer atomic block (a test's) it runs once, as nothing could be retried.
    `on_fault(exc)` is called on each failure that will be retried."""
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

    if connection.in_atomic_block:
        return fn()

    def before_sleep(state) -> None:
        exc = state.outcome.exception() if state.outcome else None
        note_fault(db_fault(exc) or "the database failed")
        if on_fault is not None and exc is not None:
            on_fault(exc)
        logger.warning("%s failed (%s), try %d; retrying", what, exc, state.attempt_number)
        close_old_connections()  # a connection the failure broke is replaced on the next try

    for attempt in Retrying(
        retry=retry_if_exception(lambda exc: db_fault(exc) is not None),
        wait=wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.2),
        stop=stop_after_delay(budget),
        before_sleep=before_sleep,
        reraise=True,
    ):
        with attempt, write_turn():
            return fn()
    raise AssertionError("unreachable")  # pragma: no cover - Retrying either returns or raises


_SQLITE_WRITER = threading.RLock()


@contextmanager
def write_turn():
    """On SQLite, one write transaction at a time per process. The threads of a worker then wait their turn in
    order here, instead of all spinning in SQLite's busy handler, which is unfair: after a lock goes away, a few
    dozen threads retrying at once starved some of them past their 20 s busy time-out. Other processes (the web
    workers, beat) still meet in SQLite's lock. On other databases this does nothing."""
    if connection.vendor != "sqlite":
        yield
        return
    with _SQLITE_WRITER:
        yield


# --- the doors: 503 instead of 500, and a banner --------------------------------------------------------------

BANNER_SECONDS = 60.0
_last_fault: dict[str, float | str] = {}
_lock = threading.Lock()


def note_fault(reason: str) -> None:
    """Remember that this process just met `reason`; pages show a banner about it for BANNER_SECONDS."""
    with _lock:
        _last_fault.update(reason=reason, at=time.monotonic())


def recent_fault() -> str | None:
    with _lock:
        at, reason = _last_fault.get("at"), _last_fault.get("reason")
    if isinstance(at, float) and isinstance(reason, str) and time.monotonic() - at < BANNER_SECONDS:
        return reason
    return None


def unavailable_response(request, exc: BaseException | None) -> HttpResponse | None:
    """503 for a database or broker failure (JSON under /api/, a page with a banner elsewhere); None otherwise."""
    reason, retry_after = db_fault(exc), RETRY_AFTER_DATABASE
    if reason is None:
        reason, retry_after = broker_fault(exc), RETRY_AFTER_BROKER
    if reason is None:
        return None
    note_fault(reason)
    logger.warning("%s %s: answered 503, %s (%r)", request.method, request.path, reason, exc)
    message = f"Preflight is unavailable for a moment: {reason}. Try again in {retry_after} s."
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"code": "unavailable", "message": message, "errors": []}, status=503)
    else:
        html = render_to_string("unavailable.html", {"reason": reason, "retry_after": retry_after})
        response = HttpResponse(html, status=503)
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    return response


class UnavailableMiddleware:
    """Outermost but for security headers: a view that fails on the database or broker answers 503, and
    `request.preflight_degraded` tells the page template to show a banner after a recent failure."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        request.preflight_degraded = recent_fault()
        return self.get_response(request)

    def process_exception(self, request, exception):
        return unavailable_response(request, exception)


def server_error(request) -> HttpResponse:
    """Django's 500 handler (portal.urls.handler500): a failure outside the views (a middleware reading the
    session while the database is locked) is answered like one inside them; anything else is Django's 500."""
    from django.views.defaults import server_error as default_server_error

    response = unavailable_response(request, sys.exc_info()[1])
    return response if response is not None else default_server_error(request)
