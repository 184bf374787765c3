"""One guarded statement run end to end: ``sqlguard`` then ``sqlexec`` on the store of a server,
and its values as JSON carries them (``json_value``).

``POST /api/sql`` and ``POST /api/ask`` both run their SQL here, so a question in plain language
gets exactly the guard, the read-only role or connection, the statement timeout and the row limit
of a statement sent by hand.
"""

from __future__ import annotations

import datetime
import math
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from .sqlexec import SqlResult, execute_postgres, execute_sqlite, open_sqlite_reader
from .sqlguard import GuardedQuery, guard

# Integral numeric values up to this many digits are returned as exact JSON integers; longer
# ones as floats (Python refuses to print ints past 4300 digits by default:
# https://docs.python.org/3/library/stdtypes.html#int-max-str-digits).
_MAX_INT_DIGITS = 300


class Runner(Protocol):
    """What a statement runs with: the server's state (``state.ServerState``), named here
    rather than imported so the query layer does not depend on the app's state."""

    store: Any
    migrated: Any
    sqlite_path: str | Path | None
    sql_dialect: str
    sql_timeout: float


def run_guarded(state: Runner, sql: str, limit: int) -> SqlResult:
    """The rows of ``sql`` (at most ``limit``, ``truncated`` when more matched).

    Raises SqlRefused, SqlQueryError, SqlTimeout, SqlStoreUnavailable or StoreUnavailable.
    """
    query = guard(sql, state.sql_dialect, limit)
    state.migrated.ensure()
    return execute(state, query)


def execute(state: Runner, query: GuardedQuery) -> SqlResult:
    if state.sqlite_path is not None:
        # A connection per statement: opening one costs far less than a statement, and one
        # that a statement interrupted or failed on is never handed to the next.
        conn = open_sqlite_reader(state.sqlite_path)
        try:
            return execute_sqlite(conn, query, timeout=state.sql_timeout)
        finally:
            conn.close()
    with state.store.reading() as conn:
        return execute_postgres(conn, query, timeout=state.sql_timeout)


def json_value(value: Any) -> Any:
    """``value`` as JSON can carry it: see the ``rows`` of ``POST /api/sql``'s answer."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _non_finite(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return "NaN" if value.is_nan() else _non_finite(float(value))
        if value == value.to_integral_value() and value.adjusted() < _MAX_INT_DIGITS:
            return int(value)
        number = float(value)
        return number if math.isfinite(number) else str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def _non_finite(number: float) -> str:
    # Strict JSON has no NaN or Infinity (RFC 8259 section 6): PostgreSQL's own spelling.
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"
