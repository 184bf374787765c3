"""The ``Spool``: one open spool file as the client and its sender use it.

Appending (the group commit) is ``SpoolConnection``'s (``_connection``); this
adds opening and adopting a file, reads, acks, dead letters, checkpoints,
the status snapshot, expiry and closing."""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._forkgate import GATE
from ._base import (
    _BYTES,
    _INHERITED,
    ACK_CHUNK,
    CHECKPOINT_EVERY,
    CHECKPOINT_ROWS,
    SNAPSHOT_EVERY,
    SNAPSHOT_SUFFIX,
    SUFFIX,
    NotAdoptable,
    Row,
    UnsafeSpoolFile,
    _is_busy,
    _lock,
    _open_regular,
    _prepare,
    _remove_files,
    _rollback,
    _size,
    logger,
)
from ._connection import SpoolConnection
from ._files import read_meta, write_snapshot
from ._trust import check_directory


def _run_of(ids: list[int]) -> tuple[int, int] | None:
    """(lowest, highest) when ``ids`` are exactly the integers of that range."""
    lo, hi = min(ids), max(ids)
    return (lo, hi) if hi - lo + 1 == len(ids) == len(set(ids)) else None


class Spool(SpoolConnection):
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
        super().__init__(path, lock_fd, **options)
        self._undeleted: set[int] = set()  # acknowledged, but the DELETE failed
        self._max_record_age = max_record_age
        self._clock = clock
        self._dead = self._wconn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        self._meta = dict(self._wconn.execute("SELECT key, value FROM meta"))
        self._snapshot_at = 0.0
        self._checkpointed_at = time.monotonic()
        self._wal_fd: int | None = None  # for the sync before a checkpoint; kept open
        self._wal_fd_lock = threading.Lock()  # close() must not close it mid-fsync
        self.write_snapshot(force=True)

    @classmethod
    def create(
        cls, directory: Path, *, target_url: str, service: str | None = None, **options: Any
    ) -> Spool:
        """A new spool file owned (locked) by this process, in ``directory``
        (made if missing; ``UnsafeSpoolDir`` if another user can write to it)."""
        check_directory(directory)
        name = f"{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
        path = directory / name
        tmp = directory / f".{name}.tmp"
        # Created under a name no scanner looks at, locked, then renamed: there is
        # no moment at which another process could find it unlocked. O_EXCL with
        # O_CREAT never opens an existing name, a planted link included.
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            _lock(fd)
            os.rename(tmp, path)
            with GATE:
                _prepare(path, fd, target_url=target_url, service=service)
                return cls(path, fd, **options)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
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
        try:
            fd = _open_regular(path, os.O_RDWR)
        except FileNotFoundError:
            raise NotAdoptable(f"{path} vanished") from None
        try:
            if not _lock(fd):
                raise NotAdoptable(f"{path} is in use by a live process")
            # The previous owner may have removed the file after we opened it; a
            # lock on an unlinked inode protects nothing.
            st = os.fstat(fd)
            try:
                now = os.lstat(path)
                same = (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)
            except FileNotFoundError:
                same = False
            if not same:
                raise NotAdoptable(f"{path} vanished")
            if (st.st_dev, st.st_ino) in _INHERITED:
                raise NotAdoptable(
                    f"{path} was inherited from the parent process; a new process adopts it"
                )
            if st.st_size == 0:
                # Its owner died between creating and initialising it.
                _remove_files(path)
                raise NotAdoptable(f"{path} was never initialised; removed")
            with GATE:
                if target_url is not None:
                    found = read_meta(path, fd).get("target_url")
                    if found is not None and found != target_url:
                        raise NotAdoptable(f"{path} ships to {found}, not {target_url}")
                _prepare(path, fd, target_url=None, service=None)
                try:
                    return cls(path, fd, **options)
                except sqlite3.OperationalError as exc:
                    if _is_busy(exc):
                        raise NotAdoptable(f"{path} is open elsewhere ({exc})") from exc
                    raise
        except BaseException:
            os.close(fd)
            raise

    def read_batch(self, limit: int) -> list[Row]:
        """The oldest ``limit`` rows, by id. Nothing is removed until ``ack``."""
        if self._max_record_age is not None:
            self._expire()
        if self._undeleted:
            self._retry_deletes()
        if self._mirror.active:
            with self._exclusive():
                if self._mirror.active and not self.closed:
                    return self._mirror.head(limit)
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
            chunk = ids[start : start + ACK_CHUNK]
            # Sized and checked for one run of ids here, before taking the connection.
            nbytes = sum(_size(body) for _, body in rows[start : start + ACK_CHUNK])
            run = _run_of(chunk)
            with self._exclusive():
                try:
                    self._delete_acked(chunk, run, nbytes)
                except sqlite3.Error as exc:
                    # A DELETE needs room in the WAL, so a full disk refuses it.
                    # The server has these rows: remember them (ids only grow in
                    # this process), never send them again, delete them later.
                    self._undeleted.update(ids[start:])
                    self._mirror.stop()  # the copy still holds them; reads skip them
                    logger.warning(
                        "log-collector: cannot delete sent rows from %s: %s", self.path, exc
                    )
                    return

    def _delete_acked(self, ids: list[int], run: tuple[int, int] | None, nbytes: int) -> None:
        """Delete acknowledged rows holding ``nbytes``; keep the totals exact.
        ``run``: (lowest, highest) when the ids are exactly that range."""
        if run is None:
            # Not one run of ids (dead letters or skipped rows between them).
            # The size freed comes from the rows actually deleted: drop_oldest
            # may have removed some of these while they were in flight.
            self._forget(*self._delete_ids(ids))
            return
        # One run of ids, the usual case: a range delete, about twice as fast
        # as matching a list and returning each row's size.
        lo, hi = run
        deleted = self._wconn.execute(
            "DELETE FROM records WHERE id BETWEEN ? AND ?", (lo, hi)
        ).rowcount
        if deleted == len(ids):
            self._mirror.remove_oldest(lo, hi, deleted, nbytes)  # the usual ack
            self._forget(deleted, nbytes)
        else:  # drop_oldest took some of them meanwhile (a full spool): count again
            self._mirror.stop()
            self._changed = True
            self._rows, self._bytes = self._wconn.execute(
                f"SELECT count(*), coalesce(sum({_BYTES}), 0) FROM records"
            ).fetchone()

    def _retry_deletes(self) -> None:
        with self._exclusive():
            try:
                self._forget(*self._delete_ids(sorted(self._undeleted)))
            except sqlite3.Error:
                return
            self._undeleted.clear()

    def dead_letter(self, rows: list[tuple[Row, str]]) -> None:
        """Move rows the server refused for good to ``dead_letters``, with the reason."""
        if not rows:
            return
        now = self._clock()
        with self._exclusive() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT INTO dead_letters(created_at, body, reason, failed_at) "
                    "SELECT created_at, body, ?, ? FROM records WHERE id = ?",
                    [(reason, now, row_id) for (row_id, _), reason in rows],
                )
                deleted, freed = self._delete_ids([row_id for (row_id, _), _ in rows])
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
            self._forget(deleted, freed)
            self._dead += deleted
            self.counters.dead_lettered += len(rows)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Rows from the one connection; none once the spool is closed
        (flush() may look at a spool the sender has just drained and closed)."""
        with self._exclusive() as conn:
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
        with self._exclusive() as conn:
            self._mirror.stop()
            self._min_created = -math.inf  # dead letters come back with their old times
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Ids continue from this process's counter: never one handed out before.
                moved = conn.execute(
                    "INSERT INTO records(id, created_at, body) "
                    "SELECT ? + row_number() OVER (ORDER BY id), created_at, body "
                    "FROM dead_letters ORDER BY id",
                    (self._next_id - 1,),
                ).rowcount
                conn.execute("DELETE FROM dead_letters")
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
            self._rows, self._bytes, last_id = conn.execute(
                f"SELECT count(*), coalesce(sum({_BYTES}), 0), coalesce(max(id), 0) FROM records"
            ).fetchone()
            self._dead = 0
            self._next_id = max(self._next_id, last_id + 1)
            return moved

    def checkpoint(self, *, when_due: bool = False) -> None:
        """Move WAL content into the database file; refresh the status snapshot.

        ``when_due`` (the sender's call after each batch and before each wait):
        only once ``CHECKPOINT_ROWS`` rows changed or ``CHECKPOINT_EVERY``
        passed with any change, so appenders wait behind few checkpoints.
        """
        now = time.monotonic()
        if (
            not when_due
            or self._unckpt >= CHECKPOINT_ROWS
            or (self._changed and now - self._checkpointed_at >= CHECKPOINT_EVERY)
        ):
            self._sync_wal()
            self._read("PRAGMA wal_checkpoint(PASSIVE)")
            self._unckpt, self._changed, self._checkpointed_at = 0, False, now
        self.write_snapshot()

    def _sync_wal(self) -> None:
        """fsync the WAL ahead of a checkpoint, without holding the connection."""
        # With synchronous=NORMAL a checkpoint syncs the WAL, then the database
        # file, all while it holds the one connection and appenders wait.
        # Synced here first, appenders go on meanwhile and the checkpoint's own
        # sync finds little left (its hold: ~7 ms -> ~1.3 ms in scripts/ runs).
        # SQLite still syncs, so a failure here is ignored. The descriptor stays
        # open until close(): closing one drops the process's POSIX locks on
        # that file. https://www.sqlite.org/wal.html#ckpt
        if self.closed:  # also an abandoned spool in a forked child: its lock may be stale
            return
        with self._wal_fd_lock:
            if self.closed:
                return
            try:
                if self._wal_fd is None:
                    self._wal_fd = _open_regular(Path(f"{self.path}-wal"), os.O_RDONLY)
                os.fsync(self._wal_fd)
            except (OSError, UnsafeSpoolFile) as exc:
                logger.debug("log-collector: cannot sync %s-wal ahead: %s", self.path, exc)

    def write_snapshot(self, *, force: bool = False) -> None:
        """What ``log-collector status`` shows for this spool while it is locked.

        From the in-memory totals and one lookup by id, so it never scans a
        backlog; at most once per ``SNAPSHOT_EVERY`` unless ``force``.
        """
        now = time.monotonic()
        if self.closed or (not force and now - self._snapshot_at < SNAPSHOT_EVERY):
            return
        self._snapshot_at = now
        oldest = self._read("SELECT created_at FROM records ORDER BY id LIMIT 1")
        doc = {
            "rows": self.pending(),
            "bytes": self._bytes,
            "oldest_created_at": oldest[0][0] if oldest else None,
            "dead_letters": self._dead,
            "target_url": self._meta.get("target_url"),
            "service": self._meta.get("service"),
            "pid": str(os.getpid()),
            "dropped": dict(self.counters.dropped),
            "written_at": time.time(),
        }
        write_snapshot(self.path, doc)

    def _expire(self) -> None:
        assert self._max_record_age is not None
        cutoff = self._clock() - self._max_record_age
        if cutoff <= self._min_created:
            return  # no row is that old
        with self._exclusive() as conn:
            count, freed, oldest_kept = conn.execute(
                "SELECT count(*) FILTER (WHERE created_at < ?1), "
                f"coalesce(sum({_BYTES}) FILTER (WHERE created_at < ?1), 0), "
                "min(created_at) FILTER (WHERE created_at >= ?1) FROM records",
                (cutoff,),
            ).fetchone()
            if count:
                self._drop_expired(conn, cutoff, count, freed)
            # None: no row left; the next append sets the bound.
            self._min_created = math.inf if oldest_kept is None else oldest_kept

    def _drop_expired(
        self, conn: sqlite3.Connection, cutoff: float, count: int, freed: int
    ) -> None:
        self._mirror.stop()
        conn.execute("BEGIN IMMEDIATE")  # the drop and its counter together
        try:
            conn.execute("DELETE FROM records WHERE created_at < ?", (cutoff,))
            self._persist_drop("max_record_age", count)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        self._forget(count, freed)
        self._note_drop("max_record_age", count)

    def pending(self) -> int:
        return 0 if self.closed else self._rows - len(self._undeleted)

    def high_water(self) -> int:
        """The largest id handed out so far: every row appended before this call has id <= it."""
        return self._next_id - 1

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

    def nbytes(self) -> int:
        return self._bytes

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
        with self._exclusive():
            if self.closed:
                return 0
            self.closed = True
            left = dead = None
            try:
                left = self._wconn.execute("SELECT count(*) FROM records").fetchone()[0]
                dead = self._wconn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
            except sqlite3.Error as exc:  # a broken file: keep it, release everything
                logger.warning("log-collector: cannot read %s while closing it: %s", self.path, exc)
            finally:
                try:
                    self._wconn.close()
                finally:
                    with self._wal_fd_lock:
                        if self._wal_fd is not None:
                            with contextlib.suppress(OSError):
                                os.close(self._wal_fd)
                            self._wal_fd = None
            with contextlib.suppress(OSError):  # a closed spool is read directly
                os.unlink(f"{self.path}{SNAPSHOT_SUFFIX}")
            try:
                if remove_if_empty and left == 0 and dead == 0:
                    # Unlinked while the lock is still held: a process waiting for the
                    # lock sees a different (or no) inode and leaves it alone.
                    _remove_files(self.path)
            finally:
                os.close(self._lock_fd)
            return left or 0

    def abandon(self) -> list[Any]:
        """Drop this spool in a forked child without touching the parent's handles.

        Closing the inherited SQLite connection in the child could release or
        corrupt the parent's locks (https://www.sqlite.org/howtocorrupt.html,
        section 2.6); the caller keeps the returned objects alive forever so
        their finalisers never run. The lock descriptor is closed: the flock
        belongs to the open file description, which the parent still holds.
        """
        self.closed = True
        with contextlib.suppress(OSError):
            st = os.fstat(self._lock_fd)
            _INHERITED.add((st.st_dev, st.st_ino))
            os.close(self._lock_fd)
        return [self._wconn]
