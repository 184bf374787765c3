"""Seeded logs with known answers for /api/ask, and the questions of issue 20 (English and
Korean) with what each must be read as and an independent reference for its rows.

The references compute the answer in Python from every stored row (``server_helpers.
stored_rows``), not with the SQL of ``ask.sqlgen``, so a wrong statement cannot agree with
itself.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from server_helpers import row

ERRORS = ("ERROR", "FATAL")
SERVICES = ("auth-service", "checkout-api", "payment-api", "payment-worker")
PAYMENT = "/api/v1/payment"
STORY_TRACE = "trace-b2-payment"

# (minutes before now, service, level, fields): counts per service and type differ, so every
# top list has one order.
_SPEC: list[tuple[float, str, str, dict[str, Any]]] = [
    # the last hour
    *[(10 + i, "payment-api", "ERROR", {"error_type": "DatabaseConnectionError",
        "user_id": f"user_{i + 1}", "path": PAYMENT, "duration_ms": 900.0 + i})
      for i in range(4)],
    (20, "payment-api", "ERROR", {"error_type": "TimeoutError", "user_id": "user_123",
        "path": PAYMENT, "duration_ms": 3000.0, "trace_id": STORY_TRACE}),
    (22, "payment-api", "ERROR", {"error_type": "TimeoutError", "user_id": "user_2",
        "path": PAYMENT, "duration_ms": 3100.0}),
    (24, "checkout-api", "ERROR", {"error_type": "TimeoutError", "user_id": "user_4",
        "path": "/api/v1/checkout", "duration_ms": 2500.0}),
    (26, "checkout-api", "ERROR", {"error_type": "TimeoutError", "user_id": "user_123",
        "path": "/api/v1/checkout", "duration_ms": 2600.0}),
    (15, "auth-service", "ERROR", {"error_type": "DatabaseConnectionError",
        "path": "/api/v1/login", "duration_ms": 40.0}),
    (33, "payment-worker", "WARN", {"error_type": "ValidationError"}),
    (21, "payment-api", "INFO", {"user_id": "user_123", "path": PAYMENT, "duration_ms": 120.0,
        "trace_id": STORY_TRACE}),
    (19, "checkout-api", "INFO", {"user_id": "user_123", "path": "/api/v1/checkout",
        "duration_ms": 80.0, "trace_id": STORY_TRACE}),
    *[(30 + i, "payment-api", "INFO", {"path": PAYMENT, "duration_ms": 100.0 + 10 * i})
      for i in range(5)],
    *[(35 + i, "checkout-api", "INFO", {"path": "/api/v1/checkout", "duration_ms": 60.0 + i})
      for i in range(3)],
    *[(40 + i, "auth-service", "INFO", {"path": "/api/v1/login", "duration_ms": 20.0 + i})
      for i in range(3)],
    # user_123's latest line is no payment: the story of the last payment attempt skips it
    (5, "auth-service", "INFO", {"user_id": "user_123", "path": "/api/v1/login",
        "duration_ms": 25.0, "trace_id": "trace-c3-login"}),
    # hours ago: outside the last hour
    (180, "payment-api", "ERROR", {"error_type": "ValidationError", "user_id": "user_7",
        "path": PAYMENT, "duration_ms": 150.0}),
    (185, "payment-api", "ERROR", {"error_type": "ValidationError", "user_id": "user_8",
        "path": PAYMENT, "duration_ms": 160.0}),
    (190, "payment-api", "INFO", {"user_id": "user_123", "path": PAYMENT, "duration_ms": 110.0,
        "trace_id": "trace-a1-payment"}),
    # a day ago and more
    *[(26 * 60 + i, "payment-api", "ERROR", {"error_type": "TimeoutError",
        "user_id": f"user_{20 + i}", "path": PAYMENT, "duration_ms": 2000.0})
      for i in range(5)],
    (27 * 60, "payment-api", "FATAL", {"error_type": "OutOfMemoryError"}),
]  # fmt: skip


def seed_rows(now: float) -> list[tuple]:
    """The rows of the corpus, timed against ``now`` (Unix seconds)."""
    return [
        row(f"{service} {level.lower()} {i}", service=service, level=level,
            created_at=now - minutes * 60, **fields)
        for i, (minutes, service, level, fields) in enumerate(_SPEC)
    ]  # fmt: skip


def seconds(value: str | None) -> float | None:
    """An ISO 8601 time of an answer as Unix seconds."""
    return None if value is None else datetime.fromisoformat(value).timestamp()


def _in(r: dict[str, Any], interp: dict[str, Any]) -> bool:
    since, until = seconds(interp["since"]), seconds(interp["until"])
    return (
        not r["deleted"]
        and (since is None or r["created_at"] >= since - 1e-6)
        and (until is None or r["created_at"] < until - 1e-6)
        and all(
            interp.get(name) is None or r[name] == interp[name]
            for name in ("service", "error_type", "path", "user_id", "trace_id")
        )
    )


def _ranked(counts: Counter) -> list[list[Any]]:
    return [[k, n] for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def errors_by_service(rows: list[dict], interp: dict) -> list[list[Any]]:
    return _ranked(Counter(r["service"] for r in rows if _in(r, interp) and r["level"] in ERRORS))


def top_error_types(rows: list[dict], interp: dict) -> list[list[Any]]:
    counts = Counter(r["error_type"] for r in rows if _in(r, interp) and r["error_type"])
    return _ranked(counts)[: interp["top_n"]]


def services_with(rows: list[dict], interp: dict) -> list[list[Any]]:
    return _ranked(Counter(r["service"] for r in rows if _in(r, interp)))


def users_affected(rows: list[dict], interp: dict) -> list[list[Any]]:
    hit = [r for r in rows if _in(r, interp) and r["user_id"]]
    return [[len({r["user_id"] for r in hit}), len(hit)]]


def _bucket_of(interp: dict) -> Callable[[float], float]:
    width = interp["bucket_s"]
    return lambda t: t // width * width


def counts_over_time(rows: list[dict], interp: dict) -> list[list[Any]]:
    """Every bucket of the window, a quiet one as 0: from the one holding ``since`` to the
    one holding ``until`` (the rows' own first and last where the window is open); none
    when nothing matched."""
    bucket = _bucket_of(interp)
    levels = interp["level"]
    counts = Counter(
        bucket(r["created_at"])
        for r in rows
        if _in(r, interp) and (levels is None or r["level"] in levels)
    )
    if not counts:
        return []
    width = interp["bucket_s"]
    since, until = seconds(interp["since"]), seconds(interp["until"])
    first = min(counts) if since is None else since // width * width
    last = max(counts) if until is None else (until - 1e-6) // width * width
    return [[t, counts.get(t, 0)] for t in range(int(first), int(last) + 1, width)]


def slowest_endpoints(rows: list[dict], interp: dict) -> list[list[Any]]:
    durations: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if _in(r, interp) and r["path"] and r["duration_ms"] is not None:
            durations[r["path"]].append(r["duration_ms"])
    table = [[p, len(d), sum(d) / len(d), max(d)] for p, d in durations.items()]
    table.sort(key=lambda t: (-t[2], t[0]))
    return table[: interp["top_n"]]


def latency_over_time(rows: list[dict], interp: dict) -> list[list[Any]]:
    bucket = _bucket_of(interp)
    durations: dict[float, list[float]] = defaultdict(list)
    for r in rows:
        if _in(r, interp) and r["duration_ms"] is not None:
            durations[bucket(r["created_at"])].append(r["duration_ms"])
    return [[t, len(d), sum(d) / len(d), max(d)] for t, d in sorted(durations.items())]


def user_story(rows: list[dict], interp: dict) -> list[list[Any]]:
    """The lines of the user's latest trace on the path, in time order."""
    user = interp["user_id"]
    traced = [
        r for r in rows
        if not r["deleted"] and r["user_id"] == user and r["trace_id"]
        and (interp["path"] is None or r["path"] == interp["path"])
    ]  # fmt: skip
    latest = max(traced, key=lambda r: (r["created_at"], r["id"]))["trace_id"]
    story = [r for r in rows if not r["deleted"] and r["trace_id"] == latest]
    story.sort(key=lambda r: (r["created_at"], r["id"]))
    return [[r["created_at"], r["service"], r["level"], r["path"], r["error_type"]] for r in story]


# (English, Korean, intent, fields the interpretation must hold, window, reference, the answer's
# rows as the reference shapes them). window: "hour" (the hour up to now), "today", "day" (the
# 24 hours up to now) or None (all time).
QUESTIONS: list[tuple[str, str, str, dict[str, Any], str | None, Callable]] = [
    ("errors in the last hour", "지난 1시간 에러", "errors_in_window",
        {"level": list(ERRORS)}, "hour", errors_by_service),
    ("top 5 error types today", "오늘 에러 타입 상위 5개", "top_error_types",
        {"top_n": 5}, "today", top_error_types),
    ("which services had DatabaseConnectionError", "DatabaseConnectionError가 발생한 서비스",
        "services_with_error", {"error_type": "DatabaseConnectionError"}, None, services_with),
    ("how many users were affected by TimeoutError", "TimeoutError 영향받은 사용자 수",
        "users_affected", {"error_type": "TimeoutError"}, None, users_affected),
    ("payment-api errors every 5 minutes in the last hour",
        "지난 1시간 payment-api 에러 5분 단위", "counts_over_time",
        {"service": "payment-api", "bucket_s": 300, "level": list(ERRORS)}, "hour",
        counts_over_time),
    ("slowest 5 endpoints", "가장 느린 엔드포인트 5개", "slowest_endpoints", {"top_n": 5}, None,
        slowest_endpoints),
    ("hourly average latency of /api/v1/payment", "/api/v1/payment 시간별 평균 지연",
        "latency_over_time", {"path": PAYMENT, "bucket_s": 3600}, "day", latency_over_time),
    ("TimeoutError by service", "서비스별 TimeoutError", "services_with_error",
        {"error_type": "TimeoutError"}, None, services_with),
    ("what happened in user_123's last payment attempt", "user_123의 마지막 결제 시도에 무슨 일이",
        "user_story", {"user_id": "user_123", "path": PAYMENT}, None, user_story),
]  # fmt: skip
