"""The language-model engines of /api/ask (``ask/engines/``) and their prompt (``ask/prompt.py``),
against stand-in APIs on 127.0.0.1 (tests/server/llm_fakes.py) that speak the Messages API and
Chat Completions: the requests follow each API's documented format and carry the schema and the
interpretation but no log line; a hostile SQL reply is refused by the guard and sent back for
repair, and an engine that keeps failing, times out or is refused leaves the answer to the
builtin engine, which says so; 429 and 5xx are retried, other 4xx are not, and the key never
appears in an error."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests
from llm_fakes import ANTHROPIC_VERSION, FakeAnthropic, FakeOpenAI
from server_helpers import NOW, closed_port, row, stored_rows

from log_collector.server import create_app, open_store
from log_collector.server.ask.engines import load_engine
from log_collector.server.ask.engines._http import (
    MAX_REPLY_BYTES,
    RetryPolicy,
    Seams,
    classify,
    retry_after_s,
)
from log_collector.server.ask.engines.anthropic import AnthropicMessages
from log_collector.server.ask.engines.anthropic import reply_text as anthropic_reply_text
from log_collector.server.ask.engines.base import Engine, EngineError
from log_collector.server.ask.engines.chat import ChatEngine, extract_sql
from log_collector.server.ask.engines.openai import OpenAIChat
from log_collector.server.ask.engines.openai import reply_text as openai_reply_text
from log_collector.server.ask.interpretation import Interpretation
from log_collector.server.ask.known import read_known
from log_collector.server.ask.prompt import (
    MAX_PROMPT_SERVICES,
    WITHHELD,
    answer_messages,
    schema_text,
    withhold_log_text,
)
from log_collector.server.ask.service import AskService
from log_collector.server.ask.settings import AskSettings
from log_collector.server.query.sqlguard import SqlRefused, guard
from log_collector.server.query.sqlrun import run_guarded

ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"
OPENAI_KEY = "sk-proj-test-fedcba9876543210"
# Log text seeded in the store; none of it may appear in any request an engine sends.
SECRETS = ("SECRET-LOG-LINE-42", "SECRET-STACK-42", "SECRET-META-42")
HOUR_US = 3_600_000_000
NOW_US = int(NOW * 1_000_000)
GOOD_SQL = "SELECT service, count(*) AS n FROM logs WHERE deleted = FALSE GROUP BY service"


class Waits:
    """Seams that record the waits between attempts instead of sleeping them."""

    def __init__(self, rng: float = 0.5) -> None:
        self.slept: list[float] = []
        self.seams = Seams(sleep=self.slept.append, rng=lambda: rng)


def interp(**fields: Any) -> Interpretation:
    values = {
        "intent": "errors_in_window",
        "service": "payment-api",
        "since_us": NOW_US - HOUR_US,
        "until_us": NOW_US,
    }
    return Interpretation(**{**values, **fields})


@pytest.fixture
def anthropic_fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(key=ANTHROPIC_KEY) as fake:
        yield fake


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(key=OPENAI_KEY) as fake:
        yield fake


def anthropic_api(fake: FakeAnthropic, waits: Waits | None = None, **options: Any):
    options.setdefault("api_key", ANTHROPIC_KEY)
    return AnthropicMessages(
        model="claude-test",
        base_url=fake.url,
        seams=(waits or Waits()).seams,
        **options,
    )


def openai_api(fake: FakeOpenAI, waits: Waits | None = None, **options: Any):
    options.setdefault("api_key", OPENAI_KEY)
    return OpenAIChat(
        model="gpt-test", base_url=fake.url + "/v1", seams=(waits or Waits()).seams, **options
    )


@pytest.fixture(params=["anthropic", "openai"])
def api_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def fake(api_kind: str) -> Iterator[Any]:
    cls, key = (
        (FakeAnthropic, ANTHROPIC_KEY) if api_kind == "anthropic" else (FakeOpenAI, OPENAI_KEY)
    )
    with cls(key=key) as started:
        yield started


def make_api(api_kind: str, fake: Any, waits: Waits | None = None, **options: Any):
    if api_kind == "anthropic":
        return anthropic_api(fake, waits, **options)
    return openai_api(fake, waits, **options)


def sql_failure(api: Any) -> str:
    """The reason of the EngineError a ChatEngine over ``api`` raises when asked for SQL."""
    engine = ChatEngine(api)
    with pytest.raises(EngineError) as raised:
        engine.sql_for("q", interp(), "schema", "sqlite", None, None)
    return raised.value.reason


def seed(db_url: str) -> None:
    """Known rows: payment-api errors with log text that must stay out of every prompt."""
    store = open_store(db_url)
    try:
        store.migrate()
        store.insert(
            [
                row(
                    SECRETS[0],
                    service="payment-api",
                    level="ERROR",
                    error_type="TimeoutError",
                    stack_trace=SECRETS[1],
                    metadata={"note": SECRETS[2]},
                    user_id="user_123",
                    path="/api/v1/payment",
                    duration_ms=1200.0,
                    created_at=NOW - 600,
                ),
                row("ok", service="payment-api", level="INFO", created_at=NOW - 300),
                row("ok", service="auth-api", level="ERROR", created_at=NOW - 200),
            ]
        )
    finally:
        store.close()


def table_columns(db_url: str) -> list[str]:
    """The columns of logs as the database itself lists them."""
    if db_url.startswith("sqlite:///"):
        conn = sqlite3.connect(db_url[len("sqlite:///") :])
        try:
            return [r[1] for r in conn.execute("PRAGMA table_info(logs)")]
        finally:
            conn.close()
    with psycopg.connect(db_url) as conn:
        found = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'logs'"
        )
        return [r[0] for r in found]


@pytest.fixture
def state(db_url: str) -> Iterator[Any]:
    seed(db_url)
    app = create_app(db_url)
    server_state = app.state.server
    try:
        yield server_state
    finally:
        server_state.store.close()


def service_with(state: Any, engine: Engine, **settings: Any) -> AskService:
    return AskService(state, AskSettings(engine=engine.name, **settings), engine=engine)


# the requests: each API's documented format


def test_anthropic_request_follows_the_messages_api(anthropic_fake: FakeAnthropic):
    anthropic_fake.reply("```sql\nSELECT 1\n```")
    engine = ChatEngine(anthropic_api(anthropic_fake))

    sql = engine.sql_for("errors in the last hour", interp(), "SCHEMA-TEXT", "sqlite", None, None)

    assert "SELECT 1" == sql
    [request] = anthropic_fake.requests
    assert ("POST", "/v1/messages") == (request.method, request.path)
    assert ANTHROPIC_KEY == request.header("x-api-key")
    assert ANTHROPIC_VERSION == request.header("anthropic-version")
    assert request.header("content-type") == "application/json"
    assert request.header("authorization") is None
    body = request.json
    assert {"model", "max_tokens", "system", "messages", "temperature"} == set(body)
    assert "claude-test" == body["model"]
    assert isinstance(body["max_tokens"], int)
    assert "SCHEMA-TEXT" in body["system"]
    assert ["user"] == [m["role"] for m in body["messages"]]
    assert "errors in the last hour" in body["messages"][0]["content"]


def test_openai_request_follows_chat_completions(openai_fake: FakeOpenAI):
    openai_fake.reply("SELECT 1")
    engine = ChatEngine(openai_api(openai_fake))

    sql = engine.sql_for("errors in the last hour", interp(), "SCHEMA-TEXT", "postgres", None, None)

    assert "SELECT 1" == sql
    [request] = openai_fake.requests
    assert ("POST", "/v1/chat/completions") == (request.method, request.path)
    assert f"Bearer {OPENAI_KEY}" == request.header("authorization")
    assert request.header("x-api-key") is None
    body = request.json
    assert {"model", "messages", "temperature"} == set(body)
    assert ("gpt-test", 0) == (body["model"], body["temperature"])
    assert ["system", "user"] == [m["role"] for m in body["messages"]]
    assert "SCHEMA-TEXT" in body["messages"][0]["content"]
    assert "errors in the last hour" in body["messages"][1]["content"]


def test_a_local_openai_compatible_server_gets_no_authorization_without_a_key():
    """Ollama, vLLM and llama.cpp take no key: none is sent, and none is required off openai.com."""
    with FakeOpenAI(key=None) as local:
        local.reply("SELECT 1")
        engine = ChatEngine(openai_api(local, api_key=None))

        engine.sql_for("errors", interp(), "schema", "sqlite", None, None)

        [request] = local.requests
        assert request.header("authorization") is None


def test_a_repair_sends_the_refused_sql_back_with_the_reason(fake: Any, api_kind: str):
    fake.reply("SELECT 1")
    engine = ChatEngine(make_api(api_kind, fake))

    engine.sql_for("q", interp(), "schema", "sqlite", "refused: function 'pg_sleep'", "SELECT x")

    turns = [m for m in fake.requests[0].json["messages"] if m["role"] != "system"]
    assert ["user", "assistant", "user"] == [m["role"] for m in turns]
    assert "SELECT x" in turns[1]["content"]
    assert "refused: function 'pg_sleep'" in turns[2]["content"]


# the prompt: schema and interpretation in, log lines out


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_the_schema_names_every_column_enum_value_and_the_dialects_time_form(dialect: str):
    text = schema_text(dialect, ["payment-api", "auth-api"], interp(), 1000)

    for column in ("created_at", "level", "service", "error_type", "duration_ms", "metadata"):
        assert f"- {column} " in text
    for value in ("TRACE", "FATAL", "BACKEND", "WORKER", "production", "local", "OPTIONS"):
        assert f"'{value}'" in text
    assert '["payment-api", "auth-api"]' in text
    assert "at most 1000 rows" in text
    if dialect == "sqlite":
        assert "INTEGER microseconds since the Unix epoch" in text
        assert "logs_iso" in text
        assert "json_extract(metadata, '$.order_id')" in text
    else:
        assert "timestamptz" in text
        assert "metadata->>'order_id'" in text


def test_the_schema_lists_every_column_the_store_has(db_url: str):
    text = schema_text("sqlite" if db_url.startswith("sqlite") else "postgres", [], interp(), 10)

    missing = [c for c in table_columns(db_url) if f"- {c} " not in text]

    assert [] == missing


def test_the_prompt_carries_the_interpretation_as_absolute_times_and_values():
    text = schema_text("postgres", [], interp(level=("ERROR", "FATAL"), bucket_s=300), 100)

    since = interp().to_json()["since"]
    assert f'since: "{since}"' in text
    assert f"created_at >= '{since}'" in text
    assert "service = 'payment-api'" in text
    assert "level IN ('ERROR', 'FATAL')" in text
    assert "bucket_s: 300" in text


def test_a_value_with_a_quote_is_quoted_as_an_sql_literal():
    text = schema_text("sqlite", [], interp(service="o'brien"), 100)

    assert "service = 'o''brien'" in text


def test_the_where_clause_in_the_prompt_runs_on_each_store_and_counts_the_interpretation(
    state: Any,
):
    """The clause the model is told to use is valid SQL for the store and selects what the
    interpretation means: payment-api's errors of the last hour."""
    dialect = state.sql_dialect
    text = schema_text(dialect, [], interp(level=("ERROR", "FATAL")), 100)
    clause = next(
        line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("- as a WHERE")
    )

    result = run_guarded(state, f"SELECT count(*) AS n FROM logs WHERE {clause}", 10)

    assert [[1]] == [list(r) for r in result.rows]


