"""Draining spool files by hand: what ``log-collector replay`` and ``dead-letters`` run.

A process adopts orphaned spools in its own directory by itself; this is for
everything else: a spool left on a machine whose service is gone, a
directory copied off a dead host, or a spool to resend to another server.

Opening (``open_spools``) is separate from sending (``send``), so the command
line can report a path that holds no usable spool before it starts a progress bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .sender import Sender
from .spool import NotAdoptable, Spool, SpoolError, owner_alive, read_meta, spool_files
from .wires import DEFAULT_WIRE, WIRES, wire_transport


@dataclass
class ReplayReport:
    sent: int = 0
    left: int = 0
    dead_lettered: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    last_error: str | None = None

    @property
    def complete(self) -> bool:
        """Every row was acknowledged: none left, none refused, no spool passed over."""
        return self.left == 0 and self.dead_lettered == 0 and not self.skipped


@dataclass
class OpenSpools:
    """Spool files adopted for draining, grouped by the server they go to and the wire
    they go on."""

    groups: dict[tuple[str, str], list[Spool]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def spools(self) -> list[Spool]:
        return [spool for group in self.groups.values() for spool in group]

    def pending(self) -> int:
        return sum(spool.pending() for spool in self.spools)

    def close(self, *, remove_if_empty: bool = True) -> None:
        for spool in self.spools:
            spool.close(remove_if_empty=remove_if_empty)
        self.groups = {}


def not_a_spool(path: Path) -> str | None:
    """Why ``path`` cannot be adopted as a spool file, or None if it looks like one.

    Adopting a file creates the spool schema in it; a file named by hand may be
    any SQLite database (the server's ``logs.db``), which must be left untouched.
    Every spool's meta table holds its ``schema_version``.
    """
    if not path.is_file():
        return "not a file"
    if owner_alive(path):
        return "in use by a live process"
    try:
        meta = read_meta(path)
    except SpoolError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read it: {exc}"
    if "schema_version" not in meta:
        return "not a log-collector spool file"
    return None


def open_spools(
    paths: list[Path], *, server_url: str | None = None, wire: str | None = None
) -> OpenSpools:
    """Adopt every spool file in ``paths`` (directories included); the files that
    cannot be adopted are listed in ``skipped`` with the reason. Each goes to
    ``server_url`` on ``wire``, by default to the server and on the wire its writer
    recorded (the default wire when it recorded none)."""
    if wire is not None and wire not in WIRES:
        raise ValueError(f"unknown wire {wire!r}: one of {', '.join(WIRES)}")
    found = OpenSpools()
    for path in spool_files(paths):
        why = not_a_spool(path)
        if why is not None:
            found.skipped.append((str(path), why))
            continue
        try:
            spool = Spool.adopt(path)
        except (NotAdoptable, SpoolError, OSError) as exc:
            found.skipped.append((str(path), str(exc)))
            continue
        target = server_url or spool.target_url()
        if not target:
            found.skipped.append((str(path), "no target server recorded; pass --server"))
            spool.close(remove_if_empty=False)
            continue
        way = wire or spool.wire() or DEFAULT_WIRE
        if way not in WIRES:
            found.skipped.append((str(path), f"written for the unknown wire {way!r}; pass --wire"))
            spool.close(remove_if_empty=False)
            continue
        found.groups.setdefault((target.rstrip("/"), way), []).append(spool)
    return found


def send(
    found: OpenSpools,
    *,
    api_key: str | None = None,
    timeout: float = 60.0,
    request_timeout: float = 10.0,
    batch_size: int = 1000,
    max_backoff: float = 5.0,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> ReplayReport:
    """Send every row of ``found`` to its server until the spools are empty or
    ``timeout`` seconds pass, then close them (an emptied file is removed)."""
    report = ReplayReport(skipped=list(found.skipped))
    deadline = time.monotonic() + timeout
    spools = found.spools
    total = found.pending()
    for (target, wire), group in found.groups.items():
        transport, encode = wire_transport(target, wire, timeout=request_timeout, api_key=api_key)
        sender = Sender(
            sources=lambda group=group: list(group),
            transport=transport,
            encode=encode,
            batch_size=batch_size,
            flush_interval=0.1,
            compress=True,
            gzip_min_records=100,
            max_backoff=max_backoff,
        )
        sender.finish()
        sender.start()
        with sender.progress:
            while sender.alive and time.monotonic() < deadline:
                on_progress(total - sum(s.pending() for s in spools), total)
                sender.progress.wait(0.2)
        sender.stop(deadline)
        report.dead_lettered += sender.stats.dead_lettered
        report.last_error = sender.stats.last_error or report.last_error
    report.left = sum(s.pending() for s in spools)
    report.sent = total - report.left - report.dead_lettered
    on_progress(total - report.left, total)
    found.close()
    return report


def replay(
    paths: list[Path],
    *,
    server_url: str | None = None,
    wire: str | None = None,
    api_key: str | None = None,
    timeout: float = 60.0,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> ReplayReport:
    """Send every row of the spool files in ``paths`` (directories included)
    to ``server_url`` (default: the server each spool was written for), until
    they are empty or ``timeout`` seconds pass."""
    found = open_spools(paths, server_url=server_url, wire=wire)
    return send(found, api_key=api_key, timeout=timeout, on_progress=on_progress)
