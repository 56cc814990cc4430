"""The cluster fix plan through its doors (service, API, CLI, page): groups, order, binding to its audit."""

import json
from io import StringIO

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone

from checks.choices import RunState
from checks.facts import OsRelease
from checks.fixplan import NodeResults, ResultRow, build_plan
from checks.models import Audit, CheckResult, NodeAudit
from checks.remediation import command, fix_ntp, fix_ports_available, fix_toolkit
from checks.services.fix import cluster_fix_plan
from tests.factories import ClusterFactory, NodeFactory

pytestmark = pytest.mark.django_db
UBUNTU = OsRelease(id="ubuntu", version_id="22.04", id_like=["debian"], fields={"UBUNTU_CODENAME": "jammy"})


def _audit(cluster, results_by_node: dict, *, partial: bool = False) -> Audit:
    now = timezone.now()
    audit = Audit.objects.create(
        cluster=cluster,
        profile=cluster.profile,
        profile_key="gpustack-2.0",
        state=RunState.DONE,
        status="fail",
        started=now,
        finished=now,
        partial=partial,
    )
    for node, results in results_by_node.items():
        status = "fail" if any(r[1] == "fail" for r in results) else "pass"
        na = NodeAudit.objects.create(audit=audit, node=node, state=RunState.DONE, status=status, finished=now)
        CheckResult.objects.bulk_create(
            CheckResult(node_audit=na, check_id=c, status=s, summary=f"{c} {s}", commands=list(cmds), position=i)
            for i, (c, s, cmds) in enumerate(results)
        )
    return audit


NTP = ("time.ntp", "fail", fix_ntp(UBUNTU).commands)
PORT = ("ports.available", "fail", fix_ports_available(holders=[([10150], "x", 4242)], summary="10150").commands)
OK = ("os.supported", "pass", ())


@pytest.fixture
def lab():
    cluster = ClusterFactory(name="lab")
    workers = [NodeFactory(cluster=cluster, name=f"w{i}") for i in range(1, 6)]
    audit = _audit(cluster, {**{w: [OK, NTP] for w in workers[:4]}, workers[4]: [OK, PORT]})
    return cluster, workers, audit


def test_plan_groups_nodes_by_their_exact_commands(lab):
    # given: 4 workers lack chrony, 1 holds port 10150
    cluster, workers, audit = lab
    # when
    data = cluster_fix_plan(cluster=cluster).as_dict()
    # then: two groups, the biggest first, nodes named, commands as the templates render them
    assert [g["title"] for g in data["groups"]] == [
        "4 nodes: install chrony and enable chrony",
        "1 node: free port 10150",
    ]
    assert data["groups"][0]["nodes"] == ["w1", "w2", "w3", "w4"]
    assert data["groups"][0]["commands"] == [
        "DEBIAN_FRONTEND=noninteractive apt-get install -y chrony",
        "systemctl enable --now chrony",
    ]
    assert data["audit"] == audit.pk and data["newer_audit"] is False


def test_steps_follow_dependency_order():
    # given: one node whose results come in check order: firewall, ports, toolkit, docker missing, ntp
    toolkit = fix_toolkit(UBUNTU, vendor="nvidia", toolkit_name="t", toolkit_url="", runtime="nvidia", installed=True)
    rows = (
        ResultRow("network.worker_to_server", "fail", (command("ufw.allow", span="10150", protocol="tcp"),), 0),
        ResultRow("ports.available", "fail", PORT[2], 1),
        ResultRow("accelerator.nvidia.toolkit", "fail", toolkit.commands, 2),
        ResultRow("container.docker", "fail", (command("service.enable", service="docker"),), 3),
        ResultRow("time.synchronized", "warn", (command("service.enable", service="chrony"),), 4),
        ResultRow("time.ntp", "fail", NTP[2], 5),
    )
    # when
    plan = build_plan(audit_id=1, nodes=[NodeResults(1, "n", "fail", 1, rows)])
    # then: packages before services, Docker before the toolkit, the firewall after the listeners
    order = [s.check_id for s in plan.groups[0].steps]
    assert order == [
        "time.ntp",
        "container.docker",
        "accelerator.nvidia.toolkit",
        "time.synchronized",
        "ports.available",
        "network.worker_to_server",
    ]