def test_no_log_line_reaches_either_api(state: Any, fake: Any, api_kind: str):
    """The schema prompt and the answer prompt carry no message, stack trace or metadata value,
    even when the model's SQL selects them (the answer's rows withhold them)."""
    fake.default = lambda request: "SELECT service, message, stack_trace, metadata FROM logs"
    engine = ChatEngine(make_api(api_kind, fake))
    known = read_known(state.store, NOW)
    schema = schema_text(state.sql_dialect, known.services, interp(), 1000)

    sql = engine.sql_for("what happened", interp(), schema, state.sql_dialect, None, None)
    result = run_guarded(state, sql, 1000)
    rows = [[str(v) if v is not None else None for v in r] for r in result.rows]
    engine.answer_text("what happened", interp(), result.columns, rows, result.truncated)

    assert any(SECRETS[0] in str(r) for r in rows)  # the rows did hold the log text
    assert 2 == len(fake.requests)
    assert "payment-api" in fake.requests[0].text  # known services are there
    for body in fake.bodies():
        for secret in SECRETS:
            assert secret not in body


def test_through_the_service_no_log_line_reaches_the_api(state: Any, fake: Any, api_kind: str):
    fake.default = lambda request: "SELECT * FROM logs WHERE deleted = FALSE"
    service = service_with(state, ChatEngine(make_api(api_kind, fake)))

    answer = service.ask({"question": "what happened in the last hour"}, NOW)

    assert api_kind == answer["engine"]
    assert any(SECRETS[0] in json.dumps(r) for r in answer["rows"])  # the user sees the rows
    assert fake.requests
    for body in fake.bodies():
        for secret in SECRETS:
            assert secret not in body


