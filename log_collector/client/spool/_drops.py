"""Deliberate losses of one spool file, by reason (the size cap, the age limit).

Each drop is counted in the file's meta table in the transaction that drops
the rows (a kill in between can never leave a drop uncounted), counted in
memory, warned about once per episode, and announced to the server once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ._base import SpoolCounters, logger

# Adds to a counter row of meta (drops by reason, drops announced), made if missing.
_ADD_TO_COUNTER = (
    "INSERT INTO meta(key, value) VALUES (?, ?) "
    "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value"
)


class Drops:
    """The drop counters of one spool file and the notice still to send."""

    def __init__(self, path: Path, counters: SpoolCounters, conn: sqlite3.Connection) -> None:
        """Counters from the file. Drops a dead owner counted but never announced
        become this spool's notice: its adopter announces them."""
        self._path = path
        self._counters = counters
        # Drops not yet told to the server; once an append succeeds with room to
        # spare they move to ``notice``, which the client turns into one WARN record.
        self._unannounced: dict[str, int] = {}
        announced: dict[str, int] = {}
        for key, value in conn.execute(
            "SELECT key, value FROM meta WHERE key LIKE 'dropped:%' OR key LIKE 'announced:%'"
        ):
            kind, reason = key.split(":", 1)
            if kind == "dropped":
                counters.dropped[reason] = int(value)
            else:
                announced[reason] = int(value)
        untold = {
            reason: n - announced.get(reason, 0)
            for reason, n in counters.dropped.items()
            if n > announced.get(reason, 0)
        }
        self.notice: dict[str, int] | None = untold or None

    @property
    def in_episode(self) -> bool:
        """Drops were counted that are not in ``notice`` yet."""
        return bool(self._unannounced)

    def end_episode(self) -> None:
        """The spool has room again: what was dropped becomes the notice."""
        self.notice, self._unannounced = self._unannounced, {}

    @staticmethod
    def persist(conn: sqlite3.Connection, reason: str, n: int) -> None:
        """The drop counter in meta; the caller's transaction makes it atomic with the drop."""
        if n > 0:
            conn.execute(_ADD_TO_COUNTER, (f"dropped:{reason}", n))

    def note(self, reason: str, n: int) -> None:
        """Count a committed drop in memory; warn once per episode."""
        if n <= 0:
            return
        episode_starts = not self._unannounced
        self._counters.dropped[reason] = self._counters.dropped.get(reason, 0) + n
        self._unannounced[reason] = self._unannounced.get(reason, 0) + n
        if episode_starts:  # once per episode, not once per dropped batch
            logger.warning(
                "log-collector: dropping records from %s (%s); counted, announced later",
                self._path,
                reason,
            )

    @staticmethod
    def mark_announced(conn: sqlite3.Connection, dropped: dict[str, int]) -> None:
        """Record in the file that these drops were told to the server, so a
        process adopting it later announces only the rest."""
        conn.executemany(
            _ADD_TO_COUNTER, [(f"announced:{reason}", n) for reason, n in dropped.items()]
        )
