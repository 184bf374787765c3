"""The production store: PostgreSQL through psycopg 3 and a connection pool.

A batch is COPY'd into a session temporary table and moved into ``logs``
with one ``INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING``: COPY is
the cheapest way to get many rows to the server, and the INSERT's row count
is exactly the rows accepted, so duplicates = rows sent - accepted.
https://www.psycopg.org/psycopg3/docs/basic/copy.html
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from .base import (
    ERROR_LEVELS,
    RECENT_ERRORS_WINDOW_S,
    ROW_COLUMNS,
    TOP_SERVICES,
    Row,
    StoreUnavailable,
    stats_document,
)
from .postgres_migrations import apply_postgres

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
    "ON CONFLICT (event_id) DO NOTHING"
)


def _configure(conn: psycopg.Connection) -> None:
    conn.execute(_STAGING)


class PostgresStore:
    # Two batches at once: while one is in PostgreSQL the other is decoded.
    # Four cost a fifth more CPU per record on two cores (measured with
    # scripts/bench_server.py), in GIL hand-overs and PostgreSQL contention.
    def __init__(self, url: str, *, timeout: float = 5.0, max_connections: int = 2):
        self.url = url
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
        self.concurrency = max_connections
        self._open_lock = threading.Lock()
        self._opened = False

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            # libpq's messages span lines; one line reads better in a 503 and a CLI error.
            raise StoreUnavailable(f"PostgreSQL store: {' '.join(str(exc).split())}") from exc

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        with self._errors():
            if not self._opened:
                # Opened on first use, not in the constructor, so a server can
                # start while the database is still down (/readyz says so).
                with self._open_lock:
                    if not self._opened:
                        self._pool.open(wait=False)
                        self._opened = True
            with self._pool.connection() as conn:
                yield conn

    def migrate(self) -> list[str]:
        with self._errors(), psycopg.connect(self.url, **self._connect_kwargs) as conn:
            return apply_postgres(conn)

    def insert(self, rows: Sequence[Row]) -> tuple[int, int]:
        if not rows:
            return 0, 0
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            with cur.copy(_COPY) as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(_INSERT)
            accepted = cur.rowcount
        return accepted, len(rows) - accepted

    def stats(self) -> dict[str, Any]:
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            # REPEATABLE READ: the four figures come from one snapshot.
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            total = cur.execute("SELECT count(*) FROM logs WHERE deleted = FALSE").fetchone()
            levels = cur.execute(
                "SELECT level::text, count(*) AS n FROM logs WHERE deleted = FALSE "
                "GROUP BY level ORDER BY n DESC, level::text"
            ).fetchall()
            services = cur.execute(
                "SELECT service, count(*) AS n FROM logs WHERE deleted = FALSE "
                "GROUP BY service ORDER BY n DESC, service LIMIT %s",
                (TOP_SERVICES,),
            ).fetchall()
            errors = cur.execute(
                "SELECT count(*) FROM logs WHERE deleted = FALSE "
                "AND level = ANY(%s::log_level[]) "
                "AND created_at >= now() - make_interval(secs => %s)",
                (list(ERROR_LEVELS), RECENT_ERRORS_WINDOW_S),
            ).fetchone()
        assert total is not None and errors is not None
        return stats_document(total[0], levels, services, errors[0])

    def ping(self) -> None:
        with self._connection() as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        with self._open_lock:
            if self._opened:
                self._pool.close()
                self._opened = False
