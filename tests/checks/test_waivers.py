"""Waivers through the real audit: a recorded node output that fails time.ntp (no NTP installed), audited with the
real services and the `audit` command; only the SSH session is replayed (tests/replay.py)."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from checks.models import CheckResult, NodeAudit, Waiver
from checks.services.waivers import waiver_create
from inventory.models import Node
from tests.factories import ClusterFactory, CredentialFactory, NodeFactory
from tests.replay import ReplayTransport, sections

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab(monkeypatch):
    """Cluster `lab`: one server whose output shows no NTP implementation (time.ntp fails, the rest is ready)."""
    cluster = ClusterFactory(name="lab")
    node = NodeFactory(cluster=cluster, name="srv", role="server", address="127.0.0.2", credential=CredentialFactory())
    transport = ReplayTransport({"127.0.0.2": sections(ntp=False)})
    monkeypatch.setattr("checks.services.node.transport_for", lambda node: transport)
    return cluster, node


@pytest.fixture
def waiver_user(django_user_model):
    from tests.security.conftest import grant

    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    grant(
        user,
        "checks.add_waiver",
        "checks.view_waiver",
        "checks.view_audit",
        "inventory.view_cluster",
        "inventory.view_node",
    )
    return django_user_model.objects.get(pk=user.pk)


def _audit(capsys, *args) -> tuple[dict, int]:
    """`manage.py audit --cluster lab --json [args]`: the document it prints and its exit status."""
    code = 0
    try:
        call_command("audit", "--cluster", "lab", "--json", *args)
    except SystemExit as exit_:
        code = int(exit_.code)
    return json.loads(capsys.readouterr().out), code


def _check(document: dict, check_id: str) -> dict:
    return next(c for c in document["nodes"][0]["checks"] if c["id"] == check_id)


def _servers_ready(client) -> str:
    body = client.get(reverse("ui:dashboard", args=["lab"])).content.decode()
    return body.split('Servers ready</div><div class="big">')[1].split("</div>")[0]


def test_a_waiver_makes_the_failing_node_ready_and_keeps_the_real_status(lab, waiver_user, capsys, client):
    # given: the node fails time.ntp, and the dashboard counts it not ready
    cluster, node = lab
    before, code_before = _audit(capsys)
    client.force_login(waiver_user)
    assert (before["nodes"][0]["status"], code_before, _servers_ready(client)) == ("fail", 1, "0 / 1")
    # when: an operator waives time.ntp on that node, and the next audit runs
    waiver = waiver_create(
        user=waiver_user, cluster=cluster, node=node, check_id="time.ntp", reason="NTP comes with the golden image"
    )
    after, code_after = _audit(capsys)
    # then: the JSON keeps the real status and says who waived it, why and until when; the node is ready
    ntp = _check(after, "time.ntp")
    assert ntp["status"] == "fail"
    assert ntp["waived"] == {
        "reason": "NTP comes with the golden image",
        "by": waiver_user.username,
        "expires": waiver.expires.isoformat().replace("+00:00", "Z"),
        "scope": "node",
    }
    assert "waived" not in _check(after, "os.supported")
    assert after["nodes"][0]["status"] == "warn" and code_after == 0  # time.synchronized: state unknown (warn)
    assert after["ignored"] == []
    # the dashboard counts it ready and no longer lists time.ntp as a reason
    assert _servers_ready(client) == "1 / 1"
    dashboard = client.get(reverse("ui:dashboard", args=["lab"])).content.decode()
    assert 'id="verdict"' in dashboard and "Ready:" in dashboard
    assert '/checks/time.ntp/"' not in dashboard and "1 waived result not counted" in dashboard
    # the node page shows the real status, the waiver and its reason
    page = client.get(reverse("ui:node_detail", args=[node.pk])).content.decode()
    ntp_block = page.split('id="check-time.ntp"')[1].split('<div class="check"')[0]
    assert 'data-state="check:fail">Fail</span> <span class="badge badge-waived">Waived</span>' in ntp_block
    assert "NTP comes with the golden image" in ntp_block
    assert Node.objects.get(pk=node.pk).last_audit_status == "warn"


def test_an_expired_waiver_stops_applying_at_the_next_audit_and_history_stays(lab, waiver_user, capsys):
    # given: a waiver for three days, applied by an audit today
    cluster, node = lab
    waiver_create(
        user=waiver_user,
        cluster=cluster,
        check_id="time.ntp",
        reason="until the image is rebuilt",
        expires=timezone.now() + timedelta(days=3),
    )
    waived, _ = _audit(capsys)
    assert _check(waived, "time.ntp")["waived"]["scope"] == "cluster"
    # when: four days later, the next audit
    with time_machine.travel(timezone.now() + timedelta(days=4), tick=True):
        expired, code = _audit(capsys)
    # then: the result counts again; the earlier audit still shows what it was judged with
    assert "waived" not in _check(expired, "time.ntp") and expired["nodes"][0]["status"] == "fail" and code == 1
    first = CheckResult.objects.get(node_audit__audit_id=waived["audit"], check_id="time.ntp")
    assert first.waived["reason"] == "until the image is rebuilt"
    assert NodeAudit.objects.get(audit_id=waived["audit"]).status == "warn"


def test_ignore_waives_for_one_run_only(lab, capsys):
    # when: one run ignores time.ntp, the next does not
    ignored, code_ignored = _audit(capsys, "--ignore", "time.ntp")
    plain, code_plain = _audit(capsys)
    # then
    assert ignored["ignored"] == ["time.ntp"] and code_ignored == 0
    assert _check(ignored, "time.ntp")["status"] == "fail"
    assert _check(ignored, "time.ntp")["waived"] == {
        "reason": "ignored for this run only (audit --ignore)",
        "by": "audit --ignore",
        "expires": None,
        "scope": "run",
    }
    assert ignored["nodes"][0]["status"] == "warn"
    assert plain["ignored"] == [] and "waived" not in _check(plain, "time.ntp")
    assert plain["nodes"][0]["status"] == "fail" and code_plain == 1
    assert Waiver.objects.count() == 0


def test_ignore_of_an_unknown_check_is_bad_usage(lab):
    with pytest.raises(Exception, match="not a check id: time.nope") as raised:
        call_command("audit", "--cluster", "lab", "--ignore", "time.nope")
    assert getattr(raised.value, "returncode", None) == 2


def test_waiver_expiry_is_bounded_by_the_setting(lab, waiver_user, settings):
    from django.core.exceptions import ValidationError

    cluster, node = lab
    with pytest.raises(ValidationError, match="at most 90 days"):
        waiver_create(
            user=waiver_user,
            cluster=cluster,
            node=node,
            check_id="time.ntp",
            reason="r",
            expires=timezone.now() + timedelta(days=91),
        )
    settings.PREFLIGHT_WAIVER_MAX_DAYS = 200
    waiver = waiver_create(
        user=waiver_user,
        cluster=cluster,
        node=node,
        check_id="time.ntp",
        reason="r",
        expires=timezone.now() + timedelta(days=150),
    )
    assert waiver.pk is not None


def test_the_node_page_waives_and_the_dashboard_lists_waivers_expiring_soon(lab, waiver_user, capsys, client):
    # given: an audited node and an operator allowed to waive
    cluster, node = lab
    _audit(capsys)
    client.force_login(waiver_user)
    page = client.get(reverse("ui:node_detail", args=[node.pk])).content.decode()
    assert 'name="check_id" value="time.ntp"' in page and 'name="check_id" value="os.supported"' not in page
    # when: "Waive" on the node page, expiring in 5 days; and a cluster waiver expiring in 30 days
    soon = (timezone.now() + timedelta(days=5)).date().isoformat()
    response = client.post(
        reverse("ui:node_waive", args=[node.pk]),
        {"check_id": "time.ntp", "reason": "known <b>gap</b>", "expires": soon, "scope": "node"},
    )
    waiver_create(
        user=waiver_user,
        cluster=cluster,
        check_id="time.synchronized",
        reason="later",
        expires=timezone.now() + timedelta(days=30),
    )
    # then
    assert response.status_code == 302
    waiver = Waiver.objects.get(check_id="time.ntp")
    assert (waiver.node_id, waiver.author, waiver.expires.date().isoformat()) == (node.pk, waiver_user.username, soon)
    expiring = client.get(reverse("ui:dashboard", args=["lab"])).content.decode()
    table = expiring.split('id="expiring-waivers"')[1].split("</table>")[0]
    assert "time.ntp" in table and "known &lt;b&gt;gap&lt;/b&gt;" in table and "time.synchronized" not in table


def test_the_node_page_refuses_a_waiver_past_the_bound(lab, waiver_user, client):
    _, node = lab
    client.force_login(waiver_user)
    response = client.post(
        reverse("ui:node_waive", args=[node.pk]),
        {
            "check_id": "time.ntp",
            "reason": "r",
            "expires": (timezone.now() + timedelta(days=120)).date().isoformat(),
            "scope": "node",
        },
        follow=True,
    )
    assert "a waiver lasts at most 90 days" in response.content.decode() and not Waiver.objects.exists()


def test_exports_show_the_waived_check_with_its_reason(lab, waiver_user, capsys, client):
    cluster, node = lab
    waiver_create(user=waiver_user, cluster=cluster, node=node, check_id="time.ntp", reason="golden image")
    _audit(capsys)
    client.force_login(waiver_user)
    rows = json.loads(client.get(reverse("ui:node_list"), {"export": "json"}).content)
    assert rows[0]["status"] != "Fail" and rows[0]["waived"] == "time.ntp (fail, waived: golden image)"


def test_waivers_api_crud_and_errors(lab, django_user_model):
    from django.test import Client

    from portal.tokens import api_token_create
    from tests.security.conftest import grant

    # given: a token of a user who may waive, read, change and delete waivers
    user = django_user_model.objects.create_user("api", password="pw")
    grant(user, "checks.add_waiver", "checks.view_waiver", "checks.change_waiver", "checks.delete_waiver")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user, name='t')[1]}")
    url = "/api/v1/waivers"
    body = {"cluster": "lab", "node": "srv", "check_id": "time.ntp", "reason": "golden image"}
    # when / then: create, with the bound applied to the default expiry
    created = api.post(url, body, content_type="application/json")
    assert created.status_code == 201, created.content
    waiver = created.json()
    assert (waiver["node"], waiver["by"], waiver["active"]) == ("srv", "api", True)
    # bad input: clear JSON errors, never a 500
    too_long = {**body, "expires": (timezone.now() + timedelta(days=120)).isoformat()}
    answers = {
        "too long": api.post(url, too_long, content_type="application/json"),
        "unknown check": api.post(url, {**body, "check_id": "time.nope"}, content_type="application/json"),
        "unknown node": api.post(url, {**body, "node": "ghost"}, content_type="application/json"),
        "no reason": api.post(url, {**body, "reason": ""}, content_type="application/json"),
    }
    assert {k: (r.status_code, r.json()["code"]) for k, r in answers.items()} == {
        "too long": (422, "validation_error"),
        "unknown check": (422, "validation_error"),
        "unknown node": (404, "not_found"),
        "no reason": (422, "validation_error"),
    }
    assert answers["too long"].json()["errors"][0]["field"] == "expires"
    # read, change, delete
    assert [w["id"] for w in api.get(url, {"cluster": "lab", "active": "true"}).json()["items"]] == [waiver["id"]]
    patched = api.patch(f"{url}/{waiver['id']}", {"reason": "rebuilt next week"}, content_type="application/json")
    assert patched.status_code == 200 and patched.json()["reason"] == "rebuilt next week"
    assert api.delete(f"{url}/{waiver['id']}").status_code == 204
    assert api.get(f"{url}/{waiver['id']}").status_code == 404 and not Waiver.objects.exists()


def test_waivers_also_apply_to_the_network_results_the_matrix_adds(lab, waiver_user, capsys):
    from checks.services.waivers import node_audit_restamp

    # given: an audited node whose matrix later recorded a failing path check on it
    cluster, node = lab
    document, _ = _audit(capsys, "--ignore", "time.ntp")
    node_audit = NodeAudit.objects.get(audit_id=document["audit"])
    CheckResult.objects.create(
        node_audit=node_audit, check_id="network.worker_to_server", status="fail", summary="10150 refused", position=99
    )
    waiver_create(user=waiver_user, cluster=cluster, check_id="network.worker_to_server", reason="firewall ticket")
    # when: the matrix's recording applies waivers to the node audit's results
    status = node_audit_restamp(node_audit=node_audit)
    # then: both the run's --ignore and the waiver hold; the node stays ready
    waived = dict(
        CheckResult.objects.filter(node_audit=node_audit, waived__isnull=False).values_list("check_id", "waived")
    )
    assert status == "warn"
    assert waived["time.ntp"]["scope"] == "run" and waived["network.worker_to_server"]["reason"] == "firewall ticket"


def test_the_dashboard_lists_waivers_only_to_who_may_read_them(lab, waiver_user, client, django_user_model):
    from tests.security.conftest import grant

    cluster, node = lab
    waiver_create(
        user=waiver_user, cluster=cluster, node=node, check_id="time.ntp", reason="private reason",
        expires=timezone.now() + timedelta(days=2),
    )  # fmt: skip
    reader = django_user_model.objects.create_user("reader", password="pw")
    grant(reader, "inventory.view_cluster", "checks.view_audit")
    client.force_login(reader)
    without = client.get(reverse("ui:dashboard", args=["lab"])).content.decode()
    grant(reader, "checks.view_waiver")
    client.force_login(django_user_model.objects.get(pk=reader.pk))
    with_it = client.get(reverse("ui:dashboard", args=["lab"])).content.decode()
    assert "private reason" not in without and 'id="expiring-waivers"' not in without
    assert "private reason" in with_it