def test_a_command_no_template_renders_is_left_out_and_counted():
    # given: a stored command that is not a template rendering
    rows = (ResultRow("time.ntp", "fail", ("apt-get install -y chrony; touch /tmp/x", *NTP[2]), 0),)
    # when
    plan = build_plan(audit_id=1, nodes=[NodeResults(1, "n", "fail", 1, rows)])
    # then
    node = plan.groups[0].nodes[0]
    assert node.refused == 1 and "touch" not in " ".join(node.commands)


def test_plan_is_bound_to_its_audit_and_says_when_a_newer_one_exists(lab):
    # given: a re-audit of w1 found chrony installed
    cluster, workers, first = lab
    second = _audit(cluster, {workers[0]: [OK, ("time.ntp", "pass", ())]}, partial=True)
    # when
    old = cluster_fix_plan(cluster=cluster, audit_id=first.pk).as_dict()
    new = cluster_fix_plan(cluster=cluster).as_dict()
    # then: the old plan still has w1 and says a newer audit exists; the new one combines w1's new result with the rest
    assert old["newer_audit"] is True and old["latest_audit"] == second.pk and "w1" in old["groups"][0]["nodes"]
    assert new["audit"] == second.pk and new["groups"][0]["nodes"] == ["w2", "w3", "w4"]
    assert new["nothing_to_run"] == ["w1"]


def test_api_cli_and_page_show_the_same_plan(lab, admin_client, admin_api):
    # given
    cluster, _, audit = lab
    # when
    api = admin_api.get("/api/v1/clusters/lab/fix-plan").json()
    out = StringIO()
    call_command("fix_plan", "--cluster", "lab", "--json", stdout=out)
    cli = json.loads(out.getvalue())
    page = admin_client.get("/clusters/lab/fix-plan/").content.decode()
    playbook = admin_api.get("/api/v1/clusters/lab/fix-plan?format=ansible").content.decode()
    # then
    assert api == cli
    assert "4 nodes: install chrony and enable chrony" in page and "DEBIAN_FRONTEND=noninteractive" in page
    plays = yaml.safe_load(playbook)
    assert [p["hosts"] for p in plays] == [["w1", "w2", "w3", "w4"], ["w5"]]


def test_cli_ansible_and_text(lab):
    # given / when
    ansible, text = StringIO(), StringIO()
    call_command("fix_plan", "--cluster", "lab", "--ansible", stdout=ansible)
    call_command("fix_plan", "--cluster", "lab", stdout=text)
    # then
    assert yaml.safe_load(ansible.getvalue())[0]["name"].startswith("Preflight fix 1 of 2: install chrony")
    assert "4 nodes: install chrony and enable chrony\n  nodes: w1, w2, w3, w4\n  1. DEBIAN_FRONTEND" in text.getvalue()


def test_bad_input_gets_clear_errors(lab, admin_client, admin_api):
    # given / when / then
    assert admin_api.get("/api/v1/clusters/nope/fix-plan").json()["code"] == "not_found"
    assert admin_api.get("/api/v1/clusters/lab/fix-plan?audit=999999").status_code == 404
    assert admin_api.get("/api/v1/clusters/lab/fix-plan?format=xml").json()["code"] == "validation_error"
    assert admin_api.get("/api/v1/clusters/lab/fix-plan?audit=abc").status_code == 422
    assert admin_client.get("/clusters/lab/fix-plan/?audit=abc").status_code == 404
    with pytest.raises(Exception, match="no cluster named"):
        call_command("fix_plan", "--cluster", "nope", stdout=StringIO())
