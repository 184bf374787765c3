"""Plain functions the dashboard's browser tests share (their fixtures are in conftest.py)."""

from __future__ import annotations

import json
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