def test_a_long_list_of_services_is_capped_and_says_how_many_are_left_out():
    services = [f"svc-{n:04d}" for n in range(MAX_PROMPT_SERVICES + 5)]

    text = schema_text("sqlite", services, interp(service="svc-0204"), 10)

    assert "svc-0199" in text and "svc-0200" not in text
    assert "(5 more services not listed)" in text
    assert "service = 'svc-0204'" in text


def test_sample_lines_go_in_only_when_log_lines_are_enabled():
    lines = [{"message": SECRETS[0]}]

    off = schema_text("sqlite", [], interp(), 10, sample_lines=lines)
    on = schema_text("sqlite", [], interp(), 10, include_log_lines=True, sample_lines=lines)

    assert SECRETS[0] not in off
    assert SECRETS[0] in on


def test_the_answer_prompt_withholds_log_text_columns_and_cuts_long_values():
    columns = ["service", "message", "last_msg", "error_type", "n"]
    rows = [["payment-api", SECRETS[0], SECRETS[0], "E" * 500, 3]]

    _, messages = answer_messages("q", interp(), columns, rows, False)
    _, enabled = answer_messages("q", interp(), columns, rows, False, include_log_lines=True)

    assert SECRETS[0] not in messages[0]["content"]
    assert WITHHELD in messages[0]["content"]
    assert "E" * 201 not in messages[0]["content"]
    assert '"payment-api"' in messages[0]["content"] and ", 3]" in messages[0]["content"]
    assert SECRETS[0] in enabled[0]["content"]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT service, count(*) AS n FROM logs GROUP BY 1", [["x", "y"]]),
        ("SELECT service, message FROM logs", [["x", WITHHELD]]),
        ("SELECT message AS service, level FROM logs", [[WITHHELD, "y"]]),
        ("SELECT substr(message, 1, 5) AS a, service FROM logs", [[WITHHELD, "y"]]),
        ("WITH t AS (SELECT message AS a FROM logs) SELECT a, a FROM t", [[WITHHELD, WITHHELD]]),
        ("SELECT json_extract(metadata, '$.k') AS k, path FROM logs", [[WITHHELD, "y"]]),
        ("not sql ((", [[WITHHELD, WITHHELD]]),
    ],
)
def test_withhold_log_text_follows_the_query_not_the_column_names(sql: str, expected: list):
    assert expected == withhold_log_text(sql, "sqlite", ["a", "b"], [["x", "y"]])


