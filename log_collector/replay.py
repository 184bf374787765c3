"""Draining spool files by hand: what ``log-collector replay`` and ``status`` run.

A process adopts orphaned spools in its own directory by itself; this is for
everything else: a spool left on a machine whose service is gone, a
directory copied off a dead host, or a spool to resend to another server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .sender import Sender
from .spool import NotAdoptable, Spool, SpoolError, spool_files
from .transport import HttpTransport


@dataclass
class ReplayReport:
    sent: int = 0
    left: int = 0
    dead_lettered: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    last_error: str | None = None

    @property
    def complete(self) -> bool:
        return self.left == 0 and not self.skipped


def replay(
    paths: list[Path],
    *,
    server_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 60.0,
    request_timeout: float = 10.0,
    batch_size: int = 1000,
    max_backoff: float = 5.0,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> ReplayReport:
    """Send every row of the spool files in ``paths`` (directories included)
    to ``server_url`` (default: the server each spool was written for), until
    they are empty or ``timeout`` seconds pass."""
    report = ReplayReport()
    deadline = time.monotonic() + timeout
    groups: dict[str, list[Spool]] = {}
    for path in spool_files(paths):
        try:
            spool = Spool.adopt(path)
        except (NotAdoptable, SpoolError, OSError) as exc:
            report.skipped.append((str(path), str(exc)))
            continue
        target = server_url or spool.target_url()
        if not target:
            report.skipped.append((str(path), "no target server recorded; pass --server"))
            spool.close(remove_if_empty=False)
            continue
        groups.setdefault(target.rstrip("/"), []).append(spool)

    spools = [s for group in groups.values() for s in group]
    total = sum(s.pending() for s in spools)
    for target, group in groups.items():
        sender = Sender(
            sources=lambda group=group: list(group),
            transport=HttpTransport(target + "/logs", timeout=request_timeout, api_key=api_key),
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
    for spool in spools:
        spool.close()
    return report
