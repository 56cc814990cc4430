"""Ids taken from a URL or a query string: ASCII digits that fit the database's integer, or nothing.

Python's int() takes "٣", "²"-free Unicode digits, "+1", " 1", "1_0" and numbers no database column holds; a lookup
with 10**25 overflows SQLite's INTEGER and PostgreSQL's bigint (a 500). A value that is not an id is a missing row.
"""

from __future__ import annotations

import re

MAX_ID = 2**63 - 1  # BigAutoField on SQLite and PostgreSQL
_ID = re.compile(r"[0-9]{1,19}")


def parse_id(value: object) -> int | None:
    """`value` as a row id (1 to MAX_ID, ASCII digits only), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 < value <= MAX_ID else None
    if not isinstance(value, str) or not _ID.fullmatch(value):
        return None
    number = int(value)
    return number if 0 < number <= MAX_ID else None
