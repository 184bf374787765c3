"""The one small interface every store implements, and the row layout they share.

A row is a tuple in ``ROW_COLUMNS`` order, already validated and normalised
by ``log_collector.server.ingest``: enum values are canonical, strings fit
their columns, ``created_at``/``received_at`` are Unix seconds (float),
``metadata`` is JSON text or None, ``event_id`` is a canonical UUID string or
None. Each store only converts to its own column types.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def insert(self, rows: Sequence[Row]) -> tuple[int, int]:
        """Store ``rows`` in one transaction; return ``(accepted, duplicates)``.

        A row whose ``event_id`` is already stored (or repeated earlier in
        ``rows``) is a duplicate and is skipped.
        """

    def stats(self) -> dict[str, Any]:
        """The ``GET /stats`` document (DESIGN.md section 5), over rows not deleted."""

    def reading(self) -> AbstractContextManager[Any]:
        """A connection for reads (/stats and every read endpoint), apart from
        the connections ingest uses, so readers never starve ingest; raises
        StoreUnavailable when none frees up within the store's read wait."""

    def ping(self) -> None:
        """Return when the database answers; raise StoreUnavailable otherwise."""

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""


def stats_document(
    total: int,
    levels: Sequence[tuple[str, int]],
    services: Sequence[tuple[str, int]],
    recent_errors: int,
) -> dict[str, Any]:
    return {
        "total_logs": total,
        "level_distribution": [{"level": level, "count": n} for level, n in levels],
        "service_distribution": [{"service": service, "count": n} for service, n in services],
        "recent_errors_1h": recent_errors,
    }
