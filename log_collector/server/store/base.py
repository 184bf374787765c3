"""The one small interface every store implements, and the row layout they share.

A row is a tuple in ``ROW_COLUMNS`` order, already validated and normalised
by ``log_collector.server.ingest``: enum values are canonical, strings fit
their columns, ``created_at``/``received_at`` are Unix seconds (float),
``metadata`` is JSON text or None, ``event_id`` is a canonical UUID string or
None. Each store only converts to its own column types.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

# The columns a row fills, in order. id (generated) and deleted (FALSE) are left
# to their defaults.
ROW_COLUMNS: tuple[str, ...] = (
    "created_at",
    "level",
    "log_type",
    "service",
    "environment",
    "service_version",
    "trace_id",
    "user_id",
    "session_id",
    "error_type",
    "message",
    "stack_trace",
    "path",
    "method",
    "action_type",
    "function_name",
    "file_path",
    "duration_ms",
    "metadata",
    "event_id",
    "received_at",
)

Row = tuple[Any, ...]

# /stats counts ERROR and FATAL as errors, over the last hour.
ERROR_LEVELS = ("ERROR", "FATAL")
RECENT_ERRORS_WINDOW_S = 3600.0
TOP_SERVICES = 10


@dataclass
class Maintenance:
    """What one run of ``maintain`` did. ``ran`` is False when another process held the lock."""

    ran: bool = True
    # The first instant kept (with a retention).
    cutoff: datetime | None = None
    # Partitions dropped and made (PostgreSQL).
    dropped: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    # Rows deleted one by one (SQLite's old rows, PostgreSQL's old rows of the default
    # partition), and rows moved out of PostgreSQL's default partition.
    deleted: int = 0
    moved: int = 0

    def summary(self) -> str:
        if not self.ran:
            return "another process is maintaining the partitions; nothing done"
        parts = []
        if self.cutoff is not None:
            parts.append(f"kept rows from {self.cutoff.isoformat()} on")
        if self.dropped or self.created:
            parts.append(f"dropped {len(self.dropped)} partition(s)" + _names(self.dropped))
            parts.append(f"made {len(self.created)}" + _names(self.created))
        parts.append(f"deleted {self.deleted} row(s)")
        if self.moved:
            parts.append(f"moved {self.moved} row(s) out of the default partition")
        return "; ".join(parts)


def _names(names: list[str]) -> str:
    if not names:
        return ""
    shown = names if len(names) <= 4 else [names[0], "...", names[-1]]
    return f" ({', '.join(shown)})"


def retention_cutoff(keep: timedelta, now: datetime) -> datetime:
    """The first instant a retention of ``keep`` keeps: midnight UTC of the day that holds
    ``now - keep``. Whole days before it go; that day's older rows stay until the next day."""
    oldest_kept = (now - keep).astimezone(UTC)
    return oldest_kept.replace(hour=0, minute=0, second=0, microsecond=0)


def parse_keep(text: str) -> timedelta:
    """A retention such as ``30d``, ``4w`` or ``36h`` (at least a day); ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*([hdw])\s*", text)
    if match is None:
        raise ValueError(f"retention {text!r}: expected a span such as 30d, 4w or 36h")
    keep = timedelta(hours=int(match.group(1)) * {"h": 1, "d": 24, "w": 168}[match.group(2)])
    if keep < timedelta(days=1):
        raise ValueError(f"retention {text!r}: keep at least a day (1d)")
    return keep


class StoreUnavailable(Exception):
    """The database cannot be reached or cannot write right now; the request may be retried."""


class Store(Protocol):
    # How many requests the server holds at once between reading a body and
    # answering (at most two of them decode at a time: decoding holds the
    # GIL); each store says what suits it.
    concurrency: int
    # Whether maintain() has work to do without a retention (PostgreSQL's day partitions).
    partitioned: bool

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied (empty when up to date)."""

    def pending_migrations(self) -> list[str]:
        """Names of the migrations not applied to the database, read without writing (a
        query server on a read replica checks instead of migrating)."""

    def insert(self, rows: Sequence[Row]) -> tuple[int, int]:
        """Store ``rows`` in one transaction; return ``(accepted, duplicates)``.

        A row whose ``event_id`` is already stored (or repeated earlier in
        ``rows``) is a duplicate and is skipped.
        """

    def stats(self) -> dict[str, Any]:
        """The ``GET /stats`` document, over rows not deleted."""

    def reading(self) -> AbstractContextManager[Any]:
        """A connection for reads (/stats and every read endpoint), apart from
        the connections ingest uses, so readers never starve ingest; raises
        StoreUnavailable when none frees up within the store's read wait."""

    def writing(self) -> AbstractContextManager[Any]:
        """A connection for the small writes beside ingest (the dashboard's saved views) inside
        one transaction, committed when the block ends and rolled back when it raises;
        StoreUnavailable when none frees up in time."""

    def ping(self, *, reading: bool = False) -> None:
        """Return when the database answers; raise StoreUnavailable otherwise. ``reading``:
        ask on a read connection (a query server never opens ingest's)."""

    def maintain(self, keep: timedelta | None = None) -> Maintenance:
        """Keep the table healthy and, with ``keep``, drop or delete the rows older than the
        day that holds ``now - keep`` (``retention_cutoff``): PostgreSQL drops whole day
        partitions (``partitions.maintain``), SQLite deletes rows in small transactions."""

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""


Query = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]


def read_stats(
    query: Query,
    *,
    param: str,
    level_text: str,
    recent_errors: Callable[[tuple[str, ...], float], tuple[str, tuple[Any, ...]]],
) -> dict[str, Any]:
    """The ``GET /stats`` document from the four counts, each run by ``query``
    (SQL, parameters) -> rows, inside the caller's one snapshot. ``param`` is
    the driver's placeholder, ``level_text`` the level as text (so both
    stores sort it alike), ``recent_errors(levels, window_s)`` the condition
    and its parameters picking rows of those levels in the last ``window_s``
    seconds."""
    live = "FROM logs WHERE deleted = FALSE"
    total = query(f"SELECT count(*) {live}", ())
    levels = query(
        f"SELECT {level_text}, count(*) AS n {live} GROUP BY level ORDER BY n DESC, {level_text}",
        (),
    )
    services = query(
        f"SELECT service, count(*) AS n {live} "
        f"GROUP BY service ORDER BY n DESC, service LIMIT {param}",
        (TOP_SERVICES,),
    )
    condition, params = recent_errors(ERROR_LEVELS, RECENT_ERRORS_WINDOW_S)
    errors = query(f"SELECT count(*) {live} AND {condition}", params)
    return {
        "total_logs": total[0][0],
        "level_distribution": [{"level": level, "count": n} for level, n in levels],
        "service_distribution": [{"service": service, "count": n} for service, n in services],
        "recent_errors_1h": errors[0][0],
    }
