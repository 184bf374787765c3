"""The SQL of an ``Interpretation``: one SELECT over ``logs`` for the store's dialect, and the
chart that shows its rows.

The statement goes through the guard of ``POST /api/sql`` like any other, so it uses only the
functions the guard allows for the dialect. Values come from the interpreter, which takes them
from the store (services, paths, error types, users), parses them (numbers, times, trace ids of
a narrow alphabet) or from a request's body (a service); every text value is written as a string
literal with its quotes doubled, and times and numbers as integers.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from ..query.filters import iso
from ..store.base import ERROR_LEVELS
from .interpretation import Interpretation

DIALECTS = ("sqlite", "postgres")
# Lines of a user's or a trace's story at most.
STORY_LINES = 200
DAY_US = 86_400_000_000

Chart = dict[str, str]


def build_sql(interp: Interpretation, dialect: str) -> tuple[str, Chart | None]:
    """``(sql, chart)``; ValueError for the intent ``unknown`` or an unknown dialect."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect: expected one of {DIALECTS}, got {dialect!r}")
    builder = _BUILDERS.get(interp.intent)
    if builder is None:
        raise ValueError(f"intent {interp.intent!r} has no SQL")
    return builder(_Sql(dialect), interp)


def zero_filled(interp: Interpretation, rows: list[list[Any]], limit: int) -> list[list[Any]]:
    """The rows of ``counts_over_time`` (``[bucket time, n]``, ISO 8601 text) with a
    ``[time, 0]`` row for each bucket of the window in which nothing was logged, so a chart
    shows a quiet spell as zero rather than drawing across it. The window is the question's
    (its first bucket holds ``since``), or the rows' own span where it is open. The rows as
    they are when none matched or when the buckets would be more than ``limit``."""
    if interp.intent != "counts_over_time" or not rows:
        return rows
    width = int(interp.bucket_s or 300)
    try:
        found = {int(datetime.datetime.fromisoformat(str(row[0])).timestamp()): row for row in rows}
        zone = datetime.datetime.fromisoformat(str(rows[0][0])).tzinfo or datetime.UTC
    except ValueError:
        return rows
    first = min(found) if interp.since_us is None else interp.since_us // 1_000_000 // width * width
    if interp.until_us is None:
        end = max(found) + width
    else:
        end = math.ceil(interp.until_us / 1_000_000 / width) * width  # until's bucket, whole
    if first >= end or (end - first) // width > limit or any(t < first or t >= end for t in found):
        return rows
    return [
        found.get(t) or [datetime.datetime.fromtimestamp(t, zone).isoformat(), 0]
        for t in range(first, end, width)
    ]


def quote(value: str) -> str:
    """``value`` as an SQL string literal: quotes doubled (standard SQL; PostgreSQL has
    standard_conforming_strings on, so a backslash is only a backslash)."""
    return "'" + value.replace("'", "''") + "'"


class _Sql:
    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.postgres = dialect == "postgres"

    def time(self, us: int) -> str:
        if self.postgres:
            return f"CAST({quote(iso(int(us)))} AS TIMESTAMPTZ)"
        return str(int(us))

    def time_text(self, column: str = "created_at") -> str:
        """The time as ISO 8601 text on SQLite (it holds integer microseconds); PostgreSQL's
        timestamptz is returned as a time already."""
        if self.postgres:
            return column
        return (
            f"strftime('%Y-%m-%dT%H:%M:%S', {column} / 1000000, 'unixepoch') "
            f"|| printf('.%06d+00:00', {column} % 1000000)"
        )

    def bucket(self, seconds: int) -> str:
        seconds = int(seconds)
        if self.postgres:
            return f"to_timestamp(floor(extract(epoch FROM created_at) / {seconds}) * {seconds})"
        return (
            f"strftime('%Y-%m-%dT%H:%M:%S', created_at / 1000000 / {seconds} * {seconds}, "
            f"'unixepoch') || '+00:00'"
        )

    def where(self, interp: Interpretation, *, times: bool = True, levels: Any = None) -> str:
        clauses = ["deleted = FALSE"]
        if times:
            clauses += self.window(interp.since_us, interp.until_us)
        if interp.service is not None:
            clauses.append(f"service = {quote(interp.service)}")
        chosen = levels if levels is not None else interp.level
        if chosen:
            clauses.append(_levels(chosen))
        for column in ("error_type", "path", "user_id", "trace_id"):
            value = getattr(interp, column)
            if value is not None:
                clauses.append(f"{column} = {quote(value)}")
        return " AND ".join(clauses)

    def window(self, since_us: int | None, until_us: int | None) -> list[str]:
        clauses = []
        if since_us is not None:
            clauses.append(f"created_at >= {self.time(since_us)}")
        if until_us is not None:
            clauses.append(f"created_at < {self.time(until_us)}")
        return clauses


