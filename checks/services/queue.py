"""Handing work to Celery: tasks by their registered name (services never import the tasks module, which
imports the services), the broker's name for messages, and the fan-out of one task per queued node audit."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import F
from django.utils import timezone

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


def audit_dispatch(*, audit_id: int) -> int:
    """Send one Celery task per node audit still queued; returns how many were sent. Safe to repeat: a node audit
    is claimed with a conditional UPDATE, so a duplicate message finds nothing to do."""
    from celery import group

    ids = list(models.NodeAudit.objects.filter(audit_id=audit_id, state=RunState.QUEUED).values_list("pk", flat=True))
    if ids:
        group(celery_task("checks.audit_node").s(node_audit_id) for node_audit_id in ids).apply_async()
    models.Audit.objects.filter(pk=audit_id).update(dispatched=timezone.now(), dispatches=F("dispatches") + 1)
    return len(ids)
