"""Server-side time and HTML size of the web pages with a big cluster: 1 server and N workers (default 499), one
audit with a full connectivity matrix (server<->worker and worker<->worker, about N^2 paths), in a throwaway SQLite
database. Goals (issue 15): matrix < 500 ms and < 1 MB of HTML, node list < 150 ms. Both audits have a full matrix
(the first all passing) so that the comparison of two audits (issue 25: < 500 ms and < 1 MB) compares N^2 paths.

A second cluster of --fleet nodes (default 3,000, no matrix) measures the dashboard with its fleet heatmap and a
per-check page at that size (issue 25). The load average is printed before and after the requests.

Run: .venv/bin/python -m bench.ui [--workers 499] [--repeat 5] [--fleet 3000]
"""

import argparse
import os
import statistics
import time

from bench.common import django_setup


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=499)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fleet", type=int, default=3000, help="nodes of a second cluster for the heatmap (0: none)")
    args = parser.parse_args()
    django_setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from checks.models import NetworkPath
    from tests.uidata import build_cluster

    started = time.monotonic()
    data = build_cluster("bench", args.workers, audits=2, matrix_every_audit=True)
    paths = NetworkPath.objects.count()
    took = time.monotonic() - started
    print(f"{len(data['nodes'])} nodes, 2 audits with a matrix each, {paths} network paths written in {took:.1f} s")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(get_user_model().objects.create_superuser("bench", password="x"))
    old, new = data["audits"]
    worst = next(n for n in data["nodes"] if data["kinds"][n.pk] == "unreachable")
    pages = [
        ("matrix (default view: failing only)", "/clusters/bench/matrix/"),
        ("matrix, all nodes, page 2", "/clusters/bench/matrix/?view=all&page=2"),
        ("matrix, one node's paths", f"/clusters/bench/matrix/?node={worst.name}"),
        ("node list", "/nodes/?cluster=bench"),
        ("node list, worst first", "/nodes/?cluster=bench&sort=last_audit_status"),
        ("node list CSV export (all rows)", "/nodes/?cluster=bench&export=csv"),
        ("dashboard", "/clusters/bench/"),
        ("node page", f"/nodes/{worst.pk}/"),
        ("compare two audits (both with a matrix)", f"/clusters/bench/diff/?a={old.pk}&b={new.pk}"),
        ("compare, one node", f"/clusters/bench/diff/?a={old.pk}&b={new.pk}&node={worst.name}"),
    ]
    if args.fleet:
        started = time.monotonic()
        build_cluster("fleet", args.fleet - 1, audits=1, mesh=False)
        print(f"{args.fleet} more nodes (cluster fleet, no mesh) written in {time.monotonic() - started:.1f} s")
        pages += [
            (f"dashboard, {args.fleet:,} nodes (heatmap)", "/clusters/fleet/"),
            (f"check page, {args.fleet:,} nodes", "/clusters/fleet/checks/container.docker/"),
        ]
    pages += [("check page, network check", "/clusters/bench/checks/network.worker_to_worker/")]
    load = os.getloadavg()
    print(f"load average before the requests: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'page':40} {'median':>9} {'max':>9} {'HTML':>10}")
    for label, url in pages:
        times, size = [], 0
        for _ in range(args.repeat + 1):
            t0 = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (url, response.status_code)
            size = len(response.content)
        times = times[1:]  # the first request warms caches (templates, SQLite pages)
        print(f"{label:40} {statistics.median(times):7.0f} ms {max(times):7.0f} ms {size / 1024:8.0f} KiB")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
