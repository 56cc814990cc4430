"""Nothing a node prints leaves its audit running: the real probe on this machine (local transport), with stand-in
tools first on PATH that print what a broken or hostile node might."""

import os
import time
from pathlib import Path

import pytest

from checks.choices import RunState
from checks.models import CheckResult, NodeAudit
from checks.services import audit_run_inline, audit_start
from inventory.models import Accelerator, DriverInstall
from tests.conftest import REPO
from tests.factories import NodeFactory

pytestmark = pytest.mark.django_db

TABLE = REPO / "tests" / "fixtures" / "nvidia-smi" / "nge-capture_h100-80gb-hbm3_590.48.01_idle_table.txt"
HUGE = "9" * 400


@pytest.fixture
def tools(tmp_path, monkeypatch):
    """Write stand-in tools into a directory that comes first on the probe's PATH."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")

    def write(name: str, body: str) -> Path:
        tool = folder / name
        tool.write_text("#!/bin/sh\n" + body + "\n")
        tool.chmod(0o755)
        return tool

    return write


@pytest.fixture
def node():
    return NodeFactory(name="self", address="127.0.0.1", transport="local", role="server")


def _table_with(memory: str, model: str = "NVIDIA H100 80GB HBM3") -> str:
    text = TABLE.read_text().replace("81559MiB", f"{memory}MiB")
    return text.replace("NVIDIA H100 80GB HBM3", model)


def test_a_400_digit_memory_size_ends_the_node_as_error_and_the_next_audit_starts(node, tools, tmp_path):
    # given: nvidia-smi prints a memory size no device has, in its table and in its CSV
    (tmp_path / "table.txt").write_text(_table_with(HUGE))
    tools(
        "nvidia-smi",
        f"case \"$1\" in --query-gpu*) echo '0, NVIDIA H100 80GB HBM3, GPU-0, {HUGE} MiB, 590.48.01';; "
        f"*) cat '{tmp_path / 'table.txt'}';; esac",
    )
    audit = audit_start(cluster=node.cluster)
    started = time.monotonic()
    # when
    audit = audit_run_inline(audit=audit)
    # then: the node audit ended as error, saying why, and the audit is closed
    node_audit = NodeAudit.objects.get(audit=audit)
    assert (node_audit.state, node_audit.status) == (RunState.DONE, "error")
    assert "beyond any real device" in node_audit.error and "400 digits" in node_audit.error
    results = {r.check_id: r for r in CheckResult.objects.filter(node_audit=node_audit)}
    assert results["ssh.connect"].status == "pass"
    assert results["accelerator.present"].status == "error"
    assert "not checked: Preflight could not read what the probe printed" in results["os.supported"].summary
    assert audit.state == RunState.DONE and audit.status == "error"
    assert time.monotonic() - started < 30
    # and "Audit now" is accepted again at once
    assert audit_start(cluster=node.cluster).pk != audit.pk


def test_nul_bytes_and_giant_strings_are_stored_clean(node, tools, tmp_path):
    # given: a GPU model name of 5000 characters with NUL bytes, and a hostname with NUL bytes
    model = "NVIDIA\x00H100" + "X" * 5000
    (tmp_path / "table.txt").write_text(_table_with("81559", model=model))
    tools(
        "nvidia-smi",
        f"case \"$1\" in --query-gpu*) printf '0, %s, GPU-\\000abc, 81559 MiB, 590.48.01\\n' '{'Y' * 3000}';; "
        f"*) cat '{tmp_path / 'table.txt'}';; esac",
    )
    tools("hostname", "printf 'evil\\000host'")
    # when
    audit = audit_run_inline(audit=audit_start(cluster=node.cluster))
    # then: the audit finished, and no stored value carries a NUL byte or exceeds its column
    node_audit = NodeAudit.objects.get(audit=audit)
    assert node_audit.state == RunState.DONE and audit.state == RunState.DONE
    assert node_audit.facts["hostname"] == "evilhost"
    accelerator = Accelerator.objects.get(node=node)
    assert len(accelerator.model) <= 200 and "\x00" not in accelerator.model
    assert accelerator.model.startswith("NVIDIAH100XXX") and accelerator.memory_mib == 81559
    assert "\x00" not in accelerator.uuid and len(accelerator.uuid) <= 128
    assert all(len(i.version) <= 64 and len(i.name) <= 120 for i in DriverInstall.objects.filter(node=node))
    assert "\x00" not in node_audit.raw_output
    for result in CheckResult.objects.filter(node_audit=node_audit):
        assert "\x00" not in result.summary + result.evidence + result.remediation


def test_a_silent_probe_ends_at_the_idle_time_out(node, tools, settings):
    # given: `uname` (run without a tool time-out) never returns and prints nothing; the outer bound is far away
    settings.PREFLIGHT_PROBE_TIMEOUT = 60
    settings.PREFLIGHT_PROBE_IDLE_TIMEOUT = 2
    tools("uname", "exec sleep 600")
    started = time.monotonic()
    # when
    audit = audit_run_inline(audit=audit_start(cluster=node.cluster))
    # then
    elapsed = time.monotonic() - started
    node_audit = NodeAudit.objects.get(audit=audit)
    assert (node_audit.state, node_audit.status) == (RunState.DONE, "error")
    assert node_audit.error == "the probe printed nothing for 2 s after section uname"
    assert elapsed < 20, f"{elapsed:.1f} s"  # far below the 60 s outer bound
    assert audit.state == RunState.DONE
