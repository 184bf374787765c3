"""Optional API keys: Authorization: Bearer <key>, compared in constant time."""

from __future__ import annotations

import pytest
import requests
from server_helpers import record, stored_messages

from log_collector.server import create_app
from log_collector.server.auth import Keys, check, load_keys


def test_keys_come_from_the_argument_as_a_list_or_a_comma_separated_string():
    assert (b"a", b"b") == load_keys(["a", " b ", ""])
    assert (b"a", b"b") == load_keys("a, b,")


def test_keys_come_from_the_environment_when_no_argument_is_given(monkeypatch):
    monkeypatch.setenv("LOG_COLLECTOR_API_KEYS", "k1,k2")
    assert (b"k1", b"k2") == load_keys()


def test_read_keys_come_from_their_own_environment_variable(monkeypatch):
    monkeypatch.setenv("LOG_COLLECTOR_API_KEYS", "ingest")
    monkeypatch.setenv("LOG_COLLECTOR_READ_KEYS", "r1, r2")
    assert Keys(ingest=(b"ingest",), read=(b"r1", b"r2")) == Keys.load()


def test_without_keys_every_request_passes():
    assert check((), None) is None


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing API key: send 'Authorization: Bearer <key>'"),
        ("", "missing API key: send 'Authorization: Bearer <key>'"),
        ("Basic dXNlcjpwdw==", "malformed Authorization header: expected 'Bearer <key>'"),
        ("Bearer ", "malformed Authorization header: expected 'Bearer <key>'"),
        ("Bearer k", "invalid API key"),
        ("Bearer k1x", "invalid API key"),
    ],
)
def test_a_request_without_a_valid_key_is_refused_with_a_message(header, message):
    assert message == check((b"k1", b"k2"), header)


@pytest.mark.parametrize("header", ["Bearer k1", "Bearer k2", "bearer k2", "Bearer  k1 "])
def test_any_configured_key_passes(header):
    assert check((b"k1", b"k2"), header) is None


@pytest.fixture
def keyed_server(db_url, serve):
    return serve(create_app(db_url, api_keys=["secret-1", "secret-2"]))


def test_posting_without_the_key_is_a_401_and_stores_nothing(keyed_server, db_url):
    response = requests.post(f"{keyed_server}/logs", json={"logs": [record("no key")]})
    assert 401 == response.status_code
    assert "missing API key: send 'Authorization: Bearer <key>'" == response.json()["detail"]
    assert "Bearer" == response.headers["WWW-Authenticate"]
    wrong = requests.post(
        f"{keyed_server}/logs",
        json={"logs": [record("wrong key")]},
        headers={"Authorization": "Bearer nope"},
    )
    assert (401, "invalid API key") == (wrong.status_code, wrong.json()["detail"])
    assert [] == stored_messages(db_url)


def test_posting_with_a_key_stores_the_batch(keyed_server, db_url):
    response = requests.post(
        f"{keyed_server}/logs",
        json={"logs": [record("with key")]},
        headers={"Authorization": "Bearer secret-2"},
    )
    assert 200 == response.status_code
    assert ["with key"] == stored_messages(db_url)


def test_stats_needs_the_key_but_health_probes_do_not(keyed_server):
    assert 401 == requests.get(f"{keyed_server}/stats").status_code
    headers = {"Authorization": "Bearer secret-1"}
    assert 200 == requests.get(f"{keyed_server}/stats", headers=headers).status_code
    for path in ("/", "/healthz", "/readyz"):
        assert 200 == requests.get(f"{keyed_server}{path}").status_code
