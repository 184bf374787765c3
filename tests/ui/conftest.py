"""Fixtures for the dashboard's browser tests: Debian's Chromium driven by Playwright, and a
real server on SQLite seeded through the Python client.

Chromium is ``/usr/bin/chromium`` (Playwright never downloads a browser here); without it the
tests are skipped, except under ``CI=true``, where that is a failure (``.ci/run`` installs it).

``ui_server`` is the server of a session: its data set is known (the ``seeded`` fixture names
its services, trace, stack trace...), so tests can say what a page must show. A test that
needs a server of its own (read keys, its own rows, no alerts route) uses ``make_ui_server``.
Every server answers GET /api/alerts (the badge every page shows asks it) unless made with
``alerts=False``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

# server_helpers lives in tests/server, which is not a package (as in test_acknowledgement).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from server_helpers import running_server  # noqa: E402
from ui_helpers import Listener  # noqa: E402

from log_collector import AsyncLogClient  # noqa: E402
from log_collector.server import create_app  # noqa: E402
from log_collector.server.query.tail import TailSettings  # noqa: E402
from log_collector.server.routes.alerts import router as alerts_router  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
UPDATE_SCREENSHOTS_ENV = "UPDATE_SCREENSHOTS"
VIEWPORT = {"width": 1280, "height": 800}
# Generous: a 2-core machine running the server, the client and Chromium at once.
TIMEOUT_MS = 15_000

# The seeded data set. Times are seconds before the session's start (NOW).
NOW = time.time()
SERVICES = ("api", "billing", "worker")
PATHS = ("/api/users", "/api/orders", "/api/checkout")
USERS = ("u-1", "u-2", "u-3", "u-4", "u-5")
LEVEL_CYCLE = ("INFO", "INFO", "DEBUG", "INFO", "WARN", "INFO", "TRACE", "INFO", "ERROR", "INFO")
SEEDED_ROWS = 300
TRACE_ID = "trace-checkout-0001"
# The services of the seeded trace, in the order they log.
TRACE_SERVICES = ("api", "billing", "worker")
STACK_TRACE = (
    "Traceback (most recent call last):\n"
    '  File "/srv/billing/charge.py", line 42, in charge\n'
    "    gateway.capture(order)\n"
    "ValueError: card declined"
)
FATAL_MESSAGE = "worker lost its database connection"


@dataclass
class UiServer:
    """A running server: its base URL, its database URL, and a way to log more through the
    client (``log(service, level, message, **fields)`` then ``flush()``)."""

    url: str
    db_url: str
    spool_dir: Path
    read_key: str | None = None
    # The app the server runs: a test reaches its store (app.state.store) through it.
    app: Any = None
    # Lines seed() stored.
    rows: int = 0
    clients: dict[str, AsyncLogClient] = field(default_factory=dict)

    def client(self, service: str) -> AsyncLogClient:
        if service not in self.clients:
            self.clients[service] = AsyncLogClient(
                self.url,
                service=service,
                spool_dir=self.spool_dir / service,
                environment="production",
                flush_interval=0.05,
                max_backoff=0.2,
                enable_global_error_handler=False,
            )
        return self.clients[service]

    def log(self, service: str, level: str, message: str, /, **fields: Any) -> None:
        self.client(service).log(level, message, auto_caller=False, **fields)

    def flush(self) -> None:
        """Wait until the server acknowledged everything logged: the rows are stored."""
        for client in self.clients.values():
            assert client.flush(timeout=20), f"{client.service}: not acknowledged in 20 s"

    def close(self) -> None:
        for client in self.clients.values():
            client.close(timeout=5)
        self.clients.clear()


def seed(server: UiServer, rows: int = SEEDED_ROWS) -> None:
    """The known data set: ``rows`` lines over the last 50 minutes across SERVICES, every
    level, paths with durations, users, metadata, stack traces on errors, one FATAL, and the
    multi-service trace TRACE_ID."""
    for i in range(rows):
        service = SERVICES[i % len(SERVICES)]
        level = LEVEL_CYCLE[i % len(LEVEL_CYCLE)]
        fields: dict[str, Any] = {
            "created_at": NOW - 3000 + i * (2900 / rows),
            "path": PATHS[i % len(PATHS)],
            "method": "POST" if i % 2 else "GET",
            "duration_ms": float(5 + (i * 37) % 400),
            "user_id": USERS[i % len(USERS)],
            "order_id": i,
            "region": "eu-west" if i % 3 else "us-east",
        }
        if level == "ERROR":
            fields["error_type"] = "ValueError" if i % 20 == 8 else "TimeoutError"
            fields["stack_trace"] = STACK_TRACE
        server.log(service, level, f"request {i} handled by {service}", **fields)
    server.log(
        "worker", "FATAL", FATAL_MESSAGE, created_at=NOW - 120, error_type="OperationalError"
    )
    for step, service in enumerate(TRACE_SERVICES):
        server.log(
            service,
            "ERROR" if service == "billing" else "INFO",
            f"checkout step {step + 1} in {service}",
            created_at=NOW - 60 + step,
            trace_id=TRACE_ID,
            path="/api/checkout",
            method="POST",
            duration_ms=120.0 - step * 30,
            **({"error_type": "ValueError", "stack_trace": STACK_TRACE} if step == 1 else {}),
        )
    server.flush()
    server.rows += rows + 1 + len(TRACE_SERVICES)


ALERTS_PATH = "/api/alerts"


def _serves_alerts(route: Any) -> bool:
    """Whether ``route`` (a route, or a router included whole) answers GET /api/alerts."""
    if getattr(route, "original_router", None) is alerts_router:
        return True
    return getattr(route, "path", None) == ALERTS_PATH


def _with_alerts(app: Any, alerts: bool) -> Any:
    """``app`` answering GET /api/alerts (``alerts``) or not (404, as a server without the
    alerts route): the route is added when ``create_app`` did not mount it, or taken out."""
    mounted = any(_serves_alerts(route) for route in app.router.routes)
    if alerts and not mounted:
        app.include_router(alerts_router)
    elif not alerts and mounted:
        app.router.routes[:] = [r for r in app.router.routes if not _serves_alerts(r)]
    return app


@contextlib.contextmanager
def serve(
    tmp_path: Path,
    *,
    read_keys: str | None = None,
    tail: TailSettings | None = None,
    alerts: bool = True,
) -> Iterator[UiServer]:
    """A server on ``tmp_path/logs.db`` (``create_app``, as ``log-collector serve`` makes it)
    run by uvicorn on 127.0.0.1, with clients that log to it; no rows yet. Its tail polls
    every 0.1 s unless ``tail`` says otherwise, so a new line shows soon after it is stored.
    ``alerts``: whether it answers GET /api/alerts (see ``_with_alerts``)."""
    db_url = f"sqlite:///{tmp_path / 'logs.db'}"
    app = create_app(
        db_url, read_keys=read_keys or (), api_keys=(), tail=tail or TailSettings(poll_s=0.1)
    )
    _with_alerts(app, alerts)
    with running_server(app, timeout_graceful_shutdown=1) as url:
        server = UiServer(url, db_url, tmp_path / "spool", read_key=read_keys, app=app)
        try:
            yield server
        finally:
            server.close()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """The session's server, seeded with the known data set (``seeded``)."""
    with serve(tmp_path_factory.mktemp("ui-server")) as server:
        seed(server)
        yield server


