"""The production store: PostgreSQL through psycopg 3 and a connection pool.

A batch is COPY'd straight into ``logs`` in binary: PostgreSQL parses no
text for the times, UUIDs, enums and floats, and no staging table is written
and read back. COPY has no ``ON CONFLICT``, so a batch holding an event_id
already stored (a retry after a lost acknowledgement) or twice fails whole
on the unique index, is rolled back, and takes the second path: COPY into a
session temporary table, then one ``INSERT ... SELECT ... ON CONFLICT
(event_id, created_at) DO NOTHING``, whose row count is exactly the rows
accepted, so duplicates = rows sent - accepted. ``logs`` is partitioned by day
on created_at (migrations/postgres/0007_partitioned_logs.sql), so the unique
key holds created_at too: a retried record carries its original created_at.
https://www.psycopg.org/psycopg3/docs/basic/copy.html#binary-copy
https://www.postgresql.org/docs/15/sql-copy.html (File Formats, Binary Format)
"""

from __future__ import annotations

import contextlib
import struct
import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import errors, pq
from psycopg.adapt import Dumper
from psycopg_pool import ConnectionPool, PoolTimeout

from ...common.migrations import sql_files
from . import partitions
from .base import ROW_COLUMNS, Maintenance, Row, StoreUnavailable, read_stats
from .postgres_migrations import applied_postgres, apply_postgres

# Plain text and float columns: the table is created when a pooled connection
# opens, possibly before the migrations made the enum types; the INSERT casts.
# ON COMMIT DELETE ROWS empties it with every batch's commit (or rollback).
_STAGING = """
CREATE TEMPORARY TABLE IF NOT EXISTS logs_staging (
    created_at float8, level text, log_type text, service text, environment text,
    service_version text, trace_id text, user_id text, session_id text, error_type text,
    message text, stack_trace text, path text, method text, action_type text,
    function_name text, file_path text, duration_ms float8, metadata text, event_id text,
    received_at float8
) ON COMMIT DELETE ROWS
"""
_COPY = f"COPY logs_staging ({', '.join(ROW_COLUMNS)}) FROM STDIN"
_CASTS = {
    "created_at": "to_timestamp(created_at)",
    "level": "level::log_level",
    "log_type": "log_type::source_type",
    "environment": "environment::env_type",
    "method": "method::http_method",
    "metadata": "metadata::jsonb",
    "event_id": "event_id::uuid",
    "received_at": "to_timestamp(received_at)",
}
_INSERT = (
    f"INSERT INTO logs ({', '.join(ROW_COLUMNS)}) "
    f"SELECT {', '.join(_CASTS.get(c, c) for c in ROW_COLUMNS)} FROM logs_staging "
    "ON CONFLICT (event_id, created_at) DO NOTHING"
)


# The binary COPY straight into logs. In binary COPY the server takes each
# value's bytes as the column's type without checking the type the client
# meant: an enum's binary form is its label's text, so the enum columns are
# sent as text.
_COPY_LOGS = f"COPY logs ({', '.join(ROW_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_TEXT, _FLOAT8 = 25, 701
_TIMESTAMPTZ, _JSONB, _UUID = 1184, 3802, 2950
_COPY_TYPES = {
    "created_at": _TIMESTAMPTZ,
    "duration_ms": _FLOAT8,
    "metadata": _JSONB,
    "event_id": _UUID,
    "received_at": _TIMESTAMPTZ,
}
_COPY_OIDS = [_COPY_TYPES.get(column, _TEXT) for column in ROW_COLUMNS]
# The unique index that makes a repeated event_id fail the binary COPY: on the
# partitioned table the violation names the partition's index, whose name
# PostgreSQL derives from the partition and the columns
# (logs_p2026_12_05_event_id_created_at_idx).
_EVENT_ID_INDEX_NAMES = ("idx_logs_event_id", "_event_id_created_at_idx")

# Binary timestamptz: microseconds since 2000-01-01 UTC, as a signed 64-bit
# integer, rounded like PostgreSQL's own to_timestamp(float8).
# https://github.com/postgres/postgres/blob/REL_15_STABLE/src/backend/utils/adt/timestamp.c
_POSTGRES_EPOCH = 946_684_800.0
_pack_int64 = struct.Struct("!q").pack


class _UnixSecondsDumper(Dumper):
    """A row's Unix seconds (float) as a binary timestamptz."""

    format = pq.Format.BINARY
    oid = _TIMESTAMPTZ

    def dump(self, obj: float) -> bytes:
        return _pack_int64(round((obj - _POSTGRES_EPOCH) * 1_000_000))


class _JsonTextDumper(Dumper):
    """A row's metadata, JSON text, as binary jsonb: a version byte (1), then the text."""

    format = pq.Format.BINARY
    oid = _JSONB

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode()


