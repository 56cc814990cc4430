"""Issue 25: one vocabulary. Every page renders node, check and audit states through the tags of
checks/templatetags/states.py (words, colours and icons of portal/states.py); no template writes a status badge."""

import re
from pathlib import Path

import pytest
from django.conf import settings

from checks.models import NetworkPath
from portal import states
from tests.uidata import build_cluster

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates"
# a badge whose colour says a state: badge-pass, badge-{{ x.status }}, ... (badge-waived is a note, not a state)
RAW_STATUS_BADGE = re.compile(r"badge-(pass|warn|fail|error|skip|unknown|not-run|\{\{)")
BADGE = re.compile(r'<span class="badge [^"]*"[^>]*>')


def test_no_template_writes_a_status_badge_by_hand():
    # given every template of the project
    templates = sorted(TEMPLATES.rglob("*.html"))
    assert len(templates) > 10
    # when
    raw = [
        f"{t.relative_to(TEMPLATES)}: {m.group(0)}" for t in templates for m in RAW_STATUS_BADGE.finditer(t.read_text())
    ]
    # then
    assert raw == []


@pytest.fixture
def fleet():
    data = build_cluster("demo", 12, matrix_every_audit=True)
    data["by_name"] = {n.name: n for n in data["nodes"]}
    return data


def _pages(data) -> dict[str, str]:
    old, new = data["audits"]
    path = NetworkPath.objects.filter(audit=new, status="fail").first()
    return {
        "home": "/",
        "dashboard": "/clusters/demo/",
        "node list": "/nodes/?cluster=demo",
        "node list, worst first, 25 a page": "/nodes/?sort=last_audit_status&per_page=25",
        "admin node list": "/admin/inventory/node/",
        "node page, unreachable": f"/nodes/{data['by_name']['w011'].pk}/",
        "node page, failing": f"/nodes/{data['by_name']['w007'].pk}/",
        "node page, ready": f"/nodes/{data['by_name']['w001'].pk}/",
        "compare": f"/clusters/demo/diff/?a={old.pk}&b={new.pk}",
        "check page": "/clusters/demo/checks/container.docker/",
        "check page, network": "/clusters/demo/checks/network.worker_to_worker/",
        "matrix": "/clusters/demo/matrix/",
        "matrix, one node": "/clusters/demo/matrix/?node=w007",
        "path": f"/paths/{path.pk}/",
        "audit progress": f"/audits/{new.pk}/progress/",
        "audit page": f"/audits/{new.pk}/",
    }


def test_the_audit_run_state_is_its_own_word(admin_client, fleet):
    # when
    body = admin_client.get(f"/audits/{fleet['audits'][1].pk}/progress/").content.decode()
    # then the run state (finished) and the result (readiness) are two badges of two vocabularies
    assert 'data-state="run:done">Finished</span>' in body and 'data-state="node:unreachable"' in body


def test_every_page_renders_states_through_the_one_tag(admin_client, fleet):
    for page, url in _pages(fleet).items():
        # when
        response = admin_client.get(url)
        assert response.status_code == 200, page
        body = response.content.decode()
        badges = BADGE.findall(body)
        assert not RAW_STATUS_BADGE.search(body), (page, RAW_STATUS_BADGE.search(body))  # no legacy badge markup
        # then every state badge comes from the tag: it carries its kind and value, and a word of the vocabulary
        assert badges, page
        for badge in badges:
            kind_value = re.search(r'data-state="(node|check|run):([a-z-]*)"', badge)
            assert kind_value or "badge-waived" in badge, (page, badge)
            if kind_value:
                known = {"node": states.NODE_STATES, "check": states.CHECK_STATES, "run": states.RUN_STATES}
                assert kind_value.group(2) in known[kind_value.group(1)], (page, badge)


