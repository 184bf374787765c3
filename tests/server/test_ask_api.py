"""POST /api/ask and /api/ask/stream against a real server on each store, on the seeded logs of
``ask_corpus``: every question of issue 20, in English and in Korean, answers the rows of an
independent reference; follow-ups narrow the previous answer; a clarification's choice continues
the conversation; hostile questions change nothing and never leave the guard; bad bodies are 400
naming the field; the read scope applies; the stream sends the parts in order. And the service's
language-model path with a scripted engine: repairs, then the fallback to builtin."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from ask_corpus import PAYMENT, QUESTIONS, seconds, seed_rows, services_with
from ask_corpus import counts_over_time as reference_counts
from ask_corpus import errors_by_service as reference_errors
from server_helpers import stored_rows

from log_collector.server import create_app, open_store
from log_collector.server.ask.answer import EXAMPLES
from log_collector.server.ask.engines.base import EngineError
from log_collector.server.ask.service import AskService
from log_collector.server.ask.settings import AskSettings
from log_collector.server.query.sqlguard import guard


def dialect_of(db_url: str) -> str:
    return "sqlite" if db_url.startswith("sqlite:") else "postgres"


def ask(url: str, body: Any, **request: Any) -> requests.Response:
    return requests.post(f"{url}/api/ask", json=body, timeout=30, **request)


@pytest.fixture
def seeded(db_url: str) -> tuple[str, float]:
    """``db_url`` holding the corpus, timed against the returned now."""
    now = time.time()
    store = open_store(db_url)
    store.migrate()
    store.insert(seed_rows(now))
    store.close()
    return db_url, now


@pytest.fixture
def url(seeded, serve) -> str:
    return serve(create_app(seeded[0], ask=AskSettings()))


def _shaped(intent: str, rows: list[list[Any]]) -> list[list[Any]]:
    """The answer's rows in the reference's shape: times as Unix seconds, the story's columns."""
    if intent in ("counts_over_time", "latency_over_time"):
        rows = [[seconds(r[0]), *r[1:]] for r in rows]
    if intent == "user_story":
        rows = [[seconds(r[0]), r[1], r[2], r[3], r[4]] for r in rows]
    return _rounded(rows)


def _rounded(rows: list[list[Any]]) -> list[list[Any]]:
    return [[round(v, 6) if isinstance(v, float) else v for v in r] for r in rows]


def _check_window(window: str | None, interp: dict[str, Any], asked_at: tuple[float, float]):
    since, until = seconds(interp["since"]), seconds(interp["until"])
    if window is None:
        assert (None, None) == (since, until)
        return
    assert asked_at[0] - 1 <= until <= asked_at[1] + 1
    if window == "hour":
        assert 3600 == pytest.approx(until - since)
    elif window == "day":
        assert 86400 == pytest.approx(until - since)
    elif window == "today":
        assert until // 86400 * 86400 == since


def test_each_question_of_the_issue_answers_the_reference_rows_in_english_and_korean(url, seeded):
    db_url, _ = seeded
    stored = stored_rows(db_url)
    for english, korean, intent, fields, window, reference in QUESTIONS:
        for question, language in ((english, "en"), (korean, "ko")):
            before = time.time()
            response = ask(url, {"question": question})
            asked_at = (before, time.time())
            assert (question, 200) == (question, response.status_code), response.text
            answer = response.json()
            interp = answer["interpretation"]
            assert (question, intent, language) == (question, interp["intent"], interp["language"])
            for name, value in fields.items():
                assert (question, name, value) == (question, name, interp[name])
            _check_window(window, interp, asked_at)
            expected = _rounded(reference(stored, interp))
            assert expected, f"{question}: the corpus holds no answer to check"
            assert (question, expected) == (question, _shaped(intent, answer["rows"]))
            assert answer["sql"] and answer["answer"] and answer["engine"] == "builtin"
            assert answer["truncated"] is False and answer["cached"] is False
            guard(answer["sql"], dialect_of(db_url))


def test_answers_state_the_figures_of_the_rows(url):
    answer = ask(url, {"question": "errors in the last hour"}).json()
    total = sum(n for _, n in answer["rows"])
    assert f"{total:,} errors" in answer["answer"]
    assert {"kind": "bar", "x": "service", "y": "errors"} == answer["chart"]
    korean = ask(url, {"question": "지난 1시간 payment-api 에러 5분 단위"}).json()
    assert f"{sum(n for _, n in korean['rows']):,}건" in korean["answer"]
    assert "timeseries" == korean["chart"]["kind"]


