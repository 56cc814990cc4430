"""Time a cluster audit with its connectivity matrix: 1 server and N workers (default 8) as real sshd test hosts.

Run as root: .venv/bin/python -m bench.matrix [--workers 8]
"""

import argparse
import time

from bench.common import django_setup


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    django_setup()
    from checks.choices import RunState
    from checks.models import Audit
    from checks.services import audit_run_inline, audit_start
    from inventory.choices import NodeRole
    from inventory.models import Cluster, Credential, Node, RequirementProfile
    from tests.lab import nodes
    from tests.lab.hosts import Lab

    lab = Lab()
    try:
        started = time.monotonic()
        hosts = [lab.add(nodes.plain("srv"))] + [lab.add(nodes.plain(f"w{i}")) for i in range(1, args.workers + 1)]
        print(f"test hosts up: {len(hosts)} in {time.monotonic() - started:.1f} s")
        credential = Credential(name="bench", kind="private_key")
        credential.secret = lab.client_key
        credential.save()
        cluster = Cluster.objects.create(name="bench", profile=RequirementProfile.objects.get(key="gpustack-2.0"))
        for i, host in enumerate(hosts):
            Node.objects.create(
                cluster=cluster,
                name=host.spec.name,
                address=host.address,
                credential=credential,
                role=NodeRole.SERVER if i == 0 else NodeRole.WORKER,
            )
        for label in ("first audit (host keys trusted on first use)", "second audit"):
            started = time.monotonic()
            audit = audit_run_inline(audit=audit_start(cluster=cluster))
            total = time.monotonic() - started
            audit = Audit.objects.get(pk=audit.pk)
            matrix = (audit.finished - audit.network_started).total_seconds()
            paths = audit.paths.count()
            ports = sum(len(p.outcomes) for p in audit.paths.all())
            statuses = sorted(set(audit.paths.values_list("status", flat=True)))
            print(
                f"{label}: whole audit {total:.2f} s, connectivity matrix {matrix:.2f} s, {paths} paths, "
                f"{ports} port probes, path statuses {statuses}"
            )
            for node_audit in audit.node_audits.exclude(state=RunState.DONE).select_related("node"):
                print(f"    {node_audit.node.name} not audited: {node_audit.state}: {node_audit.error[:300]}")
            for path in audit.paths.exclude(status="pass").select_related("source", "destination")[:5]:
                print(f"    {path.source.name} -> {path.destination.name} {path.status}: {path.summary[:300]}")
    finally:
        lab.close()


if __name__ == "__main__":
    main()