def test_a_node_shows_one_readiness_word_and_a_changed_host_key_is_definite(admin_client, fleet):
    # when
    unreachable = admin_client.get(f"/nodes/{fleet['by_name']['w011'].pk}/").content.decode()
    failing = admin_client.get(f"/nodes/{fleet['by_name']['w007'].pk}/").content.decode()
    # then the header and the summary agree, in the node vocabulary
    head = unreachable.split("</h1>", 1)[0]
    assert 'data-state="node:unreachable">Unreachable</span>' in head
    summary = unreachable.split('id="summary"', 1)[1].split("</section>", 1)[0]
    assert 'data-state="node:unreachable">Unreachable</span> Preflight could not reach w011' in summary
    assert "state-unreachable" in summary and "state-error" not in summary.split("could not reach", 1)[0]
    assert 'data-state="node:not-ready">Not ready</span>' in failing.split("</h1>", 1)[0]
    assert ">Fail</span>" not in failing.split("</h1>", 1)[0]


@pytest.mark.parametrize(
    ("status", "word"),
    [("pass", "Ready"), ("warn", "Ready"), ("fail", "Not ready"), ("error", "Unreachable"), ("unknown", "Not audited")],
)
def test_node_readiness_words(status, word):
    assert states.node_state(status).label == word


@pytest.mark.parametrize(
    ("status", "reached", "portal_fault", "word"),
    [
        ("error", False, False, "Unreachable"),  # not reached: refused, timed out, host key changed
        ("error", None, False, "Unreachable"),  # not known (a row from before `reached` was recorded): as before
        ("error", True, False, "Not ready"),  # reached, but the probe was cut short or its output unreadable
        ("fail", True, False, "Not ready"),
        ("pass", True, False, "Ready"),
        ("error", False, True, "Not audited"),  # Preflight lost the run: never the node's fault
        ("error", True, True, "Not audited"),
    ],
)
def test_whether_the_node_was_reached_and_whose_fault_it_was_decide_an_error(status, reached, portal_fault, word):
    assert states.node_state(status, reached, portal_fault=portal_fault).label == word


def test_the_rule_in_sql_terms_is_the_same_rule():
    # given every stored status and every value of reached
    statuses = ("pass", "warn", "skip", "fail", "error", "unknown")
    for status in statuses:
        for reached in (True, False, None):
            # when each state's terms are read as a filter would read them
            matching = [
                value
                for value in states.NODE_STATES
                for wanted, must in states.node_state_where(value)
                if status in wanted and (must is None or (reached is True) == must)
            ]
            # then exactly one state matches, the one node_state says
            assert matching == [states.node_state(status, reached).value], (status, reached, matching)


def test_check_and_run_words_are_apart_from_readiness():
    assert [states.check_status(s).label for s in ("pass", "warn", "fail", "error", "skip")] == [
        "Pass",
        "Warn",
        "Fail",
        "Error",
        "Skip",
    ]
    assert states.run_state("done").label == "Finished" and states.run_state("running").label == "Running"
    assert not {s.label for s in states.RUN_STATES.values()} & {s.label for s in states.NODE_STATES.values()}


def test_the_admin_lists_states_through_the_same_badge(admin_client, fleet):
    # when
    nodes = admin_client.get("/admin/inventory/node/").content.decode()
    audits = admin_client.get("/admin/checks/audit/").content.decode()
    results = admin_client.get("/admin/checks/checkresult/").content.decode()
    # then
    assert 'data-state="node:unreachable">Unreachable</span>' in nodes and 'data-state="node:ready">Ready' in nodes
    assert 'data-state="run:done">Finished</span>' in audits and 'data-state="node:' in audits
    assert 'data-state="check:fail">Fail</span>' in results
    assert "preflight/states.css" in nodes  # the admin loads the badges' colours and icons


@pytest.mark.parametrize(
    ("status", "word"),
    [("pass", "Ready"), ("warn", "Ready"), ("fail", "Not ready"), ("error", "Not ready"), ("", "Not audited")],
)
def test_an_audit_with_a_node_not_reached_is_not_ready_not_unreachable(status, word):
    # given a finished audit's worst status; when it is read as the audit's result
    result = states.audit_result(status)
    # then it is readiness, and "Unreachable" stays a node's state
    assert result.label == word and result.kind == "node" and result.value != "unreachable"
