"""Live tail: lines logged through the Python client after the page opened appear; pausing
(by the button or by scrolling up) holds them back and counts them, resuming shows them; the
filters apply; a dropped stream resumes after the last line it showed.

Each test has a server of its own: the lines it logs must not change what other tests of the
session's server count."""

from __future__ import annotations

import uuid

from log_collector.server.query.tail import TailSettings


def tail_lines(page):
    return page.get_by_test_id("tail-line")


def open_tail(page, expect, server, query: str = "") -> None:
    page.goto(f"{server.url}/ui/tail{'?' + query if query else ''}")
    # Live: the stream is open, so a line stored from now on is streamed.
    expect(page.get_by_test_id("tail-status")).to_have_attribute("data-state", "live")


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"


def test_a_line_logged_after_the_page_opened_appears(page, expect, make_ui_server):
    with make_ui_server(rows=10) as server:
        open_tail(page, expect, server)
        expect(tail_lines(page)).to_have_count(server.rows)
        message = unique("payment accepted")

        server.log("billing", "INFO", message, path="/api/checkout")
        server.flush()

        expect(tail_lines(page).last).to_contain_text(message)
        expect(tail_lines(page).last).to_contain_text("billing")
        expect(tail_lines(page)).to_have_count(server.rows + 1)


def test_pause_holds_new_lines_back_and_counts_them_and_resume_shows_them(
    page, expect, make_ui_server
):
    with make_ui_server(rows=10) as server:
        open_tail(page, expect, server)
        page.get_by_test_id("tail-pause").click()
        expect(page.get_by_test_id("tail-resume")).to_be_visible()
        first, second = unique("held one"), unique("held two")

        server.log("api", "WARN", first)
        server.log("api", "ERROR", second)
        server.flush()

        expect(page.get_by_test_id("tail-pending")).to_have_text("2")
        expect(page.get_by_test_id("tail-pending")).to_be_visible()
        expect(tail_lines(page).filter(has_text=first)).to_have_count(0)
        expect(tail_lines(page).filter(has_text=second)).to_have_count(0)

        page.get_by_test_id("tail-resume").click()

        expect(tail_lines(page).filter(has_text=first)).to_have_count(1)
        expect(tail_lines(page).last).to_contain_text(second)
        expect(page.get_by_test_id("tail-pending")).to_be_hidden()
        expect(page.get_by_test_id("tail-pause")).to_be_visible()


def test_scrolling_up_pauses_and_scrolling_back_down_resumes(page, expect, make_ui_server):
    # 100 lines shown: more than the box holds, so it scrolls.
    with make_ui_server(rows=120) as server:
        open_tail(page, expect, server)
        lines = page.get_by_test_id("tail-lines")
        expect(tail_lines(page)).to_have_count(100)

        lines.evaluate("box => { box.scrollTop = 0; }")

        expect(page.get_by_test_id("tail-resume")).to_be_visible()
        message = unique("arrived while reading")
        server.log("worker", "INFO", message)
        server.flush()
        expect(page.get_by_test_id("tail-pending")).to_have_text("1")
        expect(tail_lines(page).filter(has_text=message)).to_have_count(0)

        lines.evaluate("box => { box.scrollTop = box.scrollHeight; }")

        expect(tail_lines(page).last).to_contain_text(message)
        expect(page.get_by_test_id("tail-pause")).to_be_visible()


def test_a_line_the_filters_do_not_match_does_not_appear(page, expect, make_ui_server):
    with make_ui_server() as server:
        open_tail(page, expect, server, "service=billing&level=ERROR")
        other_service, other_level = unique("api line"), unique("billing info line")
        wanted = unique("billing error line")

        # Stored before the wanted line (flushed first), so streamed before it if at all.
        server.log("api", "ERROR", other_service)
        server.log("billing", "INFO", other_level)
        server.flush()
        server.log("billing", "ERROR", wanted)
        server.flush()

        expect(tail_lines(page).filter(has_text=wanted)).to_have_count(1)
        expect(tail_lines(page)).to_have_count(1)
        expect(page.get_by_test_id("filter-level-ERROR")).to_have_attribute("aria-pressed", "true")


def test_a_dropped_stream_resumes_after_the_last_line_with_no_line_lost_or_repeated(
    page, expect, make_ui_server
):
    # The server ends every stream after a second, as a proxy or a restart would cut it.
    with make_ui_server(tail=TailSettings(poll_s=0.1, max_age_s=1.0)) as server:
        open_tail(page, expect, server)
        before = unique("before the drop")
        server.log("api", "INFO", before)
        server.flush()
        expect(tail_lines(page).filter(has_text=before)).to_have_count(1)
        shown_id = tail_lines(page).last.get_attribute("data-id")

        with page.expect_request(lambda r: "/api/tail" in r.url) as reopened:
            pass
        after = unique("after the drop")
        server.log("api", "INFO", after)
        server.flush()

        assert shown_id == reopened.value.headers.get("last-event-id")
        expect(tail_lines(page).filter(has_text=after)).to_have_count(1)
        messages = tail_lines(page).locator(".message").all_text_contents()
        assert [before, after] == messages
