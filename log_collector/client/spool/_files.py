"""Spool files from the outside: the status snapshot a live spool writes for
``status``; finding, inspecting, salvaging and moving aside files no live client holds."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from .._forkgate import GATE
from ._base import (
    _BYTES,
    SNAPSHOT_SUFFIX,
    SUFFIX,
    SpoolError,
    UnsafeSpoolFile,
    _lock,
    _open_regular,
    _sqlite_locked,
    logger,
)
from ._sqlite import Role, connect, is_corruption
from ._trust import directory_problem, screen_orphan, unsafe_reason


def read_meta(path: Path, fd: int | None = None) -> dict[str, str]:
    """The meta table of a spool file, read without locking or changing it;
    with ``fd`` (the file opened by us), only if SQLite opened that same file."""
    with GATE:
        return _read_meta(path, fd)


def _read_meta(path: Path, fd: int | None) -> dict[str, str]:
    conn = connect(path, "read", fd=fd)
    try:
        return dict(conn.execute("SELECT key, value FROM meta"))
    except sqlite3.DatabaseError as exc:
        if is_corruption(exc):
            raise SpoolError(f"{path} is not a usable spool: {exc}") from exc
        return {}
    finally:
        conn.close()


def inspect(path: Path) -> dict[str, Any]:
    """What a spool file holds, read without taking its lock (for ``status``).

    A live owner holds the file in exclusive locking mode, so its figures come
    from the snapshot it writes beside the file (``snapshot_age`` says how old).
    """
    why = unsafe_reason(path, owner=None)
    if why is not None:  # a link found in a directory scan: not followed
        return {"path": str(path), "owner_alive": False, "error": f"not opened: {why}"}
    info: dict[str, Any] = {"path": str(path), "owner_alive": False}
    try:
        info["owner_alive"] = owner_alive(path)  # PermissionError: another user's file
        info["file_bytes"] = sum(
            os.path.getsize(f"{path}{suffix}")
            for suffix in ("", "-wal")
            if os.path.exists(f"{path}{suffix}")
        )
        if info["owner_alive"]:
            info.update(_read_snapshot(path))
            return info
        with GATE:
            conn = connect(path, "inspect")
            try:
                rows, body_bytes, oldest = conn.execute(
                    f"SELECT count(*), coalesce(sum({_BYTES}), 0), min(created_at) FROM records"
                ).fetchone()
                dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
                meta = dict(conn.execute("SELECT key, value FROM meta"))
            finally:
                conn.close()
    except (sqlite3.Error, OSError, ValueError) as exc:
        info["error"] = str(exc)
        return info
    info.update(
        rows=rows,
        bytes=body_bytes,
        oldest_age=None if oldest is None else max(0.0, time.time() - oldest),
        dead_letters=dead,
        target_url=meta.get("target_url"),
        service=meta.get("service"),
        pid=meta.get("pid"),
        dropped={k.split(":", 1)[1]: int(v) for k, v in meta.items() if k.startswith("dropped:")},
    )
    return info


def _read_snapshot(path: Path) -> dict[str, Any]:
    try:
        fd = _open_regular(Path(f"{path}{SNAPSHOT_SUFFIX}"), os.O_RDONLY)
        with os.fdopen(fd) as snap:
            doc = json.load(snap)
    except FileNotFoundError:
        raise OSError(
            "in use by a live process that has not written its status snapshot yet "
            "(it does at its sender's next checkpoint)"
        ) from None
    now = time.time()
    oldest = doc.pop("oldest_created_at", None)
    doc["oldest_age"] = None if oldest is None else max(0.0, now - oldest)
    doc["snapshot_age"] = max(0.0, now - doc.pop("written_at", now))
    return doc


def write_snapshot(path: Path, doc: dict[str, Any]) -> None:
    """Write the status snapshot of the live spool ``path`` (read by ``_read_snapshot``):
    to a new temporary name, then renamed, so a reader never sees half of it.
    Best effort: a full disk only makes it stale.

    The temporary name is unique and made with O_EXCL (it never opens an
    existing name, a planted link included), and the rename replaces a link
    at the final name rather than writing through it.
    """
    final = f"{path}{SNAPSHOT_SUFFIX}"
    tmp = f"{final}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except OSError as exc:
        logger.debug("log-collector: cannot write the status snapshot %s: %s", final, exc)
        return
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out)
        os.replace(tmp, final)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        logger.debug("log-collector: cannot write the status snapshot %s: %s", final, exc)


def spool_files(paths: list[Path]) -> list[Path]:
    """The spool files named, directories expanded (recursively), in a stable order.

    A symbolic link named here is followed: the user asked for it, and its
    target is returned. A link found while expanding a directory is returned
    as it is, and ``inspect`` and ``Spool.adopt`` refuse to follow it.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.rglob(f"*{SUFFIX}")))
        else:
            found.append(path.resolve() if path.is_symlink() else path)
    return found


