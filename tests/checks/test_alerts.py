"""Regression alerts against a real HTTP receiver on loopback that this test starts (the loopback network is
allowed by the webhook setting in these tests only), with the real audit (replayed node output, tests/replay.py)
and Celery eager (retries run at once, countdown aside). E-mail through Django's test outbox."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError

from checks.alerts.policy import WebhookRefused, webhook_target
from checks.models import AlertEmail, Audit, WebhookDelivery, WebhookEndpoint
from checks.services import audit_run_inline, audit_start
from checks.services.finish import audit_finish, node_audit_end_in_error
from tests.factories import ClusterFactory, CredentialFactory, NodeFactory
from tests.replay import ReplayTransport, sections
from tests.security import fake_dns

pytestmark = pytest.mark.django_db

SECRET = "receiver-shared-secret"


class Receiver:
    """A webhook receiver: answers each POST with the next status of `statuses` (the last repeats) and verifies
    X-Preflight-Signature with the shared secret, as a real receiver must."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                receiver.requests.append(
                    {
                        "verified": hmac.compare_digest(expected, self.headers.get("X-Preflight-Signature", "")),
                        "body": json.loads(body),
                        "status": status,
                        "host": self.headers.get("Host"),
                    }
                )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/preflight"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loopback_webhooks(settings):
    settings.PREFLIGHT_WEBHOOK_ALLOW_HTTP = True
    settings.PREFLIGHT_WEBHOOK_ALLOW_NETWORKS = ["127.0.0.0/8"]
    settings.PREFLIGHT_WEBHOOK_TIMEOUT = 5


@pytest.fixture
def lab(django_capture_on_commit_callbacks):
    """Cluster `lab` with one server; `audit(ntp=...)` audits it with or without an NTP implementation and runs
    what the audit queued on commit (webhook deliveries, e-mail) eagerly."""
    cluster = ClusterFactory(name="lab")
    NodeFactory(cluster=cluster, name="srv", role="server", address="127.0.0.2", credential=CredentialFactory())
    transport = ReplayTransport({})

    def audit(*, ntp: bool):
        transport.by_address["127.0.0.2"] = sections(ntp=ntp)
        with django_capture_on_commit_callbacks(execute=True):
            return audit_run_inline(audit=audit_start(cluster=cluster), transport=transport)

    return cluster, audit


