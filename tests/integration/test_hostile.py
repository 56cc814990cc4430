"""Hostile and broken nodes: every node audit still ends, says what happened, and the others finish normally."""

import json
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


def test_a_400_digit_memory_size_ends_the_node_and_the_next_audit_is_accepted(
    lab, celery_worker, client, django_user_model
):
    # given: a GPU node whose nvidia-smi prints a 400-digit memory size, beside a healthy node
    from django.conf import settings

    from portal.tokens import api_token_create

    huge = nodes.nvidia_healthy("huge-memory")
    huge.tools["nvidia-smi"] = (
        'case "$1" in --query-gpu*) echo "0, NVIDIA H100 80GB HBM3, GPU-0, ' + "9" * 400 + ' MiB, 590.48.01";; '
        "*) sed 's/81559MiB/"
        + "9" * 400
        + "MiB/' '"
        + str(nodes.fixture("nvidia-smi/nge-capture_h100-80gb-hbm3_590.48.01_idle_table.txt"))
        + "';; esac"
    )
    cluster = make_cluster("huge-memory")
    add_lab_nodes(cluster, [lab.add(huge), lab.add(nodes.plain("beside-huge"))], lab_credential(lab))
    _, token = api_token_create(user=django_user_model.objects.create_superuser("huge", password="x"), name="t")

    def audit_now():
        return client.post(
            "/api/v1/audits",
            data=json.dumps({"cluster": cluster.name}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )

    started = time.monotonic()
    # when
    answer = audit_now()
    assert answer.status_code == 202, answer.content
    audit = wait_for_audit(answer.json()["audit"], timeout=60)
    elapsed = time.monotonic() - started
    # then: the node ended as error, within its probe time, saying why; the other node finished normally
    node_audit = NodeAudit.objects.get(audit=audit, node__name="huge-memory")
    assert (node_audit.state, node_audit.status) == ("done", "error")
    assert "memory size" in node_audit.error and "beyond any real device" in node_audit.error
    assert elapsed < settings.PREFLIGHT_PROBE_TIMEOUT + 10, f"{elapsed:.1f} s"
    assert checks_of(audit.pk, "beside-huge")["os.supported"].status == "pass"
    # and the next "Audit now" is accepted at once (not 409 until the sweep)
    again = audit_now()
    assert again.status_code == 202, again.content
    wait_for_audit(again.json()["audit"], timeout=60)
