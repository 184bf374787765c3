"""The dashboard's shell: every page loads cleanly, /ui answers with its security headers, a
browser asking for / is sent to the dashboard, our JavaScript never writes markup, and with
read keys set the page asks for a key and shows nothing without a valid one."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from log_collector.server import create_app
from log_collector.server.query.views import PAGES
from log_collector.server.ui import CONTENT_SECURITY_POLICY, STATIC_DIR

PAGES_DIR = STATIC_DIR / "js" / "pages"

# What each page shows once it has its data.
LOADED = {
    "explore": "[data-testid=log-row]",
    "tail": "[data-testid=tail-status][data-state=live]",
    "overview": "[data-testid=overview-cards]",
    "trace": "[data-testid=trace-view]",
    "ask": "[data-testid=ask-input]",
}


def _page_url(name: str, seeded) -> str:
    return f"/ui/trace/{seeded.trace_id}" if name == "trace" else f"/ui/{name}"


@pytest.mark.parametrize("name", ["explore", "tail", "overview", "trace", "ask"])
def test_every_page_loads_with_no_console_error_and_no_failed_request(
    page, expect, ui_server, seeded, name
):
    # overview.js and trace.js are written apart from the shell: until a page's module exists,
    # its check is skipped rather than failed.
    if not (PAGES_DIR / f"{name}.js").exists():
        pytest.skip(f"static/js/pages/{name}.js does not exist yet")
    page.goto(ui_server.url + _page_url(name, seeded))

    expect(page.locator(LOADED[name]).first).to_be_visible()
    expect(page.get_by_test_id("error-banner")).to_be_hidden()
    # The `page` fixture fails the test at teardown on any console error or failed request.


def test_the_navigation_goes_to_each_page_and_keeps_the_filters(page, expect, ui_server):
    page.goto(ui_server.url + "/ui/explore?service=billing")
    expect(page.get_by_test_id("log-row").first).to_be_visible()

    page.get_by_test_id("nav-tail").click()

    expect(page).to_have_url(re.compile(r"/ui/tail\?service=billing$"))
    expect(page.get_by_test_id("tail-status")).to_have_attribute("data-state", "live")
    page.get_by_test_id("nav-explore").click()
    expect(page).to_have_url(re.compile(r"/ui/explore\?service=billing$"))
    expect(page.get_by_test_id("log-row").first).to_be_visible()


def test_every_page_a_saved_view_may_open_is_served_and_has_its_module(ui_server):
    """One list of the pages (query.views.PAGES) for the saved views and the router; the
    JavaScript router's list (state.js) and its page modules match it."""
    listed = re.search(
        r"export const PAGES = \[([^\]]*)\]", (STATIC_DIR / "js" / "state.js").read_text()
    )

    assert sorted(PAGES) == sorted(re.findall(r'"([a-z]+)"', listed.group(1)))
    assert sorted(PAGES) == sorted(path.stem for path in PAGES_DIR.glob("*.js"))
    assert {name: 200 for name in PAGES} == {
        name: _get(f"{ui_server.url}/ui/{name}").status_code for name in PAGES
    }


def _get(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, follow_redirects=False, timeout=10)


@pytest.mark.parametrize(
    ("path", "status", "content_type"),
    [
        ("/ui/explore", 200, "text/html; charset=utf-8"),
        ("/ui/tail", 200, "text/html; charset=utf-8"),
        ("/ui/overview", 200, "text/html; charset=utf-8"),
        ("/ui/ask", 200, "text/html; charset=utf-8"),
        ("/ui/trace/some-trace-id", 200, "text/html; charset=utf-8"),
        ("/ui/static/app.css", 200, "text/css; charset=utf-8"),
        ("/ui/static/js/app.js", 200, "text/javascript; charset=utf-8"),
        ("/ui/static/js/pages/explore.js", 200, "text/javascript; charset=utf-8"),
        ("/ui/nowhere", 404, "text/plain; charset=utf-8"),
        ("/ui/static/missing.js", 404, "text/plain; charset=utf-8"),
        # Out of static/ by an encoded "../": the package's own Python is not served.
        ("/ui/static/..%2F__init__.py", 404, "text/plain; charset=utf-8"),
        ("/ui/static/js/..%2F..%2F__init__.py", 404, "text/plain; charset=utf-8"),
    ],
)
def test_every_ui_answer_carries_its_type_and_the_security_headers(
    ui_server, path, status, content_type
):
    response = _get(ui_server.url + path)

    assert status == response.status_code
    assert content_type == response.headers["content-type"]
    assert CONTENT_SECURITY_POLICY == response.headers["content-security-policy"]
    assert "nosniff" == response.headers["x-content-type-options"]
    assert "no-referrer" == response.headers["referrer-policy"]


def test_the_policy_allows_this_origin_only_and_no_inline_script():
    directives = dict(
        (part.split(" ", 1) + [""])[:2] for part in CONTENT_SECURITY_POLICY.split("; ")
    )

    assert "'self'" == directives["script-src"]
    assert "'self'" == directives["style-src"]
    assert "'none'" == directives["object-src"]
    assert "'none'" == directives["frame-ancestors"]


@pytest.mark.parametrize("path", ["/ui", "/ui/"])
def test_the_ui_root_redirects_to_explore(ui_server, path):
    response = _get(ui_server.url + path)

    assert 307 == response.status_code
    assert "/ui/explore" == response.headers["location"]
    assert CONTENT_SECURITY_POLICY == response.headers["content-security-policy"]


def test_static_files_are_revalidated_by_etag(ui_server):
    first = _get(ui_server.url + "/ui/static/js/app.js")

    again = _get(ui_server.url + "/ui/static/js/app.js", **{"If-None-Match": first.headers["etag"]})

    assert "no-cache" == first.headers["cache-control"]
    assert 304 == again.status_code
    assert b"" == again.content


