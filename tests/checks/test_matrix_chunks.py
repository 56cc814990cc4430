"""The matrix's chunks in the database (issue 24 item 2): the last chunk in records the matrix and closes the audit
exactly once; a chunk whose worker was lost is queued again, and one lost too often ends its paths as `skip`, a
fault of Preflight's own that no node is blamed for. The SSH sessions are replayed (tests/replay.py)."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from checks.models import Audit, CheckResult, MatrixChunk, NetworkPath
from checks.services import audit_finish, audit_start, audit_sweep_stuck, network_matrix_run, node_audit_run
from checks.services.network import matrix_chunks_close
from tests.factories import ClusterFactory, CredentialFactory, NodeFactory
from tests.replay import ReplayTransport, sections

pytestmark = pytest.mark.django_db
NETWORK = ("network.server_to_worker", "network.worker_to_server", "network.worker_to_worker")


@pytest.fixture
def audited(monkeypatch, settings):
    """Cluster `chunks`: a server and three workers, their node audits done (replayed), the matrix not yet run;
    chunks of at most 2 listeners. Returns the audit and the chunk tasks sent (none run unless `run_chunks`)."""
    settings.PREFLIGHT_MATRIX_CHUNK_LISTENERS = 2
    cluster = ClusterFactory(name="chunks", connectivity_plan="full")
    credential = CredentialFactory()
    outputs = {}
    for i, (name, role) in enumerate((("srv", "server"), ("w1", "worker"), ("w2", "worker"), ("w3", "worker"))):
        address = f"127.0.0.{i + 2}"
        NodeFactory(cluster=cluster, name=name, role=role, address=address, credential=credential)
        outputs[address] = sections(tools="python3 /usr/bin/python3\n")  # runnable paths: python3 is there
    transport = ReplayTransport(outputs)
    monkeypatch.setattr("checks.services.node.transport_for", lambda node: transport)
    monkeypatch.setattr("checks.services.network.transport_for", lambda node: transport)
    audit = audit_start(cluster=cluster)
    for node_audit_id in audit.node_audits.values_list("pk", flat=True):
        node_audit_run(node_audit_id=node_audit_id, close_audit=False)
    sent: list[int] = []
    monkeypatch.setattr("checks.services.network._chunks_send", lambda chunks: sent.extend(pk for pk, _ in chunks))
    return audit, sent


def _expire(chunks, attempts: int) -> None:
    chunks.update(state="running", attempts=attempts, lease_expires=timezone.now() - timedelta(seconds=1))


def test_the_matrix_is_split_into_chunks_sent_as_tasks_and_the_audit_waits_for_them(audited):
    # given an audit whose node audits are done
    audit, sent = audited
    # when it is closed (the matrix task plans the chunks and sends one task each)
    closed = audit_finish(audit_id=audit.pk)
    # then the audit waits for its chunks: each is queued with its own budget, and sent once
    chunks = MatrixChunk.objects.filter(audit=audit)
    assert not closed and Audit.objects.get(pk=audit.pk).state == "running"
    assert chunks.count() >= 2 and sorted(sent) == sorted(chunks.values_list("pk", flat=True))
    assert all(c.state == "queued" and c.budget >= 60 and len(c.listeners) <= 2 for c in chunks)
    # and every path of the full mesh of 4 is in exactly one chunk
    keys = [tuple(key) for c in chunks for key in c.paths]
    assert len(keys) == len(set(keys)) == 2 * 3 + 3 * 2


def test_a_chunk_whose_worker_was_lost_is_queued_and_sent_again(audited):
    # given the chunks planned, one claimed by a worker that was killed (its lease ran out)
    audit, sent = audited
    audit_finish(audit_id=audit.pk)
    lost = MatrixChunk.objects.filter(audit=audit).order_by("index")[:1]
    lost_id = lost[0].pk
    _expire(MatrixChunk.objects.filter(pk=lost_id), attempts=1)
    sent.clear()
    # when the sweep runs
    audit_sweep_stuck()
    # then that chunk is queued and sent again; nothing is recorded yet, the audit still runs
    chunk = MatrixChunk.objects.get(pk=lost_id)
    assert (chunk.state, chunk.attempts, chunk.lease_expires) == ("queued", 1, None)
    assert sent == [lost_id]
    assert not NetworkPath.objects.filter(audit=audit).exists()
    assert Audit.objects.get(pk=audit.pk).state == "running"


def test_a_queued_chunk_whose_message_went_with_a_killed_worker_is_sent_again(audited):
    # given the chunks planned and sent, one taken from the queue by a worker killed before it claimed it
    audit, sent = audited
    audit_finish(audit_id=audit.pk)
    chunks = MatrixChunk.objects.filter(audit=audit).order_by("index")
    old, fresh = chunks[0].pk, chunks[1].pk
    long_ago = timezone.now() - timedelta(seconds=settings.PREFLIGHT_REDELIVER_AFTER + 1)
    MatrixChunk.objects.filter(pk=old).update(dispatched=long_ago)
    sent.clear()
    # when the sweep runs
    audit_sweep_stuck()
    # then the chunk sent long ago is sent again (once), the one sent just now is left to its message
    assert sent == [old]
    assert MatrixChunk.objects.get(pk=old).dispatched > long_ago
    audit_sweep_stuck()
    assert sent == [old] and fresh not in sent


def test_chunks_lost_too_often_end_their_paths_as_skip_blamed_on_no_node_and_the_audit_closes_once(audited):
    # given every chunk lost by its worker as often as it may be claimed
    audit, _ = audited
    audit_finish(audit_id=audit.pk)
    _expire(MatrixChunk.objects.filter(audit=audit), attempts=settings.PREFLIGHT_NODE_ATTEMPTS)
    # when the sweep runs
    audit_sweep_stuck()
    # then every path is recorded as not tested, Preflight's fault: skip at both ends, no node fails or errs for it
    audit = Audit.objects.get(pk=audit.pk)
    paths = NetworkPath.objects.filter(audit=audit)
    assert paths.count() == 12 and set(paths.values_list("status", flat=True)) == {"skip"}
    assert all("Preflight lost its matrix chunk" in summary for summary in paths.values_list("summary", flat=True))
    results = CheckResult.objects.filter(node_audit__audit=audit, check_id__in=NETWORK)
    assert set(results.values_list("status", flat=True)) == {"skip"}
    assert "error" not in set(audit.node_audits.values_list("status", flat=True))
    # and the audit closed, its matrix in error saying why
    assert (audit.state, audit.network_state) == ("done", "error")
    assert "Preflight lost its matrix chunk" in audit.error
    # and a second close finds it recorded: nothing is written twice
    assert matrix_chunks_close(audit_id=audit.pk) is False
    assert NetworkPath.objects.filter(audit=audit).count() == 12


def test_chunks_run_as_tasks_record_the_same_paths_as_the_matrix_in_one_go(audited, monkeypatch):
    # given the chunks planned, run here one after the other as a worker would (the replay has no
    # interactive sessions: every listener fails alike, which is what the two runs must agree on)
    audit, sent = audited
    audit_finish(audit_id=audit.pk)
    from checks.services.finish import audit_matrix_chunk_run
    from checks.services.network import matrix_chunk_run

    # when each chunk task runs, and a duplicate message of the first one arrives afterwards
    for chunk_id in list(sent):
        audit_matrix_chunk_run(chunk_id=chunk_id)
    assert matrix_chunk_run(chunk_id=sent[0]) is False
    # then the last chunk recorded the matrix and closed the audit
    audit = Audit.objects.get(pk=audit.pk)
    assert (audit.state, audit.network_state) == ("done", "done"), audit.error
    assert set(MatrixChunk.objects.filter(audit=audit).values_list("state", "attempts", "recorded")) == {
        ("done", 1, True)
    }
    chunked = {
        (p.check_id, p.source.name, p.destination.name): (p.status, p.summary)
        for p in NetworkPath.objects.filter(audit=audit).select_related("source", "destination")
    }
    # and the matrix run again in one go (one chunk, this process) records the same paths
    settings.PREFLIGHT_MATRIX_CHUNK_LISTENERS = 64
    network_matrix_run(audit_id=audit.pk)
    whole = {
        (p.check_id, p.source.name, p.destination.name): (p.status, p.summary)
        for p in NetworkPath.objects.filter(audit=audit).select_related("source", "destination")
    }
    assert len(chunked) == 12 and chunked == whole


def test_a_matrix_whose_last_chunk_could_not_close_it_is_recorded_by_the_sweep(audited, monkeypatch):
    # given every chunk done, but the last one's closing write failed (nothing recorded, the audit still runs)
    audit, sent = audited
    audit_finish(audit_id=audit.pk)
    from checks.services import network

    monkeypatch.setattr(network, "matrix_chunks_close", lambda audit_id: False)
    for chunk_id in list(sent):
        network.matrix_chunk_run(chunk_id=chunk_id)
    assert Audit.objects.get(pk=audit.pk).state == "running"
    monkeypatch.setattr(network, "matrix_chunks_close", matrix_chunks_close)
    # when the sweep runs
    audit_sweep_stuck()
    # then it recorded the matrix and closed the audit
    audit = Audit.objects.get(pk=audit.pk)
    assert (audit.state, audit.network_state) == ("done", "done")
    assert NetworkPath.objects.filter(audit=audit).count() == 12


@pytest.fixture
def eager():
    """Tasks run in the test process. A transaction test runs after all the others, and a browser or integration
    test's real worker may have turned eager tasks off for the rest of the session: that worker would take this
    test's matrix task from Redis (the rows are committed, it sees them) and plan the chunks itself."""
    from portal.celery import app

    before = app.conf.CELERY_TASK_ALWAYS_EAGER
    app.conf.CELERY_TASK_ALWAYS_EAGER = True
    yield
    app.conf.CELERY_TASK_ALWAYS_EAGER = before


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_chunk_whose_recording_meets_a_locked_database_waits_for_it_and_probes_once(eager, audited, monkeypatch):
    # given a chunk whose probing ends while another writer holds SQLite's lock for 0.6 s
    import sqlite3
    import threading

    from django.db import connection

    from checks.services import network

    if connection.vendor != "sqlite":
        pytest.skip("the lock is SQLite's")
    audit, sent = audited
    audit_finish(audit_id=audit.pk)
    assert sent, Audit.objects.filter(pk=audit.pk).values_list("network_state", "error").first()
    connection.ensure_connection()
    connection.connection.execute("PRAGMA busy_timeout = 50")
    probe_paths, probed, held = network._probe_paths, [], threading.Event()

    def hold() -> None:
        other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=5)
        other.execute("BEGIN EXCLUSIVE")
        held.set()
        threading.Event().wait(0.6)
        other.execute("ROLLBACK")
        other.close()

    def probe_then_lock(*args, **kwargs):
        probed.append(1)
        found = probe_paths(*args, **kwargs)
        threading.Thread(target=hold).start()
        held.wait(5)
        return found

    monkeypatch.setattr(network, "_probe_paths", probe_then_lock)
    # when the chunk runs
    assert network.matrix_chunk_run(chunk_id=sent[0]) is True
    # then its verdicts were recorded once the lock went, from memory: probed once, claimed once
    chunk = MatrixChunk.objects.get(pk=sent[0])
    assert (chunk.state, chunk.attempts, len(probed)) == ("done", 1, 1)
    assert len(chunk.verdicts) == len(chunk.paths) > 0
