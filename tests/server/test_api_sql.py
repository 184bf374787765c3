"""POST /api/sql over HTTP, against a real uvicorn server on each store: hostile statements are
refused with 400 and change nothing, legitimate ones return what the same SQL returns run
directly, and no input (statement, JSON body, field types) gets a 500."""

from __future__ import annotations

import datetime
import json
import math
import socket
import sqlite3
from decimal import Decimal

import psycopg
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import closed_port, record, stored_rows
from sql_corpus import HOSTILE, LEGITIMATE

from log_collector.server import Limits, create_app
from log_collector.server.routes.sql import MAX_BODY_BYTES, json_value

# (service, level, path, duration_ms, message, extra fields)
SEED = [
    ("api", "INFO", "/api/users", 12.5, "paid", {"order_id": 1}),
    ("api", "ERROR", "/api/users/delete", 250.0, "delete failed", {"order_id": 2}),
    ("api", "WARN", "/api/users/delete", 90.0, "DROP TABLE logs; --", {}),
    ("worker", "ERROR", None, 1000.0, "job crashed", {"order_id": 3}),
    ("worker", "INFO", None, 5.0, "job done", {"job": "x"}),
    ("web", "INFO", "/", None, "page paid", {}),
    ("web", "WARN", "/login", 30.0, "slow login", {"order_id": 1}),
    ("api", "INFO", "/api/orders", 140.0, "order paid", {"order_id": 4}),
    ("worker", "WARN", None, 75.0, "retrying", {}),
    ("api", "ERROR", "/api/orders", 400.0, "timeout", {"order_id": 5}),
]
# Stops the slow statements below quickly; a real server's default is 5 s.
SQL_TIMEOUT = 0.5
# A statement that runs until its timeout on either store.
RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
# Refused by the guard on each store; a sample of tests/server/sql_corpus.py HOSTILE.
HOSTILE_SAMPLE = {
    "sqlite": [
        "DELETE FROM logs",
        "SELECT 1; DROP TABLE logs",
        "WITH x AS (DELETE FROM logs RETURNING *) SELECT * FROM x",
        "SELECT * FROM sqlite_master",
        "ATTACH DATABASE '/tmp/evil.db' AS evil",
        "SELECT load_extension('/tmp/evil.so')",
        "PRAGMA query_only = 0",
        "SELECT * INTO stolen FROM logs",
    ],
    "postgres": [
        "DELETE FROM logs",
        "SELECT 1; DROP TABLE logs",
        "WITH x AS (UPDATE logs SET message = 'x' RETURNING id) SELECT * FROM x",
        "SELECT pg_sleep(600) -- deleted",
        "SELECT usename, passwd FROM pg_shadow",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT set_config('role', 'postgres', false)",
        "COPY logs TO '/tmp/stolen.csv'",
    ],
}


def dialect_of(db_url: str) -> str:
    return "sqlite" if db_url.startswith("sqlite:") else "postgres"


def sql(url: str, statement: object, limit: object = None, **request: object):
    body = {"sql": statement} if limit is None else {"sql": statement, "limit": limit}
    return requests.post(f"{url}/api/sql", json=body, timeout=30, **request)


def direct(db_url: str, statement: str) -> list[list]:
    """``statement`` run straight on the database, as the owner, rows JSON-encoded."""
    if dialect_of(db_url) == "sqlite":
        conn = sqlite3.connect(db_url[len("sqlite:///") :])
        try:
            rows = conn.execute(statement).fetchall()
        finally:
            conn.close()
    else:
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(statement).fetchall()
    return [[json_value(value) for value in row] for row in rows]


@pytest.fixture
def seeded_url(db_url, serve) -> str:
    """A server whose store holds SEED, posted through POST /logs."""
    url = serve(create_app(db_url, sql_timeout=SQL_TIMEOUT))
    logs = [
        record(message, service=service, level=level, path=path, duration_ms=duration, **extra)
        for service, level, path, duration, message, extra in SEED
    ]
    response = requests.post(f"{url}/logs", json={"logs": logs}, timeout=30)
    assert (200, len(SEED)) == (response.status_code, response.json()["accepted"])
    return url


def test_hostile_statements_are_refused_with_400_naming_what_and_change_nothing(seeded_url, db_url):
    before = stored_rows(db_url)
    for statement in HOSTILE_SAMPLE[dialect_of(db_url)]:
        assert dialect_of(db_url) in dict(HOSTILE)[statement]
        response = sql(seeded_url, statement)
        assert (statement, 400, "refused") == (
            statement,
            response.status_code,
            response.json()["error"],
        )
        assert response.json()["reason"]
    assert before == stored_rows(db_url)


def test_a_refusal_names_the_statement_kind_or_relation_refused(seeded_url, db_url):
    assert {"error": "refused", "reason": "only SELECT is allowed, found 'DELETE'"} == sql(
        seeded_url, "DELETE FROM logs"
    ).json()
    secret = "sqlite_master" if dialect_of(db_url) == "sqlite" else "pg_shadow"
    assert secret in sql(seeded_url, f"SELECT * FROM {secret}").json()["reason"]


