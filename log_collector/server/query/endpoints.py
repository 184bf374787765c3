"""The slowest HTTP endpoints: per path and method, how many requests logged a duration, the
median, 95th percentile and largest ``duration_ms``, and the ERROR and FATAL lines.

Percentiles are PostgreSQL's ``percentile_cont``: the value at position ``f * (n - 1)`` of the
n durations in ascending order, interpolated linearly between the two ranks around it
(https://www.postgresql.org/docs/15/functions-aggregate.html#FUNCTIONS-ORDEREDSET-TABLE).
SQLite has no percentile function in the library Python links, so its query ranks the
durations with ``row_number()`` and interpolates the same way, with the same float8 arithmetic
as PostgreSQL's ``percentile_cont_final_common``:
https://github.com/postgres/postgres/blob/REL_15_STABLE/src/backend/utils/adt/orderedsetaggs.c
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..store.base import ERROR_LEVELS
from .dialect import Dialect, snapshot
from .filters import Filters, checked_int

DEFAULT_TOP = 10
MAX_TOP = 100
# The window endpoints() covers when the request gives no ``since``: the hour before ``until``
# (or now).
DEFAULT_WINDOW_S = 3600
# The percentiles each endpoint reports, as (key, fraction).
PERCENTILES = (("p50_ms", 0.5), ("p95_ms", 0.95))


def endpoints(store: Any, filters: Filters, top: int | str = DEFAULT_TOP) -> dict[str, Any]:
    """``{"endpoints": [{"path", "method", "count", "p50_ms", "p95_ms", "max_ms", "errors"}]}``:
    the ``top`` (path, method) pairs among the rows ``filters`` selects, slowest 95th
    percentile first (then most requests, then path and method in code point order). A pair
    is listed when one of its rows has a path and a duration_ms; ``count`` and the durations
    are over those rows, ``errors`` counts its ERROR and FATAL rows with or without a duration
    (a failing request often logs its error apart from its timing). ``method`` may be null.
    ``since`` defaults to an hour before ``until`` (or now)."""
    top = checked_int("top", top, 1, MAX_TOP)
    if filters.since_us is None:
        until_us = filters.until_us if filters.until_us is not None else filters.now_us
        filters = dataclasses.replace(filters, since_us=until_us - DEFAULT_WINDOW_S * 1_000_000)
    with snapshot(store) as (conn, d):
        sql, params = _postgres(d, filters) if d.postgres else _sqlite(d, filters)
        rows = conn.execute(
            f"{sql} ORDER BY 5 DESC, 3 DESC, {d.text('path')}, method IS NULL, "
            f"{d.text('method')} LIMIT {d.p}",
            [*params, top],
        ).fetchall()
    return {
        "endpoints": [
            {
                "path": path,
                "method": method,
                "count": int(count),
                "p50_ms": float(p50),
                "p95_ms": float(p95),
                "max_ms": float(most),
                "errors": int(errors),
            }
            for path, method, count, p50, p95, most, errors in rows
        ]
    }


def _errors(d: Dialect) -> tuple[str, list[Any]]:
    levels = ", ".join(d.p for _ in ERROR_LEVELS)
    return f"sum(CASE WHEN level IN ({levels}) THEN 1 ELSE 0 END)", list(ERROR_LEVELS)


def _postgres(d: Dialect, filters: Filters) -> tuple[str, list[Any]]:
    where, params = d.where(filters)
    errors, error_params = _errors(d)
    # Ordered-set aggregates skip NULL inputs, and so do count(column) and max.
    percentiles = ", ".join(
        f"percentile_cont({fraction}) WITHIN GROUP (ORDER BY duration_ms)"
        for _, fraction in PERCENTILES
    )
    return (
        f"SELECT path, method::text AS method, count(duration_ms), {percentiles}, "
        f"max(duration_ms), {errors} FROM logs WHERE {where} AND path IS NOT NULL "
        "GROUP BY path, method HAVING count(duration_ms) > 0",
        [*error_params, *params],
    )


def _sqlite(d: Dialect, filters: Filters) -> tuple[str, list[Any]]:
    where, params = d.where(filters)
    errors, error_params = _errors(d)
    # r: each duration's rank from 0 within its (path, method), the NULLs ranked after every
    # duration so ranks 0 to n - 1 are the n durations in ascending order.
    ranked = (
        "SELECT path, method, level, duration_ms, "
        "row_number() OVER (PARTITION BY path, method ORDER BY duration_ms NULLS LAST) - 1 AS r, "
        "count(duration_ms) OVER (PARTITION BY path, method) AS n "
        f"FROM logs WHERE {where} AND path IS NOT NULL"
    )
    percentiles = ", ".join(_interpolated(fraction) for _, fraction in PERCENTILES)
    return (
        f"SELECT path, method, max(n), {percentiles}, max(duration_ms), {errors} "
        f"FROM ({ranked}) AS ranked GROUP BY path, method HAVING max(n) > 0",
        [*error_params, *params],
    )


def _interpolated(fraction: float) -> str:
    """SQL (over the rows of ``_sqlite``'s ranked subquery, grouped by path and method) for
    percentile_cont(``fraction``): first + (second - first) * (position - floor(position)),
    where position = fraction * (n - 1), first is the duration at rank floor(position) and
    second the one at the next rank (the same one when floor(position) is the last rank).
    CAST AS INTEGER truncates, which is floor for a position that is never negative."""
    position = f"({fraction!r} * (n - 1))"
    floor = f"CAST({position} AS INTEGER)"
    first = f"max(CASE WHEN r = {floor} THEN duration_ms END)"
    second = f"coalesce(max(CASE WHEN r = {floor} + 1 THEN duration_ms END), {first})"
    weight = f"max({position} - {floor})"
    return f"{first} + ({second} - {first}) * {weight}"
