"""A node reached over SSH whose checks could not run (the probe was cut short) is Not ready, not Unreachable; one
not reached is Unreachable: recorded by the real audit (only the SSH sessions are replayed), then read the same
way by the CLI, the node list and its readiness filter, the node page, the dashboard and /api/v1/nodes."""

import importlib
import io
import re
import time

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from checks.models import NodeAudit
from checks.transport import ConnectFailure, ProbeRun
from inventory.models import Node
from portal.tokens import api_token_create
from tests.factories import ClusterFactory, CredentialFactory, NodeFactory
from tests.replay import ReplayTransport, sections

pytestmark = pytest.mark.django_db


class CutShortOrRefused(ReplayTransport):
    """`cut` prints its first sections, then nothing until the probe's time-out; `gone` refuses the connection."""

    def run(self, target, *, command, stdin, timeout, max_bytes, idle_timeout=None):
        if target.address == "127.0.0.4":
            raise ConnectFailure("refused", f"connect to {target.address}:22 refused")
        run = super().run(target, command=command, stdin=stdin, timeout=timeout, max_bytes=max_bytes)
        if target.address == "127.0.0.3":
            nonce = command.split()[3]
            partial = run.output.split(f"@@PF:{nonce}:BEGIN uname@@", 1)[0]
            return ProbeRun(partial, None, run.started, run.first_byte, time.time(), timed_out=True)
        return run


@pytest.fixture
def lab(monkeypatch):
    """Workers only (no matrix): `ok` answers, `cut` is reached but its probe times out, `gone` refuses SSH."""
    cluster = ClusterFactory(name="lab")
    credential = CredentialFactory()
    for i, name in enumerate(("ok", "cut", "gone")):
        NodeFactory(cluster=cluster, name=name, role="worker", address=f"127.0.0.{i + 2}", credential=credential)
    transport = CutShortOrRefused({f"127.0.0.{i}": sections() for i in (2, 3, 4)})
    monkeypatch.setattr("checks.services.node.transport_for", lambda node: transport)
    return cluster


def _audit() -> str:
    stdout = io.StringIO()
    try:
        call_command("audit", "--cluster", "lab", stdout=stdout, stderr=io.StringIO())
    except SystemExit:
        pass
    return stdout.getvalue()


def test_a_reached_node_whose_probe_was_cut_short_is_not_ready_everywhere(lab, client, django_user_model):
    # given
    user = django_user_model.objects.create_superuser("ops", password="x")
    client.force_login(user)
    _, token = api_token_create(user=user, name="t")
    api = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    # when the audit runs
    table = _audit()
    # then the run and the node record whether SSH reached the node
    runs = {na.node.name: na for na in NodeAudit.objects.select_related("node")}
    assert (runs["cut"].status, runs["cut"].reached) == ("error", True)
    assert (runs["gone"].status, runs["gone"].reached) == ("error", False)
    assert runs["ok"].reached is True
    nodes = {n.name: n for n in Node.objects.all()}
    assert (nodes["cut"].last_audit_status, nodes["cut"].last_reached) == ("error", True)
    assert (nodes["gone"].last_audit_status, nodes["gone"].last_reached) == ("error", False)
    # the CLI
    assert re.search(r"^cut \(worker, 127\.0\.0\.3\): Not ready$", table, re.M), table
    assert re.search(r"^gone \(worker, 127\.0\.0\.4\): Unreachable$", table, re.M), table
    # the node list, its readiness filter and its export
    listed = client.get("/nodes/?cluster=lab").content.decode()
    row = listed.split(">cut</a>", 1)[1].split("</tr>", 1)[0]
    assert 'data-state="node:not-ready">Not ready</span>' in row
    row = listed.split(">gone</a>", 1)[1].split("</tr>", 1)[0]
    assert 'data-state="node:unreachable">Unreachable</span>' in row
    unreachable = client.get("/nodes/?cluster=lab&readiness=unreachable&export=json").json()
    assert [n["name"] for n in unreachable] == ["gone"] and unreachable[0]["status"] == "Unreachable"
    not_ready = client.get("/nodes/?cluster=lab&readiness=not_ready&export=json").json()
    assert {"cut", "gone"} <= {n["name"] for n in not_ready}
    assert {n["name"]: n["status"] for n in not_ready}["cut"] == "Not ready"
    # the node page: its badge agrees with its text ("could not run", not "could not reach")
    page = client.get(f"/nodes/{nodes['cut'].pk}/").content.decode()
    head = page.split("</h1>", 1)[0]
    assert 'data-state="node:not-ready">Not ready</span>' in head and "unreachable" not in head
    assert "checks did not run" in page and "could not reach" not in page
    history = page.split("<h2>History</h2>", 1)[1]
    assert 'data-state="node:not-ready"' in history and 'data-state="node:unreachable"' not in history
    gone = client.get(f"/nodes/{nodes['gone'].pk}/").content.decode()
    assert 'data-state="node:unreachable">Unreachable</span>' in gone.split("</h1>", 1)[0]
    # the dashboard: the heatmap counts one Unreachable node, not two
    dashboard = client.get("/clusters/lab/").content.decode()
    heat = re.findall(r'data-state="node:([a-z-]+)">(\d+) ', dashboard)
    assert ("unreachable", "1") in heat, heat
    # the API: the readiness field and filter, and the audit document
    listed_api = client.get("/api/v1/nodes?cluster=lab", **api).json()["items"]
    assert {n["name"]: n["readiness"] for n in listed_api}["cut"] == "not-ready"
    assert {n["name"]: n["readiness"] for n in listed_api}["gone"] == "unreachable"
    only = client.get("/api/v1/nodes?cluster=lab&readiness=unreachable", **api).json()["items"]
    assert [n["name"] for n in only] == ["gone"]
    document = client.get(f"/api/v1/audits/{runs['cut'].audit_id}", **api).json()
    by_name = {n["name"]: n for n in document["nodes"]}
    assert (by_name["cut"]["readiness"], by_name["cut"]["reached"]) == ("not-ready", True)
    assert (by_name["gone"]["readiness"], by_name["gone"]["reached"]) == ("unreachable", False)


