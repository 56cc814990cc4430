"""Fit what a node printed into what the database stores: no NUL bytes (PostgreSQL rejects them in text and jsonb),
strings cut to their column's length, numbers inside their column's range, floats finite.

Applied where node-derived values become rows, so no value a node prints can make an INSERT raise."""

from __future__ import annotations

import math
from typing import Any

# Field ranges of the integer columns that hold node-reported numbers.
POSITIVE_INT_MAX = 2**31 - 1
POSITIVE_BIGINT_MAX = 2**63 - 1
# JSON numbers beyond 2**53 lose precision in every JSON reader; bigger ones are kept as text.
JSON_INT_MAX = 2**53
JSON_TEXT_MAX = 100_000


def text(value: Any, limit: int | None = None) -> str:
    """A str without NUL bytes (and without lone surrogates, which no encoder accepts), at most `limit` characters."""
    if value is None:
        return ""
    value = str(value)
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", errors="replace").decode("utf-8")
    return value[:limit] if limit is not None else value


def integer(value: Any, low: int = 0, high: int = POSITIVE_BIGINT_MAX) -> int | None:
    """An int in [low, high], or None when absent or outside (an impossible figure is unknown, not a huge one)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = int(value)
    if not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def real(value: Any, bound: float = 1e15) -> float | None:
    """A finite float within +-bound, or None."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) and abs(value) <= bound else None


def json_value(value: Any, limit: int = JSON_TEXT_MAX, depth: int = 0) -> Any:
    """A copy of a JSON-able value that every database's JSON column stores: clean strings, finite numbers."""
    if depth > 20:
        return None
    if isinstance(value, str):
        return text(value, limit)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -JSON_INT_MAX <= value <= JSON_INT_MAX else text(str(value), 64)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {text(k, 200): json_value(v, limit, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_value(v, limit, depth + 1) for v in value]
    return text(value, limit)