def _endpoint(cluster, url: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(cluster=cluster, name="ops", url=url)
    endpoint.secret = SECRET
    endpoint.full_clean()
    endpoint.save()
    return endpoint


def test_a_node_that_stops_being_ready_is_posted_signed_and_retried_until_delivered(lab, loopback_webhooks):
    cluster, audit = lab
    with Receiver([500, 500, 200]) as receiver:
        endpoint = _endpoint(cluster, receiver.url)
        # given: a first audit finds the node ready (and, being the first, has nothing to compare with)
        first = audit(ntp=True)
        assert receiver.requests == [] and not WebhookDelivery.objects.exists()
        # when: the next audit finds time.ntp failing
        second = audit(ntp=False)
    # then: three tries, every one signed; exactly one answered 200; the log says delivered after 3 attempts
    assert [r["status"] for r in receiver.requests] == [500, 500, 200]
    assert all(r["verified"] for r in receiver.requests) and receiver.requests[0]["host"].startswith("127.0.0.1:")
    body = receiver.requests[-1]["body"]
    assert body["event"] == "preflight.regression" and (body["audit"], body["previous_audit"]) == (second.pk, first.pk)
    assert body["nodes_not_ready"] == [{"node": "srv", "before": "pass", "after": "fail"}]
    assert [(c["node"], c["check"], c["status"]) for c in body["checks_newly_failing"]] == [("srv", "time.ntp", "fail")]
    delivery = WebhookDelivery.objects.get()
    assert (delivery.endpoint_id, delivery.state, delivery.attempts, delivery.response_status) == (
        endpoint.pk,
        "delivered",
        3,
        200,
    )
    assert delivery.address == "127.0.0.1"


def test_nothing_is_sent_when_nothing_got_worse(lab, loopback_webhooks, mailoutbox):
    cluster, audit = lab
    AlertEmail.objects.create(cluster=cluster, address="ops@example.com")
    with Receiver([200]) as receiver:
        _endpoint(cluster, receiver.url)
        audit(ntp=True)
        audit(ntp=False)  # got worse: one webhook, one e-mail
        sent, mailed = len(receiver.requests), len(mailoutbox)
        # when: the next audit finds the same failure, and the one after finds it fixed
        audit(ntp=False)
        audit(ntp=True)
    # then
    assert (sent, mailed) == (1, 1)
    assert (len(receiver.requests), len(mailoutbox), WebhookDelivery.objects.count()) == (1, 1, 1)


def test_a_run_preflight_lost_is_no_regression_of_the_node(
    lab, loopback_webhooks, mailoutbox, django_capture_on_commit_callbacks
):
    cluster, audit = lab
    AlertEmail.objects.create(cluster=cluster, address="ops@example.com")
    with Receiver([200]) as receiver:
        _endpoint(cluster, receiver.url)
        # given: a first audit finds the node ready
        audit(ntp=True)
        # when: the next audit's run of it is lost by Preflight (its worker lost too often), and the audit closes
        with django_capture_on_commit_callbacks(execute=True):
            lost = audit_start(cluster=cluster)
            node_audit = lost.node_audits.get()
            assert node_audit_end_in_error(node_audit.pk, "swept: lost 3 times", states=["queued"], portal=True)
            audit_finish(audit_id=lost.pk)
    # then: the audit closed, and nothing blames the node (no "no longer ready", no "ssh.connect newly failing")
    assert Audit.objects.get(pk=lost.pk).state == "done"
    assert (receiver.requests, mailoutbox, WebhookDelivery.objects.count()) == ([], [], 0)


def test_the_alert_email_goes_through_django_mail(lab, mailoutbox):
    cluster, audit = lab
    AlertEmail.objects.create(cluster=cluster, address="ops@example.com")
    AlertEmail.objects.create(cluster=cluster, address="off@example.com", enabled=False)
    audit(ntp=True)
    audit(ntp=False)
    (message,) = mailoutbox
    assert message.to == ["ops@example.com"] and message.subject == "[Preflight] lab: 1 node(s) no longer ready"
    assert "srv: ready (pass) -> not ready (fail)" in message.body and "time.ntp now fail" in message.body


def test_a_webhook_to_the_metadata_address_is_refused_when_saved(settings):
    settings.PREFLIGHT_WEBHOOK_ALLOW_HTTP = True
    settings.PREFLIGHT_WEBHOOK_ALLOW_NETWORKS = ["127.0.0.0/8"]  # loopback allowed: metadata still is not
    cluster = ClusterFactory(name="lab")
    for url in ("http://169.254.169.254/latest/meta-data/", "https://[::ffff:169.254.169.254]/", "https://127.0.0.1/"):
        endpoint = WebhookEndpoint(cluster=cluster, name="x", url=url)
        endpoint.secret = SECRET
        if "127.0.0.1" in url:
            endpoint.full_clean()  # the allowed loopback network
            continue
        with pytest.raises(ValidationError, match="cloud metadata address"):
            endpoint.full_clean()


def test_https_is_required_and_internal_addresses_refused_by_default():
    refusals = {}
    for url in ("http://hooks.example.com/x", "https://127.0.0.1/x", "https://[fe80::1]/x", "https://0.0.0.0/"):
        with pytest.raises(WebhookRefused) as refused:
            webhook_target(url, resolve=lambda host, port: ["203.0.113.9"])
        refusals[url] = str(refused.value).split(": webhooks may not")[0]
    assert refusals == {
        "http://hooks.example.com/x": "webhooks must use https (PREFLIGHT_WEBHOOK_ALLOW_HTTP allows http)",
        "https://127.0.0.1/x": "127.0.0.1 is a loopback address",
        "https://[fe80::1]/x": "fe80::1 is a link-local address",
        "https://0.0.0.0/": "0.0.0.0 is not a unicast address",
    }
    target = webhook_target("https://hooks.example.com:8443/x?y=1", resolve=lambda host, port: ["203.0.113.9"])
    assert (target.address, target.port, target.path) == ("203.0.113.9", 8443, "/x?y=1")
    assert target.host == "hooks.example.com"


def test_a_name_that_rebinds_to_the_metadata_address_at_send_time_is_refused_and_never_contacted(
    lab, loopback_webhooks, settings
):
    # given: hooks.example answers loopback (allowed) when the endpoint is saved, then the metadata address
    cluster, audit = lab
    settings.PREFLIGHT_TARGET_RESOLVER = "tests.security.fake_dns.rebinding"
    with Receiver([200]) as receiver:
        port = receiver.server.server_address[1]
        fake_dns.reset(**{"hooks.example": ["127.0.0.1", "169.254.169.254"]})
        _endpoint(cluster, f"http://hooks.example:{port}/hook")
        # when
        audit(ntp=True)
        audit(ntp=False)
    # then: checked again at send time on a fresh answer, refused, and the receiver never heard of it
    delivery = WebhookDelivery.objects.get()
    assert receiver.requests == [] and delivery.state == "failed" and delivery.attempts == 1
    assert "hooks.example (169.254.169.254) is a cloud metadata address" in delivery.error
    assert fake_dns.CALLS == ["hooks.example", "hooks.example"]


def test_a_receiver_that_keeps_failing_is_retried_with_backoff_then_counted_failed(lab, loopback_webhooks, settings):
    from checks.alerts.services import webhook_attempt
    from portal.metrics import PreflightCollector

    # given: one recorded delivery to a receiver that always answers 503
    settings.PREFLIGHT_WEBHOOK_MAX_ATTEMPTS = 3
    settings.PREFLIGHT_WEBHOOK_RETRY_BASE = 30
    cluster, _ = lab
    with Receiver([503]) as receiver:
        endpoint = _endpoint(cluster, receiver.url)
        delivery = WebhookDelivery.objects.create(endpoint=endpoint, body='{"event": "preflight.regression"}')
        # when: the task's tries, one by one
        attempts = [webhook_attempt(delivery_id=delivery.pk) for _ in range(4)]
    # then: 30 s, then 60 s, then it gives up; a fourth call finds nothing to do
    assert [(a.delivered, a.retry_in) for a in attempts] == [(False, 30), (False, 60), (False, None), (False, None)]
    assert len(receiver.requests) == 3
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.response_status) == ("failed", 3, 503)
    assert delivery.error == "the receiver answered HTTP 503"
    failed = next(f for f in PreflightCollector().collect() if f.name == "preflight_webhook_deliveries_failed")
    assert [(s.labels, s.value) for s in failed.samples if s.name.endswith("_total")] == [({"cluster": "lab"}, 1)]


