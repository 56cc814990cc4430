"""portal.sql writes what the ORM would: the same values read back through the ORM, on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest
from django.utils import timezone

from checks.choices import RunState
from checks.models import Audit, CheckResult, NodeAudit
from inventory.models import DriverInstall
from portal.sql import insert_rows, select_rows, update_rows
from tests.factories import ClusterFactory, NodeFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def node_audit():
    cluster = ClusterFactory(name="sql")
    node = NodeFactory(cluster=cluster, name="n1")
    audit = Audit.objects.create(cluster=cluster, profile=cluster.profile)
    return NodeAudit.objects.create(audit=audit, node=node)


def test_insert_rows_stores_text_json_and_nulls_as_the_orm_reads_them(node_audit):
    # given: rows with hostile text, JSON lists and objects, and a null JSON
    hostile = "'); DROP TABLE checks_checkresult; -- \x1b[31m <script>"
    names = ("node_audit_id", "check_id", "status", "summary", "evidence", "remediation", "commands", "position")
    names += ("waived",)
    rows = [
        (node_audit.pk, "os.version", "fail", hostile, "e" * 5000, "", ["apt-get install -y chrony"], 0, None),
        (node_audit.pk, "ssh.connect", "pass", "ok", "", "", [], 1, {"reason": hostile, "expires": None}),
    ]
    # when
    insert_rows(CheckResult, names, rows)
    # then: the ORM reads back exactly what was given, and the hostile text stayed a value
    stored = {r.check_id: r for r in CheckResult.objects.filter(node_audit=node_audit)}
    assert stored["os.version"].summary == hostile
    assert stored["os.version"].commands == ["apt-get install -y chrony"]
    assert stored["os.version"].waived is None
    assert len(stored["os.version"].evidence) == 5000
    assert stored["ssh.connect"].waived == {"reason": hostile, "expires": None}
    assert stored["ssh.connect"].position == 1


def test_update_rows_matches_every_condition_and_counts_the_rows(node_audit):
    # given: a queued node audit
    now = timezone.now().replace(microsecond=123456)
    claim = dict(
        set={"state": RunState.RUNNING, "started": now, "lease_expires": now + timedelta(seconds=90)},
        where={"id": node_audit.pk, "state": RunState.QUEUED},
        increment=("attempts",),
    )
    # when: it is claimed twice
    first, second = update_rows(NodeAudit, **claim), update_rows(NodeAudit, **claim)
    # then: only the first matched; the datetime and the increment are what the ORM reads
    assert (first, second) == (1, 0)
    node_audit.refresh_from_db()
    assert node_audit.state == RunState.RUNNING
    assert node_audit.started == now
    assert node_audit.lease_expires == now + timedelta(seconds=90)
    assert node_audit.attempts == 1


def test_update_rows_reads_none_as_is_null_and_a_list_as_in(node_audit):
    # given: three installs, one of them gone
    node = node_audit.node
    when = timezone.now()
    kept = [DriverInstall.objects.create(node=node, kind="docker", name=f"d{i}", version="1") for i in range(2)]
    gone = DriverInstall.objects.create(node=node, kind="ntp", name="chrony", gone_at=when)
    # when: the ones still there, by id, get a new last_seen; an empty list updates nothing
    later = when + timedelta(minutes=5)
    updated = update_rows(
        DriverInstall, set={"last_seen": later}, where={"id": [i.pk for i in kept] + [gone.pk], "gone_at": None}
    )
    nothing = update_rows(DriverInstall, set={"last_seen": later}, where={"id": []})
    # then
    assert (updated, nothing) == (2, 0)
    assert {i.last_seen for i in DriverInstall.objects.filter(pk__in=[i.pk for i in kept])} == {later}
    gone.refresh_from_db()
    assert gone.last_seen != later


def test_update_rows_refuses_to_update_a_whole_table():
    with pytest.raises(ValueError, match="condition"):
        update_rows(NodeAudit, set={"state": RunState.ERROR}, where={})


def test_select_rows_reads_plain_columns_by_condition_and_refuses_the_others(node_audit):
    # given: an install present and one gone
    node = node_audit.node
    present = DriverInstall.objects.create(node=node, kind="docker", name="Docker Engine", version="27.3.1")
    DriverInstall.objects.create(node=node, kind="ntp", name="chrony", gone_at=timezone.now())
    # when
    rows = select_rows(DriverInstall, ("id", "kind", "name", "version"), where={"node_id": node.pk, "gone_at": None})
    # then: the present one only, as plain values; a datetime column would come back undecoded, so it is refused
    assert rows == [(present.pk, "docker", "Docker Engine", "27.3.1")]
    assert select_rows(DriverInstall, ("id",), where={"id": []}) == []
    with pytest.raises(ValueError, match="plain columns"):
        select_rows(DriverInstall, ("id", "last_seen"), where={"node_id": node.pk})
