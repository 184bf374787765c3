"""The HTTP surface, against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import json
import resource
import zlib

import pytest
import requests
from server_helpers import closed_port, gzip_json, record, stored_messages

from log_collector.server import Limits, create_app

GZIP = {"Content-Type": "application/json", "Content-Encoding": "gzip"}


def post(url: str, data: bytes, headers: dict | None = None) -> requests.Response:
    headers = headers or {"Content-Type": "application/json"}
    return requests.post(f"{url}/logs", data=data, headers=headers, timeout=30)


def as_json(document: object) -> bytes:
    return json.dumps(document).encode()


# the small routes


def test_root_answers_like_the_original_server(server_url):
    response = requests.get(f"{server_url}/")
    assert (200, {"status": "ok", "service": "log-server"}) == (
        response.status_code,
        response.json(),
    )


def test_healthz_and_readyz_answer_when_the_store_is_up(server_url):
    assert {"status": "ok"} == requests.get(f"{server_url}/healthz").json()
    assert {"status": "ready"} == requests.get(f"{server_url}/readyz").json()


def test_stats_has_the_original_shape_and_counts(server_url):
    post(server_url, as_json({"logs": [record(level="ERROR", service="api"), record()]}))
    assert {
        "total_logs": 2,
        "level_distribution": [{"level": "ERROR", "count": 1}, {"level": "INFO", "count": 1}],
        "service_distribution": [
            {"service": "api", "count": 1},
            {"service": "unknown", "count": 1},
        ],
        "recent_errors_1h": 1,
    } == requests.get(f"{server_url}/stats").json()


# POST /logs


def test_a_batch_is_stored_and_acknowledged_with_counts(server_url, db_url):
    response = post(server_url, as_json({"logs": [record("a"), record("b")]}))
    assert 200 == response.status_code
    assert {"status": "ok", "count": 2, "accepted": 2, "duplicates": 0, "rejected": []} == (
        response.json()
    )
    assert ["a", "b"] == stored_messages(db_url)


def test_a_gzip_batch_is_stored(server_url, db_url):
    response = post(server_url, gzip_json({"logs": [record("zipped")]}), GZIP)
    assert (200, ["zipped"]) == (response.status_code, stored_messages(db_url))


def test_bad_records_are_rejected_alone_and_the_rest_is_stored(server_url, db_url):
    # A value that does not fit is coerced (the record stored, reported); only
    # what is not a record is rejected.
    logs = [record("good 1"), record("bad", level="LOUD"), "not a record", record("good 2")]
    response = post(server_url, as_json({"logs": logs}))
    assert 200 == response.status_code
    assert {
        "status": "ok",
        "count": 4,
        "accepted": 3,
        "duplicates": 0,
        "rejected": [{"index": 2, "reason": "a record must be a JSON object, got a string"}],
        "coerced": [
            {
                "index": 1,
                "fields": ["level"],
                "reason": "level: 'LOUD' is not one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL",
            }
        ],
    } == response.json()
    assert ["good 1", "bad", "good 2"] == stored_messages(db_url)


def test_the_same_batch_sent_twice_is_stored_once(server_url, db_url):
    body = as_json({"logs": [record("a"), record("b")]})
    post(server_url, body)
    second = post(server_url, body).json()
    assert (0, 2) == (second["accepted"], second["duplicates"])
    assert ["a", "b"] == stored_messages(db_url)


def test_an_empty_batch_is_acknowledged(server_url):
    assert {"status": "ok", "count": 0, "accepted": 0, "duplicates": 0, "rejected": []} == (
        post(server_url, as_json({"logs": []})).json()
    )


# whole-request refusals: status, message, and nothing stored

SMALL = Limits(max_body_bytes=20_000, max_decompressed_bytes=50_000, max_records=10)


@pytest.fixture
def small_server(db_url, serve):
    return serve(create_app(db_url, limits=SMALL))


def refused(response: requests.Response) -> tuple[int, str]:
    return response.status_code, response.json()["detail"]


@pytest.mark.parametrize(
    ("data", "headers", "status", "message"),
    [
        (b"{oops", None, 400, "body is not valid JSON: Expecting property name"),
        (b'{"records": []}', None, 400, 'body must be a JSON object {"logs": [record, ...]}'),
        (b"not gzip", GZIP, 400, "body is not valid gzip"),
        (
            as_json({"logs": [{"message": "m"}]}),
            {"Content-Type": "application/json", "Content-Encoding": "br"},
            415,
            "Content-Encoding 'br' is not supported: send gzip or no encoding",
        ),
        (
            as_json({"logs": [{"message": str(i)} for i in range(11)]}),
            None,
            413,
            "11 records in one request, over the limit of 10: split the batch",
        ),
        (
            as_json({"logs": [{"message": "x" * 25_000}]}),
            None,
            413,
            "body is over the limit of 20000 bytes",
        ),
        (
            gzip_json({"logs": [{"message": "x" * 60_000}]}),
            GZIP,
            413,
            "decompressed body is over the limit of 50000 bytes",
        ),
    ],
    ids=["bad-json", "bad-shape", "bad-gzip", "encoding", "records", "body", "decompressed"],
)
def test_a_refused_request_says_why_and_stores_nothing_of_it(
    small_server, db_url, data, headers, status, message
):
    response = post(small_server, data, headers)
    assert status == response.status_code
    assert response.json()["detail"].startswith(message)
    # The server is still fine and stores the next, good, batch.
    assert 200 == post(small_server, as_json({"logs": [record("next")]})).status_code
    assert ["next"] == stored_messages(db_url)


def test_a_client_splitting_a_batch_after_413_gets_everything_stored(small_server, db_url):
    logs = [record(str(i)) for i in range(16)]
    assert 413 == post(small_server, as_json({"logs": logs})).status_code
    for half in (logs[:8], logs[8:]):
        assert 200 == post(small_server, as_json({"logs": half})).status_code
    assert [str(i) for i in range(16)] == stored_messages(db_url)


def test_a_streamed_body_is_refused_once_it_passes_the_limit(small_server, sqlite_url):
    def chunks():
        yield b'{"logs": [{"message": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}]}'

    # A generator body goes out chunked, without a Content-Length to check first.
    response = requests.post(
        f"{small_server}/logs",
        data=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert (413, "body is over the limit of 20000 bytes") == refused(response)


def test_a_gzip_bomb_is_refused_with_bounded_memory(db_url, serve):
    # 40 gzip members of 128 MiB of zeros each: ~5 MB on the wire, 5 GiB inflated.
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    member = b"".join(deflate.compress(zeros) for _ in range(128)) + deflate.flush()
    bomb = member * 40
    url = serve(create_app(db_url))  # the default limits: 10 MiB in, 64 MiB out
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    response = post(url, bomb, GZIP)
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert (413, "decompressed body is over the limit of 67108864 bytes") == refused(response)
    assert peak_after - peak_before < 300 * 1024
    assert 200 == post(url, as_json({"logs": [record("after the bomb")]})).status_code


# the store down


def test_a_store_that_cannot_be_reached_is_a_503_and_not_ready(serve):
    url = serve(create_app(f"postgresql://postgres@127.0.0.1:{closed_port()}/x", store_timeout=1))
    response = post(url, as_json({"logs": [record()]}))
    assert 503 == response.status_code
    assert response.json()["detail"].startswith("store unavailable: ")
    assert "5" == response.headers["Retry-After"]
    assert 503 == requests.get(f"{url}/readyz").status_code
    assert 503 == requests.get(f"{url}/stats").status_code
    assert 200 == requests.get(f"{url}/healthz").status_code


# CORS


def test_configured_origins_may_post_from_a_browser(sqlite_url, serve):
    url = serve(create_app(sqlite_url, cors_origins="https://app.example"))
    preflight = requests.options(
        f"{url}/logs",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert 200 == preflight.status_code
    assert "https://app.example" == preflight.headers["access-control-allow-origin"]
    response = requests.post(
        f"{url}/logs", json={"logs": [record()]}, headers={"Origin": "https://app.example"}
    )
    assert "https://app.example" == response.headers["access-control-allow-origin"]


def test_without_configured_origins_there_are_no_cors_headers(sqlite_url, serve, monkeypatch):
    monkeypatch.delenv("LOG_COLLECTOR_CORS_ORIGINS", raising=False)
    url = serve(create_app(sqlite_url))
    response = requests.post(
        f"{url}/logs", json={"logs": [record()]}, headers={"Origin": "https://app.example"}
    )
    assert "access-control-allow-origin" not in response.headers


def test_cors_origins_can_come_from_the_environment(sqlite_url, serve, monkeypatch):
    monkeypatch.setenv("LOG_COLLECTOR_CORS_ORIGINS", "https://a.example, https://b.example")
    url = serve(create_app(sqlite_url))
    response = requests.get(f"{url}/", headers={"Origin": "https://b.example"})
    assert "https://b.example" == response.headers["access-control-allow-origin"]


# Content-Type: JSON only, so a cross-site browser post needs a CORS preflight


@pytest.mark.parametrize(
    ("content_type", "got"),
    [
        (None, "none"),
        ("text/plain", "'text/plain'"),
        ("application/x-www-form-urlencoded", "'application/x-www-form-urlencoded'"),
        ("multipart/form-data; boundary=x", "'multipart/form-data; boundary=x'"),
    ],
)
def test_a_body_that_is_not_declared_json_is_415_and_not_stored(
    server_url, db_url, content_type, got
):
    headers = {"Content-Type": content_type} if content_type else {}
    response = requests.post(
        f"{server_url}/logs", data=as_json({"logs": [record()]}), headers=headers
    )
    assert (415, f"Content-Type must be application/json, got {got}") == refused(response)
    assert [] == stored_messages(db_url)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
def test_application_json_with_parameters_or_any_case_is_stored(sqlite_url, serve, content_type):
    url = serve(create_app(sqlite_url))
    response = post(url, as_json({"logs": [record("json")]}), {"Content-Type": content_type})
    assert (200, ["json"]) == (response.status_code, stored_messages(sqlite_url))
