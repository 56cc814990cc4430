"""The per-audit reads of a node audit (profile, cluster options, server address) happen once per audit and
process, even when every thread of a worker starts a node of the same audit at the same moment."""

import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace

from checks.services.node import _once_per_audit


def test_sixteen_threads_starting_one_audit_read_its_profile_once():
    # given: a fresh audit, and a read that takes a moment (three tables of the profile)
    audit = SimpleNamespace(pk=987654, created=datetime.now(UTC))
    reads = []
    start = threading.Barrier(16)

    def read():
        reads.append(threading.get_ident())
        time.sleep(0.05)
        return {"profile": "gpustack-2.3"}

    seen = []

    def node():
        start.wait()
        seen.append(_once_per_audit("test-profile", audit, read))

    # when: 16 worker threads start a node of it at once
    threads = [threading.Thread(target=node) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then: one of them read it; every one got that value
    assert len(reads) == 1
    assert seen == [{"profile": "gpustack-2.3"}] * 16
    assert all(value is seen[0] for value in seen)
