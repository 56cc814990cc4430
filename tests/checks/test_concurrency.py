"""Two audits of one cluster started at the same instant, from two connections: one starts, one is refused."""

import threading

import pytest
from django.db import connection

from checks.models import Audit
from checks.services import AuditAlreadyRunning, audit_start
from tests.factories import NodeFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_simultaneous_starts_give_one_audit_and_one_clear_refusal():
    node = NodeFactory(name="racer", transport="local")
    barrier = threading.Barrier(8)
    outcomes: list[object] = []
    lock = threading.Lock()

    def start() -> None:
        barrier.wait()
        try:
            audit = audit_start(cluster=node.cluster)
            outcome: object = audit.pk
        except Exception as exc:  # noqa: BLE001 - every outcome is recorded and asserted below
            outcome = exc
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    for _ in range(5):  # several rounds: a race that is lost only sometimes still shows
        Audit.objects.all().delete()
        outcomes.clear()
        threads = [threading.Thread(target=start) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        started = [o for o in outcomes if isinstance(o, int)]
        refused = [o for o in outcomes if isinstance(o, AuditAlreadyRunning)]
        others = [o for o in outcomes if not isinstance(o, int | AuditAlreadyRunning)]
        assert others == [], f"a start failed with something other than a clear refusal: {others!r}"
        assert len(started) == 1 and len(refused) == 7
        assert Audit.objects.filter(cluster=node.cluster).count() == 1
        assert f"audit {started[0]} of cluster {node.cluster.name} is still queued" in str(refused[0])
