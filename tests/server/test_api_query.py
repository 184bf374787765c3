"""The read API over HTTP (GET /api/logs, /api/logs/{id}, /api/logs/{id}/context,
/api/histogram, /api/facets, /api/traces/{id}, /api/services), against a real uvicorn server on
each store: every answer equals what the query function returns on the same store (those
functions are checked against independent readings in test_query_*.py), pages concatenate to
the whole result, bad input is a 400 naming the parameter, a missing log or trace a 404, read
keys are enforced, and no query string gets a 500."""

from __future__ import annotations

import random
import time
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import row

from log_collector.server import create_app
from log_collector.server.query import (
    context,
    facets,
    get_log,
    histogram,
    parse_filters,
    search,
    services,
    trace,
)

# Seeded rows lie in the 3 days before this moment (2025-06-15T15:06:40Z), far from the real
# clock, so relative filters (since=1h) and the last hour's errors read the same whenever the
# server and the test compute them.
BASE = 1_750_000_000.0
HOUR = 3600.0
SERVICES = ("api", "billing", "web")
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
READ_KEY = "read-1"
INGEST_KEY = "ingest-1"


def seed(store: Any, count: int = 90) -> None:
    rnd = random.Random(3)
    rows = []
    for i in range(count):
        level = rnd.choice(LEVELS)
        fields: dict[str, Any] = {
            "created_at": BASE - rnd.randrange(0, 72 * 3600),
            "service": rnd.choice(SERVICES),
            "level": level,
            "trace_id": rnd.choice(("t-1", "t-2", None)),
            "path": rnd.choice(("/pay", "/login")),
            "region": rnd.choice(("eu", "us")),
        }
        if level == "ERROR":
            fields["error_type"] = rnd.choice(("ValueError", "KeyError"))
        rows.append(row(f"{rnd.choice(('paid', 'Payment FAILED', 'cache miss'))} #{i}", **fields))
    store.insert(rows)


def delete_some(store: Any) -> None:
    """Marks every fifth row deleted."""
    with store.writing() as conn:
        conn.execute("UPDATE logs SET deleted = TRUE WHERE id % 5 = 0")


@pytest.fixture
def url(db_url: str, store: Any, serve) -> str:
    """A server on a store holding the seeded rows, every fifth deleted."""
    seed(store)
    delete_some(store)
    return serve(create_app(db_url))


def get(url: str, path: str, params: Any = None, **request: Any) -> requests.Response:
    return requests.get(f"{url}{path}", params=params, timeout=30, **request)


