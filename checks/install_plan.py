"""Reads for the install handoff: per node, whether its own latest results allow installing GPUStack (every result
passes, warns, is skipped or is waived: nothing fails or errors that a waiver does not accept) and the command for
its role and vendor (checks/install.py). A constant number of queries for a whole cluster.

The registration token is an argument only: it is never stored, logged or put in a URL.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field

from django.db.models import OuterRef, Subquery

from inventory.facts_summary import FactsSummary
from inventory.models import Cluster, Node

from .install import VENDORS, InstallCommand, server_command, worker_command
from .models import CheckResult, NodeAudit
from .selectors.pages import NOT_CHECKED

READY = ("pass", "warn", "skip")


@dataclass
class NodeInstall:
    node: Node
    ready: bool
    reason: str = ""  # why not, in a sentence
    failing: list[dict] = field(default_factory=list)  # {check_id, status, summary} of what blocks it
    waived: list[str] = field(default_factory=list)  # check ids accepted by a waiver
    warnings: list[str] = field(default_factory=list)  # check ids that warn: look before installing
    commands: list[InstallCommand] = field(default_factory=list)
    vendor: str = ""
    audit_id: int | None = None

    @property
    def failing_ids(self) -> list[str]:
        return [f["check_id"] for f in self.failing]


def server_url(cluster: Cluster, servers: list[Node]) -> str:
    """The cluster's setting, or http(s)://<first server's address>; "" when there is neither."""
    if cluster.gpustack_server_url:
        return cluster.gpustack_server_url
    if not servers:
        return ""
    host = servers[0].address
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{'https' if cluster.tls_enabled else 'http'}://{host}"


def _vendor(facts: FactsSummary) -> str:
    """The node's accelerator vendor from its recorded devices, as a key of the closed table VENDORS (or "")."""
    found = Counter(a.vendor for a in facts.accelerators)
    for vendor, _ in found.most_common():
        if vendor in VENDORS:
            return str(vendor)
    return ""


def _ip(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return ""


def cluster_install_plan(*, cluster: Cluster, token: str = "", nodes: list[Node] | None = None) -> list[NodeInstall]:
    """Every enabled node of the cluster (or `nodes`), servers first, each with its command or why not."""
    if nodes is None:
        nodes = list(Node.objects.filter(cluster=cluster, enabled=True).order_by("name"))
    nodes = sorted(nodes, key=lambda n: (n.role != "server", n.name))
    servers = [n for n in Node.objects.filter(cluster=cluster, role="server", enabled=True).order_by("name")]
    url = server_url(cluster, servers)
    latest = NodeAudit.objects.filter(node=OuterRef("pk"), finished__isnull=False).order_by("-finished")
    latest_of = dict(
        Node.objects.filter(pk__in=[n.pk for n in nodes])
        .annotate(latest=Subquery(latest.values("pk")[:1]))
        .values_list("pk", "latest")
    )
    audits = NodeAudit.objects.in_bulk([pk for pk in latest_of.values() if pk])
    results: dict[int, list[CheckResult]] = {}
    for result in CheckResult.objects.filter(node_audit_id__in=list(audits)).exclude(status__in=["pass", "skip"]):
        results.setdefault(result.node_audit_id, []).append(result)
    plan = []
    for node in nodes:
        node_audit = audits.get(latest_of.get(node.pk))
        plan.append(_node_install(node, node_audit, results.get(node_audit.pk if node_audit else -1, []), url, token))
    return plan


def node_install(*, node: Node, token: str = "") -> NodeInstall:
    return cluster_install_plan(cluster=node.cluster, token=token, nodes=[node])[0]


def _node_install(node: Node, node_audit, results: list[CheckResult], url: str, token: str) -> NodeInstall:
    if node_audit is None:
        return NodeInstall(node, False, "never audited: audit it first")
    item = NodeInstall(node, False, audit_id=node_audit.audit_id)
    for r in sorted(results, key=lambda r: r.position):
        if r.waived:
            item.waived.append(r.check_id)
        elif r.status in ("fail", "error") and not r.summary.startswith(NOT_CHECKED):
            item.failing.append({"check_id": r.check_id, "status": r.status, "summary": r.summary})
        elif r.status == "warn":
            item.warnings.append(r.check_id)
    if node_audit.status not in READY or item.failing:
        ids = ", ".join(item.failing_ids) or node_audit.error or node_audit.status
        item.reason = f"not ready in audit {node_audit.audit_id}: {ids}"
        return item
    facts = FactsSummary.from_json(node_audit.facts)
    cluster = node.cluster
    item.vendor = _vendor(facts)
    if node.role == "server":
        item.commands.append(server_command(tag=cluster.gpustack_image_tag, tls=cluster.tls_enabled))
    if node.role == "worker" or cluster.server_runs_worker:
        if not url:
            item.reason = "no server URL: set one on the cluster (GPUStack server URL) or add a server node"
            return item
        item.commands.append(
            worker_command(
                tag=cluster.gpustack_image_tag,
                server_url=url,
                vendor=item.vendor,
                default_runtime=facts.docker_default_runtime,
                token=token,
                worker_ip=_ip(node.address),
            )
        )
    item.ready = True
    return item
