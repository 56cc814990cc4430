"""Wording the pages show: no doubled prefixes, a node named by its role."""

from checks.catalog import evaluate_node
from checks.selectors.pages import undouble
from checks.services.node import connect_summary
from checks.spec import NodeContext
from checks.transport.base import ConnectFailure
from tests.unit.test_catalog import PROFILE, by_id, node


def test_connect_summary_says_the_reason_once():
    changed = ConnectFailure("host key changed", "host key changed: 10.0.0.5 offered ssh-ed25519 SHA256:abc")
    assert connect_summary(changed) == "host key changed: 10.0.0.5 offered ssh-ed25519 SHA256:abc"
    refused = ConnectFailure("refused", "connection refused by 10.0.0.5:22")
    assert connect_summary(refused) == "refused: connection refused by 10.0.0.5:22"


def test_undouble_repairs_summaries_recorded_before_the_fix():
    assert undouble("host key changed: host key changed: 10.0.0.5 offered") == "host key changed: 10.0.0.5 offered"
    assert undouble("refused: connection refused") == "refused: connection refused"
    assert undouble("") == ""


def test_a_cpu_only_server_running_a_worker_is_called_a_server():
    context = NodeContext("s", "server", server_runs_worker=True)
    result = by_id(evaluate_node(node(), PROFILE, context))["accelerator.present"]
    assert result.summary == "no accelerator found (CPU-only server)" and "worker" not in result.remediation
    assert "this server's PCI bus" in result.remediation