def candidates(
    directory: Path, *, exclude: set[Path] | frozenset[Path] = frozenset()
) -> list[Path]:
    """Spool files in ``directory`` other than ``exclude`` that an orphan scan may
    open, oldest first.

    None in a directory another user can write (``directory_problem``); a file
    that is a link, not a regular file or not this user's is left out and
    reported once (``screen_orphan``).
    """
    try:
        if directory_problem(directory) is not None:
            return []
        found = [p for p in directory.glob(f"*{SUFFIX}") if p not in exclude and screen_orphan(p)]
    except OSError:
        return []
    with contextlib.suppress(OSError):
        found.sort(key=lambda p: p.lstat().st_mtime)
    return found


def owner_alive(path: Path) -> bool:
    """Whether a live process holds the spool's lock: its ``flock`` (a Python client's),
    or SQLite's lock on the file (the JavaScript client's, which has no ``flock``)."""
    try:
        fd = _open_regular(path, os.O_RDONLY)
    except (FileNotFoundError, UnsafeSpoolFile):  # a link locks nothing of ours
        return False
    try:
        if _lock(fd):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return _sqlite_locked(fd)
        return True
    finally:
        os.close(fd)


def salvage(path: Path) -> list[tuple[float, str]]:
    """``(created_at, body)`` of every record SQLite can still read from a damaged
    spool, oldest first.

    Three passes, each reading in id order until the first unreadable row: the
    file with its WAL; the main file alone (``immutable=1``), for when the WAL
    is the damaged part or belongs to another database; and a copy whose header
    page count is set to the pages really there, for a truncated file (SQLite
    refuses a file shorter than its header says). Bodies that are not JSON
    objects are left behind.
    """
    with GATE:
        return _salvage(path)


def _salvage(path: Path) -> list[tuple[float, str]]:
    found: dict[int, tuple[float, str]] = {}
    _salvage_pass(path, "read", found)
    _salvage_pass(path, "frozen", found)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "salvage.db"
        try:
            data = bytearray(path.read_bytes())
            page_size = int.from_bytes(data[16:18], "big")
            page_size = 65536 if page_size == 1 else page_size
            if len(data) >= 100 and page_size >= 512:
                data[28:32] = (len(data) // page_size).to_bytes(4, "big")
                copy.write_bytes(bytes(data))
                _salvage_pass(copy, "frozen", found)
        except OSError:
            pass
    return [found[row_id] for row_id in sorted(found)]


def _salvage_pass(path: Path, role: Role, found: dict[int, tuple[float, str]]) -> None:
    try:
        conn = connect(path, role)
    except sqlite3.Error:
        return
    query = "SELECT id, created_at, body FROM records WHERE id > ? ORDER BY id LIMIT ?"
    after, chunk = -1, 500
    try:
        while True:
            try:
                batch = conn.execute(query, (after, chunk)).fetchall()
            except sqlite3.DatabaseError:
                if chunk == 1:
                    return
                chunk = 1  # step up to the first bad row one row at a time
                continue
            if not batch:
                return
            for row_id, created_at, body in batch:
                if isinstance(body, str) and body.startswith("{") and row_id not in found:
                    created = created_at if isinstance(created_at, float) else time.time()
                    found[row_id] = (created, body)
            after = batch[-1][0]
    finally:
        conn.close()


def move_aside(path: Path, why: str) -> Path:
    """Rename a bad spool (and its WAL) to ``*.corrupt`` and say so on our logger."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.{stamp}.corrupt")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.rename(f"{path}{suffix}", f"{target}{suffix}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"{path}{SNAPSHOT_SUFFIX}")
    logger.error("log-collector: moved unusable spool %s aside to %s: %s", path, target, why)
    return target