def test_withhold_log_text_keeps_numbers_and_nulls():
    rows = withhold_log_text("SELECT message, id FROM logs", "sqlite", ["m", "id"], [[None, 7]])

    assert [[None, 7]] == rows


# hostile SQL: refused by the guard, repaired or left to builtin


@pytest.mark.parametrize("hostile", ["DELETE FROM logs", "SELECT pg_sleep(10)"])
@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_a_hostile_reply_comes_out_as_is_and_the_guard_refuses_it(
    anthropic_fake: FakeAnthropic, hostile: str, dialect: str
):
    anthropic_fake.reply(f"Sure.\n```sql\n{hostile};\n```")
    engine = ChatEngine(anthropic_api(anthropic_fake))

    sql = engine.sql_for("q", interp(), "schema", dialect, None, None)

    assert hostile == sql
    with pytest.raises(SqlRefused):
        guard(sql, dialect)


def test_a_hostile_reply_is_repaired_with_the_guards_reason(state: Any, fake: Any, api_kind: str):
    fake.reply("DELETE FROM logs")
    fake.reply(GOOD_SQL)
    before = stored_rows_count(state)
    service = service_with(state, ChatEngine(make_api(api_kind, fake)))

    answer = service.ask({"question": "errors by service in the last hour"}, NOW)

    assert api_kind == answer["engine"]
    assert "fallback" not in answer
    assert GOOD_SQL == answer["sql"]
    assert {"auth-api": 1, "payment-api": 2} == {r[0]: r[1] for r in answer["rows"]}
    repair = fake.requests[1].text
    assert "DELETE FROM logs" in repair
    assert "refused by the guard: only SELECT is allowed" in repair
    assert before == stored_rows_count(state)


