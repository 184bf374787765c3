"""The values the store holds that a question may name: services, paths, error types, users.

The builtin interpreter recognises a word as a service (or a path, an error type) only when the
store holds it, so every value it places in SQL is one it read back from the store or parsed as
a number or a time. ``KnownCache`` reads them through the query layer at most once a minute;
a user id is looked up when a question names one (there may be millions). Reading paths and
error types counts a week of rows, seconds on a large store, so only the first question waits
for it: later ones take the values already read while a background thread reads them again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..query.aggregates import facets, services
from ..query.dialect import snapshot
from ..query.filters import Filters, to_microseconds

logger = logging.getLogger("log_collector.server")

# Seconds the values read from the store are reused.
KNOWN_TTL_S = 60.0
# Paths and error types kept: the most frequent of the recent window.
KNOWN_TOP = 100
# The window paths and error types are read from (services come from log_counts: all time).
KNOWN_WINDOW_S = 7 * 86400


@dataclass(frozen=True)
class Known:
    services: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    error_types: tuple[str, ...] = ()
    # Whether a user id has logs; None: no user is known.
    lookup_user: Callable[[str], bool] | None = field(default=None, compare=False)

    def user_exists(self, user_id: str) -> bool:
        return self.lookup_user is not None and self.lookup_user(user_id)


class KnownCache:
    """``get(now)``: the store's ``Known`` values. The first call reads them; once they are
    ``ttl`` seconds old, a call returns them as they are and starts one background read that
    replaces them (a failed read leaves them and is tried again at the next call)."""

    def __init__(
        self, store: Any, ttl: float = KNOWN_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._value: Known | None = None
        self._read_at = 0.0
        self._refreshing = False

    def get(self, now: float) -> Known:
        with self._lock:
            value = self._value
            if value is not None:
                if self._clock() - self._read_at >= self._ttl and not self._refreshing:
                    self._refreshing = True
                    threading.Thread(
                        target=self._refresh, args=(now,), name="log-collector-known", daemon=True
                    ).start()
                return value
            self._value = read_known(self._store, now)
            self._read_at = self._clock()
            return self._value

    def _refresh(self, now: float) -> None:
        try:
            value = read_known(self._store, now)
        except Exception:  # noqa: BLE001 - the values already read stay; the next call retries
            logger.warning("could not read the store's known values again", exc_info=True)
            with self._lock:
                self._refreshing = False
            return
        with self._lock:
            self._value, self._read_at, self._refreshing = value, self._clock(), False


def read_known(store: Any, now: float) -> Known:
    now_us = to_microseconds(now)
    recent = Filters(now_us=now_us, since_us=now_us - int(KNOWN_WINDOW_S * 1_000_000))
    top = facets(store, recent, ["path", "error_type"], top=KNOWN_TOP)
    return Known(
        services=tuple(entry["service"] for entry in services(store, now)),
        paths=tuple(entry["value"] for entry in top["path"]),
        error_types=tuple(entry["value"] for entry in top["error_type"]),
        lookup_user=lambda user_id: user_exists(store, user_id),
    )


def user_exists(store: Any, user_id: str) -> bool:
    with snapshot(store) as (conn, d):
        found = conn.execute(
            f"SELECT 1 FROM logs WHERE user_id = {d.p} AND deleted = FALSE LIMIT 1", [user_id]
        ).fetchone()
    return found is not None
