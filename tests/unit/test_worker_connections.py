"""A Celery worker keeps its database connection from one task to the next, as CONN_MAX_AGE says.

Celery's Django fix-up closed every connection before and after each task: a new SQLite connection, or a
PostgreSQL connect and authentication, for every node audited. These run the fix-up's and Preflight's own task
hooks as a worker does, around a task that is not eager."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from celery.fixups.django import DjangoWorkerFixup
from django.db import connection

from portal.celery import app, close_old_database_connections

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # autocommit, as in a worker


def _task(eager: bool = False):
    return SimpleNamespace(request=SimpleNamespace(is_eager=eager))


def _around_a_task() -> None:
    fixup = DjangoWorkerFixup(app)
    for hook in (fixup.on_task_prerun, close_old_database_connections):
        hook(sender=_task())
    for hook in (fixup.on_task_postrun, close_old_database_connections):
        hook(sender=_task())


def _open_connection():
    connection.ensure_connection()
    return connection.connection


def test_a_young_connection_outlives_the_task():
    # given the worker thread's connection, just opened
    opened = _open_connection()
    # when a task runs and ends
    _around_a_task()
    # then the next task finds the same connection
    assert connection.connection is opened


def test_a_connection_older_than_conn_max_age_is_closed_around_a_task():
    # given a connection past its CONN_MAX_AGE
    _open_connection()
    connection.close_at = time.monotonic() - 1
    # when a task ends
    _around_a_task()
    # then it was closed, and the next query opens a new one
    assert connection.connection is None
    assert _open_connection() is not None


def test_a_connection_that_met_an_error_is_checked_around_a_task_and_kept_if_usable():
    # given a connection that met an error outside a transaction, and still works
    opened = _open_connection()
    connection.errors_occurred = True
    # when a task ends
    _around_a_task()
    # then it was checked (the error flag is cleared) and kept for the next task
    assert connection.errors_occurred is False
    assert connection.connection is opened


def test_an_eager_task_leaves_its_callers_connection_alone():
    opened = _open_connection()
    connection.close_at = time.monotonic() - 1
    close_old_database_connections(sender=_task(eager=True))
    assert connection.connection is opened
