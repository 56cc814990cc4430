"""Preview, approval and its refusals against the database. The preview's --dry-run runs for real on a node whose
transport is local (the portal's own host): `--dry-run` prints each step and runs none. Runs on real nodes are
in tests/integration/test_fix_apply.py."""

import pytest
from django.core.exceptions import PermissionDenied

from checks.models import FixNodeRun, FixRun
from checks.services.apply import FixRefused, fix_approve, fix_node_run, fix_preview
from inventory.models import HostKey
from tests.factories import ClusterFactory, NodeFactory

from .test_plan import NTP, OK, PORT, _audit

pytestmark = pytest.mark.django_db


@pytest.fixture
def local_lab():
    cluster = ClusterFactory(name="lab")
    workers = [NodeFactory(cluster=cluster, name=f"w{i}", transport="local") for i in range(1, 4)]
    audit = _audit(cluster, {workers[0]: [OK, NTP], workers[1]: [OK, NTP], workers[2]: [OK, PORT]})
    return cluster, workers, audit


def _group(cluster, audit, label_start: str) -> str:
    from checks.services.fix import cluster_fix_plan

    groups = cluster_fix_plan(cluster=cluster, audit_id=audit.pk).plan.groups
    return next(g.key for g in groups if g.label.startswith(label_start))


def test_preview_records_commands_and_the_dry_run_on_the_node(local_lab, admin_user):
    # given
    cluster, workers, audit = local_lab
    # when
    run = fix_preview(cluster=cluster, user=admin_user, audit_id=audit.pk, groups=[_group(cluster, audit, "install")])
    # then: each node's commands, the dry run's echo of each step, nothing approved yet
    rows = list(run.nodes.order_by("node__name"))
    assert [r.node.name for r in rows] == ["w1", "w2"] and run.state == "preview" and run.previewed_by == admin_user
    assert [s["command"] for s in rows[0].commands] == list(NTP[2])
    assert rows[0].state == "previewed", rows[0].error
    assert "+ DEBIAN_FRONTEND=noninteractive apt-get install -y chrony" in rows[0].dry_run
    assert run.approved_by is None and len(run.commands_hash) == 64


def test_approve_records_the_approver_and_queues_each_node(local_lab, admin_user, django_capture_on_commit_callbacks):
    # given
    cluster, workers, audit = local_lab
    run = fix_preview(cluster=cluster, user=admin_user, audit_id=audit.pk, nodes=["w1"])
    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        fix_approve(fix_run_id=run.pk, user=admin_user)
    # then
    run.refresh_from_db()
    assert run.state == "running" and run.approved_by == admin_user and run.approved is not None
    assert list(run.nodes.values_list("state", flat=True)) == ["queued"] and len(callbacks) == 1


def test_refusals_each_say_why(local_lab, admin_user, django_capture_on_commit_callbacks):
    # given: previews of w1 and w2
    cluster, workers, audit = local_lab
    stale = fix_preview(cluster=cluster, user=admin_user, audit_id=audit.pk, nodes=["w1"])
    changed = fix_preview(cluster=cluster, user=admin_user, audit_id=audit.pk, nodes=["w2"])
    keyed = fix_preview(cluster=cluster, user=admin_user, audit_id=audit.pk, nodes=["w3"])
    # when / then: the plan is older than w1's latest audit
    newer = _audit(cluster, {workers[0]: [OK, NTP]}, partial=True)
    with pytest.raises(FixRefused, match=f"older than the node's latest audit \\({newer.pk}\\)") as refused:
        fix_approve(fix_run_id=stale.pk, user=admin_user)
    assert refused.value.code == "stale"
    with pytest.raises(FixRefused, match="older than the node's latest audit"):
        fix_preview(cluster=cluster, user=admin_user, audit_id=audit.pk, nodes=["w1"])
    # w2's facts changed since its preview
    workers[1].last_facts = {"os": {"id": "rocky"}}
    workers[1].save()
    with pytest.raises(FixRefused, match="facts or login changed since the preview") as refused:
        fix_approve(fix_run_id=changed.pk, user=admin_user)
    assert refused.value.code == "facts_changed"
    # w3 offered a different host key
    HostKey.objects.create(
        node=workers[2], key_type="ssh-ed25519", fingerprint="SHA256:x", public_key="x", state="pending"
    )
    with pytest.raises(FixRefused, match="host key changed") as refused:
        fix_approve(fix_run_id=keyed.pk, user=admin_user)
    assert refused.value.code == "host_key"
    assert FixRun.objects.filter(state="preview").count() == 3


def test_a_second_apply_on_a_busy_node_is_refused(local_lab, admin_user, django_capture_on_commit_callbacks):
    # given: w1 is running a fix
    cluster, workers, audit = local_lab
    first = fix_preview(cluster=cluster, user=admin_user, audit_id=audit.pk, nodes=["w1"])
    second = fix_preview(cluster=cluster, user=admin_user, audit_id=audit.pk, nodes=["w1"])
    with django_capture_on_commit_callbacks(execute=False):
        fix_approve(fix_run_id=first.pk, user=admin_user)
    # when / then
    with pytest.raises(FixRefused, match=f"w1 is already running a fix \\(run {first.pk}\\)") as refused:
        fix_approve(fix_run_id=second.pk, user=admin_user)
    assert refused.value.code == "busy"
    with pytest.raises(FixRefused, match="already running a fix"):
        fix_preview(cluster=cluster, user=admin_user, audit_id=audit.pk, nodes=["w1"])
    with pytest.raises(FixRefused, match="not waiting for approval"):
        fix_approve(fix_run_id=first.pk, user=admin_user)