def _levels(levels: tuple[str, ...]) -> str:
    return "level IN (" + ", ".join(quote(level) for level in levels) + ")"


def _errors_in_window(s: _Sql, interp: Interpretation) -> tuple[str, Chart | None]:
    where = s.where(interp, levels=interp.level or ERROR_LEVELS)
    return (
        f"SELECT service, count(*) AS errors FROM logs WHERE {where} "
        "GROUP BY service ORDER BY errors DESC, service",
        {"kind": "bar", "x": "service", "y": "errors"},
    )


def _top_error_types(s: _Sql, interp: Interpretation) -> tuple[str, Chart | None]:
    where = s.where(interp)
    return (
        f"SELECT error_type, count(*) AS n FROM logs WHERE {where} AND error_type IS NOT NULL "
        f"GROUP BY error_type ORDER BY n DESC, error_type LIMIT {int(interp.top_n or 10)}",
        {"kind": "bar", "x": "error_type", "y": "n"},
    )


def _services_with_error(s: _Sql, interp: Interpretation) -> tuple[str, Chart | None]:
    where = s.where(interp)
    return (
        f"SELECT service, count(*) AS n FROM logs WHERE {where} "
        "GROUP BY service ORDER BY n DESC, service",
        {"kind": "bar", "x": "service", "y": "n"},
    )


def _users_affected(s: _Sql, interp: Interpretation) -> tuple[str, Chart | None]:
    where = s.where(interp)
    return (
        f"SELECT count(DISTINCT user_id) AS users, count(*) AS n FROM logs WHERE {where} "
        "AND user_id IS NOT NULL",
        None,
    )


def _counts_over_time(s: _Sql, interp: Interpretation) -> tuple[str, Chart | None]:
    bucket = s.bucket(interp.bucket_s or 300)
    return (
        f"SELECT {bucket} AS t, count(*) AS n FROM logs WHERE {s.where(interp)} "
        "GROUP BY 1 ORDER BY 1",
        {"kind": "timeseries", "x": "t", "y": "n"},
    )


def _slowest_endpoints(s: _Sql, interp: Interpretation) -> tuple[str, Chart | None]:
    where = s.where(interp)
    return (
        "SELECT path, count(*) AS requests, avg(duration_ms) AS avg_ms, "
        f"max(duration_ms) AS max_ms FROM logs WHERE {where} AND path IS NOT NULL "
        "AND duration_ms IS NOT NULL GROUP BY path ORDER BY avg_ms DESC, path "
        f"LIMIT {int(interp.top_n or 10)}",
        {"kind": "bar", "x": "path", "y": "avg_ms"},
    )


def _latency_over_time(s: _Sql, interp: Interpretation) -> tuple[str, Chart | None]:
    bucket = s.bucket(interp.bucket_s or 3600)
    return (
        f"SELECT {bucket} AS t, count(*) AS requests, avg(duration_ms) AS avg_ms, "
        f"max(duration_ms) AS max_ms FROM logs WHERE {s.where(interp)} "
        "AND duration_ms IS NOT NULL GROUP BY 1 ORDER BY 1",
        {"kind": "timeseries", "x": "t", "y": "avg_ms"},
    )