def grouped(params: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in params:
        out.setdefault(name, []).append(value)
    return out


SEARCHES = [
    [],
    [("service", "api")],
    [("service", "api"), ("service", "web"), ("min_level", "warn")],
    [("level", "ERROR"), ("error_type", "KeyError")],
    [("q", "payment failed"), ("meta.region", "eu")],
    [("since", "2025-06-14T00:00:00Z"), ("until", "2025-06-15T00:00:00Z"), ("path", "/pay")],
    [("since", "30h"), ("limit", "7")],
]


@pytest.mark.parametrize("params", SEARCHES, ids=lambda p: urlencode(p) or "all")
def test_logs_answer_what_search_returns(url, store, params):
    filters = parse_filters(grouped(params), time.time(), extra=("limit",))
    limit = dict(params).get("limit", 50)
    expected = search(store, filters, limit)
    response = get(url, "/api/logs", params)
    assert (200, expected) == (response.status_code, response.json())


def test_the_search_cases_select_some_rows_but_not_all(url, store):
    """Guards the cases above from comparing two empty or two full answers."""
    everything = len(search(store, parse_filters({}, time.time()), 1000)["logs"])
    for params in SEARCHES[1:-1]:
        found = len(get(url, "/api/logs", [*params, ("limit", "1000")]).json()["logs"])
        assert 0 < found < everything, params


def test_cursor_pages_over_http_concatenate_to_the_whole_result(url, store):
    params = [("service", "api"), ("service", "billing"), ("limit", "4")]
    pages, cursor = [], None
    for _ in range(100):
        response = get(url, "/api/logs", params + ([("cursor", cursor)] if cursor else []))
        assert 200 == response.status_code
        page = response.json()
        pages.extend(page["logs"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    whole = search(store, parse_filters(grouped(params[:2]), time.time()), 1000)["logs"]
    assert len(whole) > 8
    assert whole == pages


def test_one_log_its_context_and_its_trace_answer_what_the_library_returns(url, store):
    some = search(store, parse_filters({"trace_id": ["t-1"]}, time.time()), 1000)["logs"]
    log_id = some[len(some) // 2]["id"]
    assert get_log(store, log_id) == get(url, f"/api/logs/{log_id}").json()
    assert context(store, log_id, 3, 2) == (
        get(url, f"/api/logs/{log_id}/context", {"before": 3, "after": 2}).json()
    )
    assert context(store, log_id) == get(url, f"/api/logs/{log_id}/context").json()
    assert trace(store, "t-1") == get(url, "/api/traces/t-1").json()
    assert some[::-1] == get(url, "/api/traces/t-1").json()["logs"]


def test_histogram_facets_and_services_answer_what_the_library_returns(url, store):
    window = {"since": ["2025-06-13T00:00:00Z"], "until": ["2025-06-15T12:00:00Z"]}
    filters = parse_filters({**window, "min_level": ["INFO"]}, time.time())
    expected = histogram(store, filters, 24)
    response = get(url, "/api/histogram", {**window, "min_level": "INFO", "buckets": 24})
    assert (200, expected) == (response.status_code, response.json())
    assert sum(sum(b["counts"].values()) for b in expected["buckets"]) > 0

    filters = parse_filters({"service": ["api"]}, time.time())
    expected = facets(store, filters, "level,path,error_type", 2)
    response = get(
        url, "/api/facets", {"service": "api", "fields": "level,path,error_type", "top": 2}
    )
    assert (200, expected) == (response.status_code, response.json())
    assert facets(store, filters, ["level", "path"]) == (
        get(
            url, "/api/facets", [("service", "api"), ("fields", "level"), ("fields", "path")]
        ).json()
    )

    assert services(store, time.time()) == get(url, "/api/services").json()
    assert list(SERVICES) == [s["service"] for s in get(url, "/api/services").json()]


BAD = [
    ("/api/logs", {"colour": "red"}, "colour"),
    ("/api/logs", {"level": "LOUD"}, "level"),
    ("/api/logs", {"since": "yesterday"}, "since"),
    ("/api/logs", {"since": "1h", "until": "2h"}, "since"),
    ("/api/logs", {"limit": "0"}, "limit"),
    ("/api/logs", {"limit": "1001"}, "limit"),
    ("/api/logs", {"limit": "ten"}, "limit"),
    ("/api/logs", [("limit", "1"), ("limit", "2")], "limit"),
    ("/api/logs", {"cursor": "bm90IG91cnM"}, "cursor"),
    ("/api/logs", {"cursor": "!!"}, "cursor"),
    ("/api/logs", {"meta.": "x"}, "meta."),
    ("/api/logs/abc", None, "id"),
    ("/api/logs/0", None, "id"),
    ("/api/logs/1", {"service": "api"}, "service"),
    ("/api/logs/1/context", {"before": "-1"}, "before"),
    ("/api/logs/1/context", {"after": "501"}, "after"),
    ("/api/histogram", {"buckets": "0"}, "buckets"),
    ("/api/histogram", {"bucket": "5"}, "bucket"),
    ("/api/facets", {"fields": "message"}, "fields"),
    ("/api/facets", {"top": "101"}, "top"),
    ("/api/services", {"service": "api"}, "service"),
    ("/api/traces/t-1", {"limit": "5"}, "limit"),
]


@pytest.mark.parametrize(("path", "params", "parameter"), BAD, ids=[f"{b[0]}-{b[2]}" for b in BAD])
def test_bad_input_is_a_400_naming_the_parameter(url, path, params, parameter):
    response = get(url, path, params)
    body = response.json()
    assert (400, "bad_request", parameter) == (
        response.status_code,
        body["error"],
        body["parameter"],
    )
    assert body["reason"]


def test_a_missing_or_deleted_log_and_an_unknown_trace_are_404(url, store):
    deleted = 5  # delete_some marks every fifth id deleted
    for path in (
        f"/api/logs/{deleted}",
        "/api/logs/999999",
        "/api/logs/999999/context",
        "/api/traces/no-such-trace",
        "/api/traces/" + "x" * 500,
    ):
        response = get(url, path)
        assert (path, 404, "not_found") == (path, response.status_code, response.json()["error"])


def test_a_trace_id_holding_a_slash_is_looked_up_whole(db_url, store, serve):
    store.insert([row("in a/b", trace_id="a/b"), row("in a", trace_id="a")])
    url = serve(create_app(db_url))
    assert ["in a/b"] == [log["message"] for log in get(url, "/api/traces/a/b").json()["logs"]]


def test_a_read_key_reads_and_an_ingest_key_gets_403(db_url, serve):
    url = serve(create_app(db_url, api_keys=[INGEST_KEY], read_keys=[READ_KEY]))
    for path in ("/api/logs", "/api/services", "/api/histogram", "/api/facets", "/api/traces/t"):
        as_reader = get(url, path, headers={"Authorization": f"Bearer {READ_KEY}"})
        as_ingest = get(url, path, headers={"Authorization": f"Bearer {INGEST_KEY}"})
        anonymous = get(url, path)
        assert (path, 403, 401) == (path, as_ingest.status_code, anonymous.status_code)
        assert as_reader.status_code in (200, 404), path
    assert 200 == get(url, "/api/logs", headers={"Authorization": f"Bearer {READ_KEY}"}).status_code


def test_the_openapi_schema_lists_each_endpoint_with_its_parameters(url):
    schema = get(url, "/openapi.json").json()
    names = {
        path: {p["name"] for p in schema["paths"][path]["get"].get("parameters", [])}
        for path in ("/api/logs", "/api/histogram", "/api/facets", "/api/logs/{log_id}/context")
    }
    assert {"service", "level", "since", "q", "limit", "cursor"} <= names["/api/logs"]
    assert {"service", "buckets"} <= names["/api/histogram"]
    assert {"fields", "top", "min_level"} <= names["/api/facets"]
    assert {"log_id", "before", "after"} == names["/api/logs/{log_id}/context"]
    assert {"/api/traces/{trace_id}", "/api/services", "/api/tail"} <= set(schema["paths"])


NAMES = st.sampled_from(
    [
        "service", "level", "min_level", "since", "until", "q", "trace_id", "path", "method",
        "environment", "meta.region", "meta.", "limit", "cursor", "buckets", "fields", "top",
        "before", "after", "x", "",
    ]
)  # fmt: skip
VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["1h", "0", "-1", "1001", "9" * 25, "2025-06-14T00:00:00Z", "ERROR", "%", "\\"]
    ),
    st.from_regex(r"[0-9]{1,5}[smhdw]", fullmatch=True),
)
PATHS = st.sampled_from(
    [
        "/api/logs", "/api/histogram", "/api/facets", "/api/services", "/api/logs/3",
        "/api/logs/3/context", "/api/traces/t-1",
    ]
)  # fmt: skip
QUERIES = st.tuples(PATHS, st.lists(st.tuples(NAMES, VALUES), max_size=6))


def fuzz_once(url: str, path: str, params: list[tuple[str, str]]) -> None:
    response = get(url, path, params)
    assert response.status_code in (200, 400, 404), (path, params, response.text)
    if response.status_code == 400:
        assert "parameter" in response.json()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=QUERIES)
def test_no_query_string_gets_a_500(url, query):
    fuzz_once(url, *query)


@pytest.mark.slow
@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=QUERIES)
def test_no_query_string_gets_a_500_long_run(url, query):
    fuzz_once(url, *query)