class _UuidTextDumper(Dumper):
    """A row's canonical UUID string as the 16 bytes of a binary uuid."""

    format = pq.Format.BINARY
    oid = _UUID

    def dump(self, obj: str) -> bytes:
        return bytes.fromhex(obj.replace("-", ""))


def _configure(conn: psycopg.Connection) -> None:
    conn.execute(_STAGING)
    # Registered without a Python type: used only by COPY after set_types(),
    # so queries on this connection still adapt floats and strings as usual
    # (text and float8 have binary dumpers by default).
    for dumper in (_UnixSecondsDumper, _JsonTextDumper, _UuidTextDumper):
        conn.adapters.register_dumper(None, dumper)


def _copy_new(conn: psycopg.Connection, rows: Sequence[Row]) -> bool:
    """COPY ``rows`` into ``logs`` as one statement (the connection is in
    autocommit): True when all were stored, False when none was because an
    event_id is already stored or repeats in ``rows``."""
    try:
        with conn.cursor() as cur, cur.copy(_COPY_LOGS) as copy:
            copy.set_types(_COPY_OIDS)
            for row in rows:
                copy.write_row(row)
    except errors.UniqueViolation as exc:
        if not (exc.diag.constraint_name or "").endswith(_EVENT_ID_INDEX_NAMES):
            raise
        return False
    except errors.DeadlockDetected:
        # Two requests holding the same event_ids in a different order each
        # wait for the other's uncommitted row; PostgreSQL fails one of them.
        # ON CONFLICT settles that one against what the other commits.
        return False
    return True


# Where a row (ROW_COLUMNS order) holds its time, event_id and arrival.
_CREATED_AT, _EVENT_ID, _RECEIVED_AT = 0, -2, -1


def _untimed_event_ids(rows: Sequence[Row]) -> list[str]:
    """The event_ids of the rows whose created_at is their arrival (a record with no usable
    time and no UUID v7 event_id to take one from, ``ingest.fields.stand_in_time``): a retry
    of such a record arrives at another time, so the unique key (event_id, created_at) cannot
    find it, and ``_stored_event_ids`` looks for its event_id alone."""
    return sorted(
        {
            row[_EVENT_ID]
            for row in rows
            if row[_CREATED_AT] == row[_RECEIVED_AT] and row[_EVENT_ID] is not None
        }
    )


def _stored_event_ids(cur: psycopg.Cursor[Any], event_ids: list[str]) -> set[str]:
    """Which of ``event_ids`` are stored, on any day. Inside the insert's transaction, after a
    transaction lock on each id (taken in one order), so two requests holding the same record
    cannot both find it missing. The lookups use the leading column of each partition's
    (event_id, created_at) index."""
    cur.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(id, 0)) FROM unnest(%s::text[]) AS id",
        (event_ids,),
    )
    cur.execute("SELECT event_id::text FROM logs WHERE event_id = ANY(%s::uuid[])", (event_ids,))
    return {event_id for (event_id,) in cur.fetchall()}


# Reads (/stats, and every read endpoint) run on their own pool, so however
# many readers wait, ingest keeps its connections: this many at once, each
# statement cut off after READ_STATEMENT_TIMEOUT_MS, a reader waiting at most
# READ_WAIT_S for a connection before its 503.
READ_CONNECTIONS = 2
READ_STATEMENT_TIMEOUT_MS = 10_000
READ_WAIT_S = 2.0


class RowsRefused(Exception):
    """PostgreSQL refused rows for what they hold with SQLSTATE class 54
    (program limit exceeded: a value too large), which psycopg files under
    OperationalError beside lost connections; ``sqlstate`` is PostgreSQL's."""

    def __init__(self, message: str, sqlstate: str):
        super().__init__(message)
        self.sqlstate = sqlstate


@contextlib.contextmanager
def _limits_are_not_outages() -> Iterator[None]:
    # Raised as itself, an OperationalError would become StoreUnavailable: a
    # 503, and the client would send the same rows again forever.
    # https://www.postgresql.org/docs/15/errcodes-appendix.html
    try:
        yield
    except psycopg.OperationalError as exc:
        if exc.sqlstate and exc.sqlstate.startswith("54"):
            raise RowsRefused(" ".join(str(exc).split()), exc.sqlstate) from exc
        raise