@pytest.fixture(scope="session")
def seeded() -> SimpleNamespace:
    """What ``ui_server`` holds: ``rows`` (every line, SEEDED_ROWS + the FATAL + the trace),
    ``services``, ``paths``, ``users``, ``trace_id`` and ``trace_services`` (in the order they
    log), ``stack_trace``, ``fatal_message``."""
    return SimpleNamespace(
        rows=SEEDED_ROWS + 1 + len(TRACE_SERVICES),
        services=SERVICES,
        paths=PATHS,
        users=USERS,
        trace_id=TRACE_ID,
        trace_services=TRACE_SERVICES,
        stack_trace=STACK_TRACE,
        fatal_message=FATAL_MESSAGE,
    )


@pytest.fixture
def make_ui_server(tmp_path: Path) -> Callable[..., Any]:
    """``with make_ui_server(read_keys="k", rows=0, tail=None, alerts=True) as server:`` a
    server of the test's own (``tail``: its TailSettings; ``alerts=False``: no GET
    /api/alerts), seeded with ``rows`` lines of the data set and its FATAL line and trace
    (``server.rows`` in all), or empty (``rows=0``)."""

    @contextlib.contextmanager
    def make(
        *,
        read_keys: str | None = None,
        rows: int = 0,
        tail: TailSettings | None = None,
        alerts: bool = True,
    ) -> Iterator[UiServer]:
        with serve(tmp_path, read_keys=read_keys, tail=tail, alerts=alerts) as server:
            if rows:
                seed(server, rows)
            yield server

    return make


