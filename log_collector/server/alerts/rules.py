"""The conditions the alert checker watches, each a frozen dataclass holding its thresholds and
an ``evaluate`` that reads the store and returns a ``Finding`` per key whose condition holds:

- ``ErrorSpike``: a service's ERROR and FATAL lines in the last ``window_s`` against the mean of
  the ``baseline_windows`` windows before it: at least ``min_errors``, and more than ``factor``
  times that mean. A mean of zero makes ``min_errors`` alone the bar (a rise from zero).
- ``SlowEndpoint``: a method and path whose 95th percentile ``duration_ms`` over the last
  ``window_s`` (``query.endpoints``, PostgreSQL's ``percentile_cont`` on both stores) is above
  ``threshold_ms`` with at least ``min_count`` timed requests.
- ``SilentService``: a service that logged within the last ``lookback_s`` and not in the last
  ``silence_s``. An open alert stays open while the service is silent, however long: it
  resolves when the service logs again, not when its last line leaves the lookback.

Every read goes through the query layer on ``store.reading()`` connections (the counts from
log_counts where whole granules cover the window), so both stores answer alike and ingest's
connections are never used. ``now_us`` is the checker's clock, never the database's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol

from ..query import endpoints as endpoint_query
from ..query.aggregates import COUNT_GRANULES_S, services, time_pieces
from ..query.dialect import Dialect, snapshot
from ..query.filters import Filters, iso
from ..store.base import ERROR_LEVELS

SEVERITIES = ("info", "warning", "critical")
# A rule's key and summary are cut to the column limits of migrations/*/0006_alerts.sql.
MAX_KEY_CHARS = 1000
MAX_SUMMARY_CHARS = 2000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Finding:
    """A rule's condition holding for ``key`` now: what an alert row holds while open."""

    rule: str
    key: str
    severity: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


class Rule(Protocol):
    name: ClassVar[str]
    enabled: bool
    severity: str

    def evaluate(self, store: Any, now_us: int, open_keys: frozenset[str]) -> list[Finding]:
        """The findings at ``now_us``; ``open_keys`` are this rule's keys with an alert open."""


def _finding(rule: Rule, key: str, summary: str, details: dict[str, Any]) -> Finding:
    """``rule``'s finding for ``key``, the key and summary cut to the columns' limits."""
    return Finding(
        rule.name, key[:MAX_KEY_CHARS], rule.severity, summary[:MAX_SUMMARY_CHARS], details
    )


def _positive(rule: str, name: str, value: object, *, whole: bool = False) -> None:
    kind = int if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        what = "a whole number" if whole else "a number"
        raise ValueError(f"{rule}.{name} must be {what} above 0, got {value!r}")


def _checked_common(rule: str, enabled: object, severity: object) -> None:
    if not isinstance(enabled, bool):
        raise ValueError(f"{rule}.enabled must be true or false, got {enabled!r}")
    if severity not in SEVERITIES:
        raise ValueError(f"{rule}.severity must be one of {', '.join(SEVERITIES)}")


@dataclass(frozen=True)
class ErrorSpike:
    name: ClassVar[str] = "error_spike"
    enabled: bool = True
    severity: str = "critical"
    window_s: int = 300
    baseline_windows: int = 6
    factor: float = 3.0
    min_errors: int = 5

    def __post_init__(self) -> None:
        _checked_common(self.name, self.enabled, self.severity)
        _positive(self.name, "window_s", self.window_s, whole=True)
        _positive(self.name, "baseline_windows", self.baseline_windows, whole=True)
        _positive(self.name, "factor", self.factor)
        _positive(self.name, "min_errors", self.min_errors, whole=True)

    def evaluate(self, store: Any, now_us: int, open_keys: frozenset[str]) -> list[Finding]:
        width = self.window_s * 1_000_000
        # Window 0 is the current one, 1 the one before it, and so on.
        windows = [
            (now_us - (i + 1) * width, now_us - i * width) for i in range(self.baseline_windows + 1)
        ]
        counts = window_counts(store, windows)
        findings = []
        for service in sorted({service for _, service in counts}):
            errors, lines = counts.get((0, service), (0, 0))
            baseline = [counts.get((i, service), (0, 0))[0] for i in range(1, len(windows))]
            mean = sum(baseline) / len(baseline)
            if errors < self.min_errors or errors <= self.factor * mean:
                continue
            per_minute = errors * 60 / self.window_s
            rise = "from none" if mean == 0 else f"{errors / mean:.1f} times the baseline"
            findings.append(
                _finding(
                    self,
                    service,
                    f"{service}: {errors} errors in the last {_span(self.window_s)} "
                    f"({per_minute:.1f}/min), {rise} "
                    f"({mean:.1f} per {_span(self.window_s)} over the previous "
                    f"{_span(self.window_s * self.baseline_windows)})",
                    {
                        "service": service,
                        "since": iso(windows[0][0]),
                        "until": iso(windows[0][1]),
                        "errors": errors,
                        "lines": lines,
                        "baseline_mean": mean,
                        "baseline_errors": baseline,
                        "window_s": self.window_s,
                        "factor": self.factor,
                        "min_errors": self.min_errors,
                    },
                )
            )
        return findings