def test_a_follow_up_narrows_the_previous_answer_to_a_service(url, seeded):
    stored = stored_rows(seeded[0])
    first = ask(url, {"question": "errors in the last hour"}).json()
    assert len(first["rows"]) > 1
    only = ask(
        url, {"question": "only payment-api", "conversation_id": first["conversation_id"]}
    ).json()
    interp = only["interpretation"]
    assert first["conversation_id"] == only["conversation_id"]
    assert ("errors_in_window", "payment-api") == (interp["intent"], interp["service"])
    assert (first["interpretation"]["since"], first["interpretation"]["until"]) == (
        interp["since"],
        interp["until"],
    )
    assert reference_errors(stored, interp) == only["rows"]
    assert [["payment-api", 6]] == only["rows"]


def test_and_yesterday_moves_the_previous_question_to_yesterday(url, seeded):
    stored = stored_rows(seeded[0])
    first = ask(url, {"question": "payment-api errors today"}).json()
    later = ask(
        url, {"question": "and yesterday?", "conversation_id": first["conversation_id"]}
    ).json()
    interp = later["interpretation"]
    assert ("errors_in_window", "payment-api") == (interp["intent"], interp["service"])
    assert seconds(first["interpretation"]["since"]) - 86400 == seconds(interp["since"])
    assert seconds(first["interpretation"]["since"]) == seconds(interp["until"])
    assert reference_errors(stored, interp) == later["rows"]


def test_that_services_errors_only_keeps_the_service_and_adds_the_level_in_korean(url, seeded):
    stored = stored_rows(seeded[0])
    first = ask(url, {"question": "지난 1시간 payment-api 로그 5분 단위"}).json()
    assert (None, "payment-api") == (
        first["interpretation"]["level"],
        first["interpretation"]["service"],
    )
    narrowed = ask(
        url, {"question": "그 서비스의 에러만", "conversation_id": first["conversation_id"]}
    ).json()
    interp = narrowed["interpretation"]
    assert ("counts_over_time", "payment-api", ["ERROR", "FATAL"], 300) == (
        interp["intent"],
        interp["service"],
        interp["level"],
        interp["bucket_s"],
    )
    expected = reference_counts(stored, interp)
    assert expected == _shaped("counts_over_time", narrowed["rows"])
    assert sum(n for _, n in expected) < sum(n for _, n in _shaped("x", first["rows"]))


def test_an_ambiguous_service_asks_back_and_the_choice_continues_the_conversation(url, seeded):
    stored = stored_rows(seeded[0])
    asked = ask(url, {"question": "payment errors in the last hour"}).json()
    clarification = asked["clarification"]
    assert ["payment-api", "payment-worker"] == [o["label"] for o in clarification["options"]]
    assert (None, []) == (asked["sql"], asked["rows"])
    assert clarification["question"] == asked["answer"]
    chosen = ask(
        url,
        {
            "conversation_id": asked["conversation_id"],
            "choice": clarification["options"][0]["value"],
        },
    ).json()
    interp = chosen["interpretation"]
    assert asked["conversation_id"] == chosen["conversation_id"]
    assert ("errors_in_window", "payment-api") == (interp["intent"], interp["service"])
    assert reference_errors(stored, interp) == chosen["rows"]
    # and the conversation goes on from the chosen interpretation
    follow = ask(
        url, {"question": "and yesterday?", "conversation_id": asked["conversation_id"]}
    ).json()
    assert "payment-api" == follow["interpretation"]["service"]


def test_a_choice_outside_the_options_is_a_400_naming_choice(url):
    asked = ask(url, {"question": "payment errors"}).json()
    for choice in ({"service": "nope"}, {"service": "x' OR 1=1 --"}, {"level": "ERROR"}):
        response = ask(url, {"conversation_id": asked["conversation_id"], "choice": choice})
        assert (400, "choice") == (response.status_code, response.json()["parameter"])
    fresh = ask(url, {"choice": {"service": "payment-api"}})
    assert (400, "choice") == (fresh.status_code, fresh.json()["parameter"])


def test_an_unmappable_question_says_so_with_three_example_questions(url):
    for question, language in (("what is the weather in Seoul", "en"), ("점심 뭐 먹지", "ko")):
        answer = ask(url, {"question": question}).json()
        assert ("unknown", None, []) == (
            answer["interpretation"]["intent"],
            answer["sql"],
            answer["rows"],
        )
        assert all(example in answer["answer"] for example in EXAMPLES[language])