def test_a_legitimate_statement_returns_the_rows_direct_sql_returns(seeded_url, db_url):
    statements = [s for s, dialect in LEGITIMATE if dialect == dialect_of(db_url)]
    for statement in statements:
        response = sql(seeded_url, statement)
        assert (statement, 200) == (statement, response.status_code), response.text
        answer = response.json()
        assert (statement, direct(db_url, statement), False) == (
            statement,
            answer["rows"],
            answer["truncated"],
        )
        assert answer["elapsed_ms"] >= 0


def test_the_answer_names_the_columns_in_order(seeded_url):
    answer = sql(seeded_url, "SELECT id, service AS s, 1 + 1 AS two FROM logs WHERE id = 1").json()
    assert (["id", "s", "two"], [[1, "api", 2]]) == (answer["columns"], answer["rows"])


@pytest.mark.parametrize(
    ("limit", "ids", "truncated"),
    [(3, [1, 2, 3], True), (len(SEED), list(range(1, len(SEED) + 1)), False), (None, None, False)],
)
def test_a_limit_cuts_the_rows_and_says_they_were_truncated(seeded_url, limit, ids, truncated):
    answer = sql(seeded_url, "SELECT id FROM logs ORDER BY id", limit).json()
    expected = [[i] for i in ids or range(1, len(SEED) + 1)]
    assert (expected, truncated) == (answer["rows"], answer["truncated"])


def test_a_statement_past_its_timeout_is_504_naming_the_timeout_and_the_next_one_runs(
    seeded_url,
):
    response = sql(seeded_url, RUNAWAY)
    assert 504 == response.status_code
    assert {
        "error": "timeout",
        "reason": f"the statement ran longer than its timeout of {SQL_TIMEOUT:g} s",
    } == response.json()
    assert [[len(SEED)]] == sql(seeded_url, "SELECT count(*) FROM logs").json()["rows"]


def test_a_query_error_is_400_with_the_databases_message(seeded_url, db_url):
    response = sql(seeded_url, "SELECT no_such_column FROM logs")
    assert (400, "query_error") == (response.status_code, response.json()["error"])
    assert "no_such_column" in response.json()["reason"]
    if dialect_of(db_url) == "postgres":
        # SQLite's division by zero is NULL, PostgreSQL's an error.
        response = sql(seeded_url, "SELECT 1 / 0")
        assert (400, "query_error") == (response.status_code, response.json()["error"])
        assert "division by zero" in response.json()["reason"]


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgres_values_are_encoded_as_json(seeded_url, db_url):
    """Times as ISO 8601, numeric as numbers, JSON as objects, intervals as seconds, UUIDs
    and NaN as text."""
    statement = (
        "SELECT created_at, CAST('12.50' AS numeric) AS n, metadata, event_id, "
        "interval '90 minutes' AS i, CAST('NaN' AS double precision) AS nan "
        "FROM logs WHERE id = 1"
    )
    answer = sql(seeded_url, statement).json()
    stored = stored_rows(db_url)[0]
    created_at, n, metadata, event_id, interval, nan = answer["rows"][0]
    assert stored["created_at"] == datetime.datetime.fromisoformat(created_at).timestamp()
    assert (12.5, {"order_id": 1}, stored["event_id"], 5400.0, "NaN") == (
        n,
        metadata,
        event_id,
        interval,
        nan,
    )


def test_values_json_cannot_carry_are_encoded_as_text_or_numbers():
    assert [
        "00ff",
        "Infinity",
        "-Infinity",
        "NaN",
        3,
        1.25,
        "2024-05-01T12:00:00+00:00",
        {"a": ["NaN"]},
    ] == [
        json_value(b"\x00\xff"),
        json_value(math.inf),
        json_value(Decimal("-Infinity")),
        json_value(Decimal("NaN")),
        json_value(Decimal("3.000")),
        json_value(Decimal("1.25")),
        json_value(datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC)),
        json_value({"a": [math.nan]}),
    ]
    # An integral numeric too long to print as an int is a float, or text past a float's range.
    assert (1e300, "1E+1000") == (json_value(Decimal("1e300")), json_value(Decimal("1e1000")))


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b"{not json", "application/json", 400, "the body is not valid JSON"),
        (b"[1, 2]", "application/json", 400, "the body must be a JSON object"),
        (b'{"limit": 5}', "application/json", 400, '"sql" must be a string'),
        (b'{"sql": 42}', "application/json", 400, '"sql" must be a string'),
        (b'{"sql": "SELECT 1", "limit": "9"}', "application/json", 400, '"limit" must be'),
        (b'{"sql": "SELECT 1", "limit": true}', "application/json", 400, '"limit" must be'),
        (b'{"sql": "SELECT 1", "limit": 0}', "application/json", 400, '"limit" must be'),
        (b'{"sql": "SELECT 1", "limit": 1.5}', "application/json", 400, '"limit" must be'),
        (b'{"sql": "SELECT 1", "query": "x"}', "application/json", 400, "unknown fields: 'query'"),
        (b'{"sql": "SELECT \\ud800"}', "application/json", 400, '"sql" is not valid Unicode'),
        (b"[" * 100_000, "application/json", 400, "the body is"),
        (b'{"sql": "SELECT 1"}', "text/plain", 415, "Content-Type must be application/json"),
        (b" " * (MAX_BODY_BYTES + 1), "application/json", 413, "the body is larger than"),
    ],
)
def test_a_malformed_request_is_refused_saying_what_is_wrong(
    sqlite_url, serve, body, content_type, status, reason
):
    url = serve(create_app(sqlite_url))
    response = requests.post(
        f"{url}/api/sql", data=body, headers={"Content-Type": content_type}, timeout=30
    )
    assert status == response.status_code
    assert reason in response.json()["reason"]


