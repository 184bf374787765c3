"""GET /api/endpoints over HTTP on a real server, on each store: per path and method, the count,
p50, p95 and largest duration_ms and the ERROR and FATAL lines of the rows the filters select,
equal to an independent computation over the seeded rows (Python's ``statistics.quantiles``
with the inclusive method, the definition of PostgreSQL's ``percentile_cont``); slowest p95
first, ``top`` of them; bad parameters are a 400 naming them; the read scope applies."""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from server_helpers import row

from log_collector.server import create_app, open_store

MINUTE = 60.0
READ_KEY = "read-1"
INGEST_KEY = "ingest-1"


@dataclass(frozen=True)
class Seeded:
    """One seeded row, as the test's own computation reads it."""

    message: str
    age_s: float
    service: str
    path: str | None
    method: str | None
    level: str
    duration_ms: float | None
    deleted: bool = False


def seeded_rows() -> list[Seeded]:
    """Rows of the last 50 minutes on four endpoints (one without a method), errors with and
    without a duration, rows two hours old, rows without a path, and deleted rows; every time
    at least five minutes from a window's edge, so the server's clock and the test's agree."""
    rnd = random.Random(19)
    rows: list[Seeded] = []

    def add(count: int, path: str | None, method: str | None, **fields: Any) -> None:
        for _ in range(count):
            duration = fields.get("duration_ms", lambda: round(rnd.uniform(1, 900), 3))
            rows.append(
                Seeded(
                    message=f"{'deleted' if fields.get('deleted') else 'request'} {len(rows)}",
                    age_s=fields.get("age_s", rnd.uniform(5 * MINUTE, 50 * MINUTE)),
                    service=fields.get("service", rnd.choice(("api", "web"))),
                    path=path,
                    method=method,
                    level=fields.get("level", rnd.choice(("INFO", "INFO", "DEBUG", "WARN"))),
                    duration_ms=duration() if callable(duration) else duration,
                    deleted=fields.get("deleted", False),
                )
            )

    add(37, "/orders", "GET")
    add(20, "/orders", "POST", duration_ms=lambda: round(rnd.expovariate(1 / 200), 3))
    add(5, "/pay", "POST", service="api")
    add(1, "/pay", "POST", service="api", level="ERROR")
    add(3, "/pay", "POST", service="api", level="FATAL", duration_ms=None)
    add(1, "/health", None, duration_ms=2500.0)
    add(4, "/pay", "GET", duration_ms=None, level="ERROR")  # no duration: not an endpoint
    add(6, "/old", "GET", age_s=2 * 3600.0)
    add(5, None, None)  # a duration without a path: a job, not an endpoint
    add(3, "/orders", "GET", duration_ms=100_000.0, deleted=True)
    return rows


def insert(db_url: str, rows: list[Seeded], now: float) -> None:
    store = open_store(db_url)
    try:
        store.insert(
            [
                row(
                    r.message,
                    created_at=now - r.age_s,
                    service=r.service,
                    path=r.path,
                    method=r.method,
                    level=r.level,
                    duration_ms=r.duration_ms,
                )
                for r in rows
            ]
        )
        with store.writing() as conn:
            conn.execute("UPDATE logs SET deleted = TRUE WHERE message LIKE 'deleted%'")
    finally:
        store.close()


