"""/metrics: Prometheus text exposition (prometheus-client), computed at scrape time by a custom collector that
reads the database with a constant number of queries, whatever the number of clusters, nodes and audits.

Who may scrape: a client on a loopback address (a Prometheus on the same host) unless PREFLIGHT_METRICS_LOOPBACK
is off; a client whose address is in PREFLIGHT_METRICS_ALLOW_NETWORKS; anyone sending `Authorization: Bearer
<PREFLIGHT_METRICS_TOKEN>`. Anything else gets 401. The address is REMOTE_ADDR, the peer that connected.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Case, Count, F, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

from checks.choices import RunState
from checks.models import Audit, CheckResult, NodeAudit, WebhookDelivery
from checks.selectors.pages import NOT_CHECKED
from inventory.models import Cluster, Node
from portal import states

# Counted as the dashboard counts them: ready, and "not ready" (failing, or not proven ready: unreachable too).
READY = (states.READY,)
NOT_READY = (states.NOT_READY, states.UNREACHABLE)
LOST, REACHED_ERROR = "portal", "error+reached"


class PreflightCollector:
    """The dashboard's numbers for every cluster, read once per scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        clusters = dict(Cluster.objects.values_list("pk", "name"))
        yield from self._nodes(clusters)
        yield from self._audits(clusters)
        failed = CounterMetricFamily(
            "preflight_webhook_deliveries_failed", "Webhook deliveries that failed for good", labels=["cluster"]
        )
        rows = dict(
            WebhookDelivery.objects.filter(state=WebhookDelivery.State.FAILED)
            .values_list("endpoint__cluster_id")
            .annotate(n=Count("pk"))
            .values_list("endpoint__cluster_id", "n")
        )
        for pk, name in sorted(clusters.items(), key=lambda item: item[1]):
            failed.add_metric([name], rows.get(pk, 0))
        yield failed

    def _nodes(self, clusters: dict[int, str]):
        """Ready / not ready per cluster and role, each node by its status in its latest finished audit (as the
        dashboard counts them); failing nodes per check id, waived results not counted (as the dashboard)."""
        latest = NodeAudit.objects.filter(
            node=OuterRef("pk"), finished__isnull=False, audit__state=RunState.DONE
        ).order_by("-audit__created")
        # The latest run's status, with whether it reached the node and whether Preflight lost it folded into the
        # one value (one correlated subquery, as before): "error" reached reads "error+reached", a lost run "portal".
        run = Case(
            When(~Q(portal_error=""), then=Value(LOST)),
            When(status="error", reached=True, then=Value(REACHED_ERROR)),
            default=F("status"),
        )
        nodes = Node.objects.annotate(
            latest_id=Subquery(latest.values("pk")[:1]),
            latest_status=Coalesce(Subquery(latest.annotate(run=run).values("run")[:1]), F("last_audit_status")),
        ).values_list("cluster_id", "role", "latest_status", "latest_id", "last_reached")
        counts: dict[tuple[int, str, str], int] = {}
        latest_ids = []
        for cluster_id, role, status, latest_id, last_reached in nodes:
            # the node's state as the dashboard reads it: a run Preflight lost is no verdict (neither count)
            if status == LOST:
                state = states.node_state("error", False, portal_fault=True)
            elif status == REACHED_ERROR:
                state = states.node_state("error", True)
            else:
                state = states.node_state(status, None if latest_id else last_reached)
            for readiness, counted in (("ready", READY), ("not_ready", NOT_READY)):
                key = (cluster_id, role, readiness)
                counts[key] = counts.get(key, 0) + (state in counted)
            if latest_id:
                latest_ids.append(latest_id)
        ready = GaugeMetricFamily(
            "preflight_nodes",
            "Nodes by cluster, role and readiness (latest audit)",
            labels=["cluster", "role", "readiness"],
        )
        for (cluster_id, role, readiness), n in sorted(counts.items(), key=lambda i: (clusters[i[0][0]], i[0][1:])):
            ready.add_metric([clusters[cluster_id], role, readiness], n)
        yield ready
        failing = GaugeMetricFamily(
            "preflight_check_failing_nodes",
            "Nodes whose latest audit has this check failing or in error (not waived)",
            labels=["cluster", "check_id"],
        )
        rows = (
            CheckResult.objects.filter(node_audit_id__in=latest_ids, status__in=["fail", "error"], waived__isnull=True)
            .exclude(summary__startswith=NOT_CHECKED)
            .values("node_audit__node__cluster_id", "check_id")
            .annotate(nodes=Count("node_audit__node", distinct=True))
            .order_by("node_audit__node__cluster_id", "check_id")
        )
        for row in rows:
            failing.add_metric([clusters[row["node_audit__node__cluster_id"]], row["check_id"]], row["nodes"])
        yield failing

    def _audits(self, clusters: dict[int, str]):
        last = Audit.objects.filter(cluster=OuterRef("pk"), state=RunState.DONE).order_by("-created")
        rows = Cluster.objects.annotate(
            started=Subquery(last.values("started")[:1]), finished=Subquery(last.values("finished")[:1])
        ).values_list("pk", "started", "finished")
        start = GaugeMetricFamily(
            "preflight_last_audit_start_timestamp_seconds", "When the last finished audit started", labels=["cluster"]
        )
        end = GaugeMetricFamily(
            "preflight_last_audit_end_timestamp_seconds", "When the last finished audit ended", labels=["cluster"]
        )
        duration = GaugeMetricFamily(
            "preflight_last_audit_duration_seconds", "How long the last finished audit took", labels=["cluster"]
        )
        for pk, started, finished in sorted(rows, key=lambda r: clusters[r[0]]):
            if started and finished:
                start.add_metric([clusters[pk]], started.timestamp())
                end.add_metric([clusters[pk]], finished.timestamp())
                duration.add_metric([clusters[pk]], (finished - started).total_seconds())
        yield start
        yield end
        yield duration
        running = GaugeMetricFamily("preflight_audits_running", "Audits queued or running", labels=["cluster"])
        active = dict(
            Audit.objects.filter(state__in=[RunState.QUEUED, RunState.RUNNING])
            .values_list("cluster_id")
            .annotate(n=Count("pk"))
            .values_list("cluster_id", "n")
        )
        for pk, name in sorted(clusters.items(), key=lambda item: item[1]):
            running.add_metric([name], active.get(pk, 0))
        yield running


def scrape_allowed(request) -> bool:
    token = settings.PREFLIGHT_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header[:7].lower() == "bearer " and hmac.compare_digest(header[7:].strip(), token):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback and settings.PREFLIGHT_METRICS_LOOPBACK:
        return True
    return any(address in ipaddress.ip_network(n, strict=False) for n in settings.PREFLIGHT_METRICS_ALLOW_NETWORKS)


@require_GET
def metrics(request):
    if not scrape_allowed(request):
        response = HttpResponse(
            "metrics need a bearer token or an allowed address\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = "Bearer"
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PreflightCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
