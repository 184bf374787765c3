"""The builtin interpreter, its SQL and the conversations, without a server: every question of
issue 20 in English and Korean read as its intent and values, times resolved against the given
now; follow-ups start from the previous interpretation; ambiguity asks back; every intent's SQL
passes the guard on both dialects with every value quoted; conversations expire and are capped;
the answer cache's key holds the resolved time."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from ask_corpus import QUESTIONS

from log_collector.server import create_app
from log_collector.server.ask.builtin import apply_choice, interpret
from log_collector.server.ask.conversations import AnswerCache, Conversations, cache_key
from log_collector.server.ask.interpretation import INTENTS, Clarification, Interpretation
from log_collector.server.ask.known import Known
from log_collector.server.ask.settings import AskSettings
from log_collector.server.ask.sqlgen import build_sql, quote, zero_filled
from log_collector.server.query.sqlguard import guard

NOW_US = int(datetime(2026, 12, 5, 12, 30, tzinfo=UTC).timestamp()) * 1_000_000
MIDNIGHT_US = int(datetime(2026, 12, 5, tzinfo=UTC).timestamp()) * 1_000_000
HOUR_US = 3_600_000_000
KNOWN = Known(
    services=("auth-service", "checkout-api", "payment-api", "payment-worker"),
    paths=("/api/v1/payment", "/api/v1/checkout", "/api/v1/login"),
    error_types=("DatabaseConnectionError", "TimeoutError", "ValidationError"),
    lookup_user=lambda user_id: user_id in {"user_123", "user_2"},
)
WINDOWS = {
    "hour": (NOW_US - HOUR_US, NOW_US),
    "day": (NOW_US - 24 * HOUR_US, NOW_US),
    "today": (MIDNIGHT_US, NOW_US),
    None: (None, None),
}


def read(question: str, previous: Interpretation | None = None) -> Interpretation:
    result = interpret(question, KNOWN, previous, NOW_US)
    assert isinstance(result, Interpretation), result
    return result


@pytest.mark.parametrize(
    ("question", "language", "intent", "fields", "window"),
    [
        (question, language, intent, fields, window)
        for english, korean, intent, fields, window, _ in QUESTIONS
        for question, language in ((english, "en"), (korean, "ko"))
    ],
)
def test_each_question_of_the_issue_is_read_as_its_intent_values_and_window(
    question, language, intent, fields, window
):
    interp = read(question)
    assert (intent, language) == (interp.intent, interp.language)
    document = interp.to_json()
    assert fields == {name: document[name] for name in fields}
    assert WINDOWS[window] == (interp.since_us, interp.until_us)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("story of trace 4bf92f3577b34da6a3ce929d0e0e4736",
            {"intent": "trace_story", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}),
        ("트레이스 trace-b2-payment 의 흐름", {"intent": "trace_story",
            "trace_id": "trace-b2-payment"}),
        ("error rate of payment-api", {"intent": "error_rate", "service": "payment-api"}),
        ("payment-api 에러율", {"intent": "error_rate", "service": "payment-api"}),
        ("today vs yesterday errors", {"intent": "compare_windows", "compare": "yesterday",
            "since_us": MIDNIGHT_US, "until_us": NOW_US}),
        ("오늘 어제 에러 비교", {"intent": "compare_windows", "compare": "yesterday"}),
        ("this hour vs the last", {"intent": "compare_windows", "compare": "previous_window",
            "since_us": NOW_US - HOUR_US, "until_us": NOW_US}),
        ("이번 시간 대비 지난 시간 에러", {"intent": "compare_windows",
            "compare": "previous_window"}),
        ("errors in the last 15 minutes", {"since_us": NOW_US - 15 * 60_000_000}),
        ("최근 30분 에러", {"since_us": NOW_US - 30 * 60_000_000}),
        ("지난 일주일 에러", {"since_us": NOW_US - 7 * 24 * HOUR_US}),
        ("지난 한 시간 에러", {"since_us": NOW_US - HOUR_US}),
        ("errors in the past 7 days", {"since_us": NOW_US - 7 * 24 * HOUR_US}),
        ("errors yesterday", {"since_us": MIDNIGHT_US - 24 * HOUR_US, "until_us": MIDNIGHT_US}),
        ("warnings in the last hour", {"level": ("WARN",)}),
        ("checkout-api errors per minute in the last hour", {"bucket_s": 60,
            "service": "checkout-api"}),
        ("top 3 error types", {"top_n": 3, "level": None}),
    ],
)  # fmt: skip
def test_the_other_shapes_and_times_are_read(question, expected):
    interp = read(question)
    assert expected == {name: getattr(interp, name) for name in expected}


def test_a_follow_up_with_a_service_narrows_the_previous_question():
    first = read("errors in the last hour")
    only = read("only payment-api", first)
    assert first.replace(service="payment-api") == only
    korean = read("payment-api만", read("지난 1시간 에러"))
    assert ("errors_in_window", "payment-api", "ko") == (
        korean.intent,
        korean.service,
        korean.language,
    )


def test_and_yesterday_moves_the_previous_window_to_yesterday():
    first = read("top 5 error types today")
    later = read("and yesterday?", first)
    assert first.replace(since_us=MIDNIGHT_US - 24 * HOUR_US, until_us=MIDNIGHT_US) == later
    assert later == read("어제는?", first).replace(language="en")


def test_that_services_errors_keeps_the_previous_service_and_intent():
    first = read("지난 1시간 payment-api 로그 5분 단위")
    assert (first.intent, first.level) == ("counts_over_time", None)
    assert first.replace(level=("ERROR", "FATAL")) == read("그 서비스의 에러만", first)


def test_a_new_question_in_a_conversation_is_not_a_follow_up():
    first = read("errors in the last hour")
    assert read("slowest 5 endpoints") == read("slowest 5 endpoints", first)


def test_that_service_without_one_before_asks_which():
    asked = interpret("그 서비스의 에러만", KNOWN, read("errors in the last hour"), NOW_US)
    assert isinstance(asked, Clarification)
    assert list(KNOWN.services) == [o["value"]["service"] for o in asked.options]


def test_a_word_naming_two_services_in_part_asks_which_and_the_choice_completes_it():
    asked = interpret("payment errors in the last hour", KNOWN, None, NOW_US)
    assert isinstance(asked, Clarification)
    assert [{"label": s, "value": {"service": s}} for s in ("payment-api", "payment-worker")] == (
        asked.options
    )
    assert asked.pending is not None
    chosen = apply_choice(asked.pending, {"service": "payment-worker"}, KNOWN)
    assert read("payment-worker errors in the last hour") == chosen


def test_a_word_naming_one_service_in_part_names_it():
    assert "checkout-api" == read("checkout errors in the last hour").service


def test_a_comparison_without_windows_offers_time_presets():
    asked = interpret("compare errors", KNOWN, None, NOW_US)
    assert isinstance(asked, Clarification)
    assert asked.pending is not None
    chosen = apply_choice(asked.pending, asked.options[0]["value"], KNOWN)
    assert (MIDNIGHT_US, NOW_US, "yesterday") == (chosen.since_us, chosen.until_us, chosen.compare)


@pytest.mark.parametrize(
    "choice",
    [
        {"service": "unknown-service"},
        {"service": 3},
        {"since": "not a time"},
        {"since": "2026-12-05T12:00:00", "until": "2026-12-05T11:00:00"},
        {"compare": "last_year"},
        {"level": "ERROR"},
    ],
)
def test_a_choice_the_clarification_did_not_offer_is_refused(choice):
    pending = read("errors in the last hour")
    with pytest.raises(ValueError):
        apply_choice(pending, choice, KNOWN)


def test_an_unmappable_question_is_unknown_in_its_language():
    assert Interpretation("unknown", "en") == read("what is the weather in Seoul")
    assert Interpretation("unknown", "ko") == read("점심 뭐 먹지")


def test_a_service_or_path_or_error_type_the_store_does_not_hold_is_not_recognised():
    interp = read("errors of billing-api in the last hour")
    assert interp.service is None
    # an error type is recognised by its shape too, and only from identifier characters
    assert "QuotaError" == read("which services had QuotaError").error_type
    assert "'" not in (read("which services had Quota'Error").error_type or "")


def test_a_name_that_is_both_an_error_type_and_a_service_is_read_as_the_error_type():
    """The words that named the error type are not read again as a service, so the SQL never
    asks for ``service = X AND error_type = X``."""
    known = Known(
        services=("payment-api", "TimeoutError"),
        paths=(),
        error_types=("TimeoutError",),
        lookup_user=lambda user_id: False,
    )
    interp = interpret("which services had TimeoutError", known, None, NOW_US)
    assert isinstance(interp, Interpretation)
    assert ("TimeoutError", None) == (interp.error_type, interp.service)
    both = interpret("payment-api TimeoutError by service", known, None, NOW_US)
    assert isinstance(both, Interpretation)
    assert ("TimeoutError", "payment-api") == (both.error_type, both.service)


def test_known_values_are_read_again_in_the_background_once_stale(monkeypatch):
    """The first question waits for the store's values; once they are older than the TTL, a
    question gets them as they are while one background read replaces them."""
    from log_collector.server.ask import known as known_module

    reads: list[threading.Event] = []

    def read_known(store: object, now: float) -> Known:
        reads.append(threading.Event())
        if len(reads) > 1:
            assert reads[-1].wait(10), "the test never let the background read finish"
        return Known(services=(f"read-{len(reads)}",))

    monkeypatch.setattr(known_module, "read_known", read_known)
    clock = [0.0]
    cache = known_module.KnownCache(object(), ttl=60, clock=lambda: clock[0])
    assert ("read-1",) == cache.get(0).services
    clock[0] = 61
    assert ("read-1",) == cache.get(0).services  # stale, a read started
    assert ("read-1",) == cache.get(0).services  # and only one
    reads[-1].set()
    deadline = time.monotonic() + 10
    while cache.get(0).services != ("read-2",) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ("read-2",) == cache.get(0).services
    assert 2 == len(reads)


def test_interpretations_round_trip_through_json():
    for english, korean, *_ in QUESTIONS:
        for question in (english, korean):
            interp = read(question)
            assert interp == Interpretation.from_json(interp.to_json())


def _every_intent() -> list[Interpretation]:
    return [
        Interpretation(
            intent,
            service="pay'ment",
            level=("ERROR", "FATAL"),
            since_us=NOW_US - HOUR_US,
            until_us=NOW_US,
            error_type="Timeout'Error",
            path="/a'b",
            user_id="user'); DROP TABLE logs; --",
            trace_id="t'1",
            bucket_s=300,
            top_n=5,
            compare="previous_window",
        )
        for intent in INTENTS
        if intent != "unknown"
    ]


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_every_intents_sql_passes_the_guard_with_every_value_quoted(dialect):
    for interp in _every_intent():
        sql, _ = build_sql(interp, dialect)
        guarded = guard(sql, dialect)
        assert "DROP" not in guarded.inner_sql.replace("DROP TABLE logs; --", "")
        assert quote("user'); DROP TABLE logs; --") in sql or interp.intent != "user_story"


def test_a_quote_is_doubled_in_a_literal():
    assert "'a''b'" == quote("a'b")
    assert "'a\\b'" == quote("a\\b")


def test_unknown_intent_has_no_sql():
    with pytest.raises(ValueError):
        build_sql(Interpretation("unknown"), "sqlite")


def test_conversations_expire_after_their_ttl():
    now = [0.0]
    conversations = Conversations(ttl=1800, clock=lambda: now[0])
    first = conversations.get(None)
    conversations.save(first, last=read("errors in the last hour"), question="q")
    now[0] = 1799
    assert first is conversations.get(first.id)
    now[0] = 1799 + 1800
    fresh = conversations.get(first.id)
    assert (fresh.id != first.id, None) == (True, fresh.last)
    assert first.id not in conversations


def test_conversations_are_capped_dropping_the_least_recently_used():
    conversations = Conversations(cap=3, clock=lambda: 0.0)
    ids = [conversations.get(None).id for _ in range(3)]
    conversations.get(ids[0])
    newest = conversations.get(None).id
    assert [True, False, True, True] == [
        i in conversations for i in (ids[0], ids[1], ids[2], newest)
    ]
    assert 3 == len(conversations)


def test_the_cache_key_differs_for_the_same_relative_question_at_two_moments():
    at_noon = read("errors in the last hour")
    later = interpret("errors in the last hour", KNOWN, None, NOW_US + 60_000_000)
    assert isinstance(later, Interpretation)
    assert cache_key("builtin", "errors in the last hour", None, at_noon) != cache_key(
        "builtin", "errors in the last hour", None, later
    )
    # and the same words after another focus
    other = read("payment-api errors today")
    assert cache_key("builtin", "only x", other, at_noon) != cache_key(
        "builtin", "only x", None, at_noon
    )
    assert cache_key("builtin", "Errors in the last hour?", None, at_noon) == cache_key(
        "builtin", "errors  in the last hour", None, at_noon
    )


def test_cached_answers_expire_and_are_capped():
    now = [0.0]
    cache = AnswerCache(ttl=30, cap=2, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)
    assert (None, 2, 3) == (cache.get("a"), cache.get("b"), cache.get("c"))
    now[0] = 30
    assert cache.get("b") is None


def test_settings_come_from_the_environment_and_name_a_bad_one():
    assert AskSettings() == AskSettings.from_env({})
    settings = AskSettings.from_env(
        {
            "LOG_COLLECTOR_ASK_ENGINE": "openai",
            "OPENAI_API_KEY": "sk-x",
            "LOG_COLLECTOR_ASK_MODEL": "m",
        }
    )
    assert ("openai", "sk-x", "m") == (settings.engine, settings.api_key, settings.model)
    assert "sk-x" not in repr(settings)
    with pytest.raises(ValueError, match="LOG_COLLECTOR_ASK_ENGINE"):
        AskSettings.from_env({"LOG_COLLECTOR_ASK_ENGINE": "gpt"})
    with pytest.raises(ValueError, match="max_repairs"):
        AskSettings(max_repairs=9)


def test_an_engine_that_cannot_be_built_fails_at_create_app_naming_the_setting(sqlite_url):
    with pytest.raises(ValueError, match="API_KEY"):
        create_app(sqlite_url, ask=AskSettings(engine="anthropic"))
    # an ingest server answers no question, so it does not build an engine
    create_app(sqlite_url, role="ingest", ask=AskSettings(engine="anthropic"))


# Counts over time: every bucket of the window, a quiet one as 0.

HOUR_US = 3_600_000_000
T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def _counts(**window: int | None) -> Interpretation:
    return Interpretation("counts_over_time", "en", bucket_s=900, **window)


def test_counts_over_time_get_a_zero_for_each_quiet_bucket_of_the_window():
    interp = _counts(since_us=T0_US + 60_000_000, until_us=T0_US + HOUR_US + 60_000_000)
    rows = [["2026-01-01T00:15:00+00:00", 4], ["2026-01-01T00:45:00+00:00", 2]]

    assert [
        ["2026-01-01T00:00:00+00:00", 0],
        ["2026-01-01T00:15:00+00:00", 4],
        ["2026-01-01T00:30:00+00:00", 0],
        ["2026-01-01T00:45:00+00:00", 2],
        ["2026-01-01T01:00:00+00:00", 0],
    ] == zero_filled(interp, rows, limit=1000)


def test_an_open_window_is_filled_between_its_rows_in_their_own_time_zone():
    rows = [["2026-01-01T01:00:00+01:00", 1], ["2026-01-01T01:45:00+01:00", 3]]

    assert [
        ["2026-01-01T01:00:00+01:00", 1],
        ["2026-01-01T01:15:00+01:00", 0],
        ["2026-01-01T01:30:00+01:00", 0],
        ["2026-01-01T01:45:00+01:00", 3],
    ] == zero_filled(_counts(), rows, limit=1000)


def test_rows_stay_as_they_are_when_filling_cannot_hold_or_does_not_apply():
    rows = [["2026-01-01T00:15:00+00:00", 4]]
    week = _counts(since_us=T0_US, until_us=T0_US + 7 * 24 * HOUR_US)  # 672 buckets

    assert rows == zero_filled(week, rows, limit=100)
    assert [] == zero_filled(_counts(since_us=T0_US, until_us=T0_US + HOUR_US), [], limit=1000)
    other = Interpretation("latency_over_time", "en", bucket_s=900, since_us=T0_US)
    assert rows == zero_filled(other, rows, limit=1000)
    assert [["not a time", 1]] == zero_filled(_counts(), [["not a time", 1]], limit=1000)
