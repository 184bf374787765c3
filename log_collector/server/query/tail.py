"""The live tail's reads: the newest row id, and the rows stored since the last poll that match
the filters. ``routes/tail`` polls ``TailCursor.poll`` and streams what it returns.

Polling the table rather than hooking ingest works on both stores and across worker processes:
a row is seen by every tail whichever process stored it.

Ids follow commit order on SQLite, whose one writer thread commits the batches one after the
other. On PostgreSQL ids are drawn when a row is inserted and become visible when its transaction
commits, so a batch may commit after a later-numbered one was already polled. The cursor
therefore remembers the ids it has passed but not seen (its gaps) for ``GAP_TTL_S`` seconds and
asks for them again on each poll: a row committing late is streamed when it appears. A gap that
never fills (an id drawn by a row ``ON CONFLICT DO NOTHING`` skipped, or by a rolled-back
batch) is forgotten after that time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .dialect import snapshot
from .filters import Filters, checked_int

_MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class TailSettings:
    """How each ``/api/tail`` stream behaves.

    ``poll_s``: seconds between two reads when the last one found fewer than ``batch`` rows.
    ``heartbeat_s``: a comment line is written after this many seconds without a write, so
    proxies and clients see the connection is alive. ``batch``: rows read per poll, which
    bounds what one stream holds in memory. ``max_streams``: streams open at once per app; one
    more is a 503. ``write_timeout_s``: a reader that does not take a write within this many
    seconds is dropped: its unread bytes stay in the transport's bounded buffer, never in a
    growing queue. ``max_age_s``: a stream ends after this long; an ``EventSource`` reconnects
    by itself with ``Last-Event-ID`` and resumes where it was.
    """

    poll_s: float = 0.5
    heartbeat_s: float = 15.0
    batch: int = 100
    max_streams: int = 100
    write_timeout_s: float = 30.0
    max_age_s: float = 3600.0

    def __post_init__(self) -> None:
        for name in ("poll_s", "heartbeat_s", "write_timeout_s", "max_age_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TailSettings.{name} must be a positive number of seconds")
        for name in ("batch", "max_streams"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"TailSettings.{name} must be at least 1")


def parse_last_event_id(value: str | None) -> int | None:
    """The id a ``Last-Event-ID`` header names (the last row the client received), or None when
    the header is absent or empty; BadQuery naming the header otherwise."""
    if value is None or not value.strip():
        return None
    return checked_int("Last-Event-ID", value, 0, _MAX_ID)


def newest_id(store: Any) -> int:
    """The highest row id stored (0 for an empty table): a new tail starts after it."""
    with snapshot(store) as (conn, _):
        (found,) = conn.execute("SELECT max(id) FROM logs").fetchone()
    return int(found or 0)


# How long an id passed but not seen may still arrive, and how many such ids a cursor keeps
# (the newest; an ingest batch holds 1,000 rows, several workers commit at once).
GAP_TTL_S = 30.0
MAX_GAPS = 20_000
# New ids a poll may pass per record it may return.
SCAN_FACTOR = 20


@dataclass
class TailCursor:
    """Where one stream is: the highest id it has passed and, on PostgreSQL, the lower ids not
    seen yet (id -> the monotonic time after which it is given up)."""

    after_id: int
    gaps: dict[int, float] = field(default_factory=dict)

    def poll(self, store: Any, filters: Filters, limit: int, now: float) -> tuple[list[dict], bool]:
        """The records stored since the last poll that ``filters`` selects (never deleted
        ones), and whether more may be waiting: on PostgreSQL first those of the gaps that
        filled (late commits), then the new ones in id order, at most ``limit`` of them.
        A poll passes up to ``SCAN_FACTOR * limit`` new ids, matching or not, so a stream
        whose filters match few rows keeps up with ingest without reading rows twice."""
        for gap, deadline in list(self.gaps.items()):
            if deadline <= now:
                del self.gaps[gap]
        with snapshot(store) as (conn, d):
            p = d.p
            scan = SCAN_FACTOR * limit
            new = [
                row[0]
                for row in conn.execute(
                    f"SELECT id FROM logs WHERE id > {p} ORDER BY id LIMIT {p}",
                    [self.after_id, scan],
                ).fetchall()
            ]
            late: list[dict[str, Any]] = []
            if d.postgres and self.gaps:
                filled = [
                    row[0]
                    for row in conn.execute(
                        "SELECT id FROM logs WHERE id = ANY(%s)", [sorted(self.gaps)]
                    ).fetchall()
                ]
                for i in filled:
                    del self.gaps[i]
                if filled:
                    late = _records(conn, d, filters, "id = ANY(%s)", [filled], None)
            if not new:
                return late, False
            fresh = _records(
                conn, d, filters, f"id > {p} AND id <= {p}", [self.after_id, new[-1]], limit
            )
            postgres = d.postgres
        if len(fresh) == limit:
            # Full: pass only the ids up to the last record given; the rest comes next poll.
            new = [i for i in new if i <= fresh[-1]["id"]]
        if postgres:
            self._remember_gaps(new, now)
        self.after_id = new[-1]
        return late + fresh, len(fresh) == limit or len(new) == scan

    def _remember_gaps(self, new: list[int], now: float) -> None:
        """Remember the ids between after_id and ``new`` (ascending ids above it) not seen."""
        deadline = now + GAP_TTL_S
        expected = self.after_id + 1
        for i in new:
            # Only the newest MAX_GAPS ids of a long run can still matter.
            for missing in range(max(expected, i - MAX_GAPS), i):
                self.gaps[missing] = deadline
            expected = i + 1
        if len(self.gaps) > MAX_GAPS:
            for old in sorted(self.gaps)[: len(self.gaps) - MAX_GAPS]:
                del self.gaps[old]


def _records(
    conn: Any, d: Any, filters: Filters, ids: str, id_params: list[Any], limit: int | None
) -> list[dict[str, Any]]:
    """The records ``filters`` selects among the ids ``ids`` names, in id order."""
    where, params = d.where(filters)
    sql = f"SELECT {d.select_list()} FROM logs WHERE {where} AND {ids} ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    cur = conn.execute(sql, [*params, *id_params])
    names = [c[0] for c in cur.description]
    return [d.record(names, row) for row in cur.fetchall()]