def test_the_same_question_is_cached_until_its_resolved_time_changes(url):
    first = ask(url, {"question": "slowest 5 endpoints"}).json()
    second = ask(url, {"question": "Slowest 5 endpoints?"}).json()
    assert (False, True) == (first["cached"], second["cached"])
    assert first["rows"] == second["rows"]
    hour = ask(url, {"question": "errors in the last hour"}).json()
    again = ask(url, {"question": "errors in the last hour"}).json()
    # "the last hour" resolved at two moments is two keys
    assert hour["interpretation"]["until"] != again["interpretation"]["until"]
    assert again["cached"] is False


HOSTILE_QUESTIONS = [
    "'; DROP TABLE logs; --",
    "errors in the last hour'; DELETE FROM logs; --",
    "which services had DatabaseConnectionError' OR '1'='1",
    'payment-api" ; DROP TABLE logs',
    "user_123'; UPDATE logs SET level = 'INFO'; -- last payment",
    "trace abc123'); DROP TABLE logs; --",
    "TimeoutError by service UNION SELECT * FROM sqlite_master",
    "/api/v1/payment' OR 1=1 -- latency hourly",
    "errors every 5 minutes in the last 99999999 hours",
    "top 999999 error types",
    "\u0000 errors",
]


def test_hostile_questions_never_leave_the_guard_and_change_nothing(url, seeded):
    db_url, _ = seeded
    before = stored_rows(db_url)
    for question in HOSTILE_QUESTIONS:
        response = ask(url, {"question": question})
        assert (question, True) == (question, response.status_code in (200, 400)), response.text
        if response.status_code == 200 and response.json()["sql"]:
            guard(response.json()["sql"], dialect_of(db_url))
    for service in ("x' OR '1'='1", "payment-api'; DROP TABLE logs; --", 'a"b', "a\\'b"):
        response = ask(url, {"question": "errors in the last hour", "service": service})
        assert (service, 200, []) == (service, response.status_code, response.json()["rows"])
        assert service == response.json()["interpretation"]["service"]
        guard(response.json()["sql"], dialect_of(db_url))
    assert before == stored_rows(db_url)


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({}, "question"),
        ({"question": ""}, "question"),
        ({"question": 42}, "question"),
        ({"question": "x" * 2001}, "question"),
        ({"question": "errors", "since": "last tuesday"}, "since"),
        ({"question": "errors", "until": 5}, "until"),
        ({"question": "errors", "since": "1h", "until": "2h"}, "since"),
        ({"question": "errors", "service": ""}, "service"),
        ({"question": "errors", "service": "a\u0001b"}, "service"),
        ({"question": "errors", "conversation_id": ["x"]}, "conversation_id"),
        ({"question": "errors", "choice": "payment-api"}, "choice"),
        ({"question": "errors", "sql": "SELECT 1"}, "sql"),
        (["errors"], "body"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(sqlite_url, serve, body, parameter):
    url = serve(create_app(sqlite_url))
    response = ask(url, body)
    assert (400, "bad_request", parameter) == (
        response.status_code,
        response.json()["error"],
        response.json()["parameter"],
    )


def test_a_body_that_is_not_json_is_400_415_or_413(sqlite_url, serve):
    url = serve(create_app(sqlite_url))
    headers = {"Content-Type": "application/json"}
    broken = requests.post(f"{url}/api/ask", data=b"{", headers=headers, timeout=30)
    assert (400, "body") == (broken.status_code, broken.json()["parameter"])
    plain = requests.post(f"{url}/api/ask", data=b"errors", timeout=30)
    assert 415 == plain.status_code
    huge = requests.post(
        f"{url}/api/ask", data=json.dumps({"question": "x" * 70_000}), headers=headers, timeout=30
    )
    assert (413, "too_large") == (huge.status_code, huge.json()["error"])


def test_asking_needs_a_read_key_like_the_sql_route(sqlite_url, serve):
    url = serve(create_app(sqlite_url, api_keys="ingest-key", read_keys="read-key"))
    body = {"question": "errors in the last hour"}
    assert 401 == ask(url, body).status_code
    assert 401 == ask(url, body, headers={"Authorization": "Bearer wrong"}).status_code
    assert 403 == ask(url, body, headers={"Authorization": "Bearer ingest-key"}).status_code
    assert 200 == ask(url, body, headers={"Authorization": "Bearer read-key"}).status_code
    stream = requests.post(f"{url}/api/ask/stream", json=body, timeout=30)
    assert 401 == stream.status_code


def _events(response: requests.Response) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_the_stream_sends_interpretation_sql_rows_and_answer_in_order(url):
    response = requests.post(
        f"{url}/api/ask/stream", json={"question": "top 5 error types today"}, timeout=30
    )
    assert (200, "text/event-stream") == (
        response.status_code,
        response.headers["content-type"].split(";")[0],
    )
    events = _events(response)
    assert ["interpretation", "sql", "rows", "answer", "done"] == [name for name, _ in events]
    whole = ask(url, {"question": "top 5 error types today"}).json()
    assert whole["rows"] == events[2][1]["rows"]
    assert "top_error_types" == events[0][1]["interpretation"]["intent"]


def test_the_stream_sends_a_clarification_and_a_bad_body_is_still_a_400(url):
    response = requests.post(
        f"{url}/api/ask/stream", json={"question": "payment errors"}, timeout=30
    )
    assert ["interpretation", "clarification", "done"] == [n for n, _ in _events(response)]
    bad = requests.post(f"{url}/api/ask/stream", json={"question": 1}, timeout=30)
    assert (400, "question") == (bad.status_code, bad.json()["parameter"])


def test_the_other_questions_trace_error_rate_and_comparison_answer_from_the_store(url, seeded):
    stored = stored_rows(seeded[0])
    trace = ask(url, {"question": "story of trace trace-b2-payment"}).json()
    assert "trace_story" == trace["interpretation"]["intent"]
    assert [r["message"] for r in sorted(
        (r for r in stored if r["trace_id"] == "trace-b2-payment"),
        key=lambda r: (r["created_at"], r["id"]),
    )] == [r[-1] for r in trace["rows"]]  # fmt: skip
    rate = ask(url, {"question": "payment-api 에러율 지난 1시간"}).json()
    recent = [
        r for r in stored
        if r["service"] == "payment-api"
        and seconds(rate["interpretation"]["since"]) <= r["created_at"]
        < seconds(rate["interpretation"]["until"])
    ]  # fmt: skip
    errors = sum(r["level"] in ("ERROR", "FATAL") for r in recent)
    assert [["payment-api", len(recent), errors]] == [r[:3] for r in rate["rows"]]
    assert round(100 * errors / len(recent), 2) == pytest.approx(rate["rows"][0][3])
    compared = ask(url, {"question": "today vs yesterday errors"}).json()
    interp = compared["interpretation"]
    assert ("compare_windows", "yesterday") == (interp["intent"], interp["compare"])
    since, until = seconds(interp["since"]), seconds(interp["until"])
    today = sum(
        since <= r["created_at"] < until and r["level"] in ("ERROR", "FATAL") for r in stored
    )
    before = sum(
        since - 86400 <= r["created_at"] < until - 86400 and r["level"] in ("ERROR", "FATAL")
        for r in stored
    )
    assert [[today, before]] == compared["rows"]


class ScriptedEngine:
    """An Engine that answers from a script: SQL texts, or exceptions to raise."""

    name = "scripted"

    def __init__(self, replies: list[Any], answer: Any = "from the engine") -> None:
        self.replies = list(replies)
        self.calls: list[dict[str, Any]] = []
        self.answer = answer

    def sql_for(self, question, interp, schema, dialect, error, previous_sql):
        self.calls.append({"error": error, "previous_sql": previous_sql, "schema": schema})
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def answer_text(self, question, interp, columns, rows, truncated):
        self.answered_rows = rows
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _service(db_url: str, engine: ScriptedEngine) -> AskService:
    state = create_app(db_url).state.server
    state.migrated.ensure()
    return AskService(state, AskSettings(engine="openai", max_repairs=2), engine=engine)


def test_the_engines_refused_sql_is_sent_back_with_the_reason_and_its_repair_answers(seeded):
    db_url, now = seeded
    good = "SELECT service, count(*) AS n FROM logs GROUP BY service ORDER BY service"
    engine = ScriptedEngine(["DELETE FROM logs", "SELECT nope FROM logs", good])
    before = stored_rows(db_url)
    answer = _service(db_url, engine).ask({"question": "errors in the last hour"}, time.time())
    assert ("scripted", good, "from the engine") == (
        answer["engine"],
        answer["sql"],
        answer["answer"],
    )
    assert [None, "DELETE FROM logs", "SELECT nope FROM logs"] == [
        c["previous_sql"] for c in engine.calls
    ]
    assert engine.calls[1]["error"].startswith("refused by the guard: only SELECT")
    assert engine.calls[2]["error"].startswith("the query failed")
    assert "fallback" not in answer
    assert [[s, n] for s, n in sorted(__import__("collections").Counter(
        r["service"] for r in before).items())] == answer["rows"]  # fmt: skip
    assert before == stored_rows(db_url)


def test_an_engine_that_fails_or_never_repairs_falls_back_to_builtin_and_says_why(seeded):
    db_url, _ = seeded
    stored = stored_rows(db_url)
    for engine, why in (
        (ScriptedEngine([EngineError("openai: timed out after 20 s")]), "timed out"),
        (ScriptedEngine(["DROP TABLE logs"] * 3), "still failed after 2 repairs"),
    ):
        answer = _service(db_url, engine).ask(
            {"question": "which services had DatabaseConnectionError"}, time.time()
        )
        assert ("builtin", True) == (answer["engine"], why in answer["fallback"])
        assert services_with(stored, answer["interpretation"]) == answer["rows"]
    assert stored == stored_rows(db_url)


def test_the_engines_prompt_holds_the_interpretation_and_no_log_line(seeded):
    db_url, _ = seeded
    engine = ScriptedEngine(["SELECT count(*) AS n FROM logs"])
    _service(db_url, engine).ask({"question": "payment-api errors today"}, time.time())
    schema = engine.calls[0]["schema"]
    assert "payment-api" in schema
    assert "payment-api error 0" not in schema  # a message of the corpus


def test_an_engine_answer_failure_keeps_the_template_answer(seeded):
    db_url, _ = seeded
    engine = ScriptedEngine([EngineError("down")], answer=EngineError("down"))
    answer = _service(db_url, engine).ask({"question": "slowest 5 endpoints"}, time.time())
    assert answer["answer"].startswith("Slowest endpoints by average duration: ")
    assert PAYMENT in answer["answer"]


def test_a_bad_time_on_the_stream_is_a_400_before_any_event(url):
    bad = requests.post(
        f"{url}/api/ask/stream", json={"question": "errors", "since": "soon"}, timeout=30
    )
    assert (400, "since") == (bad.status_code, bad.json()["parameter"])


@pytest.mark.postgres
def test_an_unavailable_store_is_a_503_with_retry_after_on_both_forms(serve):
    from server_helpers import closed_port

    app = create_app(f"postgresql://127.0.0.1:{closed_port()}/logs", store_timeout=0.5)
    url = serve(app)
    for path in ("/api/ask", "/api/ask/stream"):
        response = requests.post(f"{url}{path}", json={"question": "errors"}, timeout=30)
        assert (path, 503, "unavailable") == (path, response.status_code, response.json()["error"])
        assert response.headers["Retry-After"]


def test_a_store_failing_after_the_interpretation_is_an_error_event_then_done(
    sqlite_url, serve, tmp_path
):
    store = open_store(sqlite_url)
    store.migrate()
    store.insert(seed_rows(time.time()))
    store.close()
    url = serve(create_app(sqlite_url))
    assert 200 == ask(url, {"question": "errors in the last hour"}).status_code
    # The statement opens its own read-only connection by path: with the file gone it cannot.
    path = tmp_path / "logs.db"
    path.rename(tmp_path / "moved.db")
    response = requests.post(
        f"{url}/api/ask/stream", json={"question": "slowest 5 endpoints"}, timeout=30
    )
    events = _events(response)
    assert ["interpretation", "error", "done"] == [name for name, _ in events]
    assert "unavailable" == events[1][1]["error"]


def test_log_text_reaches_neither_the_engines_answer_call_under_any_column_name(seeded):
    db_url, _ = seeded
    engine = ScriptedEngine(["SELECT message AS service, id FROM logs ORDER BY id LIMIT 3"])
    answer = _service(db_url, engine).ask({"question": "errors in the last hour"}, time.time())
    messages = {r["message"] for r in stored_rows(db_url)}
    assert answer["rows"][0][0] in messages  # the asker sees the rows as they are
    assert not {value for row in engine.answered_rows for value in row} & messages