def test_the_migration_fills_reached_from_each_runs_ssh_connect(lab):
    # given runs recorded before `reached` was: the audit ran, then the new fields were emptied
    _audit()
    NodeAudit.objects.update(reached=None)
    Node.objects.update(last_reached=None)
    backfill = importlib.import_module("checks.migrations.0018_node_audit_reached_and_backfill").backfill_reached
    # when
    backfill(apps, None)
    # then: as the audit recorded them, in two UPDATEs whatever the number of rows
    runs = dict(NodeAudit.objects.values_list("node__name", "reached"))
    assert runs == {"ok": True, "cut": True, "gone": False}
    assert dict(Node.objects.values_list("name", "last_reached")) == {"ok": True, "cut": True, "gone": False}
    NodeAudit.objects.update(reached=None)
    with CaptureQueriesContext(connection) as captured:
        backfill(apps, None)
    assert len(captured) == 2


class Crashes(ReplayTransport):
    """Preflight's own code fails while auditing (a bug of ours, not anything the node did)."""

    def run(self, target, *, command, stdin, timeout, max_bytes, idle_timeout=None):
        raise RuntimeError("a bug of ours")


def test_a_crash_of_preflight_while_probing_is_its_fault_not_the_nodes(monkeypatch):
    # given: a node whose last audit found it ready
    from portal import states

    cluster = ClusterFactory(name="crash")
    node = NodeFactory(cluster=cluster, name="n1", role="worker", address="127.0.0.2", credential=CredentialFactory())
    Node.objects.filter(pk=node.pk).update(last_audit_status="pass", last_reached=True)
    monkeypatch.setattr("checks.services.node.transport_for", lambda node: Crashes({}))
    # when: the next audit's run of it crashes inside Preflight
    stdout = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("audit", "--cluster", "crash", stdout=stdout, stderr=io.StringIO())
    # then: the run ends in error, kept as Preflight's own fault (Not audited), not a verdict on the node
    run = NodeAudit.objects.get(node=node)
    assert run.status == "error" and run.reached is False
    assert "internal error RuntimeError('a bug of ours')" in run.portal_error
    assert states.node_state(run.status, run.reached, portal_fault=bool(run.portal_error)) == states.NOT_AUDITED
    # and the node keeps the state of its last audit: ready, not Unreachable
    node.refresh_from_db()
    assert (node.last_audit_status, node.last_reached) == ("pass", True)
