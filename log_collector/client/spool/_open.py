"""Getting a spool file to open: a new one made and locked, or an orphan locked
and checked; then its schema, before ``Spool`` opens its write connection."""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from pathlib import Path

from ...common import migrations as _migrations
from ._base import (
    _INHERITED,
    SUFFIX,
    NotAdoptable,
    SpoolError,
    _lock,
    _open_regular,
    _remove_files,
    _sqlite_locked,
)
from ._files import read_meta
from ._sqlite import connect, is_busy, transaction

SCHEMA_KIND = "spool"


def new_locked_file(directory: Path) -> tuple[Path, int]:
    """A new, empty spool file in ``directory`` and the descriptor holding its lock."""
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
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        os.close(fd)
        raise
    return path, fd


def lock_orphan(path: Path) -> int:
    """The descriptor holding the lock of the orphan ``path``; raises
    ``NotAdoptable`` when it is in use, vanished, inherited or never initialised,
    ``UnsafeSpoolFile`` when it is a link or not a regular file."""
    try:
        fd = _open_regular(path, os.O_RDWR)
    except FileNotFoundError:
        raise NotAdoptable(f"{path} vanished") from None
    try:
        if not _lock(fd) or _sqlite_locked(fd):
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
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_target(path: Path, fd: int, target_url: str | None) -> None:
    """Raise ``NotAdoptable`` when the spool ships to a server other than ``target_url``."""
    if target_url is not None:
        found = read_meta(path, fd).get("target_url")
        if found is not None and found != target_url:
            raise NotAdoptable(f"{path} ships to {found}, not {target_url}")


def prepare(
    path: Path,
    fd: int,
    *,
    target_url: str | None,
    service: str | None,
    wire: str | None = None,
) -> None:
    """WAL mode and the schema, on a short-lived connection of its own, to the
    file open as ``fd``."""
    conn = connect(path, "schema", fd=fd)
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
        # The pid is written by the owner's write connection (SpoolConnection).
        facts = [("schema_version", str(len(known)))]
        if service is not None:  # adoption passes None: keep the writer's service
            facts.append(("service", service))
        if wire is not None:  # and its wire (replay sends it that way)
            facts.append(("wire", wire))
        with transaction(conn):
            if target_url is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('target_url', ?)",
                    (target_url,),
                )
            conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", facts)
    except sqlite3.DatabaseError as exc:
        if is_busy(exc):  # open in another program: not damage, try again later
            raise NotAdoptable(f"{path} is open elsewhere ({exc})") from exc
        raise SpoolError(f"{path} is not a usable spool: {exc}") from exc
    finally:
        conn.close()
