"""A realistic audited cluster written straight to the database, for page tests, browser tests and bench/ui.py.

One server and N workers; every 7th worker fails `container.docker`, every 11th could not be reached (with the
doubled "host key changed" prefix older audits recorded), the rest pass with a time warning on every 5th. The last
audit has a connectivity matrix (server<->worker, worker<->worker) where paths into failing workers time out.
Addresses are RFC 5737 documentation addresses: stored, never connected to."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from checks.catalog import HOST_CHECK_IDS
from checks.choices import NetworkState, RunState
from checks.models import Audit, CheckResult, NetworkPath, NodeAudit
from inventory.models import Accelerator, Cluster, Node, RequirementProfile
from portal.sql import insert_rows

HOST_KEY = "host key changed: host key changed: {address} offered ssh-ed25519 SHA256:{fp}, trusted is ssh-ed25519 SHA256:{old}. Nothing was run."  # noqa: E501


def node_kind(i: int) -> str:
    if i % 11 == 0:
        return "unreachable"
    if i % 7 == 0:
        return "fail"
    if i % 5 == 0:
        return "warn"
    return "pass"


def build_cluster(
    name: str = "demo", workers: int = 12, *, audits: int = 2, mesh: bool = True, matrix_every_audit: bool = False
) -> dict:
    """matrix_every_audit: the earlier audits get a full matrix too (every path passing), not only the last."""
    profile = RequirementProfile.objects.get(key="gpustack-2.0")
    cluster = Cluster.objects.create(name=name, profile=profile)
    now = timezone.now().replace(microsecond=0)
    nodes = Node.objects.bulk_create(
        [Node(cluster=cluster, name="srv", address="192.0.2.1", role="server")]
        + [
            Node(cluster=cluster, name=f"w{i:03d}", address=f"198.51.{i // 250}.{i % 250 + 1}", role="worker")
            for i in range(1, workers + 1)
        ]
    )
    nodes = list(Node.objects.filter(cluster=cluster).order_by("pk"))
    kinds = {n.pk: ("pass" if n.role == "server" else node_kind(int(n.name[1:]))) for n in nodes}
    Accelerator.objects.bulk_create(
        Accelerator(node=n, vendor="nvidia", index=k, model="NVIDIA H100 80GB", memory_mib=81559)
        for n in nodes
        if n.role == "worker"
        for k in range(2)
    )
    facts = {"os": {"id": "ubuntu", "version_id": "22.04", "pretty_name": "Ubuntu 22.04.4 LTS"}, "arch": "x86_64"}
    made = []
    for a in range(audits):
        last = a == audits - 1
        when = now - timedelta(days=audits - 1 - a)
        audit = Audit.objects.create(
            cluster=cluster,
            profile=profile,
            profile_key=profile.key,
            state=RunState.DONE,
            status="error" if last else "pass",
            started=when,
            finished=when,
            network_state=NetworkState.DONE if last else NetworkState.NONE,
        )
        Audit.objects.filter(pk=audit.pk).update(created=when)
        node_audits = NodeAudit.objects.bulk_create(
            NodeAudit(
                audit=audit,
                node=n,
                state=RunState.DONE,
                status=(kinds[n.pk] if kinds[n.pk] != "unreachable" else "error") if last else "pass",
                reached=not (last and kinds[n.pk] == "unreachable"),
                started=when,
                finished=when,
                facts={} if (last and kinds[n.pk] == "unreachable") else facts,
            )
            for n in nodes
        )
        results = []
        for na, n in zip(node_audits, nodes, strict=True):
            kind = kinds[n.pk] if last else "pass"
            results.extend(_results(na, n, kind))
        CheckResult.objects.bulk_create(results)
        if last:
            _paths(audit, nodes, kinds, mesh=mesh)
        elif matrix_every_audit:
            _paths(audit, nodes, dict.fromkeys(kinds, "pass"), mesh=mesh)
        made.append(audit)
    for n in nodes:
        kind = kinds[n.pk]
        n.last_audit_status = "error" if kind == "unreachable" else kind
        n.last_reached = kind != "unreachable"
        n.last_audited_at = now
        n.last_facts = facts
    Node.objects.bulk_update(nodes, ["last_audit_status", "last_reached", "last_audited_at", "last_facts"])
    return {"cluster": cluster, "nodes": nodes, "audits": made, "kinds": kinds}


PROBE_CUT_SHORT = "the probe did not finish within 120 s (last section: gpu)"


def probe_cut_short(node: Node, audit: Audit) -> NodeAudit:
    """Make `node`'s run in `audit` the one of a node that was reached (ssh.connect passed) but whose probe was cut
    short, as checks.services.node records it: every host check in error, "not checked: <why>"; the node's recorded
    status follows when `audit` is its latest."""
    na = NodeAudit.objects.get(audit=audit, node=node)
    CheckResult.objects.filter(node_audit=na).delete()
    not_run = f"not checked: {PROBE_CUT_SHORT}"
    CheckResult.objects.bulk_create(
        [CheckResult(node_audit=na, check_id="ssh.connect", status="pass", summary="connected as root", position=0)]
        + [
            CheckResult(node_audit=na, check_id=c, status="error", summary=not_run, position=i)
            for i, c in enumerate(HOST_CHECK_IDS, start=1)
        ]
    )
    NodeAudit.objects.filter(pk=na.pk).update(status="error", reached=True, facts={}, error=PROBE_CUT_SHORT)
    if not NodeAudit.objects.filter(node=node, finished__gt=na.finished).exists():
        Node.objects.filter(pk=node.pk).update(last_audit_status="error", last_reached=True)
    na.refresh_from_db()
    return na


def portal_lost(node: Node, audit: Audit, reason: str = "swept: Preflight lost this node's run 3 times") -> NodeAudit:
    """Make `node`'s run in `audit` one Preflight itself could not record, as node_audit_end_in_error(portal=True)
    leaves it: state and status error, one ssh.connect result saying why, the reason in portal_error. The node's
    recorded status is not touched (that function never writes it)."""
    na = NodeAudit.objects.get(audit=audit, node=node)
    CheckResult.objects.filter(node_audit=na).delete()
    CheckResult.objects.create(node_audit=na, check_id="ssh.connect", status="error", summary=reason)
    NodeAudit.objects.filter(pk=na.pk).update(
        state=RunState.ERROR, status="error", reached=False, error=reason, portal_error=reason, facts={}
    )
    na.refresh_from_db()
    return na


def _results(na: NodeAudit, node: Node, kind: str) -> list[CheckResult]:
    if kind == "unreachable":
        summary = HOST_KEY.format(address=node.address, fp="NEWKEY" + "x" * 37, old="OLDKEY" + "y" * 37)
        rows = [
            CheckResult(
                node_audit=na,
                check_id="ssh.connect",
                status="fail",
                summary=summary[:500],
                evidence=summary,
                remediation="Confirm with the node's owner that it was reinstalled, then accept the new key in the "
                "admin (Host keys).",
                position=0,
            )
        ]
        rows += [
            CheckResult(node_audit=na, check_id=c, status="error", summary=f"not checked: {summary}"[:500], position=i)
            for i, c in enumerate(HOST_CHECK_IDS, start=1)
        ]
        return rows
    rows = [
        CheckResult(node_audit=na, check_id="ssh.connect", status="pass", summary="connected as root", position=0),
        CheckResult(
            node_audit=na, check_id="os.supported", status="pass", summary="Ubuntu 22.04 is supported", position=1
        ),
        CheckResult(
            node_audit=na,
            check_id="time.ntp",
            status="warn" if kind == "warn" else "pass",
            summary="chronyd runs but is not synchronised yet" if kind == "warn" else "chronyd synchronised",
            position=3,
        ),
        CheckResult(
            node_audit=na,
            check_id="container.docker",
            status="fail" if kind == "fail" else "pass",
            summary="docker is not installed" if kind == "fail" else "Docker 27.3.1 running",
            remediation="Install Docker Engine and start it at boot." if kind == "fail" else "",
            commands=["apt-get install -y docker.io", "systemctl enable --now docker"] if kind == "fail" else [],
            position=6,
        ),
    ]
    if node.role == "worker":
        rows.append(
            CheckResult(
                node_audit=na,
                check_id="accelerator.present",
                status="pass",
                summary="accelerators found: 2 NVIDIA GPU",
                position=7,
            )
        )
    return rows


def _paths(audit: Audit, nodes: list[Node], kinds: dict, *, mesh: bool) -> None:
    """The audit's matrix, written with portal.sql's INSERT, no model instances: a 500-node mesh is 249,500 paths,
    which bulk_create took about 35 s to build (the ORM, not the database: SQLite's own share was 7 s)."""
    server = nodes[0]
    workers = nodes[1:]
    good = {"10150": ["connected", ""], "10151": ["connected", ""]}
    bad = {"10150": ["timed out", "no answer in 3s"], "10151": ["connected", ""]}

    def path(check: str, source: Node, destination: Node) -> tuple:
        failed = kinds[destination.pk] in ("fail", "unreachable") or kinds[source.pk] == "unreachable"
        status = "error" if kinds[source.pk] == "unreachable" else ("fail" if failed else "pass")
        summary = f"{source.name} -> {destination.name}: {'10150 timed out' if failed else 'every port connected'}"
        return (audit.pk, check, source.pk, destination.pk, status, summary, bad if failed else good, {}, "", "", [])

    rows = []
    for w in workers:
        rows.append(path("network.server_to_worker", server, w))
        rows.append(path("network.worker_to_server", w, server))
    if mesh:
        rows += [path("network.worker_to_worker", s, d) for s in workers for d in workers if s.pk != d.pk]
    columns = ("audit_id", "check_id", "source_id", "destination_id", "status", "summary", "outcomes", "listener")
    columns += ("evidence", "remediation", "commands")
    with transaction.atomic():  # (one commit, not one per row)
        insert_rows(NetworkPath, columns, rows)
