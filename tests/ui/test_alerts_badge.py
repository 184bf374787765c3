"""The open alerts in the dashboard: every page's navigation shows a badge with their count (GET
/api/alerts?status=open, asked again every minute), hidden when there is none, linking to the
Overview, whose "Open alerts" panel lists each with its rule, key, summary and opening time. A
server without alerts (404) shows neither, with no error in the page. Alerts are written
through the checker's own storage (``alerts.storage.apply``), as the checker writes them."""

from __future__ import annotations

import re
import time
from typing import Any

from ui_helpers import (
    UNAVAILABLE_REASON,
    Listener,
    answer_unavailable,
    assert_nothing_ran,
    assert_shown_as_text,
)

from log_collector.server.alerts import Finding, storage

# Chromium's own console line for an answer of status 404 (no page code can keep it out).
NOT_FOUND_LINE = "Failed to load resource: the server responded with a status of 404"


def write_alerts(
    server: Any, opened: list[Finding], resolved: list[int] = (), at: float | None = None
) -> list[int]:
    """Opens ``opened`` and resolves the alerts ``resolved`` (ids) as of ``at`` (default now),
    in the server's store; returns the ids of the alerts opened."""
    now_us = round((time.time() if at is None else at) * 1_000_000)
    changes = storage.Changes(opened=list(opened), kept=[], resolved=list(resolved))
    rows, _ = storage.apply(server.app.state.store, changes, now_us, prune_before_us=0)
    return [row["id"] for row in rows]


def spike(service: str, summary: str | None = None) -> Finding:
    return Finding(
        rule="error_spike",
        key=service,
        severity="critical",
        summary=summary or f"{service}: 12 errors in 5 min, against 0.5 before",
        details={"errors": 12, "baseline": 0.5},
    )


def test_the_badge_counts_open_alerts_and_opens_the_overview_that_lists_them(
    page: Any, expect: Any, make_ui_server: Any
) -> None:
    with make_ui_server(rows=20) as server:
        opened_at = time.time() - 300
        first, second = write_alerts(server, [spike("api"), spike("billing")], at=opened_at)
        write_alerts(server, [], resolved=[first])
        page.goto(f"{server.url}/ui/explore")

        badge = page.get_by_test_id("alerts-badge")
        expect(badge).to_be_visible()
        expect(badge).to_have_text("1 alert")
        expect(badge).to_have_attribute("data-count", "1")
        badge.click()

        expect(page).to_have_url(re.compile(r"/ui/overview$"))
        panel = page.get_by_test_id("overview-alerts")
        expect(panel).to_be_visible()
        alerts = panel.get_by_test_id("overview-alert")
        expect(alerts).to_have_count(1)
        expect(alerts).to_have_attribute("data-id", str(second))
        cells = alerts.locator("td").all_text_contents()
        opened = time.strftime("%Y-%m-%d %H:%M", time.gmtime(opened_at))
        assert ["critical error_spike", "billing"] == cells[:2]
        assert "billing: 12 errors in 5 min, against 0.5 before" == cells[2]
        assert cells[3].startswith(f"{opened} UTC (5 min ago)")
        expect(page.get_by_test_id("overview-cards")).to_be_visible()


def test_the_badge_shows_on_every_page(
    page: Any, expect: Any, make_ui_server: Any, seeded: Any
) -> None:
    with make_ui_server(rows=5) as server:
        write_alerts(server, [spike("api"), spike("billing")])
        trace = f"/ui/trace/{seeded.trace_id}"
        for path in ("/ui/explore", "/ui/tail", "/ui/overview", "/ui/ask", trace):
            page.goto(server.url + path)
            expect(page.get_by_test_id("alerts-badge")).to_have_text("2 alerts")


def test_with_no_open_alert_there_is_no_badge_and_no_panel(
    page: Any, expect: Any, make_ui_server: Any
) -> None:
    with make_ui_server(rows=20) as server:
        (alert,) = write_alerts(server, [spike("api")])
        write_alerts(server, [], resolved=[alert])
        with page.expect_response(re.compile(r"/api/alerts\?status=open")) as answered:
            page.goto(f"{server.url}/ui/overview")
        assert 200 == answered.value.status
        expect(page.get_by_test_id("overview-service").first).to_be_visible()

        expect(page.get_by_test_id("alerts-badge")).to_be_hidden()
        expect(page.get_by_test_id("overview-alerts")).to_have_count(0)


