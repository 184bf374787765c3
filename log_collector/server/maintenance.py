"""The store's maintenance beside a server that writes: ``Store.maintain`` when the server
starts and every ``interval`` seconds after, in a daemon thread. On PostgreSQL it makes the day
partitions ahead and, with a retention, drops the old ones (``store/partitions.py``); on SQLite
it deletes the rows past the retention, and there is nothing to do without one."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import timedelta

from .store import Store
from .store.base import parse_keep

logger = logging.getLogger("log_collector.server")

RETENTION_ENV = "LOG_COLLECTOR_RETENTION"
# Hourly: PostgreSQL's partitions are made a week ahead, and a retention is kept to the day.
MAINTENANCE_INTERVAL_S = 3600.0


def retention_setting(retention: str | timedelta | None) -> timedelta | None:
    """``retention`` as a span, else ``$LOG_COLLECTOR_RETENTION`` (``30d``), else None (keep
    everything); ValueError for a span that is not one."""
    if isinstance(retention, timedelta):
        return retention
    text = retention if retention is not None else os.environ.get(RETENTION_ENV, "")
    return parse_keep(text) if text.strip() else None


class Maintainer:
    """Runs ``store.maintain(keep)``: ``run_once`` when the server starts (after ``ready``, the
    server's migration), then in a daemon thread every ``interval`` seconds until ``stop``. A
    failed run is logged, and the next one tries again."""

    def __init__(
        self,
        store: Store,
        keep: timedelta | None,
        *,
        ready: Callable[[], object] | None = None,
        interval: float = MAINTENANCE_INTERVAL_S,
    ):
        self.keep = keep
        self._store = store
        self._ready = ready
        self._interval = interval
        self._stop = threading.Event()
        # Set once the first run ended (done or failed).
        self.first_run = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-collector-maintenance")
        self._thread.daemon = True

    def run_once(self) -> None:
        """One run now (the server's start awaits it, so no request meets its first moves);
        a failure is logged."""
        try:
            if self._ready is not None:
                self._ready()
            done = self._store.maintain(self.keep)
            if done.ran and (done.dropped or done.deleted or done.moved):
                logger.info("maintenance: %s", done.summary())
        except Exception as exc:  # noqa: BLE001 - logged; the next run tries again
            logger.warning(
                "store maintenance failed (next try in %.0f s): %s",
                self._interval,
                " ".join(str(exc).split()),
            )
        self.first_run.set()

    def start(self) -> None:
        """The runs after the first, every ``interval`` seconds, in the daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_once()