def test_sql_that_keeps_failing_is_repaired_twice_then_builtin_answers(
    state: Any, fake: Any, api_kind: str
):
    fake.default = lambda request: "SELECT pg_sleep(10)"
    before = stored_rows_count(state)
    service = service_with(state, ChatEngine(make_api(api_kind, fake)))

    answer = service.ask({"question": "errors in the last hour"}, NOW)

    sql_requests = [r for r in fake.requests if "Write the SQL" in r.text]
    assert 3 == len(sql_requests)  # the first try and two repairs
    assert "builtin" == answer["engine"]
    assert "after 2 repairs" in answer["fallback"]
    assert "pg_sleep" in answer["fallback"]
    assert "pg_sleep" not in answer["sql"]
    assert before == stored_rows_count(state)


def test_a_query_error_is_sent_back_for_repair(state: Any, anthropic_fake: FakeAnthropic):
    anthropic_fake.reply("SELECT no_such_column FROM logs")
    anthropic_fake.reply(GOOD_SQL)
    service = service_with(state, ChatEngine(anthropic_api(anthropic_fake)))

    answer = service.ask({"question": "errors by service"}, NOW)

    assert "anthropic" == answer["engine"]
    assert "no_such_column" in anthropic_fake.requests[1].text
    assert "the query failed" in anthropic_fake.requests[1].text


def stored_rows_count(state: Any) -> int:
    return run_guarded(state, "SELECT count(*) FROM logs", 10).rows[0][0]


# timeouts, retries, refusals


def test_a_timeout_raises_engine_error_and_is_not_retried(fake: Any, api_kind: str):
    fake.stall(30)
    reason = sql_failure(make_api(api_kind, fake, timeout_s=0.5))

    assert f"{api_kind}: no answer from 127.0.0.1:" in reason
    assert "within 0.5 s" in reason
    assert 1 == len(fake.requests)


def test_a_timeout_falls_back_to_builtin_and_says_so(state: Any, fake: Any, api_kind: str):
    fake.stall(30)
    service = service_with(state, ChatEngine(make_api(api_kind, fake, timeout_s=0.5)))

    answer = service.ask({"question": "errors in the last hour"}, NOW)

    assert "builtin" == answer["engine"]
    assert "within 0.5 s" in answer["fallback"]
    assert answer["sql"]
    assert answer["answer"]


def test_no_engine_call_starts_that_could_end_past_the_questions_deadline(
    state: Any, fake: Any, api_kind: str
):
    """The first SQL comes back refused after 1.2 s; a repair that may take its whole 2 s
    would end past the 3 s deadline, so none is asked for, nor the answer text: the builtin
    SQL and text stand in, and the fallback says why."""
    fake.stall(1.2, "DELETE FROM logs")
    service = service_with(
        state, ChatEngine(make_api(api_kind, fake, timeout_s=2)), timeout_s=2, deadline_s=3
    )

    answer = service.ask({"question": "errors in the last hour"}, NOW)

    assert 1 == len(fake.requests)
    assert "builtin" == answer["engine"]
    assert "no time left for another call within the question's 3 s" in answer["fallback"]
    assert "refused by the guard" in answer["fallback"]
    assert answer["sql"] and answer["answer"]


def test_the_deadline_is_read_from_the_environment_and_checked():
    assert 45.0 == AskSettings.from_env({"LOG_COLLECTOR_ASK_DEADLINE_S": "45"}).deadline_s
    assert 30.0 == AskSettings.from_env({}).deadline_s
    with pytest.raises(ValueError, match="LOG_COLLECTOR_ASK_DEADLINE_S='soon'"):
        AskSettings.from_env({"LOG_COLLECTOR_ASK_DEADLINE_S": "soon"})
    with pytest.raises(ValueError, match="deadline_s must be at least timeout_s"):
        AskSettings(timeout_s=20, deadline_s=10)


def test_a_timeout_through_load_engine_settings_falls_back(
    state: Any, anthropic_fake: FakeAnthropic
):
    """The settings path the server takes: AskSettings -> load_engine -> the Messages API."""
    anthropic_fake.stall(30)
    settings = AskSettings(
        engine="anthropic", api_key=ANTHROPIC_KEY, base_url=anthropic_fake.url, timeout_s=0.5
    )
    service = AskService(state, settings)

    answer = service.ask({"question": "errors in the last hour"}, NOW)

    assert "anthropic" == service.engine.name
    assert ("builtin", True) == (answer["engine"], "within 0.5 s" in answer["fallback"])


def test_429_with_retry_after_is_retried_after_that_wait(fake: Any, api_kind: str):
    fake.fail(429, retry_after=2, message="rate limited")
    fake.reply("SELECT 1")
    waits = Waits()
    engine = ChatEngine(make_api(api_kind, fake, waits))

    assert "SELECT 1" == engine.sql_for("q", interp(), "schema", "sqlite", None, None)

    assert [2.0] == waits.slept
    assert 2 == len(fake.requests)