def test_the_badge_asks_again_every_minute(page: Any, expect: Any, make_ui_server: Any) -> None:
    with make_ui_server() as server:
        page.clock.install()
        # The first answer (none open) is in before the alert is written.
        with page.expect_response(re.compile(r"/api/alerts\?status=open")):
            page.goto(f"{server.url}/ui/explore")
        expect(page.get_by_test_id("results-sentinel")).to_have_text("no logs match")
        badge = page.get_by_test_id("alerts-badge")
        expect(badge).to_have_attribute("data-count", "0")
        expect(badge).to_be_hidden()

        write_alerts(server, [spike("api")])
        page.clock.run_for(59_000)
        expect(badge).to_be_hidden()
        page.clock.run_for(1_000)

        expect(badge).to_have_text("1 alert")


def test_a_server_without_alerts_shows_no_badge_and_no_error(
    page: Any, page_problems: Any, banner_texts: Any, expect: Any, make_ui_server: Any
) -> None:
    # The 404 itself is the only problem, and Chromium's console line for it: nothing of ours.
    page_problems.allow("/api/alerts?status=open")
    page_problems.allow(NOT_FOUND_LINE)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/alerts" in r.url else None)
    with make_ui_server(rows=20, alerts=False) as server:
        page.clock.install()
        page.goto(f"{server.url}/ui/explore")
        expect(page.get_by_test_id("log-row").first).to_be_visible()
        expect(page.get_by_test_id("alerts-badge")).to_have_attribute("data-state", "off")
        expect(page.get_by_test_id("alerts-badge")).to_be_hidden()
        # Told once: the badge asks no more.
        page.clock.run_for(180_000)
        assert 1 == len(asked)

        page.get_by_test_id("nav-overview").click()
        expect(page.get_by_test_id("overview-service").first).to_be_visible()
        expect(page.get_by_test_id("overview-alerts")).to_have_count(0)
        expect(page.get_by_test_id("alerts-badge")).to_be_hidden()

    assert [] == banner_texts()
    assert 2 == len(asked)
    seen = page_problems.seen
    assert [] == [s for s in seen if "/api/alerts" not in s and NOT_FOUND_LINE not in s]
    assert [] == [s for s in seen if s.startswith(("page error", "request failed"))]


def test_alerts_holding_payloads_are_shown_as_text(
    hostile_page: Any, make_ui_server: Any, listener: Listener, expect: Any
) -> None:
    from payloads import payloads

    page = hostile_page.page
    corpus = payloads(listener.origin)
    with make_ui_server() as server:
        write_alerts(server, [spike(payload, summary=f"summary {payload}") for payload in corpus])
        page.goto(f"{server.url}/ui/overview")

        expect(page.get_by_test_id("alerts-badge")).to_have_text(f"{len(corpus)} alerts")
        alerts = page.get_by_test_id("overview-alert")
        expect(alerts).to_have_count(len(corpus))
        assert_shown_as_text(page, [*corpus, *(f"summary {p}" for p in corpus)])
        assert_nothing_ran(hostile_page, server, listener)


def test_alerts_that_cannot_be_read_show_in_the_overview_panel_not_the_banner(
    page: Any, page_problems: Any, banner_texts: Any, expect: Any, make_ui_server: Any
) -> None:
    answer_unavailable(page, page_problems, "**/api/alerts?*")
    with make_ui_server(rows=20) as server:
        page.goto(f"{server.url}/ui/overview")

        panel = page.get_by_test_id("overview-alerts")
        expect(panel.get_by_test_id("card-error")).to_contain_text(UNAVAILABLE_REASON)
        expect(page.get_by_test_id("overview-service").first).to_be_visible()
        expect(page.get_by_test_id("alerts-badge")).to_be_hidden()
    assert [] == banner_texts()