@dataclass(frozen=True)
class SlowEndpoint:
    name: ClassVar[str] = "slow_endpoint"
    enabled: bool = True
    severity: str = "warning"
    window_s: int = 300
    threshold_ms: float = 1000.0
    min_count: int = 10

    def __post_init__(self) -> None:
        _checked_common(self.name, self.enabled, self.severity)
        _positive(self.name, "window_s", self.window_s, whole=True)
        _positive(self.name, "threshold_ms", self.threshold_ms)
        _positive(self.name, "min_count", self.min_count, whole=True)

    def evaluate(self, store: Any, now_us: int, open_keys: frozenset[str]) -> list[Finding]:
        since_us = now_us - self.window_s * 1_000_000
        window = Filters(now_us=now_us, since_us=since_us, until_us=now_us)
        # Slowest 95th percentile first: every endpoint over the threshold comes before any
        # under it, so the first MAX_TOP hold them all unless more than MAX_TOP are slow.
        listed = endpoint_query.endpoints(store, window, top=endpoint_query.MAX_TOP)["endpoints"]
        findings = []
        for endpoint in listed:
            if endpoint["p95_ms"] <= self.threshold_ms:
                break
            if endpoint["count"] < self.min_count:
                continue
            path, method = endpoint["path"], endpoint["method"]
            key = f"{method} {path}" if method else path
            findings.append(
                _finding(
                    self,
                    key,
                    f"{key}: p95 {endpoint['p95_ms']:.0f} ms over {endpoint['count']} requests "
                    f"in the last {_span(self.window_s)} (threshold {self.threshold_ms:.0f} ms)",
                    {
                        **endpoint,
                        "since": iso(since_us),
                        "until": iso(now_us),
                        "window_s": self.window_s,
                        "threshold_ms": self.threshold_ms,
                    },
                )
            )
        return findings


@dataclass(frozen=True)
class SilentService:
    name: ClassVar[str] = "silent_service"
    enabled: bool = True
    severity: str = "critical"
    # The dashboard's Overview marks a service silent after 15 minutes too
    # (ui/static/js/pages/overview.js, SILENT_AFTER_MS).
    silence_s: int = 900
    lookback_s: int = 3600

    def __post_init__(self) -> None:
        _checked_common(self.name, self.enabled, self.severity)
        _positive(self.name, "silence_s", self.silence_s, whole=True)
        _positive(self.name, "lookback_s", self.lookback_s, whole=True)
        if self.lookback_s <= self.silence_s:
            raise ValueError(
                f"{self.name}.lookback_s must be longer than silence_s ({self.silence_s}), "
                f"got {self.lookback_s}"
            )

    def evaluate(self, store: Any, now_us: int, open_keys: frozenset[str]) -> list[Finding]:
        quiet_since_us = now_us - self.silence_s * 1_000_000
        watched_since_us = now_us - self.lookback_s * 1_000_000
        findings = []
        for summary in services(store, now_us / 1_000_000):
            service = summary["service"]
            last_us = _us(summary["last_seen"])
            if last_us >= quiet_since_us:
                continue
            if last_us < watched_since_us and service not in open_keys:
                continue
            silent_s = (now_us - last_us) // 1_000_000
            findings.append(
                _finding(
                    self,
                    service,
                    f"{service}: no logs for {_span(silent_s)} (last at {summary['last_seen']})",
                    {
                        "service": service,
                        "last_seen": summary["last_seen"],
                        "silent_s": silent_s,
                        "silence_s": self.silence_s,
                        "lookback_s": self.lookback_s,
                    },
                )
            )
        return findings


RULES: tuple[type[ErrorSpike] | type[SlowEndpoint] | type[SilentService], ...] = (
    ErrorSpike,
    SlowEndpoint,
    SilentService,
)


def window_counts(
    store: Any, windows: list[tuple[int, int]]
) -> dict[tuple[int, str], tuple[int, int]]:
    """``{(window index, service): (ERROR and FATAL lines, all lines)}`` for each of ``windows``
    ([low_us, high_us) pairs), from one snapshot: the whole granules of log_counts inside each
    window, the rows at its ends that no granule covers. Pairs without a line are left out."""
    with snapshot(store) as (conn, d):
        parts: list[str] = []
        params: list[Any] = []
        for index, (low_us, high_us) in enumerate(windows):
            for granule, low, high in time_pieces(low_us, high_us, COUNT_GRANULES_S):
                sql, part_params = _count_part(d, index, granule, low, high)
                parts.append(sql)
                params.extend(part_params)
        if not parts:
            return {}
        rows = conn.execute(
            f"SELECT w, service, sum(errors), sum(lines) FROM ({' UNION ALL '.join(parts)}) "
            "AS pieces GROUP BY w, service HAVING sum(lines) > 0",
            params,
        ).fetchall()
    return {(int(w), service): (int(errors), int(lines)) for w, service, errors, lines in rows}


def _count_part(
    d: Dialect, index: int, granule: int | None, low_us: int, high_us: int
) -> tuple[str, list[Any]]:
    p = d.p
    errors = f"level IN ({', '.join(p for _ in ERROR_LEVELS)})"
    if granule is None:
        return (
            f"SELECT {index:d} AS w, service, sum(CASE WHEN {errors} THEN 1 ELSE 0 END) AS errors, "
            f"count(*) AS lines FROM logs WHERE deleted = FALSE AND created_at >= {p} "
            f"AND created_at < {p} GROUP BY service",
            [*ERROR_LEVELS, d.time(low_us), d.time(high_us)],
        )
    return (
        f"SELECT {index:d} AS w, service, sum(CASE WHEN {errors} THEN n ELSE 0 END) AS errors, "
        f"sum(n) AS lines FROM log_counts_by_level WHERE granule_s = {p} AND bucket_us >= {p} "
        f"AND bucket_us < {p} GROUP BY service",
        [*ERROR_LEVELS, granule, low_us, high_us],
    )


def _us(text: str) -> int:
    """ISO 8601 text with a zone as microseconds since the epoch, exactly."""
    return (datetime.fromisoformat(text) - _EPOCH) // timedelta(microseconds=1)


def _span(seconds: int | float) -> str:
    """``seconds`` as words: "5 min", "2 h", "90 s"."""
    seconds = int(seconds)
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} min"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"
