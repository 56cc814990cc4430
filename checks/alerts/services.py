"""Regression alerts: find what got worse when an audit closes, record one delivery per enabled webhook and hand it
to Celery (`checks.deliver_webhook`, retried with backoff), and e-mail the cluster's addresses
(`checks.send_alert_email`, Django's e-mail backend). Nothing is recorded or sent when nothing got worse."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import socket
import ssl
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from .. import clamp, models
from ..choices import RunState
from .policy import WebhookRefused, webhook_target
from .regressions import BAD, NodeState, Regressions, find_regressions

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Preflight-Signature"


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _states(audit_id: int) -> dict[int, NodeState]:
    """Per node of an audit: its status and its counted (not waived) failing checks. Two queries. A run Preflight
    itself lost (portal_error) is no verdict on its node: left out, so it never reads as the node's regression."""
    # Only the columns it compares: whole rows decoded every node audit's raw output and facts, and every node's
    # last facts, twice at each audit's close (6,000 JSON documents at 3,000 nodes).
    rows = (
        models.NodeAudit.objects.filter(audit_id=audit_id, finished__isnull=False)
        .exclude(portal_error__gt="")
        .values_list("pk", "node_id", "node__name", "status")
    )
    by_id = {pk: (node_id, name, status) for pk, node_id, name, status in rows}
    failing: dict[int, dict[str, tuple[str, str]]] = {pk: {} for pk in by_id}
    for node_audit_id, check_id, status, summary in models.CheckResult.objects.filter(
        node_audit_id__in=list(by_id), status__in=list(BAD), waived__isnull=True
    ).values_list("node_audit_id", "check_id", "status", "summary"):
        failing[node_audit_id][check_id] = (status, summary)
    return {node_id: NodeState(name, status, failing[pk]) for pk, (node_id, name, status) in by_id.items()}


def audit_regressions(*, audit: models.Audit) -> tuple[models.Audit | None, Regressions]:
    """What got worse since the cluster's previous finished audit (nothing for its first audit)."""
    previous = (
        models.Audit.objects.filter(cluster_id=audit.cluster_id, state=RunState.DONE, created__lt=audit.created)
        .exclude(pk=audit.pk)
        .order_by("-created")
        .first()
    )
    if previous is None:
        return None, Regressions()
    return previous, find_regressions(_states(previous.pk), _states(audit.pk))


def alert_payload(*, audit: models.Audit, previous: models.Audit, found: Regressions) -> dict:
    return {
        "event": "preflight.regression",
        "cluster": audit.cluster.name,
        "audit": audit.pk,
        "previous_audit": previous.pk,
        "finished": _iso(audit.finished),
        "nodes_not_ready": found.went_not_ready,
        "checks_newly_failing": found.newly_failing,
    }


def alerts_after_audit(*, audit_id: int) -> int:
    """Called once when an audit closes. Records a delivery per enabled webhook of the cluster and queues it and the
    e-mail, after commit; returns how many deliveries were recorded (0 when nothing got worse)."""
    from ..services.queue import celery_task

    audit = models.Audit.objects.select_related("cluster").get(pk=audit_id)
    previous, found = audit_regressions(audit=audit)
    if previous is None or not found:
        return 0
    body = json.dumps(alert_payload(audit=audit, previous=previous, found=found), sort_keys=True)
    deliveries = [
        models.WebhookDelivery.objects.create(endpoint=endpoint, audit=audit, body=body)
        for endpoint in models.WebhookEndpoint.objects.filter(cluster=audit.cluster, enabled=True)
    ]
    for delivery in deliveries:
        transaction.on_commit(lambda pk=delivery.pk: celery_task("checks.deliver_webhook").delay(pk))
    if models.AlertEmail.objects.filter(cluster=audit.cluster, enabled=True).exists():
        transaction.on_commit(lambda: celery_task("checks.send_alert_email").delay(audit.pk, previous.pk))
    return len(deliveries)


