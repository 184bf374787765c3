"""The embedded store: one SQLite file in WAL mode.

One writer connection behind a lock (SQLite has a single writer anyway, and
waiting on a Python lock is cheaper than SQLite's busy handler), and one
reader connection for /stats and /readyz, which WAL lets run beside a write.
https://www.sqlite.org/wal.html
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..._migrations import apply_sqlite
from .base import (
    ERROR_LEVELS,
    RECENT_ERRORS_WINDOW_S,
    ROW_COLUMNS,
    TOP_SERVICES,
    Row,
    StoreUnavailable,
    stats_document,
)

_INSERT = (
    f"INSERT INTO logs ({', '.join(ROW_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in ROW_COLUMNS)}) "
    # Only a repeated event_id is skipped; a row breaking a CHECK still raises
    # (INSERT OR IGNORE would skip that one silently too).
    "ON CONFLICT (event_id) DO NOTHING"
)
# insert() converts the times, the first and the last column of a row.
assert (ROW_COLUMNS[0], ROW_COLUMNS[-1]) == ("created_at", "received_at")

# Primary result codes meaning "the database cannot write now": the request
# gets 503 and the client retries. Anything else is a bug and a 500.
# https://www.sqlite.org/rescode.html
_UNAVAILABLE_CODES = {
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_NOMEM,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_PROTOCOL,
}


def iso_time(seconds: float) -> str:
    """Unix seconds as fixed-width ISO 8601 UTC text, which sorts like the times it holds."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")


class _IsoTimes:
    """``iso_time`` for a batch: the records of a batch share a few seconds, so
    the date and time of each second is formatted once and the microseconds appended."""

    def __init__(self) -> None:
        self._seconds: dict[int, str] = {}

    def __call__(self, seconds: float) -> str:
        whole = int(seconds)
        micros = round((seconds - whole) * 1_000_000)
        if micros == 1_000_000:
            whole, micros = whole + 1, 0
        prefix = self._seconds.get(whole)
        if prefix is None:
            prefix = self._seconds[whole] = iso_time(whole)[:19]
        return f"{prefix}.{micros:06d}+00:00"


class SQLiteStore:
    concurrency = 1  # see Store.concurrency

    def __init__(self, path: str | Path, *, timeout: float = 5.0):
        self.path = Path(path)
        self._timeout = timeout
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are the explicit BEGIN/COMMIT below.
        conn = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        # FULL, not NORMAL: a 200 makes the client delete its copy, so an
        # acknowledged batch must survive a power cut too.
        # https://www.sqlite.org/pragma.html#pragma_synchronous
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _UNAVAILABLE_CODES:
                raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc
            raise

    def migrate(self) -> list[str]:
        with self._errors():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # A short-lived connection with Python's default transaction
            # handling, which sqlite-utils' migration runner requires.
            conn = sqlite3.connect(self.path, timeout=self._timeout)
            try:
                # WAL is a property of the file: set once, it stays.
                conn.execute("PRAGMA journal_mode = WAL")
                return apply_sqlite(conn, "sqlite")
            finally:
                conn.close()

    def insert(self, rows: Sequence[Row]) -> tuple[int, int]:
        if not rows:
            return 0, 0
        to_iso = _IsoTimes()
        params = [(to_iso(row[0]), *row[1:-1], to_iso(row[-1])) for row in rows]
        with self._errors(), self._write_lock:
            if self._writer is None:
                self._writer = self._connect()
            conn = self._writer
            before = conn.total_changes
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_INSERT, params)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            accepted = conn.total_changes - before
        return accepted, len(rows) - accepted

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._errors(), self._read_lock:
            if self._reader is None:
                self._reader = self._connect()
            yield self._reader

    def stats(self) -> dict[str, Any]:
        since = iso_time(time.time() - RECENT_ERRORS_WINDOW_S)
        with self._reading() as conn:
            # One read transaction: the four figures come from one snapshot.
            conn.execute("BEGIN")
            try:
                total = conn.execute("SELECT COUNT(*) FROM logs WHERE deleted = FALSE").fetchone()
                levels = conn.execute(
                    "SELECT level, COUNT(*) AS n FROM logs WHERE deleted = FALSE "
                    "GROUP BY level ORDER BY n DESC, level"
                ).fetchall()
                services = conn.execute(
                    "SELECT service, COUNT(*) AS n FROM logs WHERE deleted = FALSE "
                    "GROUP BY service ORDER BY n DESC, service LIMIT ?",
                    (TOP_SERVICES,),
                ).fetchall()
                errors = conn.execute(
                    "SELECT COUNT(*) FROM logs WHERE deleted = FALSE "
                    f"AND level IN ({', '.join('?' for _ in ERROR_LEVELS)}) "
                    "AND created_at >= ?",
                    (*ERROR_LEVELS, since),
                ).fetchone()
            finally:
                conn.execute("COMMIT")
        return stats_document(total[0], levels, services, errors[0])

    def ping(self) -> None:
        with self._reading() as conn:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()

    def close(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