_STORY_COLUMNS = "service, level, path, error_type, duration_ms, trace_id, message"


def _user_story(s: _Sql, interp: Interpretation) -> tuple[str, Chart | None]:
    """The lines of the user's latest trace (on ``path`` when the question named a topic); a
    user whose lines carry no trace gets their latest lines."""
    assert interp.user_id is not None
    user = quote(interp.user_id)
    latest_where = " AND ".join(
        [
            "deleted = FALSE",
            f"user_id = {user}",
            "trace_id IS NOT NULL",
            *s.window(interp.since_us, interp.until_us),
            *([f"path = {quote(interp.path)}"] if interp.path is not None else []),
        ]
    )
    latest = (
        f"(SELECT trace_id FROM logs WHERE {latest_where} ORDER BY created_at DESC, id DESC "
        "LIMIT 1)"
    )
    untraced = " AND ".join(
        ["deleted = FALSE", f"user_id = {user}", *s.window(interp.since_us, interp.until_us)]
    )
    return (
        f"SELECT {s.time_text()} AS created_at, {_STORY_COLUMNS} FROM logs "
        f"WHERE (deleted = FALSE AND trace_id = {latest}) OR ({latest} IS NULL AND {untraced}) "
        f"ORDER BY created_at, id LIMIT {STORY_LINES}",
        None,
    )


def _trace_story(s: _Sql, interp: Interpretation) -> tuple[str, Chart | None]:
    return (
        f"SELECT {s.time_text()} AS created_at, {_STORY_COLUMNS} FROM logs "
        f"WHERE {s.where(interp, times=False)} ORDER BY created_at, id LIMIT {STORY_LINES}",
        None,
    )


def _error_rate(s: _Sql, interp: Interpretation) -> tuple[str, Chart | None]:
    where = s.where(interp.replace(level=None))
    errors = f"sum(CASE WHEN {_levels(ERROR_LEVELS)} THEN 1 ELSE 0 END)"
    return (
        f"SELECT service, count(*) AS total, {errors} AS errors, "
        f"round(100.0 * {errors} / count(*), 2) AS error_rate_pct FROM logs WHERE {where} "
        "GROUP BY service ORDER BY error_rate_pct DESC, service",
        {"kind": "bar", "x": "service", "y": "error_rate_pct"},
    )


def previous_window(interp: Interpretation) -> tuple[int, int]:
    """The window the current one is compared with: the day before, or the one just before."""
    assert interp.since_us is not None and interp.until_us is not None
    shift = DAY_US if interp.compare == "yesterday" else interp.until_us - interp.since_us
    return interp.since_us - shift, interp.until_us - shift


def _compare_windows(s: _Sql, interp: Interpretation) -> tuple[str, Chart | None]:
    assert interp.since_us is not None and interp.until_us is not None
    before_since, before_until = previous_window(interp)
    current = " AND ".join(s.window(interp.since_us, interp.until_us))
    before = " AND ".join(s.window(before_since, before_until))
    where = s.where(interp, times=False)
    return (
        f"SELECT coalesce(sum(CASE WHEN {current} THEN 1 ELSE 0 END), 0) AS current_count, "
        f"coalesce(sum(CASE WHEN {before} THEN 1 ELSE 0 END), 0) AS previous_count "
        f"FROM logs WHERE {where} AND (({current}) OR ({before}))",
        None,
    )


_BUILDERS = {
    "errors_in_window": _errors_in_window,
    "top_error_types": _top_error_types,
    "services_with_error": _services_with_error,
    "users_affected": _users_affected,
    "counts_over_time": _counts_over_time,
    "slowest_endpoints": _slowest_endpoints,
    "latency_over_time": _latency_over_time,
    "user_story": _user_story,
    "trace_story": _trace_story,
    "error_rate": _error_rate,
    "compare_windows": _compare_windows,
}