def test_a_run_whose_node_changed_after_approval_runs_nothing(
    local_lab, admin_user, django_capture_on_commit_callbacks
):
    # given: approved, then the node's login changed before the task ran
    cluster, workers, audit = local_lab
    run = fix_preview(cluster=cluster, user=admin_user, audit_id=audit.pk, nodes=["w1"])
    with django_capture_on_commit_callbacks(execute=False):
        fix_approve(fix_run_id=run.pk, user=admin_user)
    workers[0].ssh_user = "ops"
    workers[0].save()
    row = FixNodeRun.objects.get(fix_run=run)
    # when
    with django_capture_on_commit_callbacks(execute=False):
        fix_node_run(fix_node_run_id=row.pk)
    # then
    row.refresh_from_db()
    assert row.state == "refused" and "nothing was run" in row.error and row.output == ""


def test_start_audit_alone_can_neither_preview_nor_approve(local_lab, admin_user, django_user_model):
    # given
    from django.contrib.auth.models import Permission

    cluster, workers, audit = local_lab
    user = django_user_model.objects.create_user("auditor", password="x")
    user.user_permissions.add(
        Permission.objects.get(codename="start_audit"), Permission.objects.get(codename="view_audit")
    )
    user = django_user_model.objects.get(pk=user.pk)
    run = fix_preview(cluster=cluster, user=admin_user, audit_id=audit.pk, nodes=["w1"])
    # when / then
    with pytest.raises(PermissionDenied, match="checks.apply_fix"):
        fix_preview(cluster=cluster, user=user, audit_id=audit.pk, nodes=["w1"])
    with pytest.raises(PermissionDenied):
        fix_approve(fix_run_id=run.pk, user=user)


def test_unknown_choices_are_clear_errors(local_lab, admin_user, admin_api):
    # given
    cluster, workers, audit = local_lab
    # when / then
    with pytest.raises(FixRefused, match="no group 'nope'"):
        fix_preview(cluster=cluster, user=admin_user, audit_id=audit.pk, groups=["nope"])
    assert (
        admin_api.post("/api/v1/clusters/lab/fix-runs", {"audit": audit.pk}, content_type="application/json").json()[
            "code"
        ]
        == "validation_error"
    )
    assert (
        admin_api.post(
            "/api/v1/clusters/lab/fix-runs", {"audit": audit.pk, "nodes": ["zz"]}, content_type="application/json"
        ).status_code
        == 422
    )
    assert admin_api.post("/api/v1/fix-runs/999/approve").status_code == 404


def test_each_steps_exit_status_comes_from_the_scripts_echo():
    # given: a script that echoed two of three steps and ended with status 100
    from checks.services.apply import _steps

    output = "+ apt-get update\nHit:1 ...\n+ systemctl enable --now chrony\nFailed\n"
    # when
    steps = _steps(output, ["apt-get update", "systemctl enable --now chrony", "chronyc makestep"], 100)
    # then: the first succeeded, the second ended the script, the third never ran
    assert [s["exit_status"] for s in steps] == [0, 100, None]


def test_a_login_user_other_than_root_runs_the_script_with_sudo_n():
    # given
    from checks.services.apply import _remote_command

    root, ops = NodeFactory.build(ssh_user="root"), NodeFactory.build(ssh_user="ops")
    # when / then: the dry run needs no root; the run does, without ever prompting
    assert _remote_command(root, dry_run=False) == "sh -s"
    assert _remote_command(ops, dry_run=False) == "sudo -n sh -s"
    assert _remote_command(ops, dry_run=True) == "sh -s -- --dry-run"


def test_the_plan_page_offers_preview_only_with_apply_fix(local_lab, client, django_user_model):
    # given: a reader with view_results alone
    from django.contrib.auth.models import Permission

    reader = django_user_model.objects.create_user("reader", password="x")
    reader.user_permissions.add(Permission.objects.get(codename="view_audit"))
    client.force_login(reader)
    # when
    page = client.get("/clusters/lab/fix-plan/").content.decode()
    # then
    assert "2 nodes: install chrony and enable chrony" in page and 'id="fix-apply"' not in page
    assert client.post("/clusters/lab/fix-runs/", {"audit": 1}).status_code == 403


def test_a_node_run_whose_worker_was_lost_blocks_nothing(local_lab, admin_user, django_capture_on_commit_callbacks):
    # given: w1's run started long ago and its worker is gone
    from datetime import timedelta

    from django.utils import timezone

    cluster, workers, audit = local_lab
    first = fix_preview(cluster=cluster, user=admin_user, audit_id=audit.pk, nodes=["w1"])
    with django_capture_on_commit_callbacks(execute=False):
        fix_approve(fix_run_id=first.pk, user=admin_user)
    FixNodeRun.objects.filter(fix_run=first).update(state="running", started=timezone.now() - timedelta(hours=2))
    # when: the node is fixed again
    second = fix_preview(cluster=cluster, user=admin_user, audit_id=audit.pk, nodes=["w1"])
    # then: the lost run ended, saying so, and the new preview went ahead
    lost = FixNodeRun.objects.get(fix_run=first)
    assert lost.state == "failed" and "worker running this fix was lost" in lost.error
    assert second.nodes.get().state == "previewed"


def test_the_web_preview_takes_single_nodes_and_shows_the_dry_run(local_lab, admin_client):
    # given
    cluster, workers, audit = local_lab
    plan = admin_client.get("/clusters/lab/fix-plan/").content.decode()
    assert 'name="node" value="w2"' in plan
    # when: one node of a group is chosen
    response = admin_client.post("/clusters/lab/fix-runs/", {"audit": audit.pk, "node": ["w2"]}, follow=True)
    # then
    page = response.content.decode()
    run = FixRun.objects.get()
    assert [n.node.name for n in run.nodes.all()] == ["w2"]
    assert "+ systemctl enable --now chrony" in page and 'id="fix-approve"' in page
