"""Row writes for the node audit's hot path, without the ORM's per-call query building.

A node audit writes the same few statements for every node of every audit (issue 24: 10 per node). Through the
ORM each cost about 0.3-1 ms of Python to build, more than the database took to run it, and a Celery worker paid
that on every node while holding the GIL its SSH sessions need. Here the SQL text is built once per model and
column list, and each value is prepared by its model field for the connection's database, as the ORM does
(datetimes, JSON), so SQLite and PostgreSQL see exactly what the ORM would send.

Only plain column writes: no signals, no save(), no field defaults or auto_now (give every column a value), no
expressions but `column = column + 1`. Column and table names come from the models, never from data; every value is
a query parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from functools import cache

from django.db import connections
from django.db.models import Field, Model

# Values these fields store as given (str, int, bool, None): the field's preparation is an identity there.
_PLAIN = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "BigIntegerField",
        "BooleanField",
        "CharField",
        "FloatField",
        "ForeignKey",
        "IntegerField",
        "PositiveBigIntegerField",
        "PositiveIntegerField",
        "PositiveSmallIntegerField",
        "SmallIntegerField",
        "TextField",
    }
)


@cache
def _fields(model: type[Model], names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[Field | None, ...]]:
    """The columns of `names` (field names; a foreign key's column is `<name>_id`) and, for each, the field whose
    preparation the value needs, or None where it is stored as given."""
    fields = [model._meta.get_field(name) for name in names]
    columns = tuple(field.column for field in fields)  # type: ignore[union-attr]
    preparers = tuple(None if field.get_internal_type() in _PLAIN else field for field in fields)  # type: ignore[union-attr]
    return columns, preparers


def _prepared(preparers: Sequence[Field | None], values: Iterable, connection) -> list:
    return [
        _plain(value) if field is None or value is None else field.get_db_prep_save(value, connection)
        for field, value in zip(preparers, values, strict=True)
    ]


def _plain(value):
    """A choices member (RunState.DONE) as its value: a driver may adapt an Enum by its name."""
    return value.value if isinstance(value, Enum) else value


def select_rows(
    model: type[Model], names: Sequence[str], *, where: Mapping[str, object], using: str = "default"
) -> list[tuple]:
    """The `names` columns of the rows matching every `where` condition (as update_rows reads them), as tuples in
    that order, unordered. Only columns the driver returns as Python values already (text, numbers, booleans):
    a datetime or JSON column raises, as it would come back undecoded."""
    connection = connections[using]
    quote = connection.ops.quote_name
    columns, preparers = _fields(model, tuple(names))
    if any(field is not None for field in preparers):
        raise ValueError(f"select_rows reads plain columns only, not {names}")
    conditions, params = _conditions(model, where, connection)
    if conditions is None:
        return []
    sql = f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(model._meta.db_table)} WHERE {conditions}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]


def insert_rows(model: type[Model], names: Sequence[str], rows: Iterable[Sequence], *, using: str = "default") -> None:
    """INSERT every row (values in the order of `names`) with one executemany; no model instance is built."""
    connection = connections[using]
    columns, preparers = _fields(model, tuple(names))
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    params = [_prepared(preparers, row, connection) for row in rows]
    if params:
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)


def update_rows(
    model: type[Model],
    *,
    set: Mapping[str, object],
    where: Mapping[str, object],
    increment: Sequence[str] = (),
    using: str = "default",
) -> int:
    """UPDATE the rows matching every `where` condition (field = value; None is IS NULL; a list or tuple is IN)
    with the values of `set`, and add 1 to each field of `increment`. Returns the number of rows updated."""
    connection = connections[using]
    quote = connection.ops.quote_name
    set_columns, set_preparers = _fields(model, tuple(set))
    assignments = [f"{quote(c)} = %s" for c in set_columns]
    assignments += [f"{quote(c)} = {quote(c)} + 1" for c in _fields(model, tuple(increment))[0]]
    conditions, where_params = _conditions(model, where, connection)
    if conditions is None:
        return 0
    params = _prepared(set_preparers, set.values(), connection) + where_params
    sql = f"UPDATE {quote(model._meta.db_table)} SET {', '.join(assignments)} WHERE {conditions}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _conditions(model: type[Model], where: Mapping[str, object], connection) -> tuple[str | None, list]:
    """`where` as SQL (field = value; None is IS NULL; a list or tuple is IN) and its parameters; None for a
    condition nothing can match (an empty IN)."""
    if not where:
        raise ValueError("a condition is needed: portal.sql never reads or writes a whole table")
    quote = connection.ops.quote_name
    columns, preparers = _fields(model, tuple(where))
    conditions, params = [], []
    for column, field, value in zip(columns, preparers, where.values(), strict=True):
        if value is None:
            conditions.append(f"{quote(column)} IS NULL")
        elif isinstance(value, list | tuple):
            if not value:
                return None, []
            conditions.append(f"{quote(column)} IN ({', '.join(['%s'] * len(value))})")
            params += _prepared([field] * len(value), value, connection)
        else:
            conditions.append(f"{quote(column)} = %s")
            params += _prepared([field], [value], connection)
    return " AND ".join(conditions), params
