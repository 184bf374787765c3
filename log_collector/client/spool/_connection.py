"""A spool file's one write connection and what it knows of the ``records`` table.

``SpoolConnection`` owns the file's handles (the SQLite connection, the lock,
the WAL descriptor for syncs), the group commit that appends, the spool-full
policy with its drop counters (``_drops``), and the table's totals kept in memory (rows, bytes,
next id, the mirror, a bound on the oldest row). ``Spool`` (``_spool``) runs
the sender's side through its public methods: ``hold`` for SQL of its own,
``delete_ids`` / ``forget`` / ``reload_totals`` to keep the totals exact.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._forkgate import GATE
from ._base import (
    _BYTES,
    _INHERITED,
    _INSERT,
    CHECKPOINT_EVERY,
    CHECKPOINT_ROWS,
    DROP_HEADROOM,
    MIRROR_BYTES,
    ROOM_AGAIN,
    FallbackFn,
    Row,
    SpoolClosed,
    SpoolCounters,
    SpoolError,
    UnsafeSpoolFile,
    _open_regular,
    _size,
    logger,
)
from ._drops import Drops
from ._group_commit import GroupCommit, Pending
from ._mirror import Mirror
from ._sqlite import connect, transaction

_TOTALS = f"SELECT count(*), coalesce(sum({_BYTES}), 0), coalesce(max(id), 0) FROM records"


def _run_of(ids: list[int]) -> tuple[int, int] | None:
    """(lowest, highest) when ``ids`` are exactly the integers of that range."""
    lo, hi = min(ids), max(ids)
    return (lo, hi) if hi - lo + 1 == len(ids) == len(set(ids)) else None


class SpoolConnection:
    """The one write connection of a spool file this process has locked.

    Methods documented "holding" run only inside ``hold()``: the mirror and the
    totals change only in the thread that holds the connection.
    """

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
        self.lock_fd = lock_fd
        self._max_bytes = max_bytes
        self._full_policy = full_policy
        self._fallback = fallback
        self.counters = SpoolCounters()
        self.closed = False
        self._conn = connect(path, "write", fd=lock_fd, durability=durability)
        self.drops = Drops(path, self.counters, self._conn)
        self._group = GroupCommit(self._commit)
        # Kept in memory, so neither flush() nor the snapshot ever counts a
        # large backlog while appenders wait for the connection.
        self._rows, self._bytes, last_id = self._conn.execute(_TOTALS).fetchone()
        self._next_id = last_id + 1
        self._mirror = Mirror(mirror_bytes, active=self._rows == 0)
        # A lower bound on the oldest created_at in ``records`` (-inf: unknown).
        # max_record_age scans the table only once the cutoff passes it, not
        # on every read: about once per max_record_age while delivery keeps up.
        self.oldest_bound = -math.inf
        self._unckpt = 0  # rows appended since the last checkpoint
        self._changed = False  # anything written or deleted since then
        self._checkpointed_at = time.monotonic()
        self._wal_fd: int | None = None  # for the sync before a checkpoint; kept open
        self._wal_fd_lock = threading.Lock()  # close() must not close it mid-fsync
        self._start_wal()

    def _start_wal(self) -> None:
        """Write the owner's pid through this connection, and compile the append's INSERT.

        The first commit into a new WAL creates the file, writes its header and syncs
        both it and the directory (half a millisecond here); done now, the client's
        constructor pays for it, not its first log call. The INSERT runs once in a
        transaction that is rolled back, so the first append finds it compiled in the
        connection's statement cache.
        """
        conn = self._conn
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('pid', ?)", (str(os.getpid()),)
        )
        conn.execute("BEGIN")
        try:
            conn.execute(_INSERT, (self._next_id, 0.0, ""))
        finally:
            conn.execute("ROLLBACK")

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def nbytes(self) -> int:
        return self._bytes

    def high_water(self) -> int:
        """The largest id handed out so far."""
        return self._next_id - 1

    def append(self, created_at: float, body: str) -> None:
        """Durably store one record before returning (or hand it to the fallback)."""
        self._group.submit((created_at, body))

    @contextlib.contextmanager
    def rehearsal(self) -> Iterator[bool]:
        """Appends made inside are never kept: the append path runs for real inside one
        transaction that is then rolled back, and the totals are set back to those of the
        new, empty file. The constructor rehearses so that a client's first log calls run
        code the interpreter has already specialised and the CPU has already cached
        (docs/performance.md). Yields False (and rehearses nothing) unless the file is new
        and empty. Nothing but the rehearsing thread may use the connection meanwhile.
        Raises ``SpoolError`` if the transaction cannot be rolled back (the file is then
        unusable).
        """
        if self._next_id != 1 or self._rows or self.closed:
            yield False
            return
        fallback, self._fallback = self._fallback, None  # a failure must not keep the row
        appended = self.counters.appended
        self._conn.execute("BEGIN")
        try:
            yield True
        finally:
            self._fallback = fallback
            try:
                self._conn.execute("ROLLBACK")
                # One real commit, so that the commit path (the WAL frame) is warm too.
                self._conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('opened_at', ?)",
                    (repr(time.time()),),
                )
            except sqlite3.Error as exc:
                logger.debug("log-collector: cannot roll back the warm-up: %s", exc)
            self._rows = self._bytes = self._unckpt = 0
            self._next_id = 1
            self._mirror.restart()
            self.counters.appended = appended
            self.oldest_bound = -math.inf
            self._changed = False
            if self._conn.in_transaction:
                raise SpoolError(f"{self.path}: cannot roll back the warm-up transaction")

    def append_rows(self, rows: list[Pending]) -> None:
        """Many rows in one transaction (salvage, not the hot path)."""
        if rows:
            with self.hold():
                self._write(rows)

    @contextlib.contextmanager
    def hold(self) -> Iterator[sqlite3.Connection]:
        """The write connection, with no group commit or other holder in progress."""
        with self._group.exclusive(), GATE:
            yield self._conn

    def _commit(self, rows: list[Pending]) -> None:
        with GATE:
            self._write(rows)

    def _write(self, rows: list[Pending]) -> None:
        conn = self._conn
        try:
            if self.closed:
                raise SpoolClosed("spool is closed")
            size = _size(rows[0][1]) if len(rows) == 1 else sum(_size(body) for _, body in rows)
            full = self._max_bytes is not None and self._bytes + size > self._max_bytes
            drops: tuple[int, int] = (0, 0)  # rows dropped from the table, bytes freed
            refused = 0  # new rows drop_newest turned away
            first = self._next_id
            if len(rows) == 1 and not full:
                conn.execute(_INSERT, (first, *rows[0]))
            else:
                # A drop, its counter and the new rows commit together: a kill
                # in between can never leave a drop uncounted.
                with transaction(conn):
                    if full:
                        kept, size, drops = self._make_room(rows, size)
                        refused, rows = len(rows) - len(kept), kept
                    conn.executemany(_INSERT, [(first + i, c, b) for i, (c, b) in enumerate(rows)])
            self._count_appended(first, rows, size, drops)
            if drops[0] + refused:
                self.drops.note("spool_full", drops[0] + refused)
            if self.drops.in_episode and (
                self._max_bytes is None or self._bytes < self._max_bytes * ROOM_AGAIN
            ):
                self.drops.end_episode()
        except Exception as exc:
            if self._fallback is None:
                raise
            self._fallback(rows, exc)

    def _count_appended(
        self, first: int, rows: list[Pending], size: int, drops: tuple[int, int]
    ) -> None:
        """Committed rows (ids from ``first``), in the totals and the mirror."""
        if len(rows) == 1:  # the hot path: one log call's row
            created_at, body = rows[0]
            if self._mirror.active:
                self._mirror.add(((first, body),), size)
            if created_at < self.oldest_bound:
                self.oldest_bound = created_at
        elif rows:
            if self._mirror.active:
                self._mirror.add([(first + i, b) for i, (_, b) in enumerate(rows)], size)
            self.oldest_bound = min(self.oldest_bound, min(c for c, _ in rows))
        self._next_id += len(rows)
        self._unckpt += len(rows)
        self._changed = True
        self._rows += len(rows) - drops[0]
        self._bytes += size - drops[1]
        self.counters.appended += len(rows)

    def _make_room(
        self, rows: list[Pending], size: int
    ) -> tuple[list[Pending], int, tuple[int, int]]:
        """Apply the spool-full policy inside the caller's transaction.

        Returns the rows still to insert, their size, and (old rows deleted,
        bytes freed); the counter row is written here, in the same transaction.
        """
        assert self._max_bytes is not None
        if self._full_policy == "drop_newest" or size > self._max_bytes:
            self.drops.persist(self._conn, "spool_full", len(rows))
            return [], 0, (0, 0)
        need = self._bytes + size - int(self._max_bytes * (1 - DROP_HEADROOM))
        freed, ids = 0, []
        for row_id, length in self._conn.execute(f"SELECT id, {_BYTES} FROM records ORDER BY id"):
            if freed >= need:
                break
            ids.append(row_id)
            freed += length
        deleted, freed = self.delete_ids(ids)
        self.drops.persist(self._conn, "spool_full", deleted)
        return rows, size, (deleted, freed)

    def mark_announced(self, dropped: dict[str, int]) -> None:
        """Record in the file that these drops were told to the server."""
        with self.hold() as conn:
            if not self.closed:
                self.drops.mark_announced(conn, dropped)

    def mirrored(self, limit: int) -> list[Row] | None:
        """The oldest ``limit`` rows from the mirror; None when it is not active
        (or the spool is closed): read them from the table."""
        if not self._mirror.active:
            return None
        with self.hold():
            if self._mirror.active and not self.closed:
                return self._mirror.head(limit)
        return None

    def delete_ids(self, ids: list[int]) -> tuple[int, int]:
        """Holding: delete these rows (those still there); return (rows deleted,
        bytes freed). The caller's transaction decides when; ``forget`` follows."""
        if not ids:
            return 0, 0
        self._mirror.stop()
        freed = self._conn.execute(
            f"DELETE FROM records WHERE id IN (SELECT value FROM json_each(?)) RETURNING {_BYTES}",
            (json.dumps(ids),),
        ).fetchall()
        return len(freed), sum(size for (size,) in freed)

    def forget(self, rows: int, nbytes: int) -> None:
        """Holding: committed deletions, in the in-memory totals."""
        self._changed = True
        self._rows -= rows
        self._bytes -= nbytes
        if self._rows == 0 and not self._mirror.active:
            self._mirror.restart()

    def delete(self, ids: list[int]) -> None:
        """Delete these rows (those still there); raises ``sqlite3.Error``."""
        with self.hold():
            self.forget(*self.delete_ids(ids))

    def delete_acked(self, ids: list[int], nbytes: int) -> None:
        """Delete acknowledged rows holding ``nbytes``; keep the totals exact.
        Raises ``sqlite3.Error`` (a full disk refuses a DELETE)."""
        run = _run_of(ids)  # checked before taking the connection
        with self.hold():
            try:
                self._delete_acked(ids, run, nbytes)
            except sqlite3.Error:
                self._mirror.stop()  # the copy still holds them; the caller skips them
                raise

    def _delete_acked(self, ids: list[int], run: tuple[int, int] | None, nbytes: int) -> None:
        if run is None:
            # Not one run of ids (dead letters or skipped rows between them).
            # The size freed comes from the rows actually deleted: drop_oldest
            # may have removed some of these while they were in flight.
            self.forget(*self.delete_ids(ids))
            return
        # One run of ids, the usual case: a range delete, faster than matching
        # a list and returning each row's size.
        lo, hi = run
        deleted = self._conn.execute(
            "DELETE FROM records WHERE id BETWEEN ? AND ?", (lo, hi)
        ).rowcount
        if deleted == len(ids):
            self._mirror.remove_oldest(lo, hi, deleted, nbytes)  # the usual ack
            self.forget(deleted, nbytes)
        else:  # drop_oldest took some of them meanwhile (a full spool): count again
            self._mirror.stop()
            self._changed = True
            self._rows, self._bytes, _ = self._conn.execute(_TOTALS).fetchone()

    def reload_totals(self) -> None:
        """Holding: rows came back to the table with their old times (requeued
        dead letters): no mirror, no bound on the oldest row, totals counted again."""
        self._mirror.stop()
        self.oldest_bound = -math.inf
        self._rows, self._bytes, last_id = self._conn.execute(_TOTALS).fetchone()
        self._next_id = max(self._next_id, last_id + 1)

    def stop_mirror(self) -> None:
        """Holding: the table is about to change in a way the mirror does not follow."""
        self._mirror.stop()

    def checkpoint(self, *, when_due: bool = False) -> None:
        """Move WAL content into the database file.

        ``when_due``: only once ``CHECKPOINT_ROWS`` rows changed or
        ``CHECKPOINT_EVERY`` passed with any change, so appenders wait behind
        few checkpoints.
        """
        now = time.monotonic()
        if (
            not when_due
            or self._unckpt >= CHECKPOINT_ROWS
            or (self._changed and now - self._checkpointed_at >= CHECKPOINT_EVERY)
        ):
            self._sync_wal()
            with self.hold() as conn:
                if not self.closed:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self._unckpt, self._changed, self._checkpointed_at = 0, False, now

    def _sync_wal(self) -> None:
        """Sync (fdatasync) the WAL ahead of a checkpoint, without holding the connection."""
        # With synchronous=NORMAL a checkpoint syncs the WAL, then the database
        # file, all while it holds the one connection and appenders wait.
        # Synced here first, appenders go on meanwhile and the checkpoint's own
        # sync finds little left. SQLite still syncs, so a failure here is
        # ignored. The descriptor stays open until close(): closing one drops
        # the process's POSIX locks on that file. https://www.sqlite.org/wal.html#ckpt
        if self.closed:  # also an abandoned spool in a forked child: its lock may be stale
            return
        with self._wal_fd_lock:
            if self.closed:
                return
            try:
                if self._wal_fd is None:
                    self._wal_fd = _open_regular(Path(f"{self.path}-wal"), os.O_RDONLY)
                os.fdatasync(self._wal_fd)
            except (OSError, UnsafeSpoolFile) as exc:
                logger.debug("log-collector: cannot sync %s-wal ahead: %s", self.path, exc)

    def close(self) -> tuple[int | None, int | None]:
        """Holding: close the connection and the WAL descriptor (not the lock);
        return (rows left, dead letters), None where the file cannot say."""
        self.closed = True
        left = dead = None
        try:
            left = self._conn.execute("SELECT count(*) FROM records").fetchone()[0]
            dead = self._conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        except sqlite3.Error as exc:  # a broken file: keep it, release everything
            logger.warning("log-collector: cannot read %s while closing it: %s", self.path, exc)
        finally:
            try:
                self._conn.close()
            finally:
                with self._wal_fd_lock:
                    if self._wal_fd is not None:
                        with contextlib.suppress(OSError):
                            os.close(self._wal_fd)
                        self._wal_fd = None
        return left, dead

    def abandon(self) -> list[Any]:
        """Drop this file in a forked child without touching the parent's handles.

        Closing the inherited SQLite connection in the child could release or
        corrupt the parent's locks (https://www.sqlite.org/howtocorrupt.html,
        section 2.6); the caller keeps the returned objects alive forever so
        their finalisers never run. The lock descriptor is closed: the flock
        belongs to the open file description, which the parent still holds.
        """
        self.closed = True
        with contextlib.suppress(OSError):
            st = os.fstat(self.lock_fd)
            _INHERITED.add((st.st_dev, st.st_ino))
            os.close(self.lock_fd)
        return [self._conn]
