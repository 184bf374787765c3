"""What every part of the spool shares: names, limits, errors, locking and opening files."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
# behind it: a few checkpoints, not one per batch. Each single-row commit adds
# a 4 KiB WAL frame, an ack of 1,000 rows a few dozen: the WAL stays near
# 10 MiB. Measurements: docs/performance.md.
CHECKPOINT_ROWS = 2_000
CHECKPOINT_EVERY = 1.0  # seconds
# An ack of a larger batch deletes this many rows per transaction and lets
# waiting appenders commit in between (chosen by measurement: docs/performance.md).
ACK_CHUNK = 1000
# While the records table is small, the spool keeps a copy of its rows in
# memory (the mirror), so the sender's reads do not take the connection from
# the appenders. Past this size, or after anything but an append or an ack of
# the oldest rows, reads go to SQLite until the table is empty again.
MIRROR_BYTES = 8 * 2**20
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


# SQLite's unix VFS locks these bytes of a database file with POSIX record locks: the
# pending byte, the reserved byte and the 510-byte shared range after them. A connection in
# exclusive locking mode (every live spool's) holds a lock there for as long as it lives.
# https://www.sqlite.org/lockingv3.html, os_unix.c (PENDING_BYTE, SHARED_FIRST, SHARED_SIZE)
_SQLITE_LOCK_START = 0x40000000
_SQLITE_LOCK_LEN = 2 + 510
# Linux's struct flock: l_type, l_whence, l_start, l_len, l_pid (and padding to 32 bytes).
_FLOCK = struct.Struct("hhqqi4x")


def _sqlite_locked(fd: int) -> bool:
    """Whether another process holds SQLite's lock on the database file open as ``fd``:
    a client that owns its spool without ``flock`` (the JavaScript client has none) is
    alive while it does. Asks with F_GETLK, which takes no lock, so closing ``fd`` later
    drops nothing of this process. False where the layout of struct flock is not Linux's."""
    if not sys.platform.startswith("linux"):
        return False
    query = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, _SQLITE_LOCK_START, _SQLITE_LOCK_LEN, 0)
    try:
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
    except OSError:
        return False
    return _FLOCK.unpack(answer)[0] != fcntl.F_UNLCK


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


def _remove_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", SNAPSHOT_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
