"""The live tail's reads: the newest row id, and the rows stored after a given id that match the
filters, in id order. ``routes/tail`` polls ``rows_after`` and streams what it returns.

Polling the table rather than hooking ingest works on both stores and across worker processes:
a row is seen by every tail whichever process stored it.

Ids follow commit order on SQLite, whose one writer thread commits the batches one after the
other. On PostgreSQL ids are drawn when a row is inserted and become visible when its transaction
commits, so a batch committing after a later-numbered one was already polled is not seen by a
tail polling ``id > last``; ``/api/logs`` still lists it.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def rows_after(store: Any, filters: Filters, after_id: int, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` records with an id above ``after_id`` that ``filters`` selects (never
    deleted ones), lowest id first, as ``search`` shapes them."""
    with snapshot(store) as (conn, d):
        where, params = d.where(filters)
        cur = conn.execute(
            f"SELECT {d.select_list()} FROM logs WHERE {where} AND id > {d.p} "
            f"ORDER BY id LIMIT {d.p}",
            [*params, after_id, limit],
        )
        names = [c[0] for c in cur.description]
        return [d.record(names, row) for row in cur.fetchall()]
