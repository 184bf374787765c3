"""The ``Spool``: one open spool file as the client and its sender use it.

It holds a ``SpoolConnection`` (``_connection``: the write connection, group
commit, spool-full policy, totals) and adds opening and adopting a file, the
sender's reads, acks and dead letters, expiry, checkpoints with the status
snapshot, and closing."""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._forkgate import GATE
from ._base import (
    _BYTES,
    ACK_CHUNK,
    SNAPSHOT_EVERY,
    SNAPSHOT_SUFFIX,
    NotAdoptable,
    Row,
    SpoolCounters,
    _remove_files,
    _size,
    logger,
)
from ._connection import SpoolConnection
from ._files import write_snapshot
from ._open import check_target, lock_orphan, new_locked_file, prepare
from ._sqlite import is_busy, transaction
from ._trust import check_directory


class Spool:
    """One open spool file, locked by this process."""

    def __init__(
        self,
        path: Path,
        lock_fd: int,
        *,
        max_record_age: float | None = None,
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        """``options``: those of ``SpoolConnection`` (durability, limits, fallback)."""
        self._conn = SpoolConnection(path, lock_fd, **options)
        self._undeleted: set[int] = set()  # acknowledged, but the DELETE failed
        self._max_record_age = max_record_age
        self._clock = clock
        with self._conn.hold() as conn:
            self._dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
            self._meta = dict(conn.execute("SELECT key, value FROM meta"))
        self._snapshot_at = 0.0
        self.write_snapshot(force=True)

    @classmethod
    def create(
        cls,
        directory: Path,
        *,
        target_url: str,
        service: str | None = None,
        wire: str | None = None,
        **options: Any,
    ) -> Spool:
        """A new spool file owned (locked) by this process, in ``directory``
        (made if missing; ``UnsafeSpoolDir`` if another user can write to it); ``wire``
        is kept in its meta table for ``replay``."""
        check_directory(directory)
        path, fd = new_locked_file(directory)
        try:
            with GATE:
                prepare(path, fd, target_url=target_url, service=service, wire=wire)
                return cls(path, fd, **options)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def adopt(cls, path: Path, *, target_url: str | None = None, **options: Any) -> Spool:
        """Take over an orphaned spool file; raises NotAdoptable or SpoolError.

        ``path`` is never followed: a symbolic link, anything but a regular file,
        or a side file (``-wal``, ``-shm``) that is a link raises
        ``UnsafeSpoolFile`` (a NotAdoptable) before SQLite opens anything. Who
        owns the file is the orphan scan's question (``candidates``): a user
        may replay another user's spool by hand.
        """
        fd = lock_orphan(path)
        try:
            with GATE:
                check_target(path, fd, target_url)
                prepare(path, fd, target_url=None, service=None)
                try:
                    return cls(path, fd, **options)
                except sqlite3.OperationalError as exc:
                    if is_busy(exc):
                        raise NotAdoptable(f"{path} is open elsewhere ({exc})") from exc
                    raise
        except BaseException:
            os.close(fd)
            raise

    @property
    def path(self) -> Path:
        return self._conn.path

    @property
    def lock_fd(self) -> int:
        """The descriptor that holds the file's ``flock``."""
        return self._conn.lock_fd

    @property
    def counters(self) -> SpoolCounters:
        return self._conn.counters

    @property
    def closed(self) -> bool:
        return self._conn.closed

    @closed.setter
    def closed(self, value: bool) -> None:
        self._conn.closed = value

    @property
    def drop_notice(self) -> dict[str, int] | None:
        """Drops not yet told to the server; the client turns them into one WARN record."""
        return self._conn.drops.notice

    @drop_notice.setter
    def drop_notice(self, value: dict[str, int] | None) -> None:
        self._conn.drops.notice = value

    def append(self, created_at: float, body: str) -> None:
        """Durably store one record before returning (or hand it to the fallback)."""
        self._conn.append(created_at, body)

    def rehearsal(self) -> contextlib.AbstractContextManager[bool]:
        """Appends inside are rolled back (``SpoolConnection.rehearsal``)."""
        return self._conn.rehearsal()

    def append_rows(self, rows: list[tuple[float, str]]) -> None:
        """Many rows in one transaction (salvage, not the hot path)."""
        self._conn.append_rows(rows)

    def mark_announced(self, dropped: dict[str, int]) -> None:
        """Record in the file that these drops were told to the server."""
        self._conn.mark_announced(dropped)

    def hold(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """The one connection, with no commit in progress, for SQL the spool has
        no method for (tests, maintenance). It holds the file in exclusive
        locking mode, so no other connection can open the file while it lives."""
        return self._conn.hold()

    def read_batch(self, limit: int) -> list[Row]:
        """The oldest ``limit`` rows, by id. Nothing is removed until ``ack``."""
        if self._max_record_age is not None:
            self._expire()
        if self._undeleted:
            self._retry_deletes()
        mirrored = self._conn.mirrored(limit)
        if mirrored is not None:
            return mirrored
        skip = self._undeleted
        rows = self._read("SELECT id, body FROM records ORDER BY id LIMIT ?", (limit + len(skip),))
        return [row for row in rows if row[0] not in skip][:limit] if skip else rows

    def ack(self, rows: list[Row]) -> None:
        """Delete exactly these rows: the server has them."""
        if not rows:
            return
        ids = [row_id for row_id, _ in rows]
        self.counters.acknowledged += len(rows)
        for start in range(0, len(ids), ACK_CHUNK):
            # Sized here, before taking the connection.
            nbytes = sum(_size(body) for _, body in rows[start : start + ACK_CHUNK])
            try:
                self._conn.delete_acked(ids[start : start + ACK_CHUNK], nbytes)
            except sqlite3.Error as exc:
                # A DELETE needs room in the WAL, so a full disk refuses it.
                # The server has these rows: remember them (ids only grow in
                # this process), never send them again, delete them later.
                self._undeleted.update(ids[start:])
                logger.warning("log-collector: cannot delete sent rows from %s: %s", self.path, exc)
                return

    def _retry_deletes(self) -> None:
        try:
            self._conn.delete(sorted(self._undeleted))
        except sqlite3.Error:
            return
        self._undeleted.clear()

    def dead_letter(self, rows: list[tuple[Row, str]]) -> None:
        """Move rows the server refused for good to ``dead_letters``, with the reason."""
        if not rows:
            return
        now = self._clock()
        with self._conn.hold() as conn:
            with transaction(conn):
                conn.executemany(
                    "INSERT INTO dead_letters(created_at, body, reason, failed_at) "
                    "SELECT created_at, body, ?, ? FROM records WHERE id = ?",
                    [(reason, now, row_id) for (row_id, _), reason in rows],
                )
                deleted, freed = self._conn.delete_ids([row_id for (row_id, _), _ in rows])
            self._conn.forget(deleted, freed)
            self._dead += deleted
            self.counters.dead_lettered += len(rows)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Rows from the one connection; none once the spool is closed
        (flush() may look at a spool the sender has just drained and closed)."""
        with self._conn.hold() as conn:
            if self.closed:
                return []
            return conn.execute(sql, params).fetchall()

    def dead_letter_rows(self, limit: int = 100) -> list[tuple[int, float, str, str]]:
        """``(id, failed_at, reason, body)`` of the oldest dead letters."""
        return self._read(
            "SELECT id, failed_at, reason, body FROM dead_letters ORDER BY id LIMIT ?", (limit,)
        )

    def requeue_dead_letters(self) -> int:
        """Put every dead letter back in ``records`` (after the server was fixed)."""
        with self._conn.hold() as conn:
            self._conn.stop_mirror()
            with transaction(conn):
                # Ids continue from this process's counter: never one handed out before.
                moved = conn.execute(
                    "INSERT INTO records(id, created_at, body) "
                    "SELECT ? + row_number() OVER (ORDER BY id), created_at, body "
                    "FROM dead_letters ORDER BY id",
                    (self._conn.high_water(),),
                ).rowcount
                conn.execute("DELETE FROM dead_letters")
            self._conn.reload_totals()
            self._dead = 0
            return moved

    def checkpoint(self, *, when_due: bool = False) -> None:
        """Move WAL content into the database file; refresh the status snapshot.

        ``when_due`` (the sender's call after each batch and before each wait):
        only once enough rows changed or enough time passed with any change
        (``SpoolConnection.checkpoint``), so appenders wait behind few checkpoints.
        """
        self._conn.checkpoint(when_due=when_due)
        self.write_snapshot()

    def write_snapshot(self, *, force: bool = False) -> None:
        """What ``log-collector status`` shows for this spool while it is locked.

        From the in-memory totals and one lookup by id, so it never scans a
        backlog; at most once per ``SNAPSHOT_EVERY`` unless ``force``.
        """
        now = time.monotonic()
        if self.closed or (not force and now - self._snapshot_at < SNAPSHOT_EVERY):
            return
        self._snapshot_at = now
        doc = {
            "rows": self.pending(),
            "bytes": self.nbytes(),
            "oldest_created_at": self.oldest_created_at(),
            "dead_letters": self._dead,
            "target_url": self._meta.get("target_url"),
            "service": self._meta.get("service"),
            "pid": str(os.getpid()),
            "dropped": dict(self.counters.dropped),
            "written_at": time.time(),
        }
        write_snapshot(self.path, doc)

    def _expire(self) -> None:
        """Drop the rows older than ``max_record_age``, counted."""
        assert self._max_record_age is not None
        cutoff = self._clock() - self._max_record_age
        if cutoff <= self._conn.oldest_bound:
            return  # no row is that old
        with self._conn.hold() as conn:
            count, freed, oldest_kept = conn.execute(
                "SELECT count(*) FILTER (WHERE created_at < ?1), "
                f"coalesce(sum({_BYTES}) FILTER (WHERE created_at < ?1), 0), "
                "min(created_at) FILTER (WHERE created_at >= ?1) FROM records",
                (cutoff,),
            ).fetchone()
            if count:
                self._conn.stop_mirror()
                with transaction(conn):  # the drop and its counter together
                    conn.execute("DELETE FROM records WHERE created_at < ?", (cutoff,))
                    self._conn.drops.persist(conn, "max_record_age", count)
                self._conn.forget(count, freed)
                self._conn.drops.note("max_record_age", count)
            # None: no row left; the next append sets the bound.
            self._conn.oldest_bound = math.inf if oldest_kept is None else oldest_kept

    def pending(self) -> int:
        return 0 if self.closed else self._conn.rows - len(self._undeleted)

    def high_water(self) -> int:
        """The largest id handed out so far: every row appended before this call has id <= it."""
        return self._conn.high_water()

    def oldest_id(self) -> int | None:
        """The id of the oldest row not yet acknowledged."""
        skip = self._undeleted
        rows = self._read("SELECT id FROM records ORDER BY id LIMIT ?", (len(skip) + 1,))
        return next((row_id for (row_id,) in rows if row_id not in skip), None)

    def oldest_created_at(self) -> float | None:
        rows = self._read("SELECT created_at FROM records ORDER BY id LIMIT 1")
        return rows[0][0] if rows else None

    def target_url(self) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = 'target_url'")
        return rows[0][0] if rows else None

    def wire(self) -> str | None:
        """The wire its writer sent on (``client.wires``); None when it kept none."""
        rows = self._read("SELECT value FROM meta WHERE key = 'wire'")
        return rows[0][0] if rows else None

    def nbytes(self) -> int:
        return self._conn.nbytes

    def body_at(self, index: int) -> str | None:
        rows = self._read("SELECT body FROM records ORDER BY id LIMIT 1 OFFSET ?", (index,))
        return rows[0][0] if rows else None

    def iter_bodies(self, chunk: int = 500) -> Iterator[str]:
        after = 0
        while True:
            rows = self._read(
                "SELECT id, body FROM records WHERE id > ? ORDER BY id LIMIT ?", (after, chunk)
            )
            if not rows:
                return
            after = rows[-1][0]
            for _, body in rows:
                yield body

    def close(self, *, remove_if_empty: bool = True) -> int:
        """Close the file; remove it when nothing is left. Returns the rows left."""
        with self._conn.hold():
            if self.closed:
                return 0
            left, dead = self._conn.close()
            with contextlib.suppress(OSError):  # a closed spool is read directly
                os.unlink(f"{self.path}{SNAPSHOT_SUFFIX}")
            try:
                if remove_if_empty and left == 0 and dead == 0:
                    # Unlinked while the lock is still held: a process waiting for the
                    # lock sees a different (or no) inode and leaves it alone.
                    _remove_files(self.path)
            finally:
                os.close(self.lock_fd)
            return left or 0

    def abandon(self) -> list[Any]:
        """Drop this spool in a forked child without touching the parent's handles
        (``SpoolConnection.abandon``); keep the returned objects alive forever."""
        return self._conn.abandon()
