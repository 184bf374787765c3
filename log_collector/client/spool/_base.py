"""What every part of the spool shares: names, limits, errors, opening a file.

The spool package is the one place that holds SQL for spool files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sqlite3
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ...common import migrations as _migrations

logger = logging.getLogger("log_collector")

SUFFIX = ".spool"
# Files beside a spool that SQLite opens by name: the WAL and the shared-memory index.
SIDE_SUFFIXES = ("-wal", "-shm")
# Beside a live spool: what it held at the owner's last checkpoint (``status``
# cannot open a file another process holds in exclusive locking mode).
SNAPSHOT_SUFFIX = ".status"
SNAPSHOT_EVERY = 1.0  # seconds, at most one snapshot write per interval
# The sender checkpoints once this many rows were appended since the last
# checkpoint, or once a second after any change. A checkpoint holds the one
# connection (it syncs the WAL and then the database file), so appenders wait
# behind it: one per batch put ~2 ms on every 1,000th log call. Each
# single-row commit adds a 4 KiB WAL frame, an ack of 1,000 rows a few dozen:
# the WAL stays near 10 MiB.
CHECKPOINT_ROWS = 2_000
CHECKPOINT_EVERY = 1.0  # seconds
# An ack of a larger batch deletes this many rows per transaction and lets
# waiting appenders commit in between (a range DELETE of 1,000 rows holds the
# connection ~0.3-0.6 ms here; 250 and 500 gave a worse p99 and no better p99.9).
ACK_CHUNK = 1000
# While the records table is small, the spool keeps a copy of its rows in
# memory (the mirror), so the sender's reads do not take the connection from
# the appenders (a 1,000-row SELECT held it 0.25-0.4 ms). Past this size, or
# after anything but an append or an ack of the oldest rows, reads go to
# SQLite until the table is empty again.
MIRROR_BYTES = 4 * 2**20
SCHEMA_KIND = "spool"
BUSY_TIMEOUT_MS = 5_000
# Room made by drop_oldest beyond the cap, so a full spool does not delete on every append.
DROP_HEADROOM = 0.05
# A drop episode ends (and is announced once) when the spool is back under this share of the cap.
ROOM_AGAIN = 0.5

Row = tuple[int, str]  # (id, body)
_INSERT = "INSERT INTO records(id, created_at, body) VALUES (?, ?, ?)"
# max_spool_bytes counts UTF-8 bytes, not characters: non-ASCII text is up to 4x longer on disk.
_BYTES = "length(CAST(body AS BLOB))"


def _size(body: str) -> int:
    return len(body) if body.isascii() else len(body.encode("utf-8", "surrogatepass"))


FallbackFn = Callable[[list[tuple[float, str]], BaseException], None]


class SpoolError(Exception):
    """The spool file cannot be used (unreadable, corrupt, from a newer version)."""


class UnsafeSpoolDir(SpoolError):
    """The spool directory can be written by another user, or belongs to one (``_trust``)."""


class SpoolClosed(SpoolError):
    """An append raced with close(); the row goes to the fallback."""


class NotAdoptable(Exception):
    """The file is owned by a live process, vanished, or ships to another server."""


class UnsafeSpoolFile(NotAdoptable, SpoolError):
    """A spool file (or its side file) is a link, not a regular file, or not ours.

    A ``NotAdoptable``: an orphan scan leaves it where it is (never moved aside
    or salvaged, which would open it); a ``SpoolError``: creating our own spool
    treats it as "no spool for now"."""


# (st_dev, st_ino) of spool files this process abandoned after a fork: SQLite
# here still counts the inherited connection's exclusive lock on them, so only
# another process can open them.
_INHERITED: set[tuple[int, int]] = set()


@dataclass
class SpoolCounters:
    appended: int = 0
    acknowledged: int = 0
    dead_lettered: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _open_regular(path: Path, flags: int) -> int:
    """``os.open`` that refuses a symbolic link or anything but a regular file
    (``UnsafeSpoolFile``); ``FileNotFoundError`` passes through."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeSpoolFile(f"{path} is a symbolic link; not followed") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeSpoolFile(f"{path} is not a regular file")
    return fd


def _verify_same_file(path: Path, fd: int) -> None:
    """Raise ``UnsafeSpoolFile`` unless ``path`` (not followed) is still the
    regular file open as ``fd`` and its side files are regular files too.

    SQLite opens a database by name and follows a link there. Checked right
    after ``sqlite3.connect`` opened the file and before any statement reads or
    writes it, so a link swapped in for the locked file is caught first. A swap
    and swap back between SQLite's open and this check needs write access to
    the directory, which ``_trust.check_directory`` leaves to this user and root.
    """
    opened = os.fstat(fd)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise UnsafeSpoolFile(f"{path} vanished") from None
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (opened.st_dev, opened.st_ino):
        raise UnsafeSpoolFile(f"{path} was replaced by another file or a link")
    for suffix in SIDE_SUFFIXES:
        try:
            side = os.lstat(f"{path}{suffix}")
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(side.st_mode):
            raise UnsafeSpoolFile(f"{path}{suffix} is a symbolic link or not a regular file")


def _connect(
    path: Path, *, uri_mode: str = "rw", fd: int | None = None, isolation_level: str | None = None
) -> sqlite3.Connection:
    """A connection to the spool ``path``; with ``fd`` (the file, opened by us
    without following links), only if SQLite opened that same file."""
    # mode=rw: never create a file here; a vanished spool must not come back empty.
    conn = sqlite3.connect(
        f"file:{path}?mode={uri_mode}",
        uri=True,
        isolation_level=isolation_level,
        check_same_thread=False,
    )
    try:
        if fd is not None:
            _verify_same_file(path, fd)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except BaseException:
        conn.close()
        raise
    return conn


def _is_busy(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def is_corruption(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _prepare(path: Path, fd: int, *, target_url: str | None, service: str | None) -> None:
    """WAL mode and the schema, on a short-lived connection of its own, to the
    file open as ``fd``.

    sqlite-utils' migrations runner needs Python's default transaction handling,
    which the hot-path connection (autocommit, explicit BEGIN) does not use.
    """
    conn = _connect(path, fd=fd, isolation_level="")
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        known = {name for name, _ in _migrations.sql_files(SCHEMA_KIND)}
        applied = set(_migrations.applied_sqlite(conn, SCHEMA_KIND))
        if applied - known:
            raise SpoolError(
                f"{path} was written by a newer log-collector (schema steps "
                f"{sorted(applied - known)}); leaving it for that version"
            )
        _migrations.apply_sqlite(conn, SCHEMA_KIND)
        with conn:
            if target_url is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('target_url', ?)",
                    (target_url,),
                )
            facts = [("pid", str(os.getpid())), ("schema_version", str(len(known)))]
            if service is not None:  # adoption passes None: keep the writer's service
                facts.append(("service", service))
            conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", facts)
    except sqlite3.DatabaseError as exc:
        if _is_busy(exc):  # open in another program: not damage, try again later
            raise NotAdoptable(f"{path} is open elsewhere ({exc})") from exc
        raise SpoolError(f"{path} is not a usable spool: {exc}") from exc
    finally:
        conn.close()


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")


def _remove_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", SNAPSHOT_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
