"""Plain functions the dashboard's browser tests share (their fixtures are in conftest.py),
and what the script-injection tests share: the listener a payload that ran would call, and the
checks that every payload is shown as text and that none ran."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

# The reason answer_unavailable's 503 gives, which the page is expected to show.
UNAVAILABLE_REASON = "store unavailable: test"


def attribute_values(locator: Any, name: str) -> list[str | None]:
    """``name``'s value on every element ``locator`` matches, in the page's order."""
    return locator.evaluate_all(
        "(nodes, name) => nodes.map((node) => node.getAttribute(name))", name
    )


def attribute_and_text(locator: Any, name: str) -> list[tuple[str | None, str]]:
    """(``name``'s value, text) of every element ``locator`` matches, in the page's order."""
    pairs = locator.evaluate_all(
        "(nodes, name) => nodes.map((node) => [node.getAttribute(name), node.textContent])", name
    )
    return [(value, text) for value, text in pairs]


def facet_values(page: Any, field: str, value: str | None = None) -> Any:
    """Explore's facet values of ``field`` (only its value ``value``, if given)."""
    selector = f"[data-testid=facet-value][data-field={field}]"
    return page.locator(f"{selector}[data-value={value}]" if value else selector)


def answer_unavailable(page: Any, page_problems: Any, url_pattern: str) -> None:
    """``page``'s requests matching ``url_pattern`` are answered 503 with the API's error body
    (reason UNAVAILABLE_REASON); the problems that makes, the answers and Chromium's console
    line for each, are allowed."""
    page_problems.allow("HTTP 503: ")
    page_problems.allow("Failed to load resource: the server responded with a status of 503")
    body = json.dumps({"error": "unavailable", "reason": UNAVAILABLE_REASON})
    page.route(
        url_pattern,
        lambda route: route.fulfill(status=503, content_type="application/json", body=body),
    )


# Payloads with no "/" may be a trace id (/ui/trace/<id>); this one is.
TRACE_PAYLOAD = '"><img src=x onerror=window.__injected=true>'

# Run in the page after it rendered: every element or attribute a payload could have created.
# Our own markup has no on* attribute, no URL attribute outside /ui/, one script (the app's
# module) and none of the listed tags; a style attribute may be ours (element.style), so one
# is only suspect for what it holds.
AUDIT_JS = """
() => {
  const found = [];
  const denied = new Set(["iframe", "frame", "frameset", "object", "embed", "base", "marquee",
    "video", "audio", "source", "math", "mglyph", "mtext", "style", "x"]);
  const urlAttributes = new Set(["src", "href", "action", "formaction", "data", "srcdoc",
    "xlink:href", "background", "poster"]);
  for (const node of document.querySelectorAll("*")) {
    const tag = node.localName;
    if (denied.has(tag)) found.push(`<${tag}>`);
    if (tag === "script" && !(node.getAttribute("src") || "").startsWith("/ui/static/js/")) {
      found.push(`script ${node.getAttribute("src") || "inline"}`);
    }
    if (tag === "img") found.push(`img src=${node.getAttribute("src")}`);
    if (tag === "meta" && node.hasAttribute("http-equiv")) found.push("meta http-equiv");
    if (tag === "noscript" && node.parentElement !== document.body) found.push("noscript");
    for (const attribute of node.attributes) {
      const name = attribute.name.toLowerCase();
      const value = attribute.value;
      if (name.startsWith("on")) found.push(`${tag}[${name}]`);
      // The shell's links: its stylesheet and an empty icon (data:,).
      const shell = tag === "link" && value === "data:,";
      if (urlAttributes.has(name) && !value.startsWith("/ui/") && !shell) {
        found.push(`${tag}[${name}=${value}]`);
      }
      // Attributes that are text (a log value may be a title) or links our code built to
      // our own pages (a log value may be in their query string) may hold anything.
      const text = name.startsWith("data-") || ["title", "aria-label", "value"].includes(name);
      const ours = urlAttributes.has(name) && value.startsWith("/ui/");
      if (/javascript:|stolen|__injected/i.test(value) && !text && !ours) {
        found.push(`${tag}[${name}] holds ${value.slice(0, 60)}`);
      }
    }
  }
  if (document.scripts.length !== 1) found.push(`${document.scripts.length} scripts`);
  return found;
}
"""


class Listener:
    """An HTTP server on 127.0.0.1 that records every request it gets: a payload that ran
    would call it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        heard = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> None:
                heard.append(f"{self.command} {self.path}")
                self.send_response(204)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()

            do_GET = do_POST = do_OPTIONS = _record

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


def body_text(page: Any) -> str:
    return page.evaluate("() => document.body.textContent")


def assert_shown_as_text(page: Any, expected: list[str]) -> None:
    text = body_text(page)
    missing = [payload for payload in expected if payload not in text]
    assert [] == missing, "payloads not shown as their literal text"


def assert_nothing_ran(watched: Any, server: Any, listener: Listener) -> None:
    page = watched.page
    # An <img onerror> fires after its load fails, a fetch a moment after it starts.
    page.wait_for_timeout(500)
    assert [] == watched.dialogs
    assert page.evaluate("() => typeof window.__injected") == "undefined"
    assert [page.main_frame] == page.frames
    assert [] == page.evaluate(AUDIT_JS)
    assert [] == [url for url in watched.requested if not url.startswith(f"{server.url}/")]
    assert [] == listener.requests
