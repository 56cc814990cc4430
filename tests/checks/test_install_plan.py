"""The install handoff through the real audit (replayed node outputs, tests/replay.py): the API, the node page
and the cluster's install plan."""

import logging

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from checks.services import audit_run_inline, audit_start
from checks.services.waivers import waiver_create
from portal.tokens import api_token_create
from tests.factories import ClusterFactory, CredentialFactory, NodeFactory
from tests.replay import ReplayTransport, amd_worker_sections, nvidia_worker_sections, sections
from tests.security.conftest import grant

pytestmark = pytest.mark.django_db

TOKEN = "gpustack-registration-$(secret)-token"


@pytest.fixture
def lab():
    """srv (ready server), w1 (NVIDIA, nvidia runtime registered, runc the default), amd1 (AMD, no amd runtime)."""
    cluster = ClusterFactory(name="lab", gpustack_image_tag="v2.0.0")
    credential = CredentialFactory()
    nodes = {
        name: NodeFactory(cluster=cluster, name=name, role=role, address=address, credential=credential)
        for name, role, address in [
            ("srv", "server", "127.0.0.2"),
            ("w1", "worker", "127.0.0.3"),
            ("amd1", "worker", "127.0.0.4"),
        ]
    }
    transport = ReplayTransport(
        {"127.0.0.2": sections(), "127.0.0.3": nvidia_worker_sections(), "127.0.0.4": amd_worker_sections()}
    )

    def audit():
        return audit_run_inline(audit=audit_start(cluster=cluster, node_names=list(nodes)), transport=transport)

    audit()
    return cluster, nodes, audit


@pytest.fixture
def operator(django_user_model):
    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    grant(user, "checks.view_audit", "checks.add_waiver", "inventory.view_cluster", "inventory.view_node")
    user = django_user_model.objects.get(pk=user.pk)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user, name='t')[1]}")
    web = Client()
    web.force_login(user)
    return user, api, web


def test_nvidia_worker_whose_runtime_is_not_the_default_gets_runtime_nvidia(lab, operator):
    # given: w1's recorded `docker info` lists the nvidia runtime, with runc the default
    _, nodes, _ = lab
    _, api, _ = operator
    # when
    response = api.get(f"/api/v1/nodes/{nodes['w1'].pk}/install")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    (command,) = body["commands"]
    assert (body["vendor"], command["role"], command["runtime"]) == ("nvidia", "worker", "nvidia")
    assert "--runtime nvidia" in command["command"] and "--server-url http://127.0.0.2" in command["command"]
    assert "gpustack/gpustack:v2.0.0" in command["command"] and '--token "$GPUSTACK_TOKEN"' in command["command"]
    assert "--worker-ip 127.0.0.3" in command["command"]


def test_not_ready_node_answers_409_with_the_failing_check_ids_until_waived(lab, operator):
    # given: amd1's Docker has no amd runtime, so accelerator.amd.toolkit fails
    cluster, nodes, audit = lab
    user, api, _ = operator
    url = f"/api/v1/nodes/{nodes['amd1'].pk}/install"
    # when
    refused = api.get(url)
    # then
    assert refused.status_code == 409 and refused.json()["code"] == "conflict"
    assert [e["field"] for e in refused.json()["errors"]] == ["accelerator.amd.toolkit"]
    assert "amd1 is not ready for GPUStack" in refused.json()["message"]
    # and once the operator waives it and the next audit ran, the command mounts /opt/rocm and names the runtime
    waiver_create(user=user, cluster=cluster, node=nodes["amd1"], check_id="accelerator.amd.toolkit", reason="lab")
    audit()
    allowed = api.get(url)
    assert allowed.status_code == 200, allowed.content
    text = allowed.json()["commands"][0]["command"]
    assert "--volume /opt/rocm:/opt/rocm:ro" in text and "--runtime amd" in text
    assert allowed.json()["waived"] == ["accelerator.amd.toolkit"]


def test_server_command_comes_first_and_the_plan_marks_not_ready_nodes(lab, operator):
    _, nodes, _ = lab
    _, api, web = operator
    server = api.get(f"/api/v1/nodes/{nodes['srv'].pk}/install").json()
    assert [c["role"] for c in server["commands"]] == ["server"]
    assert server["commands"][0]["command"].startswith("sudo docker run -d --name gpustack \\\n")
    page = web.get(reverse("ui:install_plan", args=["lab"])).content.decode()
    order = [page.index(f'id="plan-{name}"') for name in ("srv", "amd1", "w1")]
    assert order == sorted(order)
    amd = page.split('id="plan-amd1"')[1].split('id="plan-w1"')[0]
    assert "Not ready" in amd and "accelerator.amd.toolkit" in amd and "docker run" not in amd


def test_the_token_typed_on_the_plan_is_used_once_and_never_stored_or_logged(lab, operator, caplog, capsys):
    _, nodes, _ = lab
    _, _, web = operator
    caplog.set_level(logging.DEBUG)
    # when
    response = web.post(reverse("ui:install_plan", args=["lab"]), {"token": TOKEN})
    # then: in the page, quoted; not cached, not in the database, not in any log record
    page = response.content.decode()
    assert "--token &#x27;gpustack-registration-$(secret)-token&#x27;" in page
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    call_command("dumpdata", "--exclude", "contenttypes", "--exclude", "auth.permission")
    assert TOKEN not in capsys.readouterr().out
    assert not [r for r in caplog.records if TOKEN in r.getMessage()]
    assert TOKEN not in web.get(reverse("ui:install_plan", args=["lab"])).content.decode()


def test_the_node_page_shows_the_command_or_why_not(lab, operator):
    _, nodes, _ = lab
    _, _, web = operator
    ready = web.get(reverse("ui:node_detail", args=[nodes["w1"].pk])).content.decode()
    blocked = web.get(reverse("ui:node_detail", args=[nodes["amd1"].pk])).content.decode()
    assert 'id="install"' in ready and "--runtime nvidia" in ready
    assert 'id="install-blocked"' in blocked and "accelerator.amd.toolkit" in blocked.split('id="install-blocked"')[1]
