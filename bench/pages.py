"""Server-side time of the pages and the API at 3,000 nodes (issue 24 item 5), in a throwaway SQLite database.

1 server and N workers (default 2,999), 20 audits of every node (results per node as tests/uidata writes them), and
a realistic sampled connectivity matrix on each audit: server<->worker both ways on the required ports plus k=3
worker peers per worker, rotated audit by audit as the sampled plan does (so the matrix page's coverage over the
window reads real history). Paths into failing workers and out of unreachable ones fail, as tests/uidata has them.
Goals: dashboard, node list and GET /api/v1/nodes?limit=100 under 150 ms; the matrix rollup under 500 ms.

Run: .venv/bin/python -m bench.pages [--workers 2999] [--audits 20] [--peers 3] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import timedelta

from bench.common import django_setup


def build(workers: int, audits: int, peers: int) -> dict:
    from django.utils import timezone

    from checks.connectivity import W2W, MatrixNode, Sampling, peer_pairs
    from checks.models import Audit, CheckResult, NetworkPath, NodeAudit
    from inventory.models import Accelerator, Cluster, Node, RequirementProfile
    from tests.uidata import _results, node_kind

    profile = RequirementProfile.objects.get(key="gpustack-2.0")
    cluster = Cluster.objects.create(name="fleet", profile=profile, connectivity_plan="sampled", sampled_peers=peers)
    Node.objects.bulk_create(
        [Node(cluster=cluster, name="srv", address="192.0.2.1", role="server")]
        + [
            Node(cluster=cluster, name=f"w{i:04d}", address=f"10.{i // 65025}.{i // 255 % 255}.{i % 255 + 1}")
            for i in range(1, workers + 1)
        ],
        batch_size=2000,
    )
    nodes = list(Node.objects.filter(cluster=cluster).order_by("pk"))
    server, rest = nodes[0], nodes[1:]
    kinds = {n.pk: ("pass" if n is server else node_kind(int(n.name[1:]))) for n in nodes}
    Accelerator.objects.bulk_create(
        (
            Accelerator(node=n, vendor="nvidia", index=k, model="NVIDIA H100 80GB", memory_mib=81559)
            for n in rest
            for k in range(2)
        ),
        batch_size=5000,
    )
    facts = {"os": {"id": "ubuntu", "version_id": "22.04", "pretty_name": "Ubuntu 22.04.4 LTS"}, "arch": "x86_64"}
    peers_of = [MatrixNode(n.name, "worker", n.address, order=n.pk) for n in rest]
    by_name = {n.name: n for n in nodes}
    now = timezone.now().replace(microsecond=0)
    outcomes = {"pass": {"10150": ["connected", ""]}, "fail": {"10150": ["timed out", "no answer in 3s"]}}

    def path(audit, check, source, destination):
        bad = kinds[destination.pk] in ("fail", "unreachable") or kinds[source.pk] == "unreachable"
        status = "error" if kinds[source.pk] == "unreachable" else ("fail" if bad else "pass")
        return NetworkPath(
            audit=audit,
            check_id=check,
            source=source,
            destination=destination,
            status=status,
            summary=f"{source.name} -> {destination.name}: {'10150 timed out' if bad else 'every port connected'}",
            outcomes=outcomes["fail" if bad else "pass"],
        )

    made = []
    for a in range(audits):
        when = now - timedelta(hours=audits - 1 - a)
        audit = Audit.objects.create(
            cluster=cluster,
            profile=profile,
            profile_key=profile.key,
            state="done",
            status="error",
            started=when,
            finished=when,
            network_state="done",
            matrix_round=a,
        )
        Audit.objects.filter(pk=audit.pk).update(created=when)
        node_audits = NodeAudit.objects.bulk_create(
            (
                NodeAudit(
                    audit=audit,
                    node=n,
                    state="done",
                    status=kinds[n.pk] if kinds[n.pk] != "unreachable" else "error",
                    started=when,
                    finished=when,
                    facts={} if kinds[n.pk] == "unreachable" else facts,
                )
                for n in nodes
            ),
            batch_size=2000,
        )
        CheckResult.objects.bulk_create(
            (r for na, n in zip(node_audits, nodes, strict=True) for r in _results(na, n, kinds[n.pk])),
            batch_size=5000,
        )
        rows = [path(audit, "network.server_to_worker", server, w) for w in rest]
        rows += [path(audit, "network.worker_to_server", w, server) for w in rest]
        rows += [
            path(audit, W2W, by_name[s.name], by_name[d.name])
            for s, d in peer_pairs(peers_of, Sampling(plan="sampled", peers=peers, round=a))
        ]
        NetworkPath.objects.bulk_create(rows, batch_size=5000)
        made.append((audit, len(rows)))
    for n in nodes:
        kind = kinds[n.pk]
        n.last_audit_status = "error" if kind == "unreachable" else kind
        n.last_audited_at = now
        n.last_facts = facts
    Node.objects.bulk_update(nodes, ["last_audit_status", "last_audited_at", "last_facts"], batch_size=2000)
    return {"cluster": cluster, "nodes": nodes, "kinds": kinds, "audits": made}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2999)
    parser.add_argument("--audits", type=int, default=20)
    parser.add_argument("--peers", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    django_setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from checks.models import CheckResult, NetworkPath, NodeAudit
    from portal.tokens import api_token_create

    started = time.monotonic()
    data = build(args.workers, args.audits, args.peers)
    print(
        f"{len(data['nodes'])} nodes, {args.audits} audits: {NodeAudit.objects.count()} node audits, "
        f"{CheckResult.objects.count()} results, {NetworkPath.objects.count()} network paths "
        f"({data['audits'][-1][1]} in the latest audit: server<->worker both ways and k={args.peers} worker peers); "
        f"written in {time.monotonic() - started:.1f} s"
    )
    user = get_user_model().objects.create_superuser("bench", password="x")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    api = Client(HTTP_HOST="127.0.0.1")
    _, token = api_token_create(user=user, name="bench")
    worst = next(n for n in data["nodes"] if data["kinds"][n.pk] == "unreachable")
    name = data["cluster"].name
    pages = [
        ("dashboard", client, f"/clusters/{name}/", 150),
        ("node list", client, f"/nodes/?cluster={name}", 150),
        ("node list, not ready", client, f"/nodes/?cluster={name}&readiness=not_ready", 150),
        ("node list, worst first", client, f"/nodes/?cluster={name}&sort=last_audit_status", 150),
        ("GET /api/v1/nodes?limit=100", api, "/api/v1/nodes?limit=100", 150),
        (f"GET /api/v1/clusters/{data['cluster'].pk}", api, f"/api/v1/clusters/{data['cluster'].pk}", 150),
        ("node page", client, f"/nodes/{worst.pk}/", 150),
        ("matrix rollup", client, f"/clusters/{name}/matrix/", 500),
        ("matrix, all nodes, page 2", client, f"/clusters/{name}/matrix/?view=all&page=2", 500),
        ("matrix, one node's paths", client, f"/clusters/{name}/matrix/?node={worst.name}", 500),
    ]
    print(f"load average before the requests: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'page':36} {'median':>9} {'max':>9} {'goal':>8} {'queries':>8} {'HTML':>9}")
    for label, who, url, goal in pages:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if who is api else {}
        times = []
        for _ in range(args.repeat + 1):
            t0 = time.perf_counter()
            response = who.get(url, **headers)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        times = times[1:]  # the first request warms caches (templates, SQLite pages)
        with CaptureQueriesContext(connection) as captured:  # counted apart: capturing slows the cursor down
            size = len(who.get(url, **headers).content)
        queries = len(captured)
        median = statistics.median(times)
        verdict = "ok" if median < goal else "OVER"
        print(
            f"{label:36} {median:7.0f} ms {max(times):7.0f} ms {goal:5d} {verdict:>2} {queries:8d} "
            f"{size / 1024:6.0f} KiB"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
