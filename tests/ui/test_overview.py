"""The Overview page (/ui/overview): cards, error rate, top error types, slowest endpoints and
services with the time each last logged; and the screenshot of Overview."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from ui_helpers import UNAVAILABLE_REASON, answer_unavailable, attribute_values

ERROR_LEVELS = ("ERROR", "FATAL")


def api(server: Any, path: str, **params: Any) -> Any:
    response = httpx.get(f"{server.url}{path}", params=params, timeout=10)
    response.raise_for_status()
    return response.json()


def histogram_sum(server: Any, since: str, levels: tuple[str, ...] | None = None) -> int:
    data = api(server, "/api/histogram", since=since, buckets=60)
    return sum(
        n
        for bucket in data["buckets"]
        for level, n in bucket["counts"].items()
        if levels is None or level in levels
    )


def card_value(page: Any, testid: str) -> Any:
    return page.get_by_test_id(testid).get_by_test_id("card-value")


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_cards_show_the_totals_the_api_counts(page: Any, ui_server: Any, expect: Any) -> None:
    """Total: every level over the last 24 h; errors: ERROR and FATAL over the last hour, as
    /api/services counts them too; warnings: WARN over the last hour; services: one each."""
    total = histogram_sum(ui_server, "24h")
    errors = histogram_sum(ui_server, "1h", ERROR_LEVELS)
    warnings = histogram_sum(ui_server, "1h", ("WARN",))
    services = api(ui_server, "/api/services")
    assert errors == sum(row["errors_1h"] for row in services)
    assert 0 < errors and 0 < warnings and errors < total

    page.goto(f"{ui_server.url}/ui/overview")
    expect(card_value(page, "card-total")).to_have_attribute("data-value", str(total))
    expect(card_value(page, "card-total")).to_have_text(f"{total:,}")
    expect(card_value(page, "card-errors")).to_have_attribute("data-value", str(errors))
    expect(card_value(page, "card-warnings")).to_have_attribute("data-value", str(warnings))
    expect(card_value(page, "card-services")).to_have_attribute("data-value", str(len(services)))


def test_error_rate_is_errors_over_all_logs_per_bucket(
    page: Any, ui_server: Any, expect: Any
) -> None:
    page.goto(f"{ui_server.url}/ui/overview?since=1h")
    chart = page.get_by_test_id("overview-error-rate")
    expect(chart.locator("svg circle.point").first).to_be_attached()
    data = api(ui_server, "/api/histogram", since="1h", buckets=60)
    assert len(data["buckets"]) == chart.locator("svg circle.point").count()
    errors = histogram_sum(ui_server, "1h", ERROR_LEVELS)
    total = histogram_sum(ui_server, "1h")
    expect(chart).to_contain_text(f"{errors:,} of {total:,} logs")


# Per axis label of an <svg>: its size on screen (its font size times the viewBox's scale) and
# whether its box lies within the chart's.
AXIS_LABELS_JS = """
svg => {
  const chart = svg.getBoundingClientRect();
  const scale = chart.width / svg.viewBox.baseVal.width;
  return [...svg.querySelectorAll("text.axis")].map((label) => {
    const box = label.getBoundingClientRect();
    return {
      text: label.textContent,
      px: parseFloat(getComputedStyle(label).fontSize) * scale,
      inside: box.left >= chart.left - 0.5 && box.right <= chart.right + 0.5,
    };
  });
}
"""


def test_the_error_rate_axis_reads_at_11_px_and_stays_inside_the_chart(
    page: Any, ui_server: Any, expect: Any
) -> None:
    """The chart is drawn at its own width, so its labels are 11 px on screen in a wide window
    and a narrow one, and the last time label ends at the chart's edge instead of past it."""
    page.goto(f"{ui_server.url}/ui/overview?since=1h")
    chart = page.get_by_test_id("overview-error-rate").locator("svg")
    expect(chart.locator("circle.point").first).to_be_attached()
    for width in (1280, 900):
        page.set_viewport_size({"width": width, "height": 800})
        # The chart is redrawn at its new width once laid out: wait for the viewBox to match.
        page.wait_for_function(
            "svg => Math.abs(svg.viewBox.baseVal.width - svg.getBoundingClientRect().width) < 1",
            arg=chart.element_handle(),
        )
        labels = chart.evaluate(AXIS_LABELS_JS)
        assert 5 == len(labels), labels
        assert [] == [label for label in labels if not 10.5 <= label["px"] <= 12.5], width
        assert [] == [label for label in labels if not label["inside"]], width


def test_top_error_types_are_listed_most_frequent_first(
    page: Any, ui_server: Any, expect: Any
) -> None:
    expected = [
        row["value"]
        for row in api(ui_server, "/api/facets", fields="error_type", top=10)["error_type"]
    ]
    assert {"TimeoutError", "ValueError", "OperationalError"} <= set(expected)
    page.goto(f"{ui_server.url}/ui/overview")
    links = page.get_by_test_id("overview-error-types").get_by_test_id("overview-error-type")
    expect(links).to_have_count(len(expected))
    assert expected == links.all_text_contents()


def test_slowest_endpoints_are_listed_by_p95(page: Any, ui_server: Any, expect: Any) -> None:
    expected = api(ui_server, "/api/endpoints", since="24h", top=10)["endpoints"]
    assert len(expected) >= 3
    page.goto(f"{ui_server.url}/ui/overview")
    rows = page.get_by_test_id("overview-endpoints").get_by_test_id("overview-endpoint")
    expect(rows).to_have_count(len(expected))
    paths, methods = attribute_values(rows, "data-path"), attribute_values(rows, "data-method")
    shown = list(zip(paths, methods, strict=True))
    assert [(row["path"], row["method"] or "") for row in expected] == shown
    p95s = [row["p95_ms"] for row in expected]
    assert sorted(p95s, reverse=True) == p95s


