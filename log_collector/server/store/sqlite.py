"""The embedded store: one SQLite file in WAL mode.

One writer thread owns the writer connection (SQLite has a single writer
anyway) and commits every batch waiting for it in one transaction, each in
its own savepoint: a commit costs one fsync plus a write of every page the
transaction dirtied, and the random keys of the trace and user indexes dirty
a page per row, so several batches per commit share pages and the fsync.
Up to READ_CONNECTIONS reader connections serve the read API, /stats and
/readyz, which WAL lets run beside a write and beside each other.
https://www.sqlite.org/wal.html
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ...common.migrations import applied_sqlite, apply_sqlite, sql_files
from .base import ROW_COLUMNS, Maintenance, Row, StoreUnavailable, read_stats, retention_cutoff

_WIDTH = len(ROW_COLUMNS)
# Rows deleted per transaction by a retention run.
RETENTION_BATCH = 5_000
_ROW_PLACEHOLDERS = f"({', '.join('?' for _ in ROW_COLUMNS)})"


@functools.lru_cache(maxsize=16)
def _insert_sql(rows: int) -> str:
    """One INSERT of ``rows`` rows. Many rows per statement, not executemany:
    sqlite3 releases the GIL around each statement step, and getting it back
    while a request thread decodes JSON waits up to a switch interval
    (``sys.getswitchinterval()``): one step per row would pay that per row."""
    return (
        f"INSERT INTO logs ({', '.join(ROW_COLUMNS)}) "
        f"VALUES {', '.join([_ROW_PLACEHOLDERS] * rows)} "
        # Only a repeated event_id is skipped; a row breaking a CHECK still raises
        # (INSERT OR IGNORE would skip that one silently too).
        "ON CONFLICT (event_id) DO NOTHING"
    )


# Adds the rows this transaction inserted (id above the largest before it) to log_counts, per
# granule, service and level (migrations/sqlite/0003_time_index_and_log_counts.sql): one
# statement per commit instead of a trigger per row.
_COUNT_INSERTED = """
INSERT INTO log_counts (granule_s, bucket_us, service, level, n)
SELECT g.s, logs.created_at - (logs.created_at % (g.s * 1000000) + g.s * 1000000)
        % (g.s * 1000000),
    logs.service, logs.level, count(*)
