"""Counting logs: a histogram by level over time, the top values of chosen columns, and one
summary line per service."""

from __future__ import annotations

import dataclasses
from typing import Any

from ...common.vocabulary import LEVELS
from ..store.base import ERROR_LEVELS, RECENT_ERRORS_WINDOW_S
from .dialect import Dialect, snapshot
from .errors import BadQuery
from .filters import Filters, checked_int, iso, to_microseconds

DEFAULT_BUCKETS = 60
MAX_BUCKETS = 1000
# The window a histogram covers when the request gives no ``since``.
DEFAULT_HISTOGRAM_WINDOW_S = 24 * 3600
# Bucket widths, in seconds, that read well on an axis; a wider need takes whole days.
NICE_INTERVALS_S = (
    1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400,
)  # fmt: skip

# The granules of the log_counts table (migrations/*/0003_time_index_and_log_counts.sql, read
# through the view log_counts_by_level of migrations/*/0005_*), in seconds, coarsest first;
# each divides the one before it.
COUNT_GRANULES_S = (1800, 60)

# The columns /api/facets may count: short, repeated values worth grouping by.
FACET_FIELDS = (
    "service",
    "level",
    "log_type",
    "environment",
    "service_version",
    "path",
    "method",
    "error_type",
    "function_name",
    "action_type",
    "user_id",
    "session_id",
    "trace_id",
)
DEFAULT_FACET_FIELDS = ("service", "level")
# The facet fields log_counts keeps.
COUNTED_FIELDS = frozenset({"service", "level"})
DEFAULT_TOP = 10
MAX_TOP = 100