def alert_email_send(*, audit_id: int, previous_id: int) -> int:
    """E-mail what got worse to the cluster's enabled addresses; returns how many were sent."""
    audit = models.Audit.objects.select_related("cluster").get(pk=audit_id)
    previous = models.Audit.objects.get(pk=previous_id)
    found = find_regressions(_states(previous.pk), _states(audit.pk))
    recipients = list(
        models.AlertEmail.objects.filter(cluster=audit.cluster, enabled=True).values_list("address", flat=True)
    )
    if not found or not recipients:
        return 0
    lines = [f"Audit {audit.pk} of cluster {audit.cluster.name} found regressions since audit {previous.pk}.", ""]
    lines += [f"- {r['node']}: ready ({r['before']}) -> not ready ({r['after']})" for r in found.went_not_ready]
    lines += [f"- {r['node']}: {r['check']} now {r['status']}: {r['summary']}" for r in found.newly_failing]
    subject = f"[Preflight] {audit.cluster.name}: "
    subject += f"{len(found.went_not_ready)} node(s) no longer ready" if found.went_not_ready else "new failing checks"
    return send_mail(
        subject, "\n".join(lines) + "\n", settings.PREFLIGHT_ALERT_EMAIL_FROM, recipients, fail_silently=False
    )


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the exact body bytes under the endpoint's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address the policy checked, whatever the host name resolves to now."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@dataclass
class Attempt:
    delivered: bool
    retry_in: float | None = None  # seconds until the next try; None: no more tries


def _post(target, body: bytes, headers: dict[str, str]) -> int:
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = kind(target.host, target.port, address=target.address, timeout=settings.PREFLIGHT_WEBHOOK_TIMEOUT)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(65536)
        return response.status
    finally:
        connection.close()


def webhook_attempt(*, delivery_id: int) -> Attempt:
    """One try of a delivery: the policy again on a fresh resolution (connecting to the checked address), then the
    signed POST. A 2xx delivers it; anything else is tried again with backoff until PREFLIGHT_WEBHOOK_MAX_ATTEMPTS;
    a policy refusal fails it at once (it is not transient). A delivered or failed one is left alone."""
    pending = models.WebhookDelivery.State.PENDING
    delivery = models.WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id, state=pending).first()
    if delivery is None:
        return Attempt(delivered=False)
    delivery.attempts += 1
    endpoint = delivery.endpoint
    try:
        target = webhook_target(endpoint.url)
    except WebhookRefused as exc:
        delivery.state, delivery.error, delivery.finished = (
            models.WebhookDelivery.State.FAILED,
            str(exc),
            timezone.now(),
        )
        delivery.save(update_fields=["attempts", "state", "error", "finished"])
        return Attempt(delivered=False)
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Preflight-Webhook/1",
        "X-Preflight-Event": delivery.event,
        "X-Preflight-Delivery": str(delivery.pk),
        SIGNATURE_HEADER: signature(endpoint.secret, body),
    }
    delivery.address = target.address
    try:
        status = _post(target, body, headers)
        delivery.response_status = status
        error = "" if 200 <= status < 300 else f"the receiver answered HTTP {status}"
    except (OSError, http.client.HTTPException) as exc:
        error = clamp.text(f"{type(exc).__name__}: {exc}", 500)
    delivery.error = error
    if not error:
        delivery.state, delivery.finished = models.WebhookDelivery.State.DELIVERED, timezone.now()
        delivery.save()
        return Attempt(delivered=True)
    if delivery.attempts >= settings.PREFLIGHT_WEBHOOK_MAX_ATTEMPTS:
        delivery.state, delivery.finished = models.WebhookDelivery.State.FAILED, timezone.now()
        delivery.save()
        logger.warning("webhook delivery %s failed after %d attempts: %s", delivery.pk, delivery.attempts, error)
        return Attempt(delivered=False)
    delivery.save()
    return Attempt(delivered=False, retry_in=settings.PREFLIGHT_WEBHOOK_RETRY_BASE * 2 ** (delivery.attempts - 1))
