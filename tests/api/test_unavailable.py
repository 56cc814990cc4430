"""A database that is locked, busy, read-only or full, or a broker that is down, is Preflight's trouble for a moment:
every door answers 503 with Retry-After (the API in its JSON error shape, pages with a banner), never 500."""

import json
import sqlite3
import threading

import psycopg.errors
import pytest
from django.db import OperationalError, connection
from django.db.utils import ProgrammingError

from checks.models import Audit
from portal.faults import db_fault, retry_db_write
from tests.factories import ClusterFactory, NodeFactory

SHARED_DB = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # (other connections see the rows)


def _django_error(cause: BaseException, cls=OperationalError) -> BaseException:
    """A database error as Django raises it: its own class, the driver's error as the cause."""
    error = cls(*cause.args)
    error.__cause__ = cause
    return error


def test_database_faults_are_named_and_other_database_errors_are_not():
    # given: errors as SQLite and PostgreSQL (psycopg) raise them
    full = sqlite3.connect(":memory:")
    full.execute("PRAGMA max_page_count = 1")
    with pytest.raises(sqlite3.OperationalError) as sqlite_full:
        full.execute("CREATE TABLE t (x)").execute("INSERT INTO t VALUES (randomblob(100000))")
    with pytest.raises(sqlite3.OperationalError) as no_table:
        full.execute("SELECT * FROM missing")
    # when / then
    assert db_fault(_django_error(sqlite_full.value)) == "the database is full"
    assert db_fault(_django_error(sqlite3.OperationalError("database is locked"))) == "the database is locked"
    assert db_fault(_django_error(psycopg.errors.DiskFull("no space"))) == "the database is full"
    assert db_fault(_django_error(psycopg.errors.ReadOnlySqlTransaction("ro"))) == "the database is read-only"
    assert db_fault(_django_error(psycopg.errors.LockNotAvailable("lock"))) == "the database is locked"
    assert db_fault(_django_error(psycopg.errors.AdminShutdown("bye"))) == "the database is unavailable"
    assert db_fault(_django_error(no_table.value)) is None
    assert db_fault(_django_error(psycopg.errors.UndefinedTable("x"), ProgrammingError)) is None
    assert db_fault(ValueError("database is locked")) is None


@pytest.fixture
def locked_database():
    """Another process's writer holds the SQLite write lock (BEGIN EXCLUSIVE) until the test ends; this
    connection waits 50 ms for it instead of 20 s."""
    if connection.vendor != "sqlite":
        pytest.skip("the lock is SQLite's; PostgreSQL's faults are named by SQLSTATE (test above)")
    ready, release = threading.Event(), threading.Event()

    def hold() -> None:
        other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=5)
        other.execute("BEGIN EXCLUSIVE")
        ready.set()
        release.wait(30)
        other.execute("ROLLBACK")
        other.close()

    def lock() -> None:
        connection.ensure_connection()
        connection.connection.execute("PRAGMA busy_timeout = 50")
        holder.start()
        assert ready.wait(10)

    holder = threading.Thread(target=hold)
    yield lock
    release.set()
    if holder.is_alive():
        holder.join(10)


@SHARED_DB
def test_api_write_on_a_locked_database_answers_503_in_the_json_error_shape(admin_api, locked_database):
    # given
    cluster = ClusterFactory(name="locked")
    NodeFactory(cluster=cluster)
    locked_database()
    # when
    answer = admin_api.post("/api/v1/audits", data=json.dumps({"cluster": "locked"}), content_type="application/json")
    # then
    assert answer.status_code == 503, answer.content
    assert answer.json()["code"] == "unavailable" and "the database is locked" in answer.json()["message"]
    assert int(answer["Retry-After"]) > 0


@SHARED_DB
def test_web_write_on_a_locked_database_answers_503_with_a_banner_and_later_pages_show_one(
    client, django_user_model, locked_database
):
    # given
    user = django_user_model.objects.create_superuser("ops", password="x")
    client.force_login(user)
    ClusterFactory(name="locked")
    locked_database()
    # when: "Audit now" on the dashboard
    answer = client.post("/clusters/locked/audit/")
    # then
    assert answer.status_code == 503 and int(answer["Retry-After"]) > 0
    assert b'id="unavailable"' in answer.content and b"the database is locked" in answer.content
    # and a page read a moment later carries a banner about it
    page = client.get("/nodes/")
    assert page.status_code == 200 and b'id="degraded"' in page.content


@SHARED_DB
def test_a_write_is_retried_until_the_lock_goes_and_then_recorded_once():
    # given: another writer that holds the lock for 0.6 s
    if connection.vendor != "sqlite":
        pytest.skip("the lock is SQLite's")
    cluster = ClusterFactory()
    connection.ensure_connection()
    connection.connection.execute("PRAGMA busy_timeout = 50")
    held = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=5)
        other.execute("BEGIN EXCLUSIVE")
        held.set()
        threading.Event().wait(0.6)
        other.execute("ROLLBACK")
        other.close()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    tries = []

    def write():
        tries.append(1)
        return Audit.objects.create(cluster=cluster, profile=cluster.profile, profile_key="k")

    # when
    audit = retry_db_write(write, budget=10)
    holder.join()
    # then: it failed at least once on the lock, then went through, once
    assert len(tries) > 1 and Audit.objects.filter(pk=audit.pk).count() == Audit.objects.count() == 1


@SHARED_DB
def test_a_write_that_fails_past_its_budget_raises_the_last_error():
    if connection.vendor != "sqlite":
        pytest.skip("the lock is SQLite's")
    cluster = ClusterFactory()
    connection.ensure_connection()
    connection.connection.execute("PRAGMA busy_timeout = 20")
    other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=5)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            retry_db_write(
                lambda: Audit.objects.create(cluster=cluster, profile=cluster.profile, profile_key="k"), budget=0.5
            )
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert Audit.objects.count() == 0