def nice_interval(span_s: float, buckets: int) -> int:
    """The smallest width of NICE_INTERVALS_S at least ``span_s / buckets`` seconds, else whole
    days."""
    needed = span_s / buckets
    for interval in NICE_INTERVALS_S:
        if interval >= needed:
            return interval
    days = -(-needed // 86400)
    return int(days) * 86400


def histogram(store: Any, filters: Filters, buckets: int | str = DEFAULT_BUCKETS) -> dict[str, Any]:
    """``{"interval_s": n, "buckets": [{"t": iso, "counts": {level: n}}]}`` over
    [since, until): ``since`` defaults to 24 hours before ``filters.now_us``, ``until`` to it.
    Buckets start at multiples of the interval since the epoch (UTC), so the same window always
    gives the same edges; the first may begin before ``since`` and counts only rows from
    ``since``. Every bucket is listed, and each counts every level the filters admit, zeros
    included, in level order."""
    buckets = checked_int("buckets", buckets, 1, MAX_BUCKETS)
    until_us = filters.until_us if filters.until_us is not None else filters.now_us
    if filters.since_us is not None:
        since_us = filters.since_us
    else:
        since_us = until_us - DEFAULT_HISTOGRAM_WINDOW_S * 1_000_000
    if since_us >= until_us:
        raise BadQuery("since", "since must be earlier than until")
    interval_s = nice_interval((until_us - since_us) / 1_000_000, buckets)
    interval_us = interval_s * 1_000_000
    start_us = since_us // interval_us * interval_us
    count = -(-(until_us - start_us) // interval_us)
    levels = filters.levels if filters.levels is not None else LEVELS
    granules = [g for g in COUNT_GRANULES_S if interval_s % g == 0] if _counted(filters) else []
    parts = []
    with snapshot(store) as (conn, d):
        d.plan_text_search(conn, filters)
        for granule, low_us, high_us in time_pieces(since_us, until_us, granules):
            if granule is None:
                window = dataclasses.replace(filters, since_us=low_us, until_us=high_us)
                parts.append(_rows_part(d, window, start_us, interval_us))
            else:
                parts.append(
                    _counts_part(d, filters, granule, low_us, high_us, start_us, interval_us)
                )
        sql = " UNION ALL ".join(part_sql for part_sql, _ in parts)
        rows = conn.execute(sql, [param for _, params in parts for param in params]).fetchall()
    counts = [dict.fromkeys(levels, 0) for _ in range(count)]
    for bucket, level_name, n in rows:
        counts[int(bucket)][level_name] += int(n)
    return {
        "interval_s": interval_s,
        "buckets": [
            {"t": iso(start_us + i * interval_us), "counts": counts[i]} for i in range(count)
        ],
    }


def _counted(filters: Filters) -> bool:
    """Whether log_counts can answer ``filters``: it keeps service, level and time alone."""
    return filters.q is None and not filters.equals and not filters.meta and not filters.excludes


def time_pieces(
    low_us: int, high_us: int, granules: list[int] | tuple[int, ...]
) -> list[tuple[int | None, int, int]]:
    """[low_us, high_us) cut into ``(granule_s, start, end)`` pieces: the middle in whole
    granules of the coarsest of ``granules`` (coarsest first, each dividing the one before),
    each end in whole granules of the next finer one, and what no granule covers with
    ``granule_s`` None, to be counted from the rows."""
    if low_us >= high_us:
        return []
    if not granules:
        return [(None, low_us, high_us)]
    width = granules[0] * 1_000_000
    first = -(-low_us // width) * width
    last = high_us // width * width
    if first >= last:
        return time_pieces(low_us, high_us, granules[1:])
    return [
        *time_pieces(low_us, first, granules[1:]),
        (granules[0], first, last),
        *time_pieces(last, high_us, granules[1:]),
    ]


def _rows_part(
    d: Dialect, window: Filters, start_us: int, interval_us: int
) -> tuple[str, list[Any]]:
    where, params = d.where(window)
    level = "level::text" if d.postgres else "level"
    return (
        f"SELECT ({d.time_us('created_at')} - {d.p}) / {d.p} AS bucket, {level}, count(*) "
        f"FROM logs WHERE {where} GROUP BY 1, 2",
        [start_us, interval_us, *params],
    )


def _counts_part(
    d: Dialect,
    filters: Filters,
    granule_s: int,
    low_us: int,
    high_us: int,
    start_us: int,
    interval_us: int,
) -> tuple[str, list[Any]]:
    """The counts of log_counts' ``granule_s`` granules in [low_us, high_us): each granule lies
    inside one bucket, since the granule divides the interval and both start at the epoch."""
    where, params = _counts_where(d, filters, granule_s, low_us, high_us)
    level = "level::text" if d.postgres else "level"
    return (
        f"SELECT (bucket_us - {d.p}) / {d.p} AS bucket, {level}, sum(n) "
        f"FROM log_counts_by_level WHERE {where} GROUP BY 1, 2",
        [start_us, interval_us, *params],
    )


def _counts_where(
    d: Dialect, filters: Filters, granule_s: int, low_us: int | None, high_us: int | None
) -> tuple[str, list[Any]]:
    """The condition selecting the log_counts rows of ``granule_s`` granules starting in
    [low_us, high_us) (None: unbounded) that ``filters``' service and level admit."""
    p = d.p
    clauses = [f"granule_s = {p}"]
    params: list[Any] = [granule_s]
    if low_us is not None:
        clauses.append(f"bucket_us >= {p}")
        params.append(low_us)
    if high_us is not None:
        clauses.append(f"bucket_us < {p}")
        params.append(high_us)
    d.service_and_level(filters, clauses, params)
    return " AND ".join(clauses), params


def open_time_pieces(
    low_us: int | None, high_us: int | None, granules: tuple[int, ...]
) -> list[tuple[int | None, int | None, int | None]]:
    """``time_pieces`` where either end may be None (unbounded): the unbounded side is covered
    by granules of the coarsest size, which hold every row however far it lies."""
    if low_us is not None and high_us is not None:
        return list(time_pieces(low_us, high_us, granules))
    width = granules[0] * 1_000_000
    if low_us is None and high_us is None:
        return [(granules[0], None, None)]
    if low_us is None:
        assert high_us is not None
        last = high_us // width * width
        return [(granules[0], None, last), *time_pieces(last, high_us, granules[1:])]
    first = -(-low_us // width) * width
    return [*time_pieces(low_us, first, granules[1:]), (granules[0], first, None)]


def facets(
    store: Any,
    filters: Filters,
    fields: str | list[str] | tuple[str, ...] | None = None,
    top: int | str = DEFAULT_TOP,
) -> dict[str, list[dict[str, Any]]]:
    """``{field: [{"value", "count"}, ...]}``: for each of ``fields`` (a list, or one
    comma-separated string; DEFAULT_FACET_FIELDS when none), its ``top`` most frequent
    non-NULL values among the rows ``filters`` selects, most frequent first, ties by value in
    code point order. Service and level under filters log_counts keeps are counted from it."""
    chosen = parse_fields(fields)
    top = checked_int("top", top, 1, MAX_TOP)
    result: dict[str, list[dict[str, Any]]] = {}
    with snapshot(store) as (conn, d):
        d.plan_text_search(conn, filters)
        for field in chosen:
            if field in COUNTED_FIELDS and _counted(filters):
                sql, params = _counted_facet(d, filters, field)
            else:
                sql, params = _rows_facet(d, filters, field)
            rows = conn.execute(f"{sql} ORDER BY 2 DESC, 1 LIMIT {d.p}", [*params, top]).fetchall()
            result[field] = [{"value": v, "count": int(n)} for v, n in rows]
    return result


def _rows_facet(d: Dialect, filters: Filters, field: str) -> tuple[str, list[Any]]:
    where, params = d.where(filters)
    group = "1"
    if not d.postgres and (filters.since_us is not None or filters.until_us is not None):
        # Within a window of time SQLite's planner, without ANALYZE statistics, would walk a
        # whole index led by the field to group without sorting; ``+field`` (the same value)
        # leaves it the time index.
        # https://www.sqlite.org/optoverview.html#disqualifying_where_clause_terms_using_unary_
        group = f"+{field}"
    return (
        f"SELECT {d.text(field)} AS value, count(*) AS n FROM logs "
        f"WHERE {where} AND {field} IS NOT NULL GROUP BY {group}",
        params,
    )


def _counted_facet(d: Dialect, filters: Filters, field: str) -> tuple[str, list[Any]]:
    """Service or level counted from log_counts' granules inside the window and from the rows
    at its ends that no granule covers."""
    parts: list[tuple[str, list[Any]]] = []
    for granule, low_us, high_us in open_time_pieces(
        filters.since_us, filters.until_us, COUNT_GRANULES_S
    ):
        if granule is None:
            where, params = d.where(dataclasses.replace(filters, since_us=low_us, until_us=high_us))
            # ``+field`` keeps SQLite on the time index, as in _rows_facet.
            group = field if d.postgres else f"+{field}"
            sql = f"SELECT {field} AS value, count(*) AS n FROM logs WHERE {where} GROUP BY {group}"
        else:
            where, params = _counts_where(d, filters, granule, low_us, high_us)
            sql = (
                f"SELECT {field} AS value, sum(n) AS n FROM log_counts_by_level WHERE {where} "
                "GROUP BY 1"
            )
        parts.append((sql, params))
    union = " UNION ALL ".join(sql for sql, _ in parts)
    return (
        f"SELECT {d.text('value')}, sum(n) FROM ({union}) AS pieces GROUP BY value "
        f"HAVING sum(n) > 0",
        [param for _, params in parts for param in params],
    )


def parse_fields(fields: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The facet fields asked for, each from FACET_FIELDS, repeats dropped."""
    if fields is None:
        return DEFAULT_FACET_FIELDS
    parts = fields.split(",") if isinstance(fields, str) else list(fields)
    names: list[str] = []
    for part in parts:
        if not isinstance(part, str):
            raise BadQuery("fields", "must be column names")
        names.extend(name.strip() for name in part.split(",") if name.strip())
    if not names:
        return DEFAULT_FACET_FIELDS
    for name in names:
        if name not in FACET_FIELDS:
            shown = name[:100].encode("utf-8", "backslashreplace").decode("utf-8")
            raise BadQuery("fields", f"{shown!r} is not one of {', '.join(FACET_FIELDS)}")
    return tuple(dict.fromkeys(names))


def services(store: Any, now: float) -> list[dict[str, Any]]:
    """``[{"service", "count", "last_seen", "errors_1h"}]``, one per service with rows not
    deleted, by name in code point order: its rows, its newest created_at, and its ERROR and
    FATAL rows created in the hour up to ``now`` (Unix seconds).

    The rows per service and level come from log_counts' coarsest granules (every row lies in
    one), the newest created_at of each from the top of the (service, level, created_at)
    index, and the errors as a counted facet: no statement reads every row."""
    now_us = to_microseconds(now)
    recent = Filters(
        now_us=now_us,
        levels=ERROR_LEVELS,
        since_us=to_microseconds(now - RECENT_ERRORS_WINDOW_S),
        until_us=None,
    )
    with snapshot(store) as (conn, d):
        p = d.p
        pairs = conn.execute(
            f"SELECT c.service, c.n, (SELECT max(l.created_at) FROM logs AS l "
            f"WHERE l.service = c.service AND l.level = c.level AND l.deleted = FALSE) "
            f"FROM (SELECT service, level, sum(n) AS n FROM log_counts_by_level "
            f"WHERE granule_s = {p} GROUP BY service, level HAVING sum(n) > 0) AS c",
            [COUNT_GRANULES_S[0]],
        ).fetchall()
        sql, params = _counted_facet(d, recent, "service")
        errors = dict(conn.execute(sql, params).fetchall())
    summary: dict[str, list[int]] = {}
    for name, n, last in pairs:
        count_and_last = summary.setdefault(name, [0, -(2**63)])
        count_and_last[0] += int(n)
        if last is not None:
            count_and_last[1] = max(count_and_last[1], d.us(last))
    return [
        {
            "service": name,
            "count": n,
            "last_seen": iso(last_us),
            "errors_1h": int(errors.get(name, 0)),
        }
        # Python orders str by code point, as the other answers are ordered.
        for name, (n, last_us) in sorted(summary.items())
    ]