def test_429_asking_to_wait_past_the_time_limit_gives_up_at_once(fake: Any, api_kind: str):
    fake.fail(429, retry_after=60)
    waits = Waits()
    reason = sql_failure(make_api(api_kind, fake, waits, timeout_s=5))

    assert "HTTP 429" in reason
    assert "past the 5 s time limit" in reason
    assert ([], 1) == (waits.slept, len(fake.requests))


def test_5xx_is_retried_with_full_jitter_backoff(fake: Any, api_kind: str):
    fake.fail(500)
    fake.fail(529, message="Overloaded")
    fake.reply("SELECT 2")
    waits = Waits(rng=0.5)
    engine = ChatEngine(make_api(api_kind, fake, waits))

    assert "SELECT 2" == engine.sql_for("q", interp(), "schema", "sqlite", None, None)

    # Half (rng) of the capped exponential: 0.5 * 0.5 s, then 0.5 * 1 s.
    assert [0.25, 0.5] == waits.slept


def test_5xx_every_time_gives_up_after_the_attempts_with_the_apis_words(fake: Any, api_kind: str):
    for _ in range(3):
        fake.fail(503, message="upstream sad")
    reason = sql_failure(make_api(api_kind, fake))

    assert f"{api_kind}: HTTP 503: upstream sad (after 3 attempts)" == reason
    assert 3 == len(fake.requests)


def test_a_dropped_connection_is_retried(fake: Any, api_kind: str):
    fake.drop()
    fake.reply("SELECT 3")
    engine = ChatEngine(make_api(api_kind, fake))

    assert "SELECT 3" == engine.sql_for("q", interp(), "schema", "sqlite", None, None)
    assert 2 == len(fake.requests)


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_4xx_are_not_retried(fake: Any, api_kind: str, status: int):
    fake.fail(status, message="model: not found")
    reason = sql_failure(make_api(api_kind, fake))

    assert f"HTTP {status}: model: not found" in reason
    assert 1 == len(fake.requests)


def test_a_wrong_key_is_401_not_retried_and_never_echoed(fake: Any, api_kind: str):
    wrong = "sk-wrong-key-ABCDEFGHIJKLMNOP"
    engine = ChatEngine(make_api(api_kind, fake, api_key=wrong))

    with pytest.raises(EngineError) as raised:
        engine.sql_for("q", interp(), "schema", "sqlite", None, None)

    reason = raised.value.reason
    assert "HTTP 401 (the API refused the key: check LOG_COLLECTOR_ASK_API_KEY)" in reason
    assert 1 == len(fake.requests)
    assert wrong not in reason and wrong[:8] not in reason and wrong[-8:] not in reason
    assert wrong not in repr(engine)


def test_a_redirect_is_not_followed(fake: Any, api_kind: str):
    """Following it would carry the key to another address."""
    fake.fail(307)
    reason = sql_failure(make_api(api_kind, fake))

    assert "HTTP 307 (a redirect, not followed" in reason
    assert 1 == len(fake.requests)


def test_a_server_that_is_down_fails_after_the_attempts():
    waits = Waits()
    api = AnthropicMessages(
        api_key=ANTHROPIC_KEY, base_url=f"http://127.0.0.1:{closed_port()}", seams=waits.seams
    )

    with pytest.raises(EngineError) as raised:
        api.complete("system", [{"role": "user", "content": "q"}], 10)

    assert "anthropic: connection refused (after 3 attempts)" == raised.value.reason
    assert 2 == len(waits.slept)


def test_the_retry_policy_caps_the_backoff():
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.5, max_delay_s=4.0)

    assert [0.5, 1.0, 2.0, 4.0, 4.0] == [policy.backoff(n, lambda: 1.0) for n in range(5)]


@pytest.mark.parametrize(
    ("status", "kind"),
    [(200, "ok"), (429, "throttled"), (500, "retry"), (529, "retry"), (401, "fail"), (302, "fail")],
)
def test_classify_maps_each_status(status: int, kind: str):
    assert kind == classify(status, {}, None).kind.value


