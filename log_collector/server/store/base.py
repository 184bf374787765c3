"""The one small interface every store implements, and the row layout they share.

A row is a tuple in ``ROW_COLUMNS`` order, already validated and normalised
by ``log_collector.server.ingest``: enum values are canonical, strings fit
their columns, ``created_at``/``received_at`` are Unix seconds (float),
``metadata`` is JSON text or None, ``event_id`` is a canonical UUID string or
None. Each store only converts to its own column types.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
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


class StoreUnavailable(Exception):
    """The database cannot be reached or cannot write right now; the request may be retried."""


class Store(Protocol):
    # How many requests the server holds at once between reading a body and
    # answering (at most two of them decode at a time: decoding holds the
    # GIL); each store says what suits it.
    concurrency: int

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
