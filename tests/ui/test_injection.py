"""Log data reaches the dashboard as text, on every page: records carrying the payloads of
``payloads.py`` in message, service, path, user_id, error_type, metadata keys and values,
stack_trace and trace_id, logged through the Python client, are shown as their literal text;
no dialog opens, ``window.__injected`` stays undefined, no element a payload would build
exists, and no request leaves the server's origin (the test's listener hears nothing).

Each page is tested twice: as served, under its Content-Security-Policy, and with the CSP
bypassed (``bypass_csp``), so that what keeps the payloads inert is the page's own code (text
nodes only), not the policy alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from payloads import PAYLOADS, payloads, short, without_slash
from ui_helpers import (
    TRACE_PAYLOAD,
    Listener,
    assert_nothing_ran,
    assert_shown_as_text,
    attribute_and_text,
    attribute_values,
    facet_values,
)

# The injected rows' service, so a page can be filtered to them.
SERVICE = "injected"


def _metadata(payload: str) -> dict[str, str]:
    return {payload: "a metadata key", "note": payload}


def log_payload_row(server: Any, payload: str, index: int, created_at: float) -> None:
    """One record with ``payload`` in every text field the dashboard shows."""
    server.log(
        SERVICE,
        ("ERROR", "WARN", "INFO", "FATAL")[index % 4],
        payload,
        created_at=created_at,
        path=payload[:500],
        method="POST",
        duration_ms=float(10 + index),
        user_id=payload[:255],
        error_type=payload[:200],
        stack_trace=f"Traceback (most recent call last):\n{payload}\nInjected: {payload}",
        **_metadata(payload),
    )


@pytest.fixture
def hostile(make_ui_server: Any, listener: Listener) -> Iterator[Any]:
    """A server holding a row per payload (service SERVICE) and a trace TRACE_PAYLOAD whose
    services are payloads, all logged a few minutes ago through the client: its ``url``, the
    ``corpus`` and the payloads that are ``services``."""
    corpus = payloads(listener.origin)
    services = short(listener.origin)
    with make_ui_server() as server:
        start = time.time() - 300
        for i, payload in enumerate(corpus):
            log_payload_row(server, payload, i, start + i * 0.01)
        for j, service in enumerate(services):
            # One client: the service is a field of the call, which wins over the client's.
            server.client(SERVICE).log(
                "ERROR" if j % 5 == 0 else "INFO",
                f"step {j}: {service}",
                auto_caller=False,
                created_at=start + 60 + j * 0.005,
                service=service,
                trace_id=TRACE_PAYLOAD,
                error_type=service if j % 5 == 0 else None,
            )
        server.flush()
        yield SimpleNamespace(url=server.url, corpus=corpus, services=services)


def test_the_corpus_is_large_and_every_payload_is_distinct() -> None:
    assert len(PAYLOADS) >= 30
    assert len(set(PAYLOADS)) == len(PAYLOADS)
    assert TRACE_PAYLOAD in without_slash("http://127.0.0.1:1")


def test_explore_shows_injected_rows_facets_and_details_as_text(
    hostile_page: Any, hostile: Any, listener: Listener, expect: Any
) -> None:
    page = hostile_page.page
    page.goto(f"{hostile.url}/ui/explore?service={SERVICE}&since=1h")
    rows = page.get_by_test_id("log-row")
    expect(rows).to_have_count(len(hostile.corpus))
    assert_shown_as_text(page, hostile.corpus)
    # Facets: every value shown is a payload, as its text.
    values = page.get_by_test_id("facet-value")
    expect(values.first).to_be_visible()
    for field in ("path", "error_type", "user_id"):
        shown = attribute_and_text(facet_values(page, field), "data-value")
        assert [] != shown, field
        assert [] == [value for value, text in shown if value not in hostile.corpus]
        assert [] == [value for value, text in shown if value not in text]
    # The detail panel of every row: the message, stack trace, fields and metadata.
    ids = rows.evaluate_all("rows => rows.map(r => r.dataset.id)")
    messages = dict(zip(ids, rows.locator("td.message").all_text_contents(), strict=True))
    for row_id in ids:
        # The open panel covers part of the table: open the next row from the keyboard.
        page.locator(f"[data-testid=log-row][data-id='{row_id}']").press("Enter")
        detail = page.get_by_test_id("detail")
        expect(detail.locator("h2")).to_have_text(f"log {row_id}")
        payload = messages[row_id]
        expect(detail.get_by_test_id("detail-stack-trace")).to_have_text(
            f"Traceback (most recent call last):\n{payload}\nInjected: {payload}"
        )
        metadata = json.loads(detail.get_by_test_id("detail-metadata").text_content())
        assert _metadata(payload) == metadata
        for field in ("path", "user_id", "error_type"):
            assert payload == detail.locator(f"dd[data-field={field}]").evaluate(
                "node => node.firstChild.textContent"
            )
    assert_nothing_ran(hostile_page, hostile, listener)


def test_explore_facets_show_injected_services_as_text(
    hostile_page: Any, hostile: Any, listener: Listener, expect: Any
) -> None:
    page = hostile_page.page
    page.goto(f"{hostile.url}/ui/explore?since=1h&trace_id={quote(TRACE_PAYLOAD)}")
    services = facet_values(page, "service")
    expect(services.first).to_be_visible()
    assert set(attribute_values(services, "data-value")) <= set(hostile.services)
    assert_shown_as_text(page, hostile.services)  # the rows' service column
    assert_nothing_ran(hostile_page, hostile, listener)


def test_live_tail_shows_injected_lines_arriving_as_text(
    hostile_page: Any, make_ui_server: Any, listener: Listener, expect: Any
) -> None:
    page = hostile_page.page
    corpus = payloads(listener.origin)
    with make_ui_server() as server:
        server.log(SERVICE, "INFO", "before the page opened")
        server.flush()
        page.goto(f"{server.url}/ui/tail?service={SERVICE}")
        expect(page.get_by_test_id("tail-status")).to_have_attribute("data-state", "live")
        now = time.time()
        for i, payload in enumerate(corpus):
            log_payload_row(server, payload, i, now + i * 0.001)
        server.flush()
        expect(page.get_by_test_id("tail-line")).to_have_count(1 + len(corpus))
        assert_shown_as_text(page, corpus)
        assert_nothing_ran(hostile_page, server, listener)


def test_trace_shows_an_injected_trace_as_text(
    hostile_page: Any, hostile: Any, listener: Listener, expect: Any
) -> None:
    page = hostile_page.page
    page.goto(f"{hostile.url}/ui/trace/{quote(TRACE_PAYLOAD, safe='')}")
    groups = page.get_by_test_id("trace-service")
    expect(groups).to_have_count(len(hostile.services))
    assert hostile.services == attribute_values(groups, "data-service")
    expect(page.get_by_test_id("trace-id")).to_have_text(TRACE_PAYLOAD)
    lines = page.get_by_test_id("trace-line")
    for i in range(lines.count()):
        lines.nth(i).click()
    expect(page.get_by_test_id("detail")).to_have_count(len(hostile.services))
    assert_shown_as_text(page, [*hostile.services, TRACE_PAYLOAD])
    assert_nothing_ran(hostile_page, hostile, listener)


def test_overview_shows_injected_services_error_types_and_paths_as_text(
    hostile_page: Any, hostile: Any, listener: Listener, expect: Any
) -> None:
    page = hostile_page.page
    page.goto(f"{hostile.url}/ui/overview?since=1h")
    services = page.get_by_test_id("overview-service")
    expect(services).to_have_count(len(hostile.services) + 1)
    assert_shown_as_text(page, hostile.services)
    error_types = page.get_by_test_id("overview-error-type")
    expect(error_types.first).to_be_visible()
    shown = attribute_and_text(error_types, "data-value")
    assert set(value for value, _ in shown) <= {*hostile.corpus, *hostile.services}
    assert [value for value, _ in shown] == [text for _, text in shown]
    endpoints = page.get_by_test_id("overview-endpoint")
    expect(endpoints.first).to_be_visible()
    assert set(attribute_values(endpoints, "data-path")) <= set(hostile.corpus)
    assert_nothing_ran(hostile_page, hostile, listener)


@pytest.mark.parametrize(
    "path", ["/ui/explore", "/ui/tail", "/ui/overview", "/ui/ask", "/ui/trace/x"]
)
def test_ui_pages_forbid_inline_script(ui_server: Any, path: str) -> None:
    response = httpx.get(f"{ui_server.url}{path}", timeout=10)
    assert 200 == response.status_code
    policy = {
        name: values
        for name, *values in (
            part.split() for part in response.headers["content-security-policy"].split(";")
        )
    }
    assert ["'self'"] == policy["script-src"]
    assert ["'none'"] == policy["object-src"]
    assert ["'none'"] == policy["base-uri"]
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert "'unsafe-eval'" not in response.headers["content-security-policy"]
    assert "nosniff" == response.headers["x-content-type-options"]


def test_the_browser_refuses_an_inline_script_under_the_served_policy(
    page: Any, page_problems: Any, ui_server: Any, expect: Any
) -> None:
    """A script element built in the page (as markup injection would) does not run."""
    page_problems.allow("violates the following Content Security Policy directive 'script-src")
    page.goto(f"{ui_server.url}/ui/explore")
    expect(page.get_by_test_id("filter-bar")).to_be_visible()
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.__injected = true";
          document.body.append(script);
        }"""
    )
    assert page.evaluate("() => typeof window.__injected") == "undefined"
