"""/metrics: parsed with prometheus_client's own text parser and compared with what the dashboard shows; a constant
number of queries per scrape; who may scrape."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from checks.services import audit_run_inline, audit_start
from tests.factories import ClusterFactory, CredentialFactory, NodeFactory
from tests.replay import ReplayTransport, nvidia_worker_sections, sections
from tests.security.conftest import grant

pytestmark = pytest.mark.django_db


def _cluster(name: str, *, workers: int, failing_servers: bool, first_octet: int):
    """One server (failing time.ntp when asked) and `workers` healthy NVIDIA workers, audited once."""
    cluster = ClusterFactory(name=name)
    credential = CredentialFactory()
    outputs = {}
    for i in range(workers + 1):
        address = f"127.0.{first_octet}.{i + 1}"
        role = "server" if i == 0 else "worker"
        NodeFactory(cluster=cluster, name=f"{name}-{role}-{i}", role=role, address=address, credential=credential)
        outputs[address] = sections(ntp=not failing_servers) if i == 0 else nvidia_worker_sections()
    names = list(cluster.nodes.values_list("name", flat=True))
    audit_run_inline(audit=audit_start(cluster=cluster, node_names=names), transport=ReplayTransport(outputs))
    return cluster


def _samples(body: str) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _dashboard(client, name: str) -> dict:
    body = client.get(reverse("ui:dashboard", args=[name])).content.decode()

    def card(label):
        ready, total = body.split(f'{label} ready</div><div class="big">')[1].split("</div>")[0].split(" / ")
        return int(ready), int(total)

    failing = {}
    table = body.split('id="top-failing"')[1].split("</table>")[0]
    for row in table.split("<tbody>")[1].split("<tr")[1:]:
        if 'data-kind="check"' not in row:
            continue  # "Nothing fails.", a network cause (its own metric family) or a warning
        check_id = row.split("/checks/")[1].split("/")[0]
        failing[check_id] = int(row.split('aria-label="')[1].split(" nodes:")[0])
    return {"servers": card("Servers"), "workers": card("Workers"), "failing": failing}


@pytest.fixture
def viewer(django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw")
    grant(user, "inventory.view_cluster", "checks.view_audit")
    client = Client()
    client.force_login(user)
    return client


def test_metrics_carry_the_numbers_the_dashboard_shows(viewer):
    # given: two clusters, one whose server fails time.ntp
    lab = _cluster("lab", workers=2, failing_servers=True, first_octet=1)
    _cluster("other", workers=1, failing_servers=False, first_octet=2)
    # when
    response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")
    # then
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=")
    samples = _samples(response.content.decode())
    for name in ("lab", "other"):
        shown = _dashboard(viewer, name)
        for role, (ready, total) in (("server", shown["servers"]), ("worker", shown["workers"])):
            labels = (("cluster", name), ("readiness", "ready"), ("role", role))
            not_ready = (("cluster", name), ("readiness", "not_ready"), ("role", role))
            assert samples[("preflight_nodes", labels)] == ready
            assert samples[("preflight_nodes", labels)] + samples[("preflight_nodes", not_ready)] == total
        metric_failing = {
            dict(labels)["check_id"]: value
            for (metric, labels), value in samples.items()
            if metric == "preflight_check_failing_nodes" and dict(labels)["cluster"] == name
        }
        assert metric_failing == shown["failing"]
    assert _dashboard(viewer, "lab")["failing"] == {"time.ntp": 1}
    audit = lab.audits.get()
    assert samples[("preflight_last_audit_start_timestamp_seconds", (("cluster", "lab"),))] == pytest.approx(
        audit.started.timestamp()
    )
    assert samples[("preflight_last_audit_duration_seconds", (("cluster", "lab"),))] == pytest.approx(
        (audit.finished - audit.started).total_seconds()
    )
    assert samples[("preflight_audits_running", (("cluster", "lab"),))] == 0
    assert samples[("preflight_webhook_deliveries_failed_total", (("cluster", "lab"),))] == 0


def test_a_scrape_takes_the_same_number_of_queries_whatever_the_size():
    _cluster("small", workers=1, failing_servers=True, first_octet=1)
    client = Client(REMOTE_ADDR="127.0.0.1")
    with CaptureQueriesContext(connection) as small:
        client.get("/metrics")
    _cluster("big", workers=6, failing_servers=True, first_octet=2)
    _cluster("bigger", workers=4, failing_servers=False, first_octet=3)
    with CaptureQueriesContext(connection) as big:
        client.get("/metrics")
    assert len(small.captured_queries) == len(big.captured_queries) <= 8


def test_only_loopback_allowed_networks_or_the_token_may_scrape(settings):
    settings.PREFLIGHT_METRICS_TOKEN = "scrape-secret"
    settings.PREFLIGHT_METRICS_ALLOW_NETWORKS = ["192.0.2.0/24"]
    codes = {
        "loopback": Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code,
        "loopback v6": Client(REMOTE_ADDR="::1").get("/metrics").status_code,
        "allow-listed": Client(REMOTE_ADDR="192.0.2.7").get("/metrics").status_code,
        "elsewhere": Client(REMOTE_ADDR="203.0.113.5").get("/metrics").status_code,
        "wrong token": Client(REMOTE_ADDR="203.0.113.5", HTTP_AUTHORIZATION="Bearer nope").get("/metrics").status_code,
        "token": Client(REMOTE_ADDR="203.0.113.5", HTTP_AUTHORIZATION="Bearer scrape-secret")
        .get("/metrics")
        .status_code,
    }
    assert codes == {
        "loopback": 200,
        "loopback v6": 200,
        "allow-listed": 200,
        "elsewhere": 401,
        "wrong token": 401,
        "token": 200,
    }
    settings.PREFLIGHT_METRICS_LOOPBACK = False
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 401