FROM logs CROSS JOIN (SELECT 60 AS s UNION ALL SELECT 1800) AS g
WHERE logs.id > ? AND logs.deleted = FALSE
GROUP BY 1, 2, 3, 4
ON CONFLICT (granule_s, bucket_us, service, level) DO UPDATE SET n = n + excluded.n
"""

# Rows per INSERT statement: one statement for a batch of up to 1,000 rows.
# SQLite binds at most 32,766 parameters per statement (999 before 3.32), and
# a prepared statement of 21,000 parameters holds about 1 MB, so the writer
# keeps a few of them (one per batch size it meets).
_MAX_ROWS_PER_STATEMENT = 1000
_CACHED_STATEMENTS = 8
# Batches past this many rows wait for the next transaction.
_MAX_ROWS_PER_COMMIT = 20_000
# Pages of cache for the writer: the four secondary indexes of a million rows
# stay in memory (SQLite's default is 2 MB).
# https://www.sqlite.org/pragma.html#pragma_cache_size
_WRITER_CACHE_KIB = 64 * 1024
# WAL pages after which a commit copies the WAL into the database file. The
# random keys of the trace and user indexes dirty a page per row, so each
# commit writes thousands of pages to the WAL; at SQLite's default of 1,000
# pages nearly every commit also checkpointed, writing each page a second
# time. At 10,000 (40 MB of WAL) a page changed by several commits is copied
# once. https://www.sqlite.org/wal.html#ckpt
_CHECKPOINT_PAGES = 10_000
# Read connections at most. WAL readers do not block each other, and sqlite3 releases the GIL
# while a statement steps, so a page of logs (milliseconds) is not queued behind a scan of a
# day of rows that another request runs (facets, /api/services): with one connection the
# dashboard's Explore waited for every request it sends on load before its first row
# (scripts/bench_ui.py). Each connection keeps its own page cache (2 MB by default).
READ_CONNECTIONS = 4
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


def microseconds(seconds: float) -> int:
    """Unix seconds as the store keeps times: whole microseconds since the epoch
    (see migrations/sqlite/0002_times_as_integer_microseconds.sql)."""
    return round(seconds * 1_000_000)


def _recent_errors(levels: tuple[str, ...], window_s: float) -> tuple[str, tuple[Any, ...]]:
    since = microseconds(time.time() - window_s)
    return f"level IN ({', '.join('?' for _ in levels)}) AND created_at >= ?", (*levels, since)


class _Pending:
    """One batch waiting for the writer thread, and then its outcome. ``params``
    holds the values of its ``rows`` rows one after the other, made by the
    request's thread: the single writer thread is the store's bottleneck."""

    __slots__ = ("done", "error", "params", "result", "rows")

    def __init__(self, params: list[Any], rows: int):
        self.params = params
        self.rows = rows
        self.done = threading.Event()
        self.result: tuple[int, int] = (0, 0)
        self.error: BaseException | None = None


class SQLiteStore:
    partitioned = False
    # Batches in flight at once (see Store.concurrency); they queue for the
    # single writer thread, which commits all that are waiting together. The
    # random keys of the trace and user indexes make a commit's cost mostly
    # per page, not per row, so larger groups are cheaper per row (figures in
    # docs/performance.md). Memory: up to 16 decoded batches at once, at worst
    # 16 requests at the decompressed-size limit.
    concurrency = 16

    def __init__(self, path: str | Path, *, timeout: float = 5.0):
        self.path = Path(path)
        self._timeout = timeout
        # A slot per read connection; the idle ones wait in _idle (guarded by _idle_lock).
        self._read_slots = threading.BoundedSemaphore(READ_CONNECTIONS)
        self._idle_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        # The writer thread's queue; the condition guards it, _thread and _closing.
        self._queue: deque[_Pending] = deque()
        self._wake = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        self._closing = False
        self._writer: sqlite3.Connection | None = None  # the writer thread's only
        self._counting = False  # whether the writer keeps log_counts (set when it connects)

    def _connect(self, cached_statements: int = 128) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are the explicit BEGIN/COMMIT below.
        conn = sqlite3.connect(
            self.path,
            timeout=self._timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=cached_statements,
        )
        # FULL, not NORMAL: a 200 makes the client delete its copy, so an
        # acknowledged batch must survive a power cut too.
        # https://www.sqlite.org/pragma.html#pragma_synchronous
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def _classified(self, exc: sqlite3.Error) -> Exception:
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _UNAVAILABLE_CODES:
            unavailable = StoreUnavailable(f"SQLite store {self.path}: {exc}")
            unavailable.__cause__ = exc
            return unavailable
        return exc

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            classified = self._classified(exc)
            if classified is exc:
                raise
            raise classified from exc

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

    def pending_migrations(self) -> list[str]:
        with self.reading() as conn:
            applied = set(applied_sqlite(conn, "sqlite"))
        return [name for name, _ in sql_files("sqlite") if name not in applied]

    def insert(self, rows: Sequence[Row]) -> tuple[int, int]:
        if not rows:
            return 0, 0
        # The rows of one request share their received_at: converted once.
        received = rows[0][-1]
        received_us = microseconds(received)
        params: list[Any] = []
        extend = params.extend
        for row in rows:
            extend(
                (
                    microseconds(row[0]),
                    *row[1:-1],
                    received_us if row[-1] == received else microseconds(row[-1]),
                )
            )
        pending = _Pending(params, len(rows))
        with self._wake:
            if self._closing:
                raise StoreUnavailable(f"SQLite store {self.path}: closed")
            self._start_writer()
            self._queue.append(pending)
            self._wake.notify()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _start_writer(self) -> None:
        # Called with _wake held. A forked child inherits no running thread,
        # only the parent's objects: it starts its own writer and its own
        # connection (the parent's handle is left alone, never closed here).
        if self._thread is not None and self._thread_pid == os.getpid():
            return
        self._writer = None
        self._queue.clear()
        self._thread = threading.Thread(
            target=self._write_loop, name="log-collector-sqlite-writer", daemon=True
        )
        self._thread_pid = os.getpid()
        self._thread.start()

    def _write_loop(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closing:
                    self._wake.wait()
                if not self._queue:
                    return  # closing, and nothing left to write
                group = [self._queue.popleft()]
                rows = group[0].rows
                while self._queue and rows + self._queue[0].rows <= _MAX_ROWS_PER_COMMIT:
                    group.append(self._queue.popleft())
                    rows += group[-1].rows
            try:
                with self._errors():
                    self._commit(group)
            except BaseException as exc:
                for pending in group:
                    if pending.error is None:
                        pending.error = exc
            for pending in group:
                pending.done.set()

    def _commit(self, group: list[_Pending]) -> None:
        """Write every batch of ``group`` in one transaction, each in a savepoint,
        so a batch that fails (a row breaking a CHECK) fails alone."""
        if self._writer is None:
            self._writer = self._connect(cached_statements=_CACHED_STATEMENTS)
            self._writer.execute(f"PRAGMA cache_size = -{_WRITER_CACHE_KIB}")
            self._writer.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")
            # A database not yet migrated to log_counts (scripts/bench_query.py measures one)
            # is written without counting.
            self._counting = (
                self._writer.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log_counts'"
                ).fetchone()
                is not None
            )
        conn = self._writer
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(ROW_COLUMNS)
        per_statement = min(_MAX_ROWS_PER_STATEMENT, limit)
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Each new row's id is above every id stored before this transaction: SQLite
            # gives max(rowid) + 1 while it stays below 2**63 - 1, and this connection is the
            # only writer. https://www.sqlite.org/autoinc.html
            (newest_before,) = conn.execute("SELECT coalesce(max(id), 0) FROM logs").fetchone()
            stored = 0
            for pending in group:
                params, rows = pending.params, pending.rows
                accepted = 0
                conn.execute("SAVEPOINT batch")
                try:
                    for start in range(0, rows, per_statement):
                        count = min(per_statement, rows - start)
                        if count < rows:
                            params = pending.params[start * _WIDTH : (start + count) * _WIDTH]
                        # rowcount is sqlite3_changes(): the rows this INSERT stored, never
                        # rows a trigger wrote (total_changes would count those).
                        # https://www.sqlite.org/c3ref/changes.html
                        accepted += conn.execute(_insert_sql(count), params).rowcount
                except Exception as exc:
                    # A batch that fails (a row breaking a CHECK, a value sqlite3
                    # cannot bind) fails alone: the other requests of the group commit.
                    if not conn.in_transaction:
                        raise  # SQLite rolled the whole transaction back (disk full, I/O)
                    conn.execute("ROLLBACK TO batch")
                    conn.execute("RELEASE batch")
                    pending.error = self._classified(exc) if isinstance(exc, sqlite3.Error) else exc
                    continue
                conn.execute("RELEASE batch")
                pending.result = (accepted, rows - accepted)
                stored += accepted
            if stored and self._counting:
                conn.execute(_COUNT_INSERTED, (newest_before,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A read connection, never the writer's (WAL lets it read beside a
        write), opened when none is idle; StoreUnavailable when all
        READ_CONNECTIONS stay busy past the timeout."""
        if not self._read_slots.acquire(timeout=self._timeout):
            raise StoreUnavailable(f"SQLite store {self.path}: every read connection is busy")
        conn: sqlite3.Connection | None = None
        try:
            with self._idle_lock:
                conn = self._idle.pop() if self._idle else None
            with self._errors():
                if conn is None:
                    conn = self._connect()
                yield conn
        finally:
            if conn is not None:
                self._put_back(conn)
            self._read_slots.release()

    def _put_back(self, conn: sqlite3.Connection) -> None:
        """Return a reader to the idle ones, its transaction (left open by an error) rolled
        back; one that cannot roll back is closed instead."""
        try:
            if conn.in_transaction:
                conn.rollback()
        except sqlite3.Error:
            conn.close()
            return
        with self._idle_lock:
            self._idle.append(conn)

    @contextlib.contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """The read connection inside a write transaction. The writer connection belongs to
        the writer thread and its queue carries log rows only; the rare small writes of saved
        views take the read connection instead, and BEGIN IMMEDIATE waits (up to the busy
        timeout) for the writer thread's commit rather than failing part-way.
        https://www.sqlite.org/lang_transaction.html#deferred_immediate_and_exclusive_transactions
        """
        with self.reading() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def stats(self) -> dict[str, Any]:
        with self.reading() as conn:
            # One read transaction: the four figures come from one snapshot.
            conn.execute("BEGIN")
            try:
                return read_stats(
                    lambda sql, params: conn.execute(sql, params).fetchall(),
                    param="?",
                    level_text="level",
                    recent_errors=_recent_errors,
                )
            finally:
                conn.execute("COMMIT")

    def maintain(self, keep: timedelta | None = None) -> Maintenance:
        """With ``keep``: delete the rows older than its cutoff, ``RETENTION_BATCH`` rows per
        transaction, so ingest's writer waits for one small transaction at a time. The
        counting triggers take the rows off log_counts."""
        done = Maintenance()
        if keep is None:
            return done
        done.cutoff = retention_cutoff(keep, datetime.now(UTC))
        cutoff_us = microseconds(done.cutoff.timestamp())
        while True:
            with self._errors(), self.writing() as conn:
                deleted = conn.execute(
                    "DELETE FROM logs WHERE id IN "
                    "(SELECT id FROM logs WHERE created_at < ? LIMIT ?)",
                    (cutoff_us, RETENTION_BATCH),
                ).rowcount
            done.deleted += deleted
            if deleted < RETENTION_BATCH:
                return done

    def ping(self, *, reading: bool = True) -> None:
        # Every connection but the writer thread's is a reader here.
        with self.reading() as conn:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()

    def close(self) -> None:
        with self._wake:
            self._closing = True
            thread = self._thread if self._thread_pid == os.getpid() else None
            self._wake.notify()
        if thread is not None:
            # The writer finishes what is queued; bounded by SQLite's busy timeout.
            thread.join(self._timeout + 5.0)
        if self._writer is not None and not (thread is not None and thread.is_alive()):
            self._writer.close()
            self._writer = None
        # Waits (up to the timeout each) for the readers in use to come back, then closes
        # the idle ones; a reader still in use after that is closed when the store is dropped.
        taken = [self._read_slots.acquire(timeout=self._timeout) for _ in range(READ_CONNECTIONS)]
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for acquired in taken:
            if acquired:
                self._read_slots.release()
