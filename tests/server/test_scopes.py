"""Two key scopes, over HTTP on a real server: ingest keys post logs, read keys read them
(/api/*, /stats); a key of the other scope is a 403, no key or an unknown one a 401."""

from __future__ import annotations

import logging

import pytest
import requests
from server_helpers import record, stored_messages

from log_collector.server import create_app
from log_collector.server.auth import INGEST, READ, Keys, Refusal

INGEST_KEY = "ingest-1"
READ_KEY = "read-1"
OPEN_WARNING = "the query API (/api/*, /stats) is open"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post_logs(url: str, message: str, headers: dict | None = None) -> requests.Response:
    return requests.post(
        f"{url}/logs", json={"logs": [record(message)]}, headers=headers, timeout=30
    )


def read(url: str, path: str, headers: dict | None = None) -> requests.Response:
    if path == "/api/sql":
        return requests.post(
            f"{url}{path}", json={"sql": "SELECT count(*) FROM logs"}, headers=headers, timeout=30
        )
    return requests.get(f"{url}{path}", headers=headers, timeout=30)


@pytest.fixture
def scoped_url(db_url, serve) -> str:
    return serve(create_app(db_url, api_keys=[INGEST_KEY], read_keys=[READ_KEY]))


@pytest.mark.parametrize("path", ["/api/sql", "/stats"])
def test_a_read_key_reads_and_an_ingest_key_gets_403(scoped_url, path):
    assert 200 == read(scoped_url, path, bearer(READ_KEY)).status_code
    refused = read(scoped_url, path, bearer(INGEST_KEY))
    assert (403, "this key may only post logs: reading needs a read key") == (
        refused.status_code,
        refused.json()["detail"].split(" (")[0],
    )


@pytest.mark.parametrize("path", ["/api/sql", "/stats"])
@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        (None, "missing API key: send 'Authorization: Bearer <key>'"),
        (bearer("nope"), "invalid API key"),
        ({"Authorization": "Basic cmVhZC0xOg=="}, "malformed Authorization"),
    ],
)
def test_reading_without_a_known_key_is_401(scoped_url, path, headers, detail):
    response = read(scoped_url, path, headers)
    assert 401 == response.status_code
    assert response.json()["detail"].startswith(detail)
    assert "Bearer" == response.headers["WWW-Authenticate"]


def test_a_read_key_gets_403_on_post_logs_and_nothing_is_stored(scoped_url, db_url):
    response = post_logs(scoped_url, "from a reader", bearer(READ_KEY))
    assert (403, "this key may only read: posting logs needs an ingest key") == (
        response.status_code,
        response.json()["detail"],
    )
    assert 401 == post_logs(scoped_url, "no key").status_code
    assert [] == stored_messages(db_url)
    assert 200 == post_logs(scoped_url, "from an app", bearer(INGEST_KEY)).status_code
    assert ["from an app"] == stored_messages(db_url)


def test_what_a_read_key_reads_is_what_the_ingest_key_stored(scoped_url):
    post_logs(scoped_url, "stored", bearer(INGEST_KEY))
    response = requests.post(
        f"{scoped_url}/api/sql",
        json={"sql": "SELECT message FROM logs"},
        headers=bearer(READ_KEY),
        timeout=30,
    )
    assert [["stored"]] == response.json()["rows"]


def test_read_keys_come_from_the_environment(db_url, serve, monkeypatch):
    monkeypatch.setenv("LOG_COLLECTOR_READ_KEYS", "env-read-1, env-read-2")
    url = serve(create_app(db_url))
    assert 401 == read(url, "/api/sql").status_code
    assert 200 == read(url, "/api/sql", bearer("env-read-2")).status_code
    # No ingest keys: posting stays open, as before read keys existed.
    assert 200 == post_logs(url, "open ingest").status_code


def test_without_read_keys_the_read_routes_take_the_ingest_keys(db_url, serve, caplog):
    """A server that guarded /stats with its ingest keys does not open it, nor /api/*."""
    with caplog.at_level(logging.WARNING, logger="log_collector.server"):
        url = serve(create_app(db_url, api_keys=[INGEST_KEY], read_keys=[]))
    for path in ("/api/sql", "/stats"):
        assert (path, 401) == (path, read(url, path).status_code)
        assert (path, 200) == (path, read(url, path, bearer(INGEST_KEY)).status_code)
    warnings = [r.getMessage() for r in caplog.records if r.name == "log_collector.server"]
    assert [
        "no read keys are set (LOG_COLLECTOR_READ_KEYS): "
        "the query API (/api/*, /stats) takes the ingest keys"
    ] == warnings


def test_without_any_key_everything_is_open_and_the_start_says_so_once(
    db_url, serve, caplog, monkeypatch
):
    monkeypatch.delenv("LOG_COLLECTOR_API_KEYS", raising=False)
    monkeypatch.delenv("LOG_COLLECTOR_READ_KEYS", raising=False)
    with caplog.at_level(logging.WARNING, logger="log_collector.server"):
        url = serve(create_app(db_url))
    assert 200 == post_logs(url, "open").status_code
    assert [[1]] == read(url, "/api/sql").json()["rows"]
    opened = [r for r in caplog.records if OPEN_WARNING in r.getMessage()]
    assert 1 == len(opened)


def test_with_read_keys_the_start_logs_no_warning(db_url, serve, caplog):
    with caplog.at_level(logging.WARNING, logger="log_collector.server"):
        serve(create_app(db_url, api_keys=[INGEST_KEY], read_keys=[READ_KEY]))
    assert [] == [r for r in caplog.records if "read keys" in r.getMessage()]


def test_an_ingest_only_server_does_not_warn_about_the_query_api(sqlite_url, serve, caplog):
    with caplog.at_level(logging.WARNING, logger="log_collector.server"):
        serve(create_app(sqlite_url, role="ingest", api_keys=[], read_keys=[]))
    assert [] == [r for r in caplog.records if "read keys" in r.getMessage()]


@pytest.mark.parametrize(
    ("keys", "scope", "header", "expected"),
    [
        (Keys(), READ, None, None),
        (Keys(), INGEST, None, None),
        (Keys(read=(b"r",)), INGEST, None, None),
        (Keys(read=(b"r",)), INGEST, "Bearer r", None),
        (Keys(ingest=(b"i",)), READ, "Bearer i", None),
        (Keys(ingest=(b"i",), read=(b"r",)), READ, "Bearer r", None),
        (Keys(ingest=(b"i",), read=(b"r",)), INGEST, "Bearer i", None),
        (Keys(ingest=(b"i",), read=(b"r",)), READ, "Bearer x", Refusal(401, "invalid API key")),
        (Keys(ingest=(b"i",), read=(b"r",)), INGEST, "Bearer x", Refusal(401, "invalid API key")),
    ],
)
def test_scope_rules(keys, scope, header, expected):
    """Open without keys; a read scope without read keys takes the ingest keys."""
    assert expected == keys.authorise(scope, header)


def test_the_other_scopes_key_is_403():
    keys = Keys(ingest=(b"i",), read=(b"r",))
    assert 403 == keys.authorise(READ, "Bearer i").status
    assert 403 == keys.authorise(INGEST, "Bearer r").status
