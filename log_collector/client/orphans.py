"""Spool files of dead processes: found in the client's directory, adopted, drained.

A spool file whose owner holds no lock any more is an orphan (its process
crashed, was killed, or exited with records left). A client adopts the orphans
in its spool directory that ship to the same server; its sender drains them
after the client's own records and closes each once empty. This is what makes
restarts, crashes and pre-fork servers lose nothing without anyone running a
command (docs/architecture.md, "The spool").
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .settings import Settings
from .spool import NotAdoptable, Spool, SpoolError, candidates, is_corruption, owner_alive

logger = logging.getLogger("log_collector")

ADOPT_INTERVAL = 30.0  # seconds between scans of the spool directory for orphans


class Orphans:
    """The spools a client adopted, in adoption order.

    ``quarantine(path, why)`` sets a corrupt file aside and salvages it;
    ``announce(spool, True)`` logs the drops counted by the process that died.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        quarantine: Callable[[Path, str], None],
        announce: Callable[[Spool, bool], None],
        next_scan: float = 0.0,
    ) -> None:
        self._clock = clock
        self._quarantine = quarantine
        self._announce = announce
        self._lock = threading.Lock()
        self._spools: list[Spool] = []
        self._next_scan = next_scan

    def __iter__(self) -> Iterator[Spool]:
        return iter(list(self._spools))

    def __len__(self) -> int:
        return len(self._spools)

    def __contains__(self, source: object) -> bool:
        return source in self._spools

    def waiting(self, spool_dir: Path, own: Spool | None) -> bool:
        """Whether an orphan waits in ``spool_dir`` (a live owner's file is no orphan)."""
        exclude = {own.path} if own is not None else set()
        return any(not owner_alive(path) for path in candidates(spool_dir, exclude=exclude))

    def scan(self, settings: Settings, own: Spool | None, *, force: bool = False) -> None:
        """Adopt the orphans in ``settings.spool_dir`` that ship to ``settings.server_url``;
        at most every ADOPT_INTERVAL seconds unless ``force``."""
        now = time.monotonic()
        if not force and now < self._next_scan:
            return
        with self._lock:
            self._next_scan = now + ADOPT_INTERVAL
            known = {sp.path for sp in [own, *self._spools] if sp is not None}
            for path in candidates(settings.spool_dir, exclude=known):
                self._adopt(path, settings)

    def _adopt(self, path: Path, settings: Settings) -> None:
        try:
            adopted = Spool.adopt(
                path,
                target_url=settings.server_url,
                durability=settings.durability,
                clock=self._clock,
            )
            self._spools.append(adopted)
            if adopted.drop_notice:
                self._announce(adopted, True)
        except NotAdoptable:
            return
        except SpoolError as exc:
            self._quarantine(path, str(exc))
        except sqlite3.DatabaseError as exc:
            if is_corruption(exc):
                self._quarantine(path, str(exc))
        except OSError as exc:
            logger.debug("log-collector: cannot adopt %s: %s", path, exc)

    def remove(self, source: object) -> bool:
        """Stop draining ``source``; False if it is not one of ours."""
        with self._lock:
            if source not in self._spools:
                return False
            self._spools.remove(source)  # type: ignore[arg-type]
            return True

    def close(self) -> int:
        """Close every adopted spool; the number of records left in them."""
        spools, self._spools = self._spools, []
        return sum(spool.close() for spool in spools)

    def abandon(self) -> list[Any]:
        """In a forked child: forget the spools without closing them; their handles."""
        spools, self._spools = self._spools, []
        handles: list[Any] = []
        for spool in spools:
            handles.extend(spool.abandon())
        return handles