def test_a_failing_panel_shows_its_error_and_the_others_stand(
    page: Any, page_problems: Any, banner_texts: Any, ui_server: Any, expect: Any
) -> None:
    """The panel says what failed; the error banner never shows."""
    answer_unavailable(page, page_problems, "**/api/endpoints*")
    page.goto(f"{ui_server.url}/ui/overview")
    endpoints = page.get_by_test_id("overview-endpoints")
    expect(endpoints.get_by_test_id("card-error")).to_contain_text(UNAVAILABLE_REASON)
    expect(card_value(page, "card-total")).to_have_attribute(
        "data-value", str(histogram_sum(ui_server, "24h"))
    )
    expect(
        page.get_by_test_id("overview-services").get_by_test_id("overview-service")
    ).to_have_count(len(api(ui_server, "/api/services")))
    assert [] == banner_texts()


def test_a_service_gone_silent_is_marked(page: Any, make_ui_server: Any, expect: Any) -> None:
    """cron last logged 40 minutes ago while api and web logged a minute ago: cron is silent."""
    with make_ui_server() as server:
        now = time.time()
        server.log("cron", "INFO", "nightly export done", created_at=now - 40 * 60)
        server.log("api", "INFO", "GET /health", created_at=now - 60)
        server.log("web", "WARN", "slow render", created_at=now - 90)
        server.flush()
        page.goto(f"{server.url}/ui/overview")
        rows = page.get_by_test_id("overview-service")
        expect(rows).to_have_count(3)
        silent = page.locator("[data-testid=overview-service][data-silent=true]")
        expect(silent).to_have_count(1)
        expect(silent).to_have_attribute("data-service", "cron")
        expect(silent).to_have_class("silent")
        expect(silent).to_contain_text("40 min ago")
        expect(page.get_by_test_id("card-services")).to_contain_text("1 gone silent")


def test_no_service_is_marked_when_every_service_is_quiet(
    page: Any, make_ui_server: Any, expect: Any
) -> None:
    """A quiet night is not an outage: silence is only marked against a service still logging."""
    with make_ui_server() as server:
        now = time.time()
        server.log("cron", "INFO", "nightly export done", created_at=now - 40 * 60)
        server.log("api", "INFO", "GET /health", created_at=now - 30 * 60)
        server.flush()
        page.goto(f"{server.url}/ui/overview")
        expect(page.get_by_test_id("overview-service")).to_have_count(2)
        expect(page.locator("[data-testid=overview-service][data-silent]")).to_have_count(0)


def test_clicking_a_service_opens_explore_filtered_by_it(
    page: Any, ui_server: Any, expect: Any
) -> None:
    page.goto(f"{ui_server.url}/ui/overview?since=6h")
    page.locator("[data-testid=overview-service][data-service=billing]").get_by_role(
        "link", name="billing"
    ).click()
    expect(page).to_have_url(f"{ui_server.url}/ui/explore?service=billing&since=6h")
    rows = page.get_by_test_id("log-row")
    expect(rows.first).to_be_visible()
    assert {"billing"} == set(page.locator("[data-testid=log-row] td.service").all_text_contents())


def test_clicking_an_error_type_opens_explore_filtered_by_it(
    page: Any, ui_server: Any, expect: Any
) -> None:
    page.goto(f"{ui_server.url}/ui/overview")
    page.locator("[data-testid=overview-error-type][data-value=TimeoutError]").click()
    expect(page).to_have_url(f"{ui_server.url}/ui/explore?since=24h&error_type=TimeoutError")
    expect(page.get_by_test_id("log-row").first).to_be_visible()
    ids = page.get_by_test_id("log-row").evaluate_all("rows => rows.map(r => r.dataset.id)")
    expected = api(ui_server, "/api/logs", since="24h", error_type="TimeoutError", limit=500)
    assert sorted(str(log["id"]) for log in expected["logs"]) == sorted(ids)


def test_the_time_range_is_in_the_url(page: Any, ui_server: Any, expect: Any) -> None:
    page.goto(f"{ui_server.url}/ui/overview")
    expect(page.get_by_test_id("filter-range-24h")).to_have_attribute("aria-pressed", "true")
    page.get_by_test_id("filter-range-1h").click()
    expect(page).to_have_url(f"{ui_server.url}/ui/overview?since=1h")
    expect(page.get_by_test_id("filter-range-1h")).to_have_attribute("aria-pressed", "true")
    expect(card_value(page, "card-total")).to_have_attribute(
        "data-value", str(histogram_sum(ui_server, "1h"))
    )
    page.go_back()
    expect(page.get_by_test_id("filter-range-24h")).to_have_attribute("aria-pressed", "true")
    assert {} == query_of(page.url)


def test_screenshot(page: Any, ui_server: Any, expect: Any, save_screenshot: Any) -> None:
    """overview.png, the picture the README shows, once the page has its data (Explore's is
    taken by tests/ui/test_explore.py, with a line open)."""
    page.goto(f"{ui_server.url}/ui/overview?since=1h")
    expect(page.get_by_test_id("overview-endpoint").first).to_be_visible()
    expect(page.get_by_test_id("overview-error-rate").locator("svg").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert save_screenshot(page, "overview").stat().st_size > 10_000