class PostgresStore:
    # logs is partitioned by day: the partitions ahead are made by maintain(), which a
    # server that writes runs every hour even without a retention.
    partitioned = True

    # Two batches at once: while one is in PostgreSQL the other is decoded;
    # more add GIL hand-overs and PostgreSQL contention, not throughput.
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        max_connections: int = 2,
        read_connections: int = READ_CONNECTIONS,
        read_wait: float = READ_WAIT_S,
        read_url: str | None = None,
    ):
        """``read_url``: where the read pool connects (a streaming replica of ``url``);
        ``url`` by default. Ingest and every write (saved views, alerts) stay on ``url``."""
        self.url = url
        self.read_url = read_url or url
        self._timeout = timeout
        # Each connection attempt gives up after connect_timeout; a request
        # waits at most `timeout` for a connection before it gets a 503.
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(2, int(timeout)),
        }
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            kwargs=self._connect_kwargs,
            configure=_configure,
            timeout=timeout,
            open=False,
            name="log-collector",
        )
        self._read_pool = ConnectionPool(
            self.read_url,
            min_size=0,
            max_size=read_connections,
            kwargs={
                **self._connect_kwargs,
                # https://www.postgresql.org/docs/15/runtime-config-client.html
                "options": f"-c statement_timeout={READ_STATEMENT_TIMEOUT_MS} "
                "-c default_transaction_read_only=on",
            },
            timeout=read_wait,
            open=False,
            name="log-collector-read",
        )
        self.concurrency = max_connections
        self._open_lock = threading.Lock()
        # The pools opened so far (each on its first use).
        self._opened: list[ConnectionPool] = []

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            # libpq's messages span lines; one line reads better in a 503 and a CLI error.
            raise StoreUnavailable(f"PostgreSQL store: {' '.join(str(exc).split())}") from exc

    def _open(self, pool: ConnectionPool) -> ConnectionPool:
        # Each pool opens on its first use, not in the constructor, so a server can start
        # while the database is still down (/readyz says so), and a query server on a read
        # replica never opens ingest's pool, whose connections create a temporary table.
        if pool not in self._opened:
            with self._open_lock:
                if pool not in self._opened:
                    pool.open(wait=False)
                    self._opened.append(pool)
        return pool

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        with self._errors(), self._open(self._pool).connection() as conn:
            yield conn

    @contextlib.contextmanager
    def reading(self) -> Iterator[psycopg.Connection]:
        """A connection of the read pool (read-only, statement timeout), never
        one of ingest's; StoreUnavailable when none frees up in time."""
        with self._errors(), self._open(self._read_pool).connection() as conn:
            yield conn

    @contextlib.contextmanager
    def writing(self) -> Iterator[psycopg.Connection]:
        """A connection of ingest's pool (the read pool's are read-only) inside one
        transaction."""
        with self._connection() as conn, conn.transaction():
            yield conn

    def migrate(self) -> list[str]:
        with self._errors(), psycopg.connect(self.url, **self._connect_kwargs) as conn:
            try:
                return apply_postgres(conn)
            except errors.RaiseException as exc:
                # A migration's own check failed (pg_partman missing): its message and hint.
                hint = exc.diag.message_hint
                raise StoreUnavailable(
                    f"PostgreSQL store: {exc.diag.message_primary}" + (f" ({hint})" if hint else "")
                ) from exc
            except errors.ReadOnlySqlTransaction as exc:
                raise StoreUnavailable(
                    "PostgreSQL store: the database is read-only (a replica?): migrate "
                    "the primary, and serve a replica with --role query"
                ) from exc

    def pending_migrations(self) -> list[str]:
        with self.reading() as conn:
            applied = set(applied_postgres(conn))
        return [name for name, _ in sql_files("postgres") if name not in applied]

    def insert(self, rows: Sequence[Row]) -> tuple[int, int]:
        if not rows:
            return 0, 0
        sent = len(rows)
        with self._connection() as conn, _limits_are_not_outages():
            untimed = _untimed_event_ids(rows)
            if not untimed and _copy_new(conn, rows):
                return len(rows), 0
            with conn.transaction(), conn.cursor() as cur:
                if untimed:
                    stored = _stored_event_ids(cur, untimed)
                    rows = [row for row in rows if row[_EVENT_ID] not in stored] if stored else rows
                with cur.copy(_COPY) as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.execute(_INSERT)
                accepted = cur.rowcount
        return accepted, sent - accepted

    def stats(self) -> dict[str, Any]:
        with self.reading() as conn, conn.transaction(), conn.cursor() as cur:
            # REPEATABLE READ: the four figures come from one snapshot.
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return read_stats(
                lambda sql, params: cur.execute(sql, params).fetchall(),
                param="%s",
                level_text="level::text",
                recent_errors=lambda levels, window_s: (
                    "level = ANY(%s::log_level[]) "
                    "AND created_at >= now() - make_interval(secs => %s)",
                    (list(levels), window_s),
                ),
            )

    def maintain(self, keep: timedelta | None = None) -> Maintenance:
        # Its own connection: a run holds its transaction for as long as it moves rows.
        with self._errors(), psycopg.connect(self.url, **self._connect_kwargs) as conn:
            return partitions.maintain(conn, keep)

    def ping(self, *, reading: bool = False) -> None:
        with self.reading() if reading else self._connection() as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        with self._open_lock:
            for pool in self._opened:
                pool.close()
            self._opened = []
