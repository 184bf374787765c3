"""The Trace page (/ui/trace/<trace_id>): a trace's lines in time order, grouped by service in
the order the services first log, under a timeline; an unknown trace says so."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from ui_helpers import UNAVAILABLE_REASON, answer_unavailable, attribute_values

CHECKOUT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ERROR_STACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/billing/charge.py", line 88, in charge\n'
    "    response = gateway.capture(order.id, amount)\n"
    '  File "/srv/billing/gateway.py", line 41, in capture\n'
    "    raise CardDeclined(reply.code)\n"
    "billing.gateway.CardDeclined: 05 do not honour"
)
# (offset ms, service, level, message, extra fields): a checkout across five services whose
# lines interleave, so grouping by service and time order are both visible.
CHECKOUT: tuple[tuple[float, str, str, str, dict[str, Any]], ...] = (
    (0.0, "gateway", "INFO", "POST /api/checkout received", {"path": "/api/checkout"}),
    (3.5, "api", "INFO", "validating cart with 3 items", {"user_id": "u-42"}),
    (8.2, "auth", "DEBUG", "session token verified", {"user_id": "u-42"}),
    (14.0, "api", "INFO", "reserving stock for order 9031", {"order_id": 9031}),
    (41.7, "inventory", "INFO", "reserved 3 items in warehouse eu-1", {"duration_ms": 27.1}),
    (60.3, "billing", "INFO", "charging card ending 4242, 59.90 EUR", {"amount": 59.9}),
    (
        310.9,
        "billing",
        "ERROR",
        "card declined by the payment gateway",
        {"error_type": "CardDeclined", "stack_trace": ERROR_STACK, "duration_ms": 250.6},
    ),
    (318.4, "api", "WARN", "payment failed: releasing the reserved stock", {}),
    (335.0, "inventory", "INFO", "released 3 items in warehouse eu-1", {"duration_ms": 16.2}),
    (
        342.8,
        "gateway",
        "INFO",
        "POST /api/checkout answered 402 in 342 ms",
        {"path": "/api/checkout", "method": "POST", "duration_ms": 342.8},
    ),
)
SERVICES_IN_ORDER = ["gateway", "api", "auth", "inventory", "billing"]


@pytest.fixture
def trace_server(make_ui_server: Any) -> Iterator[Any]:
    """A server holding the CHECKOUT trace (logged through the client, a minute ago) and a few
    lines of other traces."""
    with make_ui_server() as server:
        start = time.time() - 60
        for offset_ms, service, level, message, fields in CHECKOUT:
            server.log(
                service,
                level,
                message,
                created_at=start + offset_ms / 1000,
                trace_id=CHECKOUT_TRACE,
                **fields,
            )
        server.log("api", "INFO", "another trace", created_at=start, trace_id="other-trace")
        server.log("api", "INFO", "no trace at all", created_at=start)
        server.flush()
        yield server


def open_trace(page: Any, server: Any, trace_id: str) -> None:
    page.goto(f"{server.url}/ui/trace/{trace_id}")


def test_trace_groups_its_lines_by_service_in_order_of_first_appearance(
    page: Any, trace_server: Any, expect: Any
) -> None:
    open_trace(page, trace_server, CHECKOUT_TRACE)
    groups = page.get_by_test_id("trace-service")
    expect(groups).to_have_count(len(SERVICES_IN_ORDER))
    assert SERVICES_IN_ORDER == attribute_values(groups, "data-service")
    for service in SERVICES_IN_ORDER:
        group = page.locator(f"[data-testid=trace-service][data-service={service}]")
        shown = group.get_by_test_id("trace-line").locator(".message").all_text_contents()
        assert [line[3] for line in CHECKOUT if line[1] == service] == shown


def test_trace_numbers_every_line_in_time_order(page: Any, trace_server: Any, expect: Any) -> None:
    """Each line carries its place in the whole trace (#1 is the oldest), so the order across
    services is readable from the groups."""
    open_trace(page, trace_server, CHECKOUT_TRACE)
    lines = page.get_by_test_id("trace-line")
    expect(lines).to_have_count(len(CHECKOUT))
    by_seq = {
        int(lines.nth(i).get_attribute("data-seq")): lines.nth(i).locator(".message").text_content()
        for i in range(lines.count())
    }
    assert [line[3] for line in CHECKOUT] == [by_seq[seq] for seq in sorted(by_seq)]
    assert list(range(1, len(CHECKOUT) + 1)) == sorted(by_seq)


def test_trace_timeline_has_a_lane_per_service_and_the_durations(
    page: Any, trace_server: Any, expect: Any
) -> None:
    open_trace(page, trace_server, CHECKOUT_TRACE)
    timeline = page.get_by_test_id("trace-timeline")
    expect(timeline).to_be_visible()
    lanes = timeline.locator("g.lane")
    expect(lanes).to_have_count(len(SERVICES_IN_ORDER))
    assert SERVICES_IN_ORDER == attribute_values(lanes, "data-service")
    # One tick per line, in the lane of its service.
    assert len(CHECKOUT) == timeline.locator("line.tick").count()
    # billing logs from +60.3 ms to +310.9 ms: a span of 250.6 ms.
    billing = timeline.locator("g.lane[data-service=billing]")
    expect(billing.get_by_test_id("trace-span")).to_have_text("250.6 ms")
    expect(page.get_by_test_id("trace-summary")).to_contain_text("342.8 ms")
    expect(page.get_by_test_id("trace-summary")).to_contain_text("10 lines, 5 services")


def test_a_trace_line_opens_its_fields_and_stack_trace(
    page: Any, trace_server: Any, expect: Any
) -> None:
    open_trace(page, trace_server, CHECKOUT_TRACE)
    error_line = page.locator("[data-testid=trace-line][data-level=ERROR]")
    error_line.click()
    detail = page.get_by_test_id("detail")
    expect(detail).to_have_count(1)
    expect(detail.get_by_test_id("detail-stack-trace")).to_have_text(ERROR_STACK)
    expect(detail.locator("dd[data-field=error_type]")).to_have_text("CardDeclined")
    expect(detail.locator("dd[data-field=trace_id]")).to_have_text(CHECKOUT_TRACE)
    error_line.click()
    expect(detail).to_have_count(0)


def test_an_unknown_trace_says_there_is_no_such_trace(
    page: Any, page_problems: Any, banner_texts: Any, trace_server: Any, expect: Any
) -> None:
    """The API answers 404, which the page shows as its message (the error banner never
    shows); Chromium itself logs every 4xx answer to a fetch on the console, the only problem
    allowed."""
    page_problems.allow("/api/traces/no-such-trace")
    page_problems.allow("Failed to load resource: the server responded with a status of 404")
    open_trace(page, trace_server, "no-such-trace")
    missing = page.get_by_test_id("trace-missing")
    expect(missing).to_contain_text("No such trace")
    expect(missing).to_contain_text("no-such-trace")
    expect(page.get_by_test_id("trace-service")).to_have_count(0)
    assert [] == banner_texts()


def test_a_trace_the_server_fails_to_read_says_why_in_the_page(
    page: Any, page_problems: Any, banner_texts: Any, trace_server: Any, expect: Any
) -> None:
    answer_unavailable(page, page_problems, "**/api/traces/*")
    open_trace(page, trace_server, CHECKOUT_TRACE)
    expect(page.get_by_test_id("trace-error")).to_contain_text(UNAVAILABLE_REASON)
    expect(page.get_by_test_id("trace-missing")).to_have_count(0)
    assert [] == banner_texts()


def test_show_trace_in_explore_leads_to_the_trace(
    page: Any, ui_server: Any, seeded: Any, expect: Any
) -> None:
    page.goto(f"{ui_server.url}/ui/explore?trace_id={seeded.trace_id}")
    page.get_by_test_id("log-row").first.click()
    page.get_by_test_id("detail-show-trace").click()
    expect(page).to_have_url(f"{ui_server.url}/ui/trace/{seeded.trace_id}")
    groups = page.get_by_test_id("trace-service")
    expect(groups).to_have_count(len(seeded.trace_services))
    assert list(seeded.trace_services) == attribute_values(groups, "data-service")


def test_screenshot_of_a_trace(
    page: Any, trace_server: Any, expect: Any, save_screenshot: Any
) -> None:
    open_trace(page, trace_server, CHECKOUT_TRACE)
    expect(page.get_by_test_id("trace-timeline")).to_be_visible()
    expect(page.get_by_test_id("trace-line")).to_have_count(len(CHECKOUT))
    assert save_screenshot(page, "trace").stat().st_size > 10_000