def test_retry_after_reads_seconds_milliseconds_and_dates():
    assert 3.0 == retry_after_s({"Retry-After": "3"})
    assert 0.25 == retry_after_s({"retry-after-ms": "250", "retry-after": "9"})
    assert 0.0 == retry_after_s({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after_s({"Retry-After": "soon"}) is None


# the replies


@pytest.mark.parametrize(
    ("reply", "sql"),
    [
        ("SELECT 1", "SELECT 1"),
        (
            "```sql\nSELECT count(*) FROM logs;\n```\nThis counts the rows.",
            "SELECT count(*) FROM logs",
        ),
        ("Here it is:\n```\nSELECT 2\n```", "SELECT 2"),
        ("```text\nnote\n```\n```sql\nSELECT 3\n```", "SELECT 3"),
        ("With this query you get it:\nselect a\nfrom logs;\nIt counts.", "select a\nfrom logs"),
        ("Sure: SELECT 4 FROM logs", "SELECT 4 FROM logs"),
        (
            "SELECT a\nFROM logs\n\nWHERE a = 1\n\nThis filters.",
            "SELECT a\nFROM logs\n\nWHERE a = 1",
        ),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH x AS (SELECT 1) SELECT * FROM x"),
        ("SELECT ';' AS x;", "SELECT ';' AS x"),
        # A second statement stays, so the guard refuses the reply and the model hears why.
        ("SELECT 1; DELETE FROM logs", "SELECT 1; DELETE FROM logs"),
        ("DELETE FROM logs", "DELETE FROM logs"),
    ],
)
def test_extract_sql_takes_the_statement_out_of_the_reply(reply: str, sql: str):
    assert sql == extract_sql(reply)


def test_a_reply_without_sql_is_an_engine_error(fake: Any, api_kind: str):
    fake.reply("I cannot answer that from these logs.")
    reason = sql_failure(make_api(api_kind, fake))

    assert "the reply holds no SQL: 'I cannot answer that" in reason


def test_answer_text_is_the_models_text_in_the_questions_language(fake: Any, api_kind: str):
    fake.reply("  지난 1시간 동안 payment-api 에러는 2건입니다.  ")
    engine = ChatEngine(make_api(api_kind, fake))

    text = engine.answer_text("지난 1시간 에러", interp(language="ko"), ["n"], [[2]], False)

    assert "지난 1시간 동안 payment-api 에러는 2건입니다." == text
    assert "Answer in Korean" in fake.requests[0].text


def test_an_empty_answer_is_an_engine_error(fake: Any, api_kind: str):
    fake.reply("   ")
    engine = ChatEngine(make_api(api_kind, fake))

    with pytest.raises(EngineError):
        engine.answer_text("q", interp(), ["n"], [[2]], False)


def test_an_engine_answer_failure_leaves_the_template_answer(
    state: Any, anthropic_fake: FakeAnthropic
):
    anthropic_fake.reply(GOOD_SQL)
    anthropic_fake.fail(400, message="bad")
    service = service_with(state, ChatEngine(anthropic_api(anthropic_fake)))

    answer = service.ask({"question": "errors by service"}, NOW)

    assert "anthropic" == answer["engine"]
    assert answer["answer"]


# settings


def test_load_engine_builds_each_engine_from_settings():
    anthropic = load_engine(AskSettings(engine="anthropic", api_key=ANTHROPIC_KEY))
    openai = load_engine(
        AskSettings(engine="openai", base_url="http://127.0.0.1:11434/v1", model="llama3.2")
    )

    assert ("anthropic", "openai") == (anthropic.name, openai.name)
    assert ANTHROPIC_KEY not in repr(anthropic)
    assert "http://127.0.0.1:11434/v1/chat/completions" == openai.api.url


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (AskSettings(engine="anthropic"), "LOG_COLLECTOR_ASK_API_KEY (or ANTHROPIC_API_KEY)"),
        (AskSettings(engine="openai"), "LOG_COLLECTOR_ASK_API_KEY (or OPENAI_API_KEY)"),
        (
            AskSettings(engine="openai", api_key="k", base_url="ftp://x"),
            "LOG_COLLECTOR_ASK_BASE_URL",
        ),
    ],
)
def test_a_setting_an_engine_cannot_work_without_is_named(settings: AskSettings, named: str):
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)")):
        load_engine(settings)


# through the server: POST /api/ask on a real uvicorn with the engine configured