def test_the_admin_stores_the_endpoint_secret_encrypted_and_never_shows_it(admin_client, settings):
    settings.PREFLIGHT_WEBHOOK_ALLOW_NETWORKS = []
    settings.PREFLIGHT_TARGET_RESOLVER = "tests.security.fake_dns.rebinding"
    fake_dns.reset(**{"hooks.example.com": ["203.0.113.10"]})
    cluster = ClusterFactory(name="lab")
    response = admin_client.post(
        "/admin/checks/webhookendpoint/add/",
        {
            "cluster": cluster.pk,
            "name": "ops",
            "url": "https://hooks.example.com/preflight",
            "enabled": "on",
            "secret": "top-secret-hmac-key",
            "deliveries-TOTAL_FORMS": 0,
            "deliveries-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == "top-secret-hmac-key" and "top-secret" not in endpoint.secret_encrypted
    page = admin_client.get(f"/admin/checks/webhookendpoint/{endpoint.pk}/change/").content.decode()
    assert "top-secret-hmac-key" not in page
    refused = admin_client.post(
        "/admin/checks/webhookendpoint/add/",
        {"cluster": cluster.pk, "name": "imds", "url": "https://169.254.169.254/", "secret": "s",
         "deliveries-TOTAL_FORMS": 0, "deliveries-INITIAL_FORMS": 0},
    )  # fmt: skip
    assert "cloud metadata address" in refused.content.decode() and WebhookEndpoint.objects.count() == 1
