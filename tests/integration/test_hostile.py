"""Hostile and broken nodes: every node audit still ends, says what happened, and the others finish normally."""

import time

import pytest

from checks.models import NodeAudit
from checks.services import audit_enqueue, audit_start
from tests.lab import hostile, nodes

from .fixtures import add_lab_nodes, checks_of, lab_credential, make_cluster, wait_for_audit

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture(scope="module")
def hostile_fleet(lab):
    flood = nodes.plain("flood")
    # 200 MB on stdout from a command the probe runs early.
    flood.tools["uname"] = "head -c 200000000 /dev/zero | tr '\\\\0' x; exec /bin/uname \"$@\""
    cut = nodes.plain("cut-off")
    # Some output, then the node kills its own sshd session: the connection drops mid-output.
    cut.tools["uname"] = "seq 1 2000; kill -9 $(awk '{print $4}' /proc/$PPID/stat); sleep 5"
    return {
        "healthy": lab.add(nodes.nvidia_healthy("healthy")),
        "flood": lab.add(flood),
        "cut-off": lab.add(cut),
        "silent": lab.add_raw("silent", hostile.SILENT),
        "banner-only": lab.add_raw("banner-only", hostile.BANNER_THEN_SILENCE),
        "http": lab.add_raw("http", hostile.HTTP_ON_22),
        "reset": lab.add_raw("reset", hostile.RESET_IN_KEX),
    }


def _peak_rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_hostile_nodes_end_with_reasons_and_others_finish(lab, hostile_fleet, celery_worker):
    # given
    cluster = make_cluster("hostile")
    add_lab_nodes(cluster, list(hostile_fleet.values()), lab_credential(lab))
    started = time.monotonic()
    # when
    audit = audit_start(cluster=cluster)
    audit_enqueue(audit)
    audit = wait_for_audit(audit.pk, timeout=120)
    elapsed = time.monotonic() - started
    # then: every node audit is final, within the time-outs (probe 8 s, connect 3 s) plus slack
    assert set(NodeAudit.objects.filter(audit=audit).values_list("state", flat=True)) == {"done"}
    assert elapsed < 40, f"{elapsed:.1f} s"
    assert checks_of(audit.pk, "healthy")["os.supported"].status == "pass"
    assert checks_of(audit.pk, "healthy")["accelerator.nvidia.driver"].status == "pass"

    from .fixtures import save_output

    save_output(
        "hostile.txt",
        "\n".join(
            f"{na.node.name}: {na.status} {na.error} | "
            + " ; ".join(f"{r.check_id}={r.status}: {r.summary}" for r in na.results.all()[:2])
            for na in NodeAudit.objects.filter(audit=audit).select_related("node")
        ),
    )

    def connect(name):
        return checks_of(audit.pk, name)["ssh.connect"]

    assert connect("silent").status == "fail" and "no SSH banner" in connect("silent").summary
    assert connect("banner-only").status == "fail"
    assert connect("banner-only").summary.startswith("timed out: the SSH handshake with")
    assert connect("http").status == "fail" and connect("http").summary.startswith(("protocol:", "closed:"))
    assert connect("reset").status == "fail" and connect("reset").summary.startswith(("closed:", "protocol:"))
    for name in ("silent", "banner-only", "http", "reset"):
        assert checks_of(audit.pk, name)["os.supported"].status == "error"

    flood = NodeAudit.objects.get(audit=audit, node__name="flood")
    assert "output exceeded 4194304 bytes" in flood.error and flood.output_truncated
    assert len(flood.raw_output) <= 4 * 1024 * 1024
    cut = NodeAudit.objects.get(audit=audit, node__name="cut-off")
    assert cut.status == "error" and "ended early" in cut.error
    # the worker never held the 200 MB
    assert _peak_rss_mib(celery_worker.process.pid) < 300
