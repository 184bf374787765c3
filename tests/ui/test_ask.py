"""The Ask page (/ui/ask): a question shows its interpretation, the SQL as text, the rows the SQL
returns, a chart and the answer, over the streaming endpoint (POST /api/ask/stream) or, on a
server without it, POST /api/ask; a clarification's option continues the same conversation;
"open in Explore" carries the interpretation into Explore's filters; the conversation and the
last question live in the URL; a failure shows in its turn; log values in the rows, the SQL and
the interpretation are shown as text."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from payloads import payloads, short
from ui_helpers import (
    TRACE_PAYLOAD,
    UNAVAILABLE_REASON,
    Listener,
    answer_unavailable,
    assert_nothing_ran,
    assert_shown_as_text,
)

ERRORS_LAST_HOUR = "errors in the last hour"


def ask(page: Any, question: str) -> None:
    page.get_by_test_id("ask-input").fill(question)
    page.get_by_test_id("ask-submit").click()


def table_rows(turn: Any) -> list[list[str]]:
    """The text of every cell of ``turn``'s result table, row by row, once the turn is
    answered (its parts arrive one after another)."""
    from playwright.sync_api import expect

    expect(turn).to_have_attribute("aria-busy", "false")
    return turn.get_by_test_id("ask-row").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )


def sql_rows(server_url: str, sql: str) -> list[list[str]]:
    """What POST /api/sql answers for ``sql``, as the page writes each cell (text)."""
    response = httpx.post(f"{server_url}/api/sql", json={"sql": sql, "limit": 1000}, timeout=10)
    assert 200 == response.status_code, response.text
    return [["" if v is None else str(v) for v in row] for row in response.json()["rows"]]


def url_params(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def ask_requests(page: Any) -> list[dict[str, Any]]:
    """Filled with the JSON body of every question the page sends, in order."""
    sent: list[dict[str, Any]] = []

    def on_request(request: Any) -> None:
        if request.method == "POST" and "/api/ask" in request.url:
            sent.append({"url": request.url, **json.loads(request.post_data)})

    page.on("request", on_request)
    return sent


def test_a_question_shows_its_interpretation_sql_rows_chart_and_answer(
    page: Any, expect: Any, ui_server: Any
) -> None:
    sent = ask_requests(page)
    page.goto(f"{ui_server.url}/ui/ask")
    expect(page.get_by_test_id("ask-examples")).to_be_visible()

    ask(page, ERRORS_LAST_HOUR)

    turn = page.get_by_test_id("ask-turn")
    expect(turn).to_have_count(1)
    expect(turn.get_by_test_id("ask-question")).to_have_text(ERRORS_LAST_HOUR)
    expect(turn.get_by_test_id("ask-answer")).to_be_visible()
    expect(turn.get_by_test_id("ask-interpretation")).to_contain_text("errors_in_window")
    chips = turn.locator(".ask-chip").evaluate_all("cs => cs.map(c => c.dataset.field)")
    assert ["intent", "time", "level"] == chips
    sql = turn.get_by_test_id("ask-sql").text_content()
    assert sql.startswith("SELECT ")
    expected = sql_rows(ui_server.url, sql)
    assert [] != expected
    assert expected == table_rows(turn)
    expect(turn.get_by_test_id("ask-rows-count")).to_have_text(f"{len(expected)} rows")
    # A count per service is drawn as bars, one per row.
    expect(turn.get_by_test_id("ask-chart")).to_have_attribute("data-kind", "bar")
    expect(turn.locator(".bar-item")).to_have_count(len(expected))
    assert re.search(r"\d+ errors", turn.get_by_test_id("ask-answer").text_content())
    # Asked over the stream; the URL names the conversation and the question.
    assert [f"{ui_server.url}/api/ask/stream"] == [s["url"] for s in sent]
    assert {"question": ERRORS_LAST_HOUR} == {k: v for k, v in sent[0].items() if k != "url"}
    expect(page).to_have_url(re.compile(r"/ui/ask\?q=errors"))
    assert [ERRORS_LAST_HOUR] == url_params(page)["q"]
    assert 1 == len(url_params(page)["c"])
    expect(page.get_by_test_id("error-banner")).to_be_hidden()
    # The `page` fixture fails the test at teardown on any console error or failed request.


def test_a_time_series_is_drawn_as_a_line_of_its_rows(
    page: Any, expect: Any, ui_server: Any
) -> None:
    page.goto(f"{ui_server.url}/ui/ask")

    ask(page, "errors every 5 minutes in the last hour")

    turn = page.get_by_test_id("ask-turn")
    expect(turn.get_by_test_id("ask-chart")).to_have_attribute("data-kind", "timeseries")
    rows = table_rows(turn)
    expect(turn.get_by_test_id("ask-chart").locator("circle.point")).to_have_count(len(rows))


def test_a_follow_up_is_asked_in_the_same_conversation_and_narrows_the_answer(
    page: Any, expect: Any, ui_server: Any
) -> None:
    sent = ask_requests(page)
    page.goto(f"{ui_server.url}/ui/ask")
    ask(page, ERRORS_LAST_HOUR)
    turns = page.get_by_test_id("ask-turn")
    expect(turns.first.get_by_test_id("ask-sql")).to_be_visible()
    conversation = url_params(page)["c"][0]

    ask(page, "only billing")

    expect(turns).to_have_count(2)
    second = turns.nth(1)
    expect(second.locator(".ask-chip[data-field=service]")).to_have_text("service billing")
    expect(second.get_by_test_id("ask-sql")).to_contain_text("'billing'")
    assert [["billing"]] == [row[:1] for row in table_rows(second)]
    assert conversation == sent[1]["conversation_id"]
    assert ["only billing"] == url_params(page)["q"]
    assert [conversation] == url_params(page)["c"]


def test_reloading_asks_the_urls_question_again_in_its_conversation(
    page: Any, expect: Any, ui_server: Any
) -> None:
    sent = ask_requests(page)
    page.goto(f"{ui_server.url}/ui/ask")
    ask(page, ERRORS_LAST_HOUR)
    expect(page.get_by_test_id("ask-sql")).to_be_visible()
    conversation = url_params(page)["c"][0]

    page.reload()

    turn = page.get_by_test_id("ask-turn")
    expect(turn).to_have_count(1)
    expect(turn.get_by_test_id("ask-sql")).to_be_visible()
    expect(turn.get_by_test_id("ask-question")).to_have_text(ERRORS_LAST_HOUR)
    assert {"question": ERRORS_LAST_HOUR, "conversation_id": conversation} == {
        k: v for k, v in sent[-1].items() if k != "url"
    }


def test_a_korean_question_is_answered_in_korean(page: Any, expect: Any, ui_server: Any) -> None:
    page.goto(f"{ui_server.url}/ui/ask")

    ask(page, "지난 1시간 에러")

    turn = page.get_by_test_id("ask-turn")
    expect(turn.get_by_test_id("ask-interpretation")).to_contain_text("errors_in_window")
    sql = turn.get_by_test_id("ask-sql").text_content()
    assert sql_rows(ui_server.url, sql) == table_rows(turn)
    assert re.search("[\uac00-\ud7a3]", turn.get_by_test_id("ask-answer").text_content())
    assert ["지난 1시간 에러"] == url_params(page)["q"]


def test_screenshot(page: Any, expect: Any, ui_server: Any, save_screenshot: Any) -> None:
    page.goto(f"{ui_server.url}/ui/ask")
    ask(page, "billing errors every 10 minutes in the last hour")
    expect(page.get_by_test_id("ask-chart")).to_be_visible()
    expect(page.get_by_test_id("ask-open-explore")).to_be_visible()
    page.evaluate("() => window.scrollTo(0, 0)")

    assert save_screenshot(page, "ask").stat().st_size > 10_000


def test_a_question_it_cannot_map_says_so_with_examples_and_no_sql(
    page: Any, expect: Any, ui_server: Any
) -> None:
    page.goto(f"{ui_server.url}/ui/ask")

    ask(page, "tell me a joke")

    turn = page.get_by_test_id("ask-turn")
    expect(turn.get_by_test_id("ask-answer")).to_contain_text("errors in the last hour")
    expect(turn.get_by_test_id("ask-interpretation")).to_contain_text("unknown")
    expect(turn.get_by_test_id("ask-sql")).to_have_count(0)
    expect(turn.get_by_test_id("ask-open-explore")).to_have_count(0)
    expect(turn).to_have_attribute("aria-busy", "false")


def test_an_example_question_is_asked_when_clicked(page: Any, expect: Any, ui_server: Any) -> None:
    page.goto(f"{ui_server.url}/ui/ask")

    page.get_by_test_id("ask-example").first.click()

    turn = page.get_by_test_id("ask-turn")
    expect(turn.get_by_test_id("ask-question")).to_have_text(ERRORS_LAST_HOUR)
    expect(turn.get_by_test_id("ask-sql")).to_be_visible()
    expect(page.get_by_test_id("ask-examples")).to_be_hidden()


@pytest.fixture
def payment_server(make_ui_server: Any) -> Iterator[Any]:
    """Two services whose names share "payment", each with errors a few minutes ago."""
    with make_ui_server() as server:
        now = time.time()
        for i in range(6):
            service = "payment-api" if i % 2 else "payment-worker"
            server.log(
                service,
                "ERROR",
                f"charge {i} failed",
                created_at=now - 120 + i,
                error_type="TimeoutError",
                path="/api/v1/payment",
            )
            server.log(service, "INFO", f"charge {i} retried", created_at=now - 100 + i)
        server.flush()
        yield server


def test_an_ambiguous_service_asks_back_and_an_option_continues_the_conversation(
    page: Any, expect: Any, payment_server: Any
) -> None:
    sent = ask_requests(page)
    page.goto(f"{payment_server.url}/ui/ask")
    question = "payment errors in the last hour"

    ask(page, question)

    turns = page.get_by_test_id("ask-turn")
    options = turns.first.get_by_test_id("ask-option")
    expect(options).to_have_count(2)
    assert ["payment-api", "payment-worker"] == sorted(options.all_text_contents())
    expect(turns.first.get_by_test_id("ask-answer")).to_have_text("Which service do you mean?")
    expect(turns.first.get_by_test_id("ask-sql")).to_have_count(0)

    options.filter(has_text="payment-worker").click()

    expect(turns).to_have_count(2)
    chosen = turns.nth(1)
    expect(chosen.get_by_test_id("ask-question")).to_have_text(f"{question} → payment-worker")
    expect(chosen.locator(".ask-chip[data-field=service]")).to_have_text("service payment-worker")
    expect(chosen.get_by_test_id("ask-sql")).to_contain_text("'payment-worker'")
    assert [["payment-worker", "3"]] == table_rows(chosen)
    # The options answered are spent; the one chosen is marked.
    expect(options.filter(has_text="payment-worker")).to_have_attribute("aria-pressed", "true")
    expect(options.first).to_be_disabled()
    conversation = url_params(page)["c"][0]
    assert "conversation_id" not in sent[0]
    assert {
        "question": question,
        "conversation_id": conversation,
        "choice": {"service": "payment-worker"},
    } == {k: v for k, v in sent[1].items() if k != "url"}
    assert [question] == url_params(page)["q"]


def test_open_in_explore_carries_the_interpretation_into_explores_filters(
    page: Any, expect: Any, payment_server: Any
) -> None:
    page.goto(f"{payment_server.url}/ui/ask")
    ask(page, "payment-api errors in the last hour")
    turn = page.get_by_test_id("ask-turn")
    expect(turn.get_by_test_id("ask-sql")).to_be_visible()
    interpretation = page.evaluate(
        """async (question) => {
          const r = await fetch("/api/ask", {method: "POST",
            headers: {"Content-Type": "application/json"}, body: JSON.stringify({question})});
          return (await r.json()).interpretation;
        }""",
        "payment-api errors in the last hour",
    )

    turn.get_by_test_id("ask-open-explore").click()

    expect(page).to_have_url(re.compile(r"/ui/explore\?"))
    params = url_params(page)
    assert ["payment-api"] == params["service"]
    assert ["ERROR", "FATAL"] == params["level"]
    # The time range as ISO 8601: an hour wide, ending when the question was asked.
    since, until = params["since"][0], params["until"][0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", since)
    width = _seconds(until) - _seconds(since)
    assert 3600 == round(width)
    assert abs(_seconds(interpretation["until"]) - _seconds(until)) < 60
    rows = page.get_by_test_id("log-row")
    expect(rows).to_have_count(3)
    assert {"payment-api"} == set(rows.evaluate_all("rs => rs.map(r => r.dataset.service)"))
    assert {"ERROR"} == set(rows.evaluate_all("rs => rs.map(r => r.dataset.level)"))
    # Back on the Ask page, its URL's question is asked again.
    page.go_back()
    expect(page).to_have_url(re.compile(r"/ui/ask\?q=payment-api"))
    expect(page.get_by_test_id("ask-turn").get_by_test_id("ask-sql")).to_be_visible()


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def test_open_in_explore_sets_error_type_path_and_user_filters(
    page: Any, expect: Any, payment_server: Any
) -> None:
    page.goto(f"{payment_server.url}/ui/ask")
    ask(page, "how many users were affected by TimeoutError")
    turn = page.get_by_test_id("ask-turn")
    expect(turn.locator(".ask-chip[data-field=error_type]")).to_have_text("error_type TimeoutError")

    turn.get_by_test_id("ask-open-explore").click()

    expect(page).to_have_url(re.compile(r"/ui/explore\?"))
    assert ["TimeoutError"] == url_params(page)["error_type"]
    expect(page.get_by_test_id("log-row")).to_have_count(6)


def test_the_nav_opens_ask_without_explores_filters_and_leaves_it_without_the_question(
    page: Any, expect: Any, ui_server: Any
) -> None:
    page.goto(f"{ui_server.url}/ui/explore?service=billing")
    expect(page.get_by_test_id("log-row").first).to_be_visible()

    page.get_by_test_id("nav-ask").click()
    expect(page).to_have_url(re.compile(r"/ui/ask$"))
    ask(page, ERRORS_LAST_HOUR)
    expect(page.get_by_test_id("ask-sql")).to_be_visible()
    page.get_by_test_id("nav-explore").click()

    # The question (q) is the Ask page's, not Explore's text search.
    expect(page).to_have_url(re.compile(r"/ui/explore$"))
    expect(page.get_by_test_id("log-row").first).to_be_visible()


def test_without_the_stream_the_page_asks_post_api_ask(
    page: Any, page_problems: Any, expect: Any, ui_server: Any
) -> None:
    page_problems.allow("HTTP 404: POST ")
    page_problems.allow("Failed to load resource: the server responded with a status of 404")
    page.route(
        "**/api/ask/stream",
        lambda route: route.fulfill(
            status=404, content_type="application/json", body='{"detail": "Not Found"}'
        ),
    )
    sent = ask_requests(page)
    page.goto(f"{ui_server.url}/ui/ask")

    ask(page, ERRORS_LAST_HOUR)

    turn = page.get_by_test_id("ask-turn")
    sql = turn.get_by_test_id("ask-sql")
    expect(sql).to_be_visible()
    assert sql_rows(ui_server.url, sql.text_content()) == table_rows(turn)
    expect(turn.get_by_test_id("ask-answer")).to_be_visible()
    expect(turn.get_by_test_id("ask-error")).to_be_hidden()
    ask(page, "only billing")
    expect(page.get_by_test_id("ask-turn")).to_have_count(2)
    expect(page.get_by_test_id("ask-turn").nth(1).get_by_test_id("ask-sql")).to_be_visible()
    # Once the stream is known missing, the next question goes to POST /api/ask at once.
    paths = [urlsplit(s["url"]).path for s in sent]
    assert ["/api/ask/stream", "/api/ask", "/api/ask"] == paths


def test_a_refused_question_shows_the_servers_reason_in_its_turn(
    page: Any, page_problems: Any, expect: Any, ui_server: Any
) -> None:
    page_problems.allow("HTTP 400: POST ")
    page_problems.allow("Failed to load resource: the server responded with a status of 400")
    page.goto(f"{ui_server.url}/ui/ask")

    ask(page, "x" * 2001)

    turn = page.get_by_test_id("ask-turn")
    expect(turn.get_by_test_id("ask-error")).to_contain_text("longer than 2000 characters")
    expect(turn.get_by_test_id("ask-error")).to_contain_text("(question)")
    expect(turn).to_have_attribute("aria-busy", "false")
    expect(page.get_by_test_id("error-banner")).to_be_hidden()
    # The page still asks.
    ask(page, ERRORS_LAST_HOUR)
    expect(page.get_by_test_id("ask-turn").nth(1).get_by_test_id("ask-sql")).to_be_visible()


def test_an_unavailable_store_shows_in_the_turn_not_the_banner(
    page: Any, page_problems: Any, expect: Any, ui_server: Any
) -> None:
    answer_unavailable(page, page_problems, "**/api/ask/stream")
    page.goto(f"{ui_server.url}/ui/ask")

    ask(page, ERRORS_LAST_HOUR)

    error = page.get_by_test_id("ask-turn").get_by_test_id("ask-error")
    expect(error).to_contain_text(UNAVAILABLE_REASON)
    expect(page.get_by_test_id("error-banner")).to_be_hidden()


def test_a_dropped_connection_shows_in_the_turn(
    page: Any, page_problems: Any, expect: Any, ui_server: Any
) -> None:
    page_problems.allow("/api/ask/stream: net::ERR_CONNECTION_RESET")
    page_problems.allow("Failed to load resource: net::ERR_CONNECTION_RESET")
    page.route("**/api/ask/stream", lambda route: route.abort("connectionreset"))
    page.goto(f"{ui_server.url}/ui/ask")

    ask(page, ERRORS_LAST_HOUR)

    error = page.get_by_test_id("ask-turn").get_by_test_id("ask-error")
    expect(error).to_contain_text("the server did not answer")
    expect(page.get_by_test_id("error-banner")).to_be_hidden()


def test_an_error_event_after_the_stream_started_shows_in_the_turn(
    page: Any, expect: Any, ui_server: Any
) -> None:
    interpretation = {"intent": "errors_in_window", "service": None, "since": None, "until": None}
    events = (
        f"event: interpretation\ndata: {json.dumps({'conversation_id': 'conv-1', 'interpretation': interpretation})}\n\n"  # noqa: E501
        'event: error\ndata: {"error": "timeout", "reason": "the statement ran past 5 s"}\n\n'
        "event: done\ndata: {}\n\n"
    )
    page.route(
        "**/api/ask/stream",
        lambda route: route.fulfill(status=200, content_type="text/event-stream", body=events),
    )
    page.goto(f"{ui_server.url}/ui/ask")

    ask(page, ERRORS_LAST_HOUR)

    turn = page.get_by_test_id("ask-turn")
    expect(turn.get_by_test_id("ask-error")).to_have_text("the statement ran past 5 s")
    expect(turn.get_by_test_id("ask-interpretation")).to_contain_text("errors_in_window")
    expect(turn.get_by_test_id("ask-sql")).to_have_count(0)
    expect(turn).to_have_attribute("aria-busy", "false")
    assert ["conv-1"] == url_params(page)["c"]


@pytest.fixture
def hostile_ask(make_ui_server: Any, listener: Listener) -> Iterator[Any]:
    """A server whose services and error types are script-injection payloads, each with an
    error logged a few minutes ago (the error types after "type ", so that no value is both a
    service and an error type, which a question naming it would filter on twice)."""
    services = short(listener.origin)
    corpus = payloads(listener.origin)
    with make_ui_server() as server:
        start = time.time() - 300
        for i, service in enumerate(services):
            server.client("injected").log(
                "ERROR",
                f"failed {i}",
                auto_caller=False,
                created_at=start + i * 0.01,
                service=service,
                error_type="TimeoutError",
            )
        for i, payload in enumerate(corpus):
            server.log(
                "injected",
                "ERROR",
                f"typed {i}",
                created_at=start + 10 + i * 0.01,
                error_type=f"type {payload}"[:200],
            )
        server.flush()
        types = [f"type {payload}"[:200] for payload in corpus]
        yield SimpleNamespace(url=server.url, services=services, types=types)


def test_payloads_in_rows_sql_and_interpretation_are_shown_as_text(
    hostile_page: Any, hostile_ask: Any, listener: Listener, expect: Any
) -> None:
    page = hostile_page.page
    page.goto(f"{hostile_ask.url}/ui/ask")
    turns = page.get_by_test_id("ask-turn")

    # The services in the rows and in the chart's labels.
    ask(page, ERRORS_LAST_HOUR)
    expect(turns.first.get_by_test_id("ask-sql")).to_be_visible()
    assert set(hostile_ask.services) <= {row[0] for row in table_rows(turns.first)}
    # The error types in the rows.
    ask(page, "top 100 error types today")
    expect(turns.nth(1).get_by_test_id("ask-sql")).to_be_visible()
    shown = {row[0] for row in table_rows(turns.nth(1))}
    assert set(hostile_ask.types) <= shown
    # A service named in the question: in the interpretation, the SQL and the answer.
    ask(page, f"{TRACE_PAYLOAD} errors in the last hour")
    third = turns.nth(2)
    expect(third.locator(".ask-chip[data-field=service]")).to_have_text(f"service {TRACE_PAYLOAD}")
    expect(third.get_by_test_id("ask-sql")).to_contain_text(TRACE_PAYLOAD)
    assert [[TRACE_PAYLOAD, "1"]] == table_rows(third)

    assert_shown_as_text(page, [*hostile_ask.services, *hostile_ask.types])
    assert_nothing_ran(hostile_page, hostile_ask, listener)