def test_a_browser_asking_for_the_root_is_sent_to_the_dashboard(ui_server):
    browser = _get(ui_server.url + "/", Accept="text/html,application/xhtml+xml,*/*;q=0.8")
    api_client = _get(ui_server.url + "/", Accept="application/json")

    assert 307 == browser.status_code
    assert browser.headers["location"] in ("/ui/", "/ui/explore")
    assert {"status": "ok", "service": "log-server"} == api_client.json()


def test_the_dashboard_is_served_by_the_query_roles_only(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'logs.db'}"
    served = {}
    for role in ("ingest", "query", "all"):
        with TestClient(create_app(db_url, role=role, api_keys=(), read_keys=())) as client:
            served[role] = client.get("/ui/explore").status_code

    assert {"ingest": 404, "query": 200, "all": 200} == served


# Ways of turning text into markup or code; the dashboard builds every element with dom.js.
FORBIDDEN = re.compile(
    r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\s*\(|new\s+Function\b"
    r"|setTimeout\s*\(\s*['\"`]|setInterval\s*\(\s*['\"`]"
)


def _scripts() -> list[Path]:
    return sorted((STATIC_DIR / "js").rglob("*.js"))


def test_no_script_of_the_dashboard_writes_markup_or_evaluates_text():
    found = {
        str(path.relative_to(STATIC_DIR)): FORBIDDEN.findall(path.read_text())
        for path in _scripts()
    }

    assert [] != list(found), "no script found under static/js"
    assert {} == {path: hits for path, hits in found.items() if hits}


def test_the_shell_has_no_inline_script_or_style():
    html = (STATIC_DIR / "index.html").read_text()

    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, flags=re.S)
    assert [""] * len(scripts) == [body.strip() for body in scripts]
    assert None is re.search(r"\sstyle\s*=", html)
    assert None is re.search(r"\son[a-z]+\s*=", html)
    assert None is re.search(r"<style\b", html)


# A static import at the top of a module: `import { a } from "./b.js";` (page modules are
# imported dynamically, when first visited, and are not part of the shell's graph).
STATIC_IMPORT = re.compile(r'^import\b[^;]*?\bfrom\s+"(\./[^"]+)";', flags=re.M | re.S)


def _static_graph(entry: Path) -> set[Path]:
    """``entry`` and every module it imports statically, directly or through another."""
    found, todo = set(), [entry]
    while todo:
        module = todo.pop()
        if module not in found:
            found.add(module)
            imported = STATIC_IMPORT.findall(module.read_text())
            todo.extend((module.parent / name).resolve() for name in imported)
    return found


def test_the_shell_preloads_every_module_of_its_static_graph():
    """So the browser asks for them all at once instead of one import level after another."""
    html = (STATIC_DIR / "index.html").read_text()
    preloaded = re.findall(r'<link rel="modulepreload" href="/ui/static/([^"]+)">', html)

    expected = _static_graph(STATIC_DIR / "js" / "app.js")
    assert {"app.js", "alerts.js", "api.js", "auth.js", "dom.js", "state.js"} <= {
        p.name for p in expected
    }
    assert sorted(str(p.relative_to(STATIC_DIR)) for p in expected) == sorted(preloaded)


READ_KEY = "read-key-for-the-ui"


def test_with_read_keys_the_page_asks_for_a_key_and_shows_no_data_without_one(
    page, expect, page_problems, make_ui_server
):
    # The first requests are refused (401) before the prompt shows: expected here.
    page_problems.allow("401")
    with make_ui_server(read_keys=READ_KEY, rows=20) as server:
        page.goto(server.url + "/ui/explore")

        expect(page.get_by_test_id("key-prompt")).to_be_visible()
        expect(page.get_by_test_id("log-row")).to_have_count(0)
        expect(page.get_by_test_id("histogram")).to_have_count(0)


def test_a_wrong_key_is_refused_with_a_visible_message_and_the_right_one_opens_the_data(
    page, expect, page_problems, make_ui_server
):
    page_problems.allow("401")
    with make_ui_server(read_keys=READ_KEY, rows=20) as server:
        page.goto(server.url + "/ui/explore")
        page.get_by_test_id("key-input").fill("not-the-key")
        page.get_by_test_id("key-submit").click()

        expect(page.get_by_test_id("key-message")).to_contain_text("refused")
        expect(page.get_by_test_id("key-prompt")).to_be_visible()
        expect(page.get_by_test_id("log-row")).to_have_count(0)

        page.get_by_test_id("key-input").fill(READ_KEY)
        page.get_by_test_id("key-submit").click()

        expect(page.get_by_test_id("key-prompt")).to_have_count(0)
        expect(page.get_by_test_id("log-row")).to_have_count(server.rows)
        # The key is kept for the tab: a reload does not ask again.
        page.reload()
        expect(page.get_by_test_id("log-row")).to_have_count(server.rows)
        expect(page.get_by_test_id("key-prompt")).to_have_count(0)


def test_forgetting_the_key_asks_for_it_again(page, expect, page_problems, make_ui_server):
    page_problems.allow("401")
    with make_ui_server(read_keys=READ_KEY, rows=5) as server:
        page.goto(server.url + "/ui/explore")
        page.get_by_test_id("key-input").fill(READ_KEY)
        page.get_by_test_id("key-submit").click()
        expect(page.get_by_test_id("log-row")).to_have_count(server.rows)

        page.get_by_test_id("sign-out").click()

        expect(page.get_by_test_id("key-prompt")).to_be_visible()
        expect(page.get_by_test_id("log-row")).to_have_count(0)
