"""Handing work to Celery: tasks by their registered name (services never import the tasks module, which
imports the services), the broker's name for messages, the fan-out of one task per queued node audit (each row
remembers when it was sent), and what the broker holds, so the sweep can send again what it lost."""

from __future__ import annotations

import base64
import json
import logging
import time
from contextlib import contextmanager

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from portal.faults import db_fault

from .. import models
from ..choices import RunState

logger = logging.getLogger(__name__)


def celery_task(name: str):
    """A Celery task by its registered name: services enqueue tasks without importing the tasks module (which
    imports the services), so the two never import each other."""
    from celery import current_app

    app = current_app._get_current_object()
    if name not in app.tasks:
        app.loader.import_default_modules()  # Celery's autodiscovery imports every app's tasks module
    return app.tasks[name]


def broker_name() -> str:
    from kombu.utils.url import maybe_sanitize_url

    return maybe_sanitize_url(settings.CELERY_BROKER_URL)


def node_audits_send(ids: list[int]) -> None:
    """Send one Celery task per node audit, noting first on each row when it was sent (if the send fails, the
    sweep finds the row sent but not held by the broker, and sends it again)."""
    from celery import group

    if not ids:
        return
    models.NodeAudit.objects.filter(pk__in=ids, state=RunState.QUEUED).update(dispatched=timezone.now())
    group(celery_task("checks.audit_node").s(node_audit_id) for node_audit_id in ids).apply_async()


def audit_dispatch(*, audit_id: int) -> int:
    """Send one Celery task per node audit still queued; returns how many were sent. Safe to repeat: a node audit
    is claimed with a conditional UPDATE, so a duplicate message finds nothing to do."""
    ids = list(models.NodeAudit.objects.filter(audit_id=audit_id, state=RunState.QUEUED).values_list("pk", flat=True))
    node_audits_send(ids)
    models.Audit.objects.filter(pk=audit_id).update(dispatched=timezone.now(), dispatches=F("dispatches") + 1)
    return len(ids)


@contextmanager
def _broker_client():
    """The Redis client of Celery's broker connection (with its URL, password and TLS), tried once: a broker that
    is down raises at once instead of being retried for ever as workers do."""
    from celery import current_app

    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=5)
        channel = conn.default_channel
        if not hasattr(channel, "unacked_key"):
            raise TypeError(f"the broker ({broker_name()}) is not Redis")
        yield channel


def _audit_node_id(raw: str | bytes | dict) -> int | None:
    """The node audit id a `checks.audit_node` task message carries (Celery's message protocol 2, as kombu's
    Redis transport stores it); None for any other message."""
    try:
        message = raw if isinstance(raw, dict) else json.loads(raw)
        if message.get("headers", {}).get("task") != "checks.audit_node":
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return int(args[0])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def broker_held_node_audits(*, delivered_within: float) -> set[int] | None:
    """The node audits whose task message the broker holds: waiting in a queue, or delivered to a worker less
    than `delivered_within` seconds ago and not acknowledged yet. None when the broker cannot be asked (down, not
    Redis, or tasks run eagerly in tests). A message delivered longer ago whose node audit is still queued went
    to a worker that died before claiming it."""
    from celery import current_app

    if current_app.conf.task_always_eager:
        return None
    try:
        with _broker_client() as channel:
            client = channel.client
            queue = current_app.conf.task_default_queue
            raws: list = []
            for key in dict.fromkeys(channel._q_for_pri(queue, pri) for pri in channel.priority_steps):
                raws.extend(client.lrange(key, 0, -1))
            fresh = client.zrangebyscore(channel.unacked_index_key, time.time() - delivered_within, "+inf")
            if fresh:  # each is [message, exchange, routing key]
                raws.extend(json.loads(raw)[0] for raw in client.hmget(channel.unacked_key, fresh) if raw)
    except Exception:  # noqa: BLE001 - kombu/redis errors: the sweep falls back on the audit's progress
        logger.warning("the broker (%s) could not be listed", broker_name(), exc_info=True)
        return None
    return {node_audit_id for node_audit_id in map(_audit_node_id, raws) if node_audit_id is not None}


def broker_flag(key: str, *, ttl: float) -> bool:
    """Set `key` in the broker's Redis for `ttl` seconds unless it is set; True when this call set it (a lock that
    expires by itself: two beats sending the sweep run it once). True also when the broker cannot be asked."""
    try:
        with _broker_client() as channel:
            return bool(channel.client.set(f"preflight:{key}", "1", nx=True, px=max(1, int(ttl * 1000))))
    except Exception:  # noqa: BLE001 - no broker: nothing else can have sent this task either
        return True


def broker_mark(key: str, *, ttl: float) -> None:
    """Set `key` in the broker's Redis for `ttl` seconds (a shared note, e.g. "the database failed just now")."""
    try:
        with _broker_client() as channel:
            channel.client.set(f"preflight:{key}", "1", px=max(1, int(ttl * 1000)))
    except Exception:  # noqa: BLE001 - best effort: the note only makes the sweep more careful
        logger.debug("could not note %s in the broker", key, exc_info=True)


def broker_marked(key: str) -> bool:
    try:
        with _broker_client() as channel:
            return bool(channel.client.exists(f"preflight:{key}"))
    except Exception:  # noqa: BLE001 - cannot tell: assume the worst, as the note makes the sweep careful
        return True


DB_FAULT_NOTE = "db-fault"


def note_database_fault(exc: BaseException) -> None:
    """Tell the sweep (through the broker) that the database failed just now: leases that ran out meanwhile may
    belong to live workers that could not renew them, so it waits until they could have."""
    if db_fault(exc) is not None:  # (a writer waits up to SQLite's 20 s busy time-out before it hears of a lock)
        broker_mark(DB_FAULT_NOTE, ttl=3 * settings.PREFLIGHT_LEASE_RENEW + 25)
