"""Opening SQLite connections to spool files, transactions, and error classes.

``connect`` is the one place the spool opens a connection; each role names the
URI mode and the pragmas its work needs. ``transaction`` is the one way a
write of more than one statement commits.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._base import SIDE_SUFFIXES, UnsafeSpoolFile

BUSY_TIMEOUT_MS = 5_000

Role = Literal["write", "schema", "inspect", "read", "frozen"]


@dataclass(frozen=True)
class _RoleSpec:
    uri_query: str
    isolation_level: str | None = None  # None: autocommit, transactions are explicit
    pragmas: tuple[str, ...] = ()


_ROLES: dict[Role, _RoleSpec] = {
    # The one connection of a live spool. Exclusive locking mode, set before
    # its first read: SQLite keeps the WAL index in heap memory and takes no
    # file lock per transaction. Only this process can read the file while it
    # lives; ``status`` reads the snapshot the sender writes beside it.
    # The producer never checkpoints: an automatic checkpoint would run on the
    # application thread that happened to commit. The sender checkpoints.
    # https://www.sqlite.org/pragma.html#pragma_locking_mode
    # https://www.sqlite.org/wal.html#noshm
    "write": _RoleSpec("mode=rw", pragmas=("locking_mode=EXCLUSIVE", "wal_autocheckpoint=0")),
    # WAL mode and the schema: sqlite-utils' migrations runner needs Python's
    # default transaction handling, which the write connection does not use.
    "schema": _RoleSpec("mode=rw", isolation_level=""),
    # The figures of an orphan for ``status``.
    "inspect": _RoleSpec("mode=rw"),
    # The meta table, read without changing the file; salvage's first pass.
    "read": _RoleSpec("mode=ro"),
    # A file SQLite must take as it is, WAL ignored: salvage of a damaged file.
    # https://www.sqlite.org/uri.html#uriimmutable
    "frozen": _RoleSpec("immutable=1"),
}


def connect(
    path: Path, role: Role, *, fd: int | None = None, durability: str = "normal"
) -> sqlite3.Connection:
    """A connection to the spool ``path`` set up for ``role``; with ``fd`` (the
    file, opened by us without following links), only if SQLite opened that
    same file. ``durability`` applies to the write connection."""
    spec = _ROLES[role]
    # mode=rw: never create a file here; a vanished spool must not come back empty.
    conn = sqlite3.connect(
        f"file:{path}?{spec.uri_query}",
        uri=True,
        isolation_level=spec.isolation_level,
        check_same_thread=False,
    )
    try:
        if fd is not None:
            _verify_same_file(path, fd)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        for pragma in spec.pragmas:
            conn.execute(f"PRAGMA {pragma}")
        if role == "write":
            # NORMAL: a committed row survives the process being killed (the WAL
            # is in the OS page cache), not necessarily a power cut; FULL fsyncs
            # the WAL on every commit. https://www.sqlite.org/pragma.html#pragma_synchronous
            conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
    except BaseException:
        conn.close()
        raise
    return conn


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


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if anything in between
    (or the commit) raises: the statements inside take effect together or not
    at all, so a drop and its counter, or a move of rows, never half-happens."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def is_busy(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def is_corruption(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
