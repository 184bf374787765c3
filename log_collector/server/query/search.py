"""Reading logs back as records: a filtered page, one log, the lines around a log, a trace.

Each function takes a store and parsed inputs, runs its SQL on the store's read connection
(``store.reading()``) and returns a JSON-ready dict. Records list every column of ``logs``,
``metadata`` as an object and both times as ISO 8601 UTC text (``filters.iso``). Deleted rows
are never returned.
"""

from __future__ import annotations

from typing import Any

from .dialect import snapshot
from .errors import BadQuery, NotFound
from .filters import Filters, checked_int
from .pagination import decode_cursor, encode_cursor

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
DEFAULT_CONTEXT = 20
MAX_CONTEXT = 500
# A trace's logs beyond this many are left out and the answer says "truncated".
MAX_TRACE_LOGS = 10_000
MAX_TRACE_ID_CHARS = 100
_MAX_ID = 2**63 - 1

_NEWEST_FIRST = "ORDER BY created_at DESC, id DESC"
_OLDEST_FIRST = "ORDER BY created_at, id"


def search(
    store: Any, filters: Filters, limit: int | str = DEFAULT_LIMIT, cursor: str | None = None
) -> dict[str, Any]:
    """``{"logs": [...], "next_cursor": str | None}``: the rows ``filters`` selects, newest
    first (rows of equal created_at by id, highest first), ``limit`` per page. ``cursor`` (a
    page's ``next_cursor``) continues strictly after that page's last row, so pages concatenate
    to the whole result even while rows arrive."""
    limit = checked_int("limit", limit, 1, MAX_LIMIT)
    after = decode_cursor(cursor) if cursor else None
    with snapshot(store) as (conn, d):
        d.plan_text_search(conn, filters)
        where, params = d.where(filters)
        if after is not None:
            where += f" AND (created_at, id) < ({d.p}, {d.p})"
            params += [d.time(after[0]), after[1]]
        cur = conn.execute(
            f"SELECT {d.select_list()} FROM logs WHERE {where} {_NEWEST_FIRST} LIMIT {d.p}",
            [*params, limit + 1],
        )
        names = [c[0] for c in cur.description]
        rows = cur.fetchall()
    more = len(rows) > limit
    logs = [d.record(names, row) for row in rows[:limit]]
    next_cursor = None
    if more:
        last = rows[limit - 1]
        next_cursor = encode_cursor(d.us(last[names.index("created_at")]), last[0])
    return {"logs": logs, "next_cursor": next_cursor}


def get_log(store: Any, log_id: int | str) -> dict[str, Any]:
    """The record of log ``log_id``; NotFound when there is none or it is deleted."""
    row_id = _log_id(log_id)
    with snapshot(store) as (conn, d):
        found = _by_id(conn, d, row_id)
    if found is None:
        raise NotFound(f"no log {row_id}")
    return d.record(*found)


def context(
    store: Any,
    log_id: int | str,
    before: int | str = DEFAULT_CONTEXT,
    after: int | str = DEFAULT_CONTEXT,
) -> dict[str, Any]:
    """``{"before": [...], "line": {...}, "after": [...]}``: up to ``before`` and ``after``
    logs of the same service just before and after log ``log_id`` in (created_at, id) order.
    Both lists read in time order, oldest first, so ``before[-1]`` is the line just above."""
    row_id = _log_id(log_id)
    before = checked_int("before", before, 0, MAX_CONTEXT)
    after = checked_int("after", after, 0, MAX_CONTEXT)
    with snapshot(store) as (conn, d):
        found = _by_id(conn, d, row_id)
        if found is None:
            raise NotFound(f"no log {row_id}")
        names, row = found
        line = dict(zip(names, row, strict=True))
        key = [line["service"], line["created_at"], row_id]
        p = d.p
        select = f"SELECT {d.select_list()} FROM logs WHERE deleted = FALSE AND service = {p}"
        earlier = conn.execute(
            f"{select} AND (created_at, id) < ({p}, {p}) {_NEWEST_FIRST} LIMIT {p}",
            [*key, before],
        ).fetchall()
        later = conn.execute(
            f"{select} AND (created_at, id) > ({p}, {p}) {_OLDEST_FIRST} LIMIT {p}",
            [*key, after],
        ).fetchall()
    return {
        "before": [d.record(names, r) for r in reversed(earlier)],
        "line": d.record(names, row),
        "after": [d.record(names, r) for r in later],
    }


def trace(store: Any, trace_id: str) -> dict[str, Any]:
    """``{"trace_id", "services", "started_at", "duration_ms", "logs", "truncated"}``: the
    logs of one trace, oldest first; ``services`` in the order they first log, ``duration_ms``
    from the first log to the last. NotFound when no log carries ``trace_id``."""
    if not isinstance(trace_id, str) or not trace_id or "\x00" in trace_id:
        raise BadQuery("trace_id", "must be non-empty text without NUL")
    if len(trace_id) > MAX_TRACE_ID_CHARS:
        raise NotFound(f"no trace {trace_id[:MAX_TRACE_ID_CHARS]}...")
    try:
        trace_id.encode("utf-8")
    except UnicodeEncodeError:
        raise BadQuery("trace_id", "contains an unpaired surrogate") from None
    with snapshot(store) as (conn, d):
        cur = conn.execute(
            f"SELECT {d.select_list()} FROM logs WHERE deleted = FALSE AND trace_id = {d.p} "
            f"{_OLDEST_FIRST} LIMIT {d.p}",
            [trace_id, MAX_TRACE_LOGS + 1],
        )
        names = [c[0] for c in cur.description]
        rows = cur.fetchall()
    if not rows:
        raise NotFound(f"no trace {trace_id}")
    truncated = len(rows) > MAX_TRACE_LOGS
    logs = [d.record(names, row) for row in rows[:MAX_TRACE_LOGS]]
    at = names.index("created_at")
    first, last = d.us(rows[0][at]), d.us(rows[len(logs) - 1][at])
    return {
        "trace_id": trace_id,
        "services": list(dict.fromkeys(log["service"] for log in logs)),
        "started_at": logs[0]["created_at"],
        "duration_ms": (last - first) / 1000,
        "logs": logs,
        "truncated": truncated,
    }


def _log_id(value: int | str) -> int:
    return checked_int("id", value, 1, _MAX_ID)


def _by_id(conn: Any, d: Any, row_id: int) -> tuple[list[str], tuple[Any, ...]] | None:
    cur = conn.execute(
        f"SELECT {d.select_list()} FROM logs WHERE deleted = FALSE AND id = {d.p}", [row_id]
    )
    names = [c[0] for c in cur.description]
    row = cur.fetchone()
    return None if row is None else (names, row)