def test_over_http_a_hostile_reply_is_repaired_and_the_request_holds_no_log_line(
    db_url: str, serve: Any, openai_fake: FakeOpenAI
):
    seed(db_url)
    openai_fake.reply("```sql\nDELETE FROM logs;\n```")
    openai_fake.reply(GOOD_SQL)
    settings = AskSettings(
        engine="openai", base_url=openai_fake.url + "/v1", api_key=OPENAI_KEY, model="gpt-test"
    )
    url = serve(create_app(db_url, ask=settings))

    response = requests.post(f"{url}/api/ask", json={"question": "errors by service"}, timeout=30)

    assert 200 == response.status_code
    answer = response.json()
    assert ("openai", GOOD_SQL) == (answer["engine"], answer["sql"])
    assert {"auth-api": 1, "payment-api": 2} == {r[0]: r[1] for r in answer["rows"]}
    assert "only SELECT is allowed" in openai_fake.requests[1].text
    assert 3 == len(stored_rows(db_url))
    system = openai_fake.requests[0].json["messages"][0]["content"]
    assert "Table logs" in system and "- created_at " in system
    assert 'Known services: ["auth-api", "payment-api"]' in system
    for name, value in answer["interpretation"].items():
        if value is not None:
            assert f"- {name}: {json.dumps(value, ensure_ascii=False)}" in system
    for body in openai_fake.bodies():
        for secret in SECRETS:
            assert secret not in body


def test_over_http_a_timeout_falls_back_to_builtin_and_says_so(
    db_url: str, serve: Any, anthropic_fake: FakeAnthropic
):
    seed(db_url)
    anthropic_fake.stall(30)
    settings = AskSettings(
        engine="anthropic", base_url=anthropic_fake.url, api_key=ANTHROPIC_KEY, timeout_s=0.5
    )
    url = serve(create_app(db_url, ask=settings))

    response = requests.post(
        f"{url}/api/ask", json={"question": "errors in the last hour"}, timeout=30
    )

    assert 200 == response.status_code
    answer = response.json()
    assert "builtin" == answer["engine"]
    assert "anthropic failed: anthropic: no answer from" in answer["fallback"]
    assert answer["sql"] and answer["answer"]
    assert ANTHROPIC_KEY not in response.text


def test_log_text_under_an_alias_stays_out_of_the_answer_prompt(
    state: Any, fake: Any, api_kind: str
):
    fake.reply("SELECT message AS service FROM logs WHERE deleted = FALSE")
    fake.default = lambda request: "There were 3 lines."
    service = service_with(state, ChatEngine(make_api(api_kind, fake)))

    service.ask({"question": "what happened in the last hour"}, NOW)

    for body in fake.bodies():
        assert SECRETS[0] not in body


def test_an_answer_that_is_not_json_is_an_engine_error(fake: Any, api_kind: str):
    fake.raw(200, b"<html>captive portal</html>")
    reason = sql_failure(make_api(api_kind, fake))

    assert f"{api_kind}: the answer is not JSON (27 bytes)" == reason
    assert 1 == len(fake.requests)


def test_an_answer_over_the_size_cap_is_refused_unread(fake: Any, api_kind: str):
    fake.reply("SELECT '" + "x" * MAX_REPLY_BYTES + "'")
    reason = sql_failure(make_api(api_kind, fake))

    assert f"the answer is larger than {MAX_REPLY_BYTES} bytes" in reason
    assert 1 == len(fake.requests)


def test_any_text_goes_out_as_valid_json(fake: Any, api_kind: str):
    """A lone surrogate (JSON allows "\\ud800") is escaped, not an encoding error."""
    fake.reply("SELECT 1")
    engine = ChatEngine(make_api(api_kind, fake))

    assert "SELECT 1" == engine.sql_for("q \ud800", interp(), "schema", "sqlite", None, None)


@pytest.mark.parametrize(
    "reply",
    [
        {"content": []},
        {"content": [{"type": "tool_use", "id": "x", "name": "n", "input": {}}]},
        {"type": "message"},
        [],
    ],
)
def test_a_messages_reply_without_a_text_block_is_an_engine_error(reply: Any):
    with pytest.raises(EngineError, match="anthropic: the reply"):
        anthropic_reply_text(reply)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ({"choices": []}, "the reply has no choices"),
        ({"choices": [{"message": {"content": None, "refusal": "no"}}]}, "the model refused: no"),
        ({"choices": [{"message": {"content": ""}}]}, "the reply's message holds no text"),
        ({"error": {"message": "x"}}, "the reply has no choices"),
    ],
)
def test_a_chat_completion_without_text_is_an_engine_error(reply: Any, reason: str):
    with pytest.raises(EngineError) as raised:
        openai_reply_text(reply)

    assert f"openai: {reason}" == raised.value.reason