class BrowserProblems:
    """What went wrong in the page: console errors, uncaught exceptions, failed requests and
    answers of status 400 and above. A test that expects some (a refused key) allows them by a
    fragment of their text."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._allowed: list[str] = []

    def allow(self, fragment: str) -> None:
        self._allowed.append(fragment)

    def add(self, text: str) -> None:
        self.seen.append(text)

    def unexpected(self) -> list[str]:
        return [s for s in self.seen if not any(a in s for a in self._allowed)]


@pytest.fixture
def page_problems() -> BrowserProblems:
    return BrowserProblems()


def _record_problems(opened: Any, problems: BrowserProblems) -> None:
    """Adds to ``problems`` every console error, uncaught exception, failed request (but our
    own aborts) and answer of status 400 and above of the page ``opened``."""

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.add(f"console {message.type}: {message.text}")

    def on_failed(request: Any) -> None:
        # Our own aborts (a page left, a stream stopped) are not failures.
        if "ERR_ABORTED" not in (request.failure or ""):
            problems.add(f"request failed: {request.method} {request.url}: {request.failure}")

    def on_response(response: Any) -> None:
        if response.status >= 400:
            problems.add(f"HTTP {response.status}: {response.request.method} {response.url}")

    opened.on("console", on_console)
    opened.on("pageerror", lambda error: problems.add(f"page error: {error}"))
    opened.on("requestfailed", on_failed)
    opened.on("response", on_response)


@pytest.fixture
def new_page(browser: Any, page_problems: BrowserProblems) -> Iterator[Callable[..., Any]]:
    """``new_page(**context_options)``: a page in a fresh browser context (1280x800 and the
    suite's timeout unless ``context_options`` say otherwise, e.g. ``bypass_csp=True``) that
    records every problem in ``page_problems``; the test fails at teardown if any it did not
    allow occurred."""
    contexts: list[Any] = []

    def make(**context_options: Any) -> Any:
        context = browser.new_context(**{"viewport": VIEWPORT, **context_options})
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        opened = context.new_page()
        _record_problems(opened, page_problems)
        return opened

    try:
        yield make
        problems = page_problems.unexpected()
    finally:
        for context in contexts:
            context.close()
    assert [] == problems, "the page reported problems"


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    """A fresh context and page (1280x800) that records every problem (see ``new_page``)."""
    return new_page()


@pytest.fixture
def listener() -> Iterator[Listener]:
    """An HTTP server on 127.0.0.1 that records every request: a payload that ran would call it."""
    with Listener() as started:
        yield started


@pytest.fixture(params=["csp", "csp-bypassed"])
def hostile_page(request: pytest.FixtureRequest, new_page: Any) -> SimpleNamespace:
    """``page``: a page as the suite's ``page`` fixture makes it (problems recorded, the test
    failing on any), with the CSP bypassed for the "csp-bypassed" run; ``dialogs``: every
    dialog it opened; ``requested``: the URL of every request it made."""
    opened = new_page(bypass_csp=request.param != "csp")
    dialogs: list[str] = []
    requested: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    opened.on("dialog", on_dialog)
    opened.on("request", lambda r: requested.append(r.url))
    return SimpleNamespace(page=opened, dialogs=dialogs, requested=requested)


# Run in the page before its scripts: keeps every text the error banner shows.
BANNER_WATCH_JS = """
window.__bannerTexts = [];
new MutationObserver(() => {
  const banner = document.getElementById("error-banner");
  if (banner && !banner.hidden) window.__bannerTexts.push(banner.textContent);
}).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
"""


@pytest.fixture
def banner_texts(page: Any) -> Callable[[], list[str]]:
    """``banner_texts()``: every text the error banner showed in ``page`` since its first
    navigation, so a test can say the banner never showed, not only that it is hidden now."""
    page.add_init_script(BANNER_WATCH_JS)
    return lambda: page.evaluate("() => window.__bannerTexts")


@pytest.fixture
def expect() -> Callable[..., Any]:
    """Playwright's expect with the suite's generous timeout."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT_MS)
    return playwright_expect


@pytest.fixture
def save_screenshot(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any, str], Path]:
    """``save_screenshot(page, "explore")`` saves ``explore.png`` (1280x800): into
    docs/screenshots, the pictures the README shows, when ``$UPDATE_SCREENSHOTS`` is 1 (``make
    screenshots``), else into a temporary folder, so a test run leaves the repository as it
    was (the pictures hold the time of the run)."""
    folder = SCREENSHOTS
    if os.environ.get(UPDATE_SCREENSHOTS_ENV) != "1":
        folder = tmp_path_factory.mktemp("screenshots")

    def save(page: Any, name: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    return save