def percentile_cont(values: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation at position fraction * (n - 1)."""
    if len(values) == 1:
        return values[0]
    cut = round(fraction * 100) - 1
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[cut]


def expected(
    rows: list[Seeded],
    since_age_s: float = 3600.0,
    until_age_s: float = 0.0,
    services: tuple[str, ...] = (),
    levels: tuple[str, ...] = (),
    top: int = 10,
) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str | None], dict[str, Any]] = {}
    for r in rows:
        if r.deleted or r.path is None or not until_age_s < r.age_s <= since_age_s:
            continue
        if (services and r.service not in services) or (levels and r.level not in levels):
            continue
        group = groups.setdefault((r.path, r.method), {"durations": [], "errors": 0})
        if r.duration_ms is not None:
            group["durations"].append(r.duration_ms)
        group["errors"] += r.level in ("ERROR", "FATAL")
    answer = [
        {
            "path": path,
            "method": method,
            "count": len(g["durations"]),
            "p50_ms": pytest.approx(percentile_cont(g["durations"], 0.5), rel=1e-12),
            "p95_ms": pytest.approx(percentile_cont(g["durations"], 0.95), rel=1e-12),
            "max_ms": max(g["durations"]),
            "errors": g["errors"],
        }
        for (path, method), g in groups.items()
        if g["durations"]
    ]
    answer.sort(
        key=lambda e: (
            -e["p95_ms"].expected,
            -e["count"],
            e["path"],
            e["method"] is None,
            e["method"] or "",
        )
    )
    return answer[:top]


@pytest.fixture
def rows() -> list[Seeded]:
    return seeded_rows()


@pytest.fixture
def url(db_url: str, rows: list[Seeded], serve) -> str:
    insert(db_url, rows, time.time())
    return serve(create_app(db_url))


def get(url: str, params: Any = None, **request: Any) -> requests.Response:
    return requests.get(f"{url}/api/endpoints", params=params, timeout=30, **request)


def test_each_endpoint_has_the_count_percentiles_max_and_errors_computed_independently(url, rows):
    """The last hour by default: /old (two hours old), rows without a path or a duration, and
    deleted rows are left out; /health has no method; /pay counts its errors with or without a
    duration; the slowest p95 comes first."""
    response = get(url)
    assert 200 == response.status_code
    answer = response.json()["endpoints"]
    assert expected(rows) == answer
    assert ["/health", None] == [answer[0]["path"], answer[0]["method"]]
    assert {("/orders", "GET"), ("/orders", "POST"), ("/pay", "POST")} <= {
        (e["path"], e["method"]) for e in answer
    }
    assert 4 == next(e for e in answer if e["path"] == "/pay")["errors"]


@pytest.mark.parametrize(
    ("params", "window"),
    [
        ({"service": "web"}, {"services": ("web",)}),
        ({"service": ["api", "web"], "level": ["INFO", "ERROR"]}, {"levels": ("INFO", "ERROR")}),
        ({"since": "3h"}, {"since_age_s": 3 * 3600.0}),
        ({"until": "90m"}, {"since_age_s": 150 * MINUTE, "until_age_s": 90 * MINUTE}),
        ({"top": "2"}, {"top": 2}),
    ],
    ids=["service", "levels", "since", "until-moves-the-default-since", "top"],
)
def test_the_filters_and_top_choose_the_rows_and_endpoints(url, rows, params, window):
    response = get(url, params)
    assert (200, expected(rows, **window)) == (response.status_code, response.json()["endpoints"])


def test_the_filter_cases_differ_from_the_default_answer(rows):
    """Guards the cases above from comparing answers the filters do not change."""
    default = expected(rows)
    assert default != expected(rows, services=("web",))
    assert default != expected(rows, levels=("INFO", "ERROR"))
    assert "/old" in {e["path"] for e in expected(rows, since_age_s=3 * 3600.0)}
    assert ["/old"] == [e["path"] for e in expected(rows, 150 * MINUTE, 90 * MINUTE)]


def test_a_window_without_durations_lists_no_endpoint(url):
    assert {"endpoints": []} == get(url, {"since": "7d", "until": "6d"}).json()


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"top": "0"}, "top"),
        ({"top": "101"}, "top"),
        ({"top": "ten"}, "top"),
        ({"limit": "5"}, "limit"),
        ({"level": "LOUD"}, "level"),
        ({"since": "yesterday"}, "since"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(sqlite_url, serve, params, parameter):
    response = get(serve(create_app(sqlite_url)), params)
    assert (400, "bad_request", parameter) == (
        response.status_code,
        response.json()["error"],
        response.json()["parameter"],
    )


def test_the_openapi_schema_describes_the_endpoint_and_its_parameters(sqlite_url, serve):
    schema = requests.get(f"{serve(create_app(sqlite_url))}/openapi.json", timeout=30).json()
    operation = schema["paths"]["/api/endpoints"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"service", "level", "since", "until", "q", "path", "method", "top"} <= names
    assert {"200", "400", "401", "403", "503"} <= set(operation["responses"])


def test_reading_endpoints_needs_a_read_key_when_keys_are_set(sqlite_url, serve):
    url = serve(create_app(sqlite_url, api_keys=INGEST_KEY, read_keys=READ_KEY))
    assert 401 == get(url).status_code
    assert 403 == get(url, headers={"Authorization": f"Bearer {INGEST_KEY}"}).status_code
    answer = get(url, headers={"Authorization": f"Bearer {READ_KEY}"})
    assert (200, {"endpoints": []}) == (answer.status_code, answer.json())
