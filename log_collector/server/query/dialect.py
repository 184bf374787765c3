"""The SQL each store speaks for the read queries, and its rows as JSON-ready records.

One ``Dialect`` per store kind, picked from the read connection ``store.reading()`` gives (an
``sqlite3.Connection`` or a psycopg one), so this module imports no driver. The differences:

- placeholders ``?`` and ``%s``;
- times: INTEGER microseconds since the epoch on SQLite (migrations/sqlite/0002_*), timestamptz
  on PostgreSQL, bound as a ``datetime`` there;
- enums: text with CHECKs on SQLite, enum types on PostgreSQL (read back as ``::text``; a value
  bound as text is cast by PostgreSQL to the column's enum);
- metadata: JSON text on SQLite, read with ``json_each`` (it decodes the keys, so a key holding
  ``"`` or ``\\`` needs no path escaping: https://www.sqlite.org/json1.html#jeach), jsonb on
  PostgreSQL, read with ``->>``;
- ``q``: ``lower(message) LIKE lower(?)`` on SQLite, the pattern's ``%``, ``_`` and ``\\``
  escaped; ``strpos(lower(message), lower(%s)) > 0`` on PostgreSQL, the same test as ``ILIKE``
  (which lowers both sides of a UTF-8 text) at a fraction of its cost per row
  (docs/performance.md).

Every value is a bound parameter; the only names formatted into SQL come from the column
allowlists of ``filters`` and ``RECORD_COLUMNS``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..store.base import ROW_COLUMNS
from .filters import Filters, iso

# Every column of logs, in the order a record lists them.
RECORD_COLUMNS: tuple[str, ...] = ("id", *ROW_COLUMNS, "deleted")
ENUM_COLUMNS = frozenset({"level", "log_type", "environment", "method"})
TIME_COLUMNS = frozenset({"created_at", "received_at"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Dialect:
    name: str
    p: str

    @property
    def postgres(self) -> bool:
        return self.name == "postgres"

    def time(self, us: int) -> Any:
        """``us`` (microseconds since the epoch) as a parameter compared with a time column."""
        if self.postgres:
            return _EPOCH + timedelta(microseconds=us)
        return us

    def time_us(self, column: str) -> str:
        """SQL giving a time column as integer microseconds since the epoch."""
        if self.postgres:
            # extract() returns numeric (exact) on PostgreSQL 14 and later.
            return f"(extract(epoch FROM {column}) * 1000000)::bigint"
        return column

    def text(self, column: str) -> str:
        """SQL giving ``column`` as text that sorts by code point on both stores (SQLite's
        BINARY collation compares UTF-8 bytes, which is code point order)."""
        if self.postgres:
            return f'CAST({column} AS text) COLLATE "C"'
        return column

    def select_list(self) -> str:
        if self.postgres:
            return ", ".join(
                f"{c}::text AS {c}" if c in ENUM_COLUMNS or c == "event_id" else c
                for c in RECORD_COLUMNS
            )
        return ", ".join(RECORD_COLUMNS)

    def service_and_level(self, filters: Filters, clauses: list[str], params: list[Any]) -> None:
        """Append the service and level conditions of ``filters`` (both in logs and in
        log_counts) to ``clauses`` and their values to ``params``."""
        p = self.p
        if filters.services:
            clauses.append(f"service IN ({', '.join(p for _ in filters.services)})")
            params.extend(filters.services)
        if filters.excluded_services:
            clauses.append(f"service NOT IN ({', '.join(p for _ in filters.excluded_services)})")
            params.extend(filters.excluded_services)
        if filters.levels is not None:
            if not filters.levels:
                clauses.append("1 = 0")
            else:
                clauses.append(f"level IN ({', '.join(p for _ in filters.levels)})")
                params.extend(filters.levels)

    def where(self, filters: Filters, *, times: bool = True) -> tuple[str, list[Any]]:
        """The condition selecting ``filters``' rows (never deleted ones) and its parameters;
        ``times=False`` leaves since/until to the caller."""
        p = self.p
        clauses = ["deleted = FALSE"]
        params: list[Any] = []
        self.service_and_level(filters, clauses, params)
        if times and filters.since_us is not None:
            clauses.append(f"created_at >= {p}")
            params.append(self.time(filters.since_us))
        if times and filters.until_us is not None:
            clauses.append(f"created_at < {p}")
            params.append(self.time(filters.until_us))
        for column, value in filters.equals:
            clauses.append(f"{column} = {p}")
            params.append(value)
        for column, value in filters.excludes:
            # NULL is not the value: a row without the field stays.
            clauses.append(
                f"{column} IS DISTINCT FROM {p}" if self.postgres else f"{column} IS NOT {p}"
            )
            params.append(value)
        if filters.q is not None:
            if self.postgres:
                clauses.append(f"strpos(lower(message), lower({p})) > 0")
                params.append(filters.q)
            else:
                clauses.append(f"lower(message) LIKE lower({p}) ESCAPE '\\'")
                params.append("%" + _escape_like(filters.q) + "%")
        for key, value in filters.meta:
            if self.postgres:
                clauses.append(f"metadata ->> {p}::text = {p}")
            else:
                # The value as PostgreSQL's ->> gives it: a string as itself, true/false as
                # those words, any other value as its JSON text.
                clauses.append(
                    "EXISTS (SELECT 1 FROM json_each(logs.metadata) AS m WHERE m.key = ? AND "
                    "CASE m.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
                    "ELSE CAST(m.value AS TEXT) END = ?)"
                )
            params.extend((key, value))
        return " AND ".join(clauses), params

    def plan_text_search(self, conn: Any, filters: Filters) -> None:
        """Before a statement with ``q`` on PostgreSQL, within the snapshot's transaction: let
        the planner read the window with parallel workers. It cannot estimate how many messages
        contain a term and assumes many, so it would walk the time index alone expecting to
        stop after a page; a term that matches little makes it read the whole window, which
        parallel workers share (docs/performance.md)."""
        if self.postgres and filters.q is not None:
            conn.execute("SET LOCAL parallel_setup_cost = 0")
            conn.execute("SET LOCAL parallel_tuple_cost = 0")

    def record(self, names: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
        """A row of ``select_list()`` as a record: times ISO 8601 UTC, metadata an object."""
        record = dict(zip(names, row, strict=True))
        for column in TIME_COLUMNS:
            record[column] = iso(self.us(record[column]))
        metadata = record.get("metadata")
        if isinstance(metadata, str):
            record["metadata"] = json.loads(metadata)
        record["deleted"] = bool(record["deleted"])
        return record

    def us(self, value: Any) -> int:
        """A time column's value as read back, as microseconds since the epoch."""
        if isinstance(value, datetime):
            return (value - _EPOCH) // _MICROSECOND
        return int(value)


SQLITE = Dialect("sqlite", "?")
POSTGRES = Dialect("postgres", "%s")


def dialect_of(conn: Any) -> Dialect:
    return SQLITE if isinstance(conn, sqlite3.Connection) else POSTGRES


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@contextlib.contextmanager
def snapshot(store: Any) -> Iterator[tuple[Any, Dialect]]:
    """The store's read connection inside one read transaction, so the several statements of
    one answer see one state of the table, and its dialect."""
    with store.reading() as conn:
        dialect = dialect_of(conn)
        if dialect.postgres:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                yield conn, dialect
            return
        conn.execute("BEGIN")
        try:
            yield conn, dialect
        finally:
            # A read transaction: COMMIT and ROLLBACK end it alike. SQLite may already have
            # ended it after an error (https://www.sqlite.org/lang_transaction.html).
            if conn.in_transaction:
                conn.execute("COMMIT")
