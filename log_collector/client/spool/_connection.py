"""A spool file's one write connection: the group commit that appends, the
exclusive hold every other write takes, and the spool-full and drop counters.

``Spool`` (``_spool``) builds the sender's side on top: reads, acks, dead
letters, checkpoints and expiry.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from .._forkgate import GATE
from ._base import (
    _BYTES,
    _INSERT,
    DROP_HEADROOM,
    MIRROR_BYTES,
    ROOM_AGAIN,
    FallbackFn,
    SpoolClosed,
    SpoolCounters,
    _connect,
    _rollback,
    _size,
    logger,
)
from ._mirror import Mirror

# Adds to a counter row of meta (drops by reason, drops announced), made if missing.
_ADD_TO_COUNTER = (
    "INSERT INTO meta(key, value) VALUES (?, ?) "
    "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value"
)


class SpoolConnection:
    """The one write connection of a spool file this process has locked."""

    def __init__(
        self,
        path: Path,
        lock_fd: int,
        *,
        durability: str = "normal",
        max_bytes: int | None = None,
        full_policy: str = "drop_oldest",
        fallback: FallbackFn | None = None,
        mirror_bytes: int = MIRROR_BYTES,
    ) -> None:
        self.path = path
        self._lock_fd = lock_fd
        self._max_bytes = max_bytes
        self._full_policy = full_policy
        self._fallback = fallback
        self.counters = SpoolCounters()
        self.closed = False
        # Drops not yet told to the server; once an append succeeds with room to
        # spare they move to drop_notice, which the client turns into one WARN record.
        self._unannounced: dict[str, int] = {}
        self.drop_notice: dict[str, int] | None = None

        # One connection for everything, in exclusive locking mode, set before
        # its first read: SQLite then keeps the WAL index in heap memory and
        # takes no file lock per transaction (six fcntl calls fewer per log
        # call, which halved the INSERT here: ~17 us -> ~9 us). Only this
        # process can read the file while it lives; ``status`` reads the
        # snapshot the sender writes beside it (``write_snapshot``).
        # https://www.sqlite.org/pragma.html#pragma_locking_mode
        # https://www.sqlite.org/wal.html#noshm
        self._wconn = _connect(path, fd=lock_fd)
        self._wconn.execute("PRAGMA locking_mode=EXCLUSIVE")
        # NORMAL: a committed row survives the process being killed (the WAL is
        # in the OS page cache), not necessarily a power cut; FULL fsyncs the WAL
        # on every commit. https://www.sqlite.org/pragma.html#pragma_synchronous
        sync = "FULL" if durability == "full" else "NORMAL"
        self._wconn.execute(f"PRAGMA synchronous={sync}")
        # The producer never checkpoints: an automatic checkpoint would run on the
        # application thread that happened to commit. The sender checkpoints.
        self._wconn.execute("PRAGMA wal_autocheckpoint=0")

        # Group commit: callers queue rows; whoever finds no commit in progress
        # becomes the leader and writes every queued row in one transaction; the
        # others wait for the commit that carries their row. "Durable before
        # return" holds for every caller, and the commit cost is shared.
        self._cv = threading.Condition(threading.Lock())
        self._queue: list[tuple[float, str]] = []
        self._next_batch = 1
        self._committed = 0
        self._leader = False
        self._waiting = 0
        self._exclusive_wanted = 0  # threads waiting in _exclusive(); they go first

        # Kept in memory, so neither flush() nor the snapshot ever counts a
        # large backlog while appenders wait for the connection.
        self._rows, self._bytes, last_id = self._wconn.execute(
            f"SELECT count(*), coalesce(sum({_BYTES}), 0), coalesce(max(id), 0) FROM records"
        ).fetchone()
        self._next_id = last_id + 1
        # Changed only by the thread holding the connection.
        self._mirror = Mirror(mirror_bytes, active=self._rows == 0)
        # A lower bound on the oldest created_at in ``records`` (-inf: unknown).
        # max_record_age scans the table only once the cutoff passes it, not
        # on every read: about once per max_record_age while delivery keeps up.
        self._min_created = -math.inf
        self._load_drop_counters()
        self._unckpt = 0  # rows appended since the last checkpoint
        self._changed = False  # anything written or deleted since then

    def append(self, created_at: float, body: str) -> None:
        """Durably store one record before returning (or hand it to the fallback)."""
        cv = self._cv
        with cv:
            self._queue.append((created_at, body))
            ticket = self._next_batch
            while self._committed < ticket:
                if self._leader or self._exclusive_wanted:
                    self._waiting += 1
                    cv.wait()
                    self._waiting -= 1
                    continue
                self._leader = True
                try:
                    self._commit_queued()
                finally:
                    self._leader = False
                    if self._waiting:  # Condition.notify_all costs a few us even with no waiter
                        cv.notify_all()

    def _commit_queued(self) -> None:
        """Write every queued row in one transaction. Called holding ``_cv`` and
        the connection (``_leader``); ``_cv`` is let go while SQLite works."""
        rows, self._queue = self._queue, []
        batch = self._next_batch
        self._next_batch += 1
        self._cv.release()
        try:
            with GATE:
                self._write(rows)
        finally:
            self._cv.acquire()
            self._committed = batch

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[sqlite3.Connection]:
        """The write connection, with no group commit or other writer in progress."""
        with self._cv:
            # Wanted first: appenders arriving now queue their rows and wait, so
            # a steady stream of log calls cannot starve the sender's ack (each
            # appender would otherwise take the connection again at once).
            self._exclusive_wanted += 1
            while self._leader:
                self._waiting += 1
                self._cv.wait()
                self._waiting -= 1
            self._exclusive_wanted -= 1
            self._leader = True
        try:
            with GATE:
                yield self._wconn
        finally:
            with self._cv:
                # Rows queued meanwhile are committed before the connection is
                # let go: a thread taking it again at once (the sender reading,
                # acking, reading) can never starve the appenders either.
                try:
                    if self._queue:
                        self._commit_queued()
                finally:
                    self._leader = False
                self._cv.notify_all()

    def _write(self, rows: list[tuple[float, str]]) -> None:
        conn = self._wconn
        try:
            if self.closed:
                raise SpoolClosed("spool is closed")
            size = _size(rows[0][1]) if len(rows) == 1 else sum(_size(body) for _, body in rows)
            full = self._max_bytes is not None and self._bytes + size > self._max_bytes
            drops: tuple[int, int] = (0, 0)  # rows dropped from the table, bytes freed
            refused = 0  # new rows drop_newest turned away
            if len(rows) == 1 and not full:
                created_at, body = rows[0]
                conn.execute(_INSERT, (self._next_id, created_at, body))
                if created_at < self._min_created:
                    self._min_created = created_at
                if self._mirror.active:
                    self._mirror.add(((self._next_id, body),), size)
            else:
                # A drop, its counter and the new rows commit together: a kill
                # in between can never leave a drop uncounted.
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if full:
                        kept, size, drops = self._make_room(rows, size)
                        refused, rows = len(rows) - len(kept), kept
                    first = self._next_id
                    conn.executemany(_INSERT, [(first + i, c, b) for i, (c, b) in enumerate(rows)])
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
                if self._mirror.active:
                    self._mirror.add([(first + i, b) for i, (_, b) in enumerate(rows)], size)
                if rows:
                    self._min_created = min(self._min_created, min(c for c, _ in rows))
            self._next_id += len(rows)
            self._unckpt += len(rows)
            self._changed = True
            self._rows += len(rows) - drops[0]
            self._bytes += size - drops[1]
            self.counters.appended += len(rows)
            if drops[0] + refused:
                self._note_drop("spool_full", drops[0] + refused)
            if self._unannounced and (
                self._max_bytes is None or self._bytes < self._max_bytes * ROOM_AGAIN
            ):
                self.drop_notice, self._unannounced = self._unannounced, {}
        except Exception as exc:
            if self._fallback is None:
                raise
            self._fallback(rows, exc)

    def _make_room(
        self, rows: list[tuple[float, str]], size: int
    ) -> tuple[list[tuple[float, str]], int, tuple[int, int]]:
        """Apply the spool-full policy inside the caller's transaction.

        Returns the rows still to insert, their size, and (old rows deleted,
        bytes freed); the counter row is written here, in the same transaction.
        """
        assert self._max_bytes is not None
        if self._full_policy == "drop_newest" or size > self._max_bytes:
            self._persist_drop("spool_full", len(rows))
            return [], 0, (0, 0)
        need = self._bytes + size - int(self._max_bytes * (1 - DROP_HEADROOM))
        freed, ids = 0, []
        for row_id, length in self._wconn.execute(f"SELECT id, {_BYTES} FROM records ORDER BY id"):
            if freed >= need:
                break
            ids.append(row_id)
            freed += length
        deleted, freed = self._delete_ids(ids)
        self._persist_drop("spool_full", deleted)
        return rows, size, (deleted, freed)

    def append_rows(self, rows: list[tuple[float, str]]) -> None:
        """Many rows in one transaction (salvage, not the hot path)."""
        if rows:
            with self._exclusive():
                self._write(rows)

    def _persist_drop(self, reason: str, n: int) -> None:
        """The drop counter in meta; the caller's transaction makes it atomic with the drop."""
        if n > 0:
            self._wconn.execute(_ADD_TO_COUNTER, (f"dropped:{reason}", n))

    def _note_drop(self, reason: str, n: int) -> None:
        """Count a committed drop in memory; warn once per episode."""
        if n <= 0:
            return
        episode_starts = not self._unannounced
        self.counters.dropped[reason] = self.counters.dropped.get(reason, 0) + n
        self._unannounced[reason] = self._unannounced.get(reason, 0) + n
        if episode_starts:  # once per episode, not once per dropped batch
            logger.warning(
                "log-collector: dropping records from %s (%s); counted, announced later",
                self.path,
                reason,
            )

    def mark_announced(self, dropped: dict[str, int]) -> None:
        """Record in the file that these drops were told to the server, so a
        process adopting it later announces only the rest."""
        with self._exclusive() as conn:
            if self.closed:
                return
            conn.executemany(
                _ADD_TO_COUNTER, [(f"announced:{reason}", n) for reason, n in dropped.items()]
            )

    def _load_drop_counters(self) -> None:
        """Counters from the file. Drops a dead owner counted but never announced
        become this spool's notice: its adopter announces them."""
        announced: dict[str, int] = {}
        for key, value in self._wconn.execute(
            "SELECT key, value FROM meta WHERE key LIKE 'dropped:%' OR key LIKE 'announced:%'"
        ):
            kind, reason = key.split(":", 1)
            if kind == "dropped":
                self.counters.dropped[reason] = int(value)
            else:
                announced[reason] = int(value)
        untold = {
            reason: n - announced.get(reason, 0)
            for reason, n in self.counters.dropped.items()
            if n > announced.get(reason, 0)
        }
        self.drop_notice = untold or None

    def _delete_ids(self, ids: list[int]) -> tuple[int, int]:
        """Delete these rows (those still there); return (rows deleted, bytes freed)."""
        if not ids:
            return 0, 0
        self._mirror.stop()
        freed = self._wconn.execute(
            f"DELETE FROM records WHERE id IN (SELECT value FROM json_each(?)) RETURNING {_BYTES}",
            (json.dumps(ids),),
        ).fetchall()
        return len(freed), sum(size for (size,) in freed)

    def _forget(self, rows: int, nbytes: int) -> None:
        """Committed deletions, in the in-memory totals."""
        self._changed = True
        self._rows -= rows
        self._bytes -= nbytes
        if self._rows == 0 and not self._mirror.active:
            self._mirror.restart()
