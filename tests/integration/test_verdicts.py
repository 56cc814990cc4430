"""Verdicts blame the right node, and one bad node never holds the cluster (issue 13), on real sshd test hosts with
a real Celery worker: one worker rejects our key, one hangs after login (its sshd runs `ForceCommand sleep 3600`)."""

import re
import time

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from checks.models import Audit, NetworkPath, NodeAudit
from checks.services import audit_enqueue, audit_start
from inventory.choices import NodeRole
from tests.lab import nodes

from .fixtures import add_lab_nodes, checks_of, lab_credential, make_cluster, save_output, wait_for_audit

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

HEALTHY = ("ok-w1", "ok-w2", "ok-w3", "ok-w4")
BROKEN = ("badkey", "hung")
# The worker runs with the production probe time-out, so only the idle time-out can end the hung node early.
PROBE_TIMEOUT = 120.0
IDLE = settings.PREFLIGHT_TOOL_TIMEOUT + 10.0  # the default of PREFLIGHT_PROBE_IDLE_TIMEOUT


@pytest.fixture(scope="module")
def fleet(lab):
    made = {"srv": lab.add(nodes.plain("srv13"))}
    made.update({name: lab.add(nodes.plain(name)) for name in HEALTHY})
    made["badkey"] = lab.add(nodes.rejects_our_key("badkey"))
    made["hung"] = lab.add(nodes.hangs_after_login("hung"))
    made["nodocker"] = lab.add(nodes.without_docker("nodocker"))
    return made


@pytest.fixture
def production_probe_worker(celery_worker):
    """The session's worker, restarted with the production probe time-out (tests otherwise use 8 s)."""
    saved = dict(celery_worker.env)
    celery_worker.stop()
    celery_worker.env = {**saved, "PREFLIGHT_PROBE_TIMEOUT": str(PROBE_TIMEOUT)}
    celery_worker.env.pop("PREFLIGHT_PROBE_IDLE_TIMEOUT", None)
    celery_worker.start()
    try:
        yield celery_worker
    finally:
        celery_worker.stop()
        celery_worker.env = saved
        celery_worker.start()


def _run(cluster) -> tuple[Audit, float]:
    started = time.monotonic()
    audit = audit_start(cluster=cluster)
    audit_enqueue(audit)
    audit = wait_for_audit(audit.pk, timeout=PROBE_TIMEOUT + 60)
    elapsed = time.monotonic() - started
    save_output(
        f"verdicts-{cluster.name}-{audit.pk}.txt",
        f"audit {audit.pk}: {elapsed:.1f} s, matrix {audit.network_state}\n"
        + "\n".join(
            f"{na.node.name}: {na.status} {na.error} | "
            + " ; ".join(f"{r.check_id}={r.status}: {r.summary}" for r in na.results.all())
            for na in NodeAudit.objects.filter(audit=audit).select_related("node")
        ),
    )
    return audit, elapsed


def _dashboard_counts(client, cluster_name: str) -> dict[str, str]:
    page = client.get(f"/clusters/{cluster_name}/").content.decode()
    found = re.findall(r'<div class="muted">(Servers|Workers) ready</div><div class="big">(\d+ / \d+)</div>', page)
    return dict(found)


def test_broken_workers_do_not_hold_or_blame_the_healthy_ones(lab, fleet, production_probe_worker, client):
    # given: a server, four healthy workers, one that rejects our key and one that hangs after login
    cluster = make_cluster("blame")
    key = lab_credential(lab)
    add_lab_nodes(cluster, [fleet["srv"]], key, role=NodeRole.SERVER)
    add_lab_nodes(cluster, [fleet[name] for name in (*HEALTHY, *BROKEN)], key)
    # when
    audit, elapsed = _run(cluster)
    # then: the audit, matrix included, ends within the idle time-out plus 15 s (not the 120 s probe time-out)
    assert (audit.state, audit.network_state) == ("done", "done"), audit.error
    assert elapsed <= IDLE + 15, f"{elapsed:.1f} s"
    statuses = dict(NodeAudit.objects.filter(audit=audit).values_list("node__name", "status"))
    # the broken two carry their own failure
    assert statuses["badkey"] in ("fail", "error") and statuses["hung"] in ("fail", "error")
    assert "key rejected" in checks_of(audit.pk, "badkey")["ssh.connect"].summary
    hung = NodeAudit.objects.get(audit=audit, node__name="hung")
    assert hung.error == f"the probe printed nothing for {IDLE:g} s after login (no section started)"
    # the server and the healthy workers are ready; their paths to the broken nodes are skip, naming them
    for name in ("srv13", *HEALTHY):
        assert statuses[name] in ("pass", "warn"), (name, statuses[name])
    for name in HEALTHY:
        w2w = checks_of(audit.pk, name)["network.worker_to_worker"]
        assert w2w.status == "skip", (name, w2w.summary)
        assert f"{name} -> badkey: not tested: badkey could not be audited: " in w2w.summary
        assert f"{name} -> hung: not tested: hung could not be audited: the probe printed nothing" in w2w.summary
        assert checks_of(audit.pk, name)["network.server_to_worker"].status == "pass"
    path = NetworkPath.objects.get(audit=audit, source__name="ok-w1", destination__name="badkey")
    assert path.status == "skip" and "key rejected" in path.summary
    assert set(
        NetworkPath.objects.filter(audit=audit, source__name="ok-w1", destination__name="ok-w2").values_list(
            "status", flat=True
        )
    ) == {"pass"}
    # the dashboard counts what is true
    client.force_login(get_user_model().objects.create_superuser("blame-admin", password="x"))
    assert _dashboard_counts(client, "blame") == {"Servers": "1 / 1", "Workers": "4 / 6"}
    page = client.get("/clusters/blame/").content.decode()
    # (the Why table links each failing check to its page; skipped paths are not a cause)
    assert "/clusters/blame/checks/ssh.connect/" in page and "checks/network.worker_to_worker/" not in page

    # when: a worker without Docker joins the cluster, and the next audit runs (it is accepted at once)
    add_lab_nodes(cluster, [fleet["nodocker"]], key)
    second, _ = _run(cluster)
    # then: its real problem shows as fail, not hidden behind an error of someone else's
    nodocker = checks_of(second.pk, "nodocker")
    assert nodocker["container.docker"].status == "fail"
    assert NodeAudit.objects.get(audit=second, node__name="nodocker").status == "fail"
    assert _dashboard_counts(client, "blame") == {"Servers": "1 / 1", "Workers": "4 / 7"}
