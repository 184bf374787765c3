"""Explore, driven as a person would: the filters, the histogram, the facets, the results
table and its paging, the detail panel, the columns and the saved views; each state is in the
URL, so reloading it or going back and forward shows it again."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from ui_helpers import facet_values

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")


def rows(page):
    return page.get_by_test_id("log-row")


def query_of(page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def attribute_of_rows(page, name: str) -> list[str]:
    return rows(page).evaluate_all(f"rows => rows.map(row => row.dataset.{name})")


def expect_rows_but_none_that(page, expect, selector: str) -> None:
    """Rows are listed, and none of them matches ``selector`` (such as ``[data-level=INFO]``
    or ``:not([data-level=ERROR])``)."""
    expect(page.locator(f"[data-testid=log-row]{selector}")).to_have_count(0)
    expect(rows(page).first).to_be_visible()


def open_explore(page, expect, ui_server, query: str = "") -> None:
    page.goto(f"{ui_server.url}/ui/explore{'?' + query if query else ''}")
    expect(rows(page).first).to_be_visible()
    expect(page.get_by_test_id("histogram")).to_be_visible()


def legend_total(page, level: str) -> int:
    text = page.get_by_test_id(f"legend-{level}").text_content()
    return int(text.split()[-1])


def test_explore_shows_the_newest_lines_a_histogram_and_facets(page, expect, ui_server, seeded):
    open_explore(page, expect, ui_server)

    expect(rows(page)).to_have_count(100)
    expect(page.get_by_test_id("histogram-bar").first).to_be_attached()
    assert seeded.rows == sum(legend_total(page, level) for level in LEVELS)
    services = facet_values(page, "service")
    values = services.evaluate_all("values => values.map(v => v.dataset.value)")
    assert sorted(seeded.services) == sorted(values)


def test_the_rows_are_asked_first_and_the_facets_and_services_once_they_arrived(
    page, expect, ui_server, seeded
):
    """The results table waits for nothing: its request is the page's first, the histogram's
    may go beside it, and the facets and the service list are asked after the rows came."""
    events = []
    page.on("request", lambda request: events.append(("asked", urlsplit(request.url).path)))
    page.on("requestfinished", lambda request: events.append(("got", urlsplit(request.url).path)))

    open_explore(page, expect, ui_server)
    expect(facet_values(page, "service").first).to_be_visible()
    # The placeholder and a name per service.
    service_options = page.get_by_test_id("filter-service").locator("option")
    expect(service_options).to_have_count(1 + len(seeded.services))

    api_events = [event for event in events if event[1].startswith("/api/")]
    assert ("asked", "/api/logs") == api_events[0], api_events
    rows_came = api_events.index(("got", "/api/logs"))
    assert rows_came < api_events.index(("asked", "/api/facets")), api_events
    assert rows_came < api_events.index(("asked", "/api/services")), api_events


def test_screenshot_of_explore_with_a_line_open(page, expect, ui_server, save_screenshot):
    open_explore(page, expect, ui_server, "since=1h")
    rows(page).filter(has_text="checkout step 2 in billing").click()
    context_lines = page.get_by_test_id("detail-context").get_by_test_id("context-line")
    expect(context_lines.first).to_be_visible()

    save_screenshot(page, "explore")


def test_choosing_level_error_changes_the_rows_the_histogram_and_the_url(page, expect, ui_server):
    open_explore(page, expect, ui_server)
    assert legend_total(page, "INFO") > 0

    page.get_by_test_id("filter-level-ERROR").click()

    expect(page).to_have_url(re.compile(r"[?&]level=ERROR(&|$)"))
    expect_rows_but_none_that(page, expect, ":not([data-level=ERROR])")
    # The histogram counts only what the filters admit.
    expect(page.get_by_test_id("legend-INFO")).to_have_count(0)
    expect(page.get_by_test_id("legend-ERROR")).to_be_visible()
    expect(page.get_by_test_id("filter-level-ERROR")).to_have_attribute("aria-pressed", "true")
    errors = attribute_of_rows(page, "id")

    page.reload()

    expect(rows(page).first).to_be_visible()
    expect(page.get_by_test_id("legend-INFO")).to_have_count(0)
    expect(page.get_by_test_id("filter-level-ERROR")).to_have_attribute("aria-pressed", "true")
    assert errors == attribute_of_rows(page, "id")


def test_back_and_forward_restore_each_state(page, expect, ui_server):
    open_explore(page, expect, ui_server)
    everything = attribute_of_rows(page, "id")
    page.get_by_test_id("filter-level-ERROR").click()
    expect(page.locator("[data-testid=log-row]:not([data-level=ERROR])")).to_have_count(0)
    page.get_by_test_id("filter-level-FATAL").click()
    expect(page).to_have_url(re.compile(r"level=ERROR&level=FATAL"))
    expect(page.locator("[data-testid=log-row][data-level=FATAL]")).to_have_count(1)

    page.go_back()

    expect(page).to_have_url(re.compile(r"level=ERROR$"))
    expect(page.locator("[data-testid=log-row][data-level=FATAL]")).to_have_count(0)
    expect(page.get_by_test_id("filter-level-FATAL")).to_have_attribute("aria-pressed", "false")
    page.go_back()
    expect(page).to_have_url(re.compile(r"/ui/explore$"))
    expect(rows(page)).to_have_count(len(everything))
    page.go_forward()
    expect(page).to_have_url(re.compile(r"level=ERROR$"))
    expect(page.locator("[data-testid=log-row]:not([data-level=ERROR])")).to_have_count(0)


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _rows_within(page, since: datetime, until: datetime) -> None:
    times = [_iso(t) for t in attribute_of_rows(page, "createdAt")]
    assert times
    assert [] == [t for t in times if not since <= t < until]


def test_clicking_a_histogram_bar_narrows_the_time_range_to_it(page, expect, ui_server):
    open_explore(page, expect, ui_server)
    # The newest bar holding lines (a bar without lines would list none).
    bar = page.locator("[data-testid=histogram-bar]:has(rect.seg)").last
    bucket = bar.get_attribute("data-t")

    bar.click()

    expect(page).to_have_url(re.compile(r"since=.*&until="))
    expect(rows(page).first).to_be_visible()
    query = query_of(page)
    since, until = _iso(query["since"][0]), _iso(query["until"][0])
    assert _iso(bucket) == since
    assert since < until
    _rows_within(page, since, until)


def test_dragging_over_bars_narrows_the_time_range_to_the_span(page, expect, ui_server):
    open_explore(page, expect, ui_server, "since=1h")
    bars = page.locator("[data-testid=histogram-bar]:has(rect.seg)")
    expect(bars.first).to_be_attached()
    first, last = bars.first, bars.nth(bars.count() - 2)
    start, end = first.bounding_box(), last.bounding_box()
    first_t, last_t = first.get_attribute("data-t"), last.get_attribute("data-t")

    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=5)
    page.mouse.up()

    expect(page).to_have_url(re.compile(r"since=.*&until="))
    expect(rows(page).first).to_be_visible()
    query = query_of(page)
    since, until = _iso(query["since"][0]), _iso(query["until"][0])
    assert _iso(first_t) == since
    assert _iso(last_t) < until
    _rows_within(page, since, until)


def test_clicking_a_level_in_the_legend_filters_by_it(page, expect, ui_server):
    open_explore(page, expect, ui_server)

    page.get_by_test_id("legend-WARN").click()

    expect(page).to_have_url(re.compile(r"[?&]level=WARN(&|$)"))
    expect_rows_but_none_that(page, expect, ":not([data-level=WARN])")


def test_a_facet_click_filters_by_its_value(page, expect, ui_server):
    open_explore(page, expect, ui_server)
    facet = facet_values(page, "service", "billing")

    facet.get_by_test_id("facet-include").click()

    expect(page).to_have_url(re.compile(r"[?&]service=billing(&|$)"))
    expect_rows_but_none_that(page, expect, ":not([data-service=billing])")
    expect(facet_values(page, "service")).to_have_count(1)


def test_excluding_a_level_facet_lists_every_other_level(page, expect, ui_server):
    open_explore(page, expect, ui_server)
    facet = facet_values(page, "level", "INFO")

    facet.get_by_test_id("facet-exclude").click()

    expect(page).to_have_url(
        re.compile(r"level=TRACE&level=DEBUG&level=WARN&level=ERROR&level=FATAL")
    )
    expect_rows_but_none_that(page, expect, "[data-level=INFO]")


def test_excluding_a_service_facet_leaves_its_rows_out_and_shows_in_the_text_box(
    page, expect, ui_server
):
    open_explore(page, expect, ui_server)
    facet = facet_values(page, "service", "billing")

    facet.get_by_test_id("facet-exclude").click()

    expect(page).to_have_url(re.compile(r"[?&]not\.service=billing(&|$)"))
    expect_rows_but_none_that(page, expect, "[data-service=billing]")
    expect(facet).to_have_count(0)
    expect(page.get_by_test_id("filter-q")).to_have_value(re.compile(r"-service:billing"))
    page.reload()
    expect_rows_but_none_that(page, expect, "[data-service=billing]")


def test_scrolling_loads_the_next_pages_with_no_repeated_row(page, expect, ui_server, seeded):
    open_explore(page, expect, ui_server)
    expect(rows(page)).to_have_count(100)
    sentinel = page.get_by_test_id("results-sentinel")

    for shown in (200, 300, seeded.rows):
        sentinel.scroll_into_view_if_needed()
        expect(rows(page)).to_have_count(shown)

    expect(sentinel).to_have_text("end of results")
    ids = attribute_of_rows(page, "id")
    assert len(ids) == len(set(ids))
    # Newest first across the pages.
    times = attribute_of_rows(page, "createdAt")
    assert sorted(times, reverse=True) == times


def test_a_row_opens_the_detail_panel_with_the_stack_trace(page, expect, ui_server, seeded):
    open_explore(page, expect, ui_server, f"trace_id={seeded.trace_id}")
    row = rows(page).filter(has_text="checkout step 2 in billing")

    row.click()

    detail = page.get_by_test_id("detail")
    expect(detail).to_be_visible()
    expect(page).to_have_url(re.compile(r"[?&]detail=\d+"))
    expect(page.get_by_test_id("detail-stack-trace")).to_have_text(seeded.stack_trace)
    expect(detail.locator("dd[data-field=trace_id]")).to_contain_text(seeded.trace_id)
    expect(page.get_by_test_id("detail-show-trace")).to_have_attribute(
        "href", f"/ui/trace/{seeded.trace_id}"
    )
    # The same service's lines around it, itself among them.
    expect(page.locator("[data-testid=context-line].current")).to_have_text(
        re.compile("checkout step 2 in billing")
    )
    # The panel is part of the URL.
    page.reload()
    expect(page.get_by_test_id("detail-stack-trace")).to_have_text(seeded.stack_trace)


def test_the_detail_panel_shows_the_metadata_as_json(page, expect, ui_server):
    open_explore(page, expect, ui_server, "q=request 7 handled")
    rows(page).filter(has_text="request 7 handled").first.click()

    metadata = page.get_by_test_id("detail-metadata")

    expect(metadata).to_contain_text('"order_id": 7')
    expect(metadata).to_contain_text('"region": "eu-west"')


def test_text_and_field_tokens_become_filters(page, expect, ui_server):
    open_explore(page, expect, ui_server, "columns=path")

    page.get_by_test_id("filter-q").fill('path:/api/users "handled by api"')
    page.get_by_test_id("filter-q").press("Enter")

    expect(page).to_have_url(re.compile(r"path=%2Fapi%2Fusers"))
    assert ["handled by api"] == query_of(page)["q"]
    expect(rows(page).first).to_be_visible()
    paths = page.locator("[data-testid=log-row] td.col-path")
    assert {"/api/users"} == set(paths.all_text_contents())
    messages = page.locator("[data-testid=log-row] td.message").all_text_contents()
    assert all("handled by api" in message for message in messages)
    # The box shows the filters back as tokens.
    expect(page.get_by_test_id("filter-q")).to_have_value('path:/api/users "handled by api"')


def test_chosen_columns_are_kept_in_the_url(page, expect, ui_server):
    open_explore(page, expect, ui_server)
    page.get_by_test_id("columns").locator("summary").click()

    page.get_by_test_id("column-user_id").locator("input").check()

    expect(page).to_have_url(re.compile(r"columns=user_id"))
    expect(page.locator("th", has_text="user_id")).to_be_visible()
    user_ids = page.locator("[data-testid=log-row] td.col-user_id", has_text=re.compile(r"^u-\d$"))
    expect(user_ids.first).to_be_visible()


def test_a_time_preset_sets_the_range(page, expect, ui_server):
    open_explore(page, expect, ui_server)

    page.get_by_test_id("filter-range-15m").click()

    expect(page).to_have_url(re.compile(r"since=15m"))
    expect(page.get_by_test_id("filter-range-15m")).to_have_attribute("aria-pressed", "true")


def test_recent_queries_are_listed_and_reopen(page, expect, ui_server):
    open_explore(page, expect, ui_server)
    page.get_by_test_id("filter-level-FATAL").click()
    expect(page).to_have_url(re.compile(r"level=FATAL"))
    page.get_by_test_id("filter-clear").click()
    expect(page).to_have_url(re.compile(r"/ui/explore$"))

    page.get_by_test_id("saved-views").locator("summary").click()
    page.get_by_test_id("recent-query").filter(has_text="level=FATAL").first.click()

    expect(page).to_have_url(re.compile(r"/ui/explore\?level=FATAL$"))
    expect(rows(page)).to_have_count(1)


def test_a_saved_view_is_listed_and_reopens(page, expect, ui_server):
    if httpx.get(ui_server.url + "/api/views", timeout=10).status_code == 404:
        pytest.skip("GET /api/views is not served yet")
    open_explore(page, expect, ui_server, "service=worker&level=FATAL")
    page.get_by_test_id("saved-views").locator("summary").click()
    page.get_by_test_id("save-view-name").fill("fatal worker lines")

    page.get_by_test_id("save-view").click()

    expect(page.get_by_test_id("saved-views")).to_contain_text("saved")
    page.goto(ui_server.url + "/ui/explore")
    expect(rows(page).first).to_be_visible()
    page.get_by_test_id("saved-views").locator("summary").click()
    page.locator("[data-testid=saved-view][data-name='fatal worker lines']").click()
    expect(page).to_have_url(re.compile(r"/ui/explore\?service=worker&level=FATAL$"))
    expect(rows(page)).to_have_count(1)

    page.get_by_test_id("saved-views").locator("summary").click()
    view = page.locator("[data-testid=saved-view][data-name='fatal worker lines']")
    expect(view).to_have_count(1)
    page.locator(".menu-item", has=view).get_by_test_id("delete-view").click()
    expect(view).to_have_count(0)


def test_opening_and_closing_a_row_keeps_the_rows_already_loaded(page, expect, ui_server):
    open_explore(page, expect, ui_server)
    page.get_by_test_id("results-sentinel").scroll_into_view_if_needed()
    expect(rows(page)).to_have_count(200)
    row = rows(page).nth(150)
    row_id = row.get_attribute("data-id")

    row.click()

    expect(page.get_by_test_id("detail").locator("h2")).to_have_text(f"log {row_id}")
    expect(row).to_have_class(re.compile(r"\bselected\b"))
    expect(rows(page)).to_have_count(200)
    page.get_by_test_id("detail-close").click()
    expect(page.get_by_test_id("detail")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/ui/explore$"))
    expect(rows(page)).to_have_count(200)
    # Back reopens it, still in place.
    page.go_back()
    expect(page.get_by_test_id("detail").locator("h2")).to_have_text(f"log {row_id}")
    expect(rows(page)).to_have_count(200)


def test_a_custom_range_is_applied_from_its_inputs(page, expect, ui_server):
    open_explore(page, expect, ui_server)
    newest = _iso(rows(page).first.get_attribute("data-created-at"))
    since = newest.replace(microsecond=0).isoformat()

    page.get_by_test_id("filter-since").fill(since)
    page.get_by_test_id("filter-until").fill("")
    page.get_by_test_id("filter-range-apply").click()

    expect(page).to_have_url(re.compile(r"since=\d{4}-"))
    assert [since] == query_of(page)["since"]
    expect(rows(page).first).to_be_visible()
    _rows_within(page, _iso(since), newest + timedelta(seconds=1))


def test_show_trace_opens_the_trace_page_of_the_line(page, expect, ui_server, seeded):
    open_explore(page, expect, ui_server, f"trace_id={seeded.trace_id}")
    rows(page).filter(has_text="checkout step 1 in api").click()

    page.get_by_test_id("detail-show-trace").click()

    expect(page).to_have_url(re.compile(rf"/ui/trace/{seeded.trace_id}$"))
    expect(page.get_by_test_id("trace-view")).to_be_visible()
    expect(page.get_by_test_id("detail")).to_have_count(0)
