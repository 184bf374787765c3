"""Spool files from the outside: the status snapshot a live spool writes for
``status``; finding, inspecting, salvaging and moving aside files no live client holds."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from .._forkgate import GATE
from ._base import (
    _BYTES,
    BUSY_TIMEOUT_MS,
    SNAPSHOT_SUFFIX,
    SUFFIX,
    SpoolError,
    _connect,
    _lock,
    is_corruption,
    logger,
)


def read_meta(path: Path) -> dict[str, str]:
    """The meta table of a spool file, read without locking or changing it."""
    with GATE:
        return _read_meta(path)


def _read_meta(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
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
    info: dict[str, Any] = {"path": str(path), "owner_alive": owner_alive(path)}
    try:
        info["file_bytes"] = sum(
            os.path.getsize(f"{path}{suffix}")
            for suffix in ("", "-wal")
            if os.path.exists(f"{path}{suffix}")
        )
        if info["owner_alive"]:
            info.update(_read_snapshot(path))
            return info
        with GATE:
            conn = _connect(path)
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
        with open(f"{path}{SNAPSHOT_SUFFIX}") as snap:
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
    to a temporary name, then renamed, so a reader never sees half of it.
    Best effort: a full disk only makes it stale."""
    final = f"{path}{SNAPSHOT_SUFFIX}"
    tmp = f"{final}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out)
        os.replace(tmp, final)
    except OSError as exc:
        logger.debug("log-collector: cannot write the status snapshot %s: %s", final, exc)


def spool_files(paths: list[Path]) -> list[Path]:
    """The spool files named, directories expanded (recursively), in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.rglob(f"*{SUFFIX}")))
        else:
            found.append(path)
    return found


def candidates(
    directory: Path, *, exclude: set[Path] | frozenset[Path] = frozenset()
) -> list[Path]:
    """Spool files in ``directory`` other than ``exclude``, oldest first."""
    try:
        found = [p for p in directory.glob(f"*{SUFFIX}") if p not in exclude]
    except OSError:
        return []
    with contextlib.suppress(OSError):
        found.sort(key=lambda p: p.stat().st_mtime)
    return found


def owner_alive(path: Path) -> bool:
    """Whether a live process holds the spool's lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if _lock(fd):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
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
    _salvage_pass(f"file:{path}?mode=ro", found)
    _salvage_pass(f"file:{path}?immutable=1", found)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "salvage.db"
        try:
            data = bytearray(path.read_bytes())
            page_size = int.from_bytes(data[16:18], "big")
            page_size = 65536 if page_size == 1 else page_size
            if len(data) >= 100 and page_size >= 512:
                data[28:32] = (len(data) // page_size).to_bytes(4, "big")
                copy.write_bytes(bytes(data))
                _salvage_pass(f"file:{copy}?immutable=1", found)
        except OSError:
            pass
    return [found[row_id] for row_id in sorted(found)]


def _salvage_pass(uri: str, found: dict[int, tuple[float, str]]) -> None:
    try:
        conn = sqlite3.connect(uri, uri=True)
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