def test_an_unreachable_store_is_503_with_retry_after(serve):
    url = serve(
        create_app(f"postgresql://postgres@127.0.0.1:{closed_port()}/logs", store_timeout=1)
    )
    response = sql(url, "SELECT count(*) FROM logs")
    assert (503, "unavailable") == (response.status_code, response.json()["error"])
    assert "5" == response.headers["Retry-After"]


def test_docs_and_the_openapi_schema_are_served_and_list_the_sql_endpoint(sqlite_url, serve):
    url = serve(create_app(sqlite_url))
    schema = requests.get(f"{url}/openapi.json", timeout=30).json()
    operation = schema["paths"]["/api/sql"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert {"sql", "limit"} == set(body["properties"])
    assert {"200", "400", "401", "403", "408", "413", "415", "503", "504"} == set(
        operation["responses"]
    )
    docs = requests.get(f"{url}/docs", timeout=30)
    assert (200, True) == (docs.status_code, "/openapi.json" in docs.text)


# Fuzzing: nothing a client sends gets a 500.

_WORDS = [
    "SELECT", "FROM", "logs", "WHERE", "id", "message", "metadata", "created_at", "count(*)",
    "GROUP BY", "ORDER BY", "LIMIT", "UNION", "WITH", "AS", "(", ")", ",", ";", "'", '"', "--",
    "/*", "*/", "=", "1", "-1", "0.5", "NULL", "'x'", "CAST(", "AS text", "AS jsonb", "->>",
    "json_extract(", "DELETE", "PRAGMA", "sqlite_master", "pg_sleep(1)", "1/0", "||", "?", "$1",
    "\x00", "\ud800", "é", "RECURSIVE", "OVER (", "PARTITION BY", "INTERVAL '1 hour'", "NaN",
]  # fmt: skip
_STATEMENTS = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(_WORDS), max_size=25).map(" ".join),
    st.sampled_from([s for s, _ in HOSTILE] + [s for s, _ in LEGITIMATE]),
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)
_LIMITS = st.one_of(st.none(), st.integers(-5, 200_000), _JSON)


@st.composite
def _bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["request", "json", "bytes"]))
    if kind == "request":
        document: dict = {"sql": draw(st.one_of(_STATEMENTS, _JSON))}
        limit = draw(_LIMITS)
        if limit is not None:
            document["limit"] = limit
        if draw(st.booleans()):
            document.update(draw(st.dictionaries(st.text(max_size=5), _JSON, max_size=2)))
        return json.dumps(document).encode("utf-8", "surrogatepass")
    if kind == "json":
        return json.dumps(draw(_JSON)).encode()
    return draw(st.binary(max_size=200))


def _fuzz(url: str, db_url: str, examples: int) -> None:
    before = stored_rows(db_url)

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=_bodies())
    def never_a_500(body: bytes) -> None:
        response = requests.post(
            f"{url}/api/sql", data=body, headers={"Content-Type": "application/json"}, timeout=30
        )
        assert response.status_code in (200, 400, 413, 504), (body, response.text)
        answer = response.json()
        if response.status_code == 200:
            assert {"columns", "rows", "truncated", "elapsed_ms"} == set(answer)
        else:
            assert {"error", "reason"} == set(answer)

    never_a_500()
    assert before == stored_rows(db_url)


def test_fuzzed_bodies_never_get_a_500_and_change_nothing(seeded_url, db_url):
    _fuzz(seeded_url, db_url, examples=30)


@pytest.mark.slow
def test_many_fuzzed_bodies_never_get_a_500_and_change_nothing(seeded_url, db_url):
    _fuzz(seeded_url, db_url, examples=1000)


def test_a_body_not_received_within_the_body_timeout_is_408(sqlite_url, serve):
    url = serve(create_app(sqlite_url, limits=Limits(body_timeout=0.3)))
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"sql": '
        )
        answer = _read_response(sock)
    assert answer.startswith("HTTP/1.1 408")
    assert '"error":"body_timeout"' in answer


def _read_response(sock: socket.socket) -> str:
    """One HTTP response, whose headers and body may come in separate segments."""
    received = b""
    for _ in range(100):
        head, _, body = received.partition(b"\r\n\r\n")
        lengths = [
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ]
        if lengths and len(body) >= lengths[0]:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received.decode()
