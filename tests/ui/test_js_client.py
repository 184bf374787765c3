"""The JavaScript browser client (clients/js/src/browser.js) in a real Chromium, logging to a
real ``log-collector serve`` process on SQLite.

The page (tests/ui/js_client_page.html and .js) is served by a static HTTP server on
127.0.0.1 (another origin than the log server, which allows it through
LOG_COLLECTOR_CORS_ORIGINS), imports the client as one ES module with no bundler, and makes
one client from its URL's query. Each test has a fresh browser context, so its own IndexedDB.

What "a record whose call returned" means in a browser: a log call only queues the record in
memory (IndexedDB writes are asynchronous); once ``await client.persisted()`` resolved true
after it, the record is in IndexedDB. The page's ``logSeries`` keeps the last such record's
number in localStorage ``confirmed``, so a test knows after a reload which records must arrive.

No assertion depends on timing: the store is polled with a generous deadline.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import http.server
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from payloads import PAYLOADS
from server_helpers import stored_rows, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
CLIENT_SRC = ROOT / "clients" / "js" / "src"
PAGE_DIR = Path(__file__).resolve().parent
PAGE = "/page/js_client_page.html"
LOG_COLLECTOR = Path(sys.executable).with_name("log-collector")
DEMO = ROOT / "tests" / "demo-app"
# Generous: the server, Chromium and pytest share two cores.
ARRIVAL_TIMEOUT_S = 90.0
# Records the second page of the reload test logs; the first logs at least as many.
SECOND_PAGE = 200

# Ports for a server that starts later come from below the kernel's ephemeral range: a
# client retrying 127.0.0.1:P could otherwise be handed P as its own local port and
# connect to itself (see tests/receiver.py).
_QUIET_PORTS = range(20000, 32768)

# What Chromium reports while the log server is down or a page goes away mid-request.
SERVER_DOWN_PROBLEMS = ("ERR_CONNECTION_REFUSED", "ERR_CONNECTION_RESET", "ERR_EMPTY_RESPONSE")


def quiet_port() -> int:
    for _ in range(100):
        port = random.choice(_QUIET_PORTS)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
        return port
    raise RuntimeError("no free port")


class _StaticHandler(http.server.SimpleHTTPRequestHandler):
    """/src/* from clients/js/src, /page/* from the js_ files of tests/ui; nothing else."""

    def translate_path(self, path: str) -> str:
        path = urllib.parse.urlsplit(path).path
        name = path.rsplit("/", 1)[-1]
        if path.startswith("/src/") and "/" not in path[5:]:
            return str(CLIENT_SRC / name)
        if path.startswith("/page/js_") and "/" not in path[6:]:
            return str(PAGE_DIR / name)
        return str(PAGE_DIR / "no-such-file")

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The origin serving the test page and the client's modules."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StaticHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class LogServer:
    """A ``log-collector serve`` process (started by ``start``) on a SQLite file."""

    port: int
    db_path: Path
    origin: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    def start(self) -> LogServer:
        env = {**os.environ, "LOG_COLLECTOR_CORS_ORIGINS": self.origin}
        env.pop("LOG_COLLECTOR_API_KEYS", None)
        command = [str(LOG_COLLECTOR), "serve", "--db", self.db_url, "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--log-level", "warning", "--no-access-log"]
        self.process = subprocess.Popen(command, env=env)
        wait_healthy(self.url, timeout=60)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def rows(self) -> list[dict[str, Any]]:
        if not self.db_path.exists():
            return []
        return stored_rows(self.db_url)


@pytest.fixture
def log_server(tmp_path: Path, site: str) -> Iterator[LogServer]:
    """A log server for the test, not started yet (``log_server.start()``), allowing the
    page's origin; stopped after the test."""
    server = LogServer(quiet_port(), tmp_path / "logs.db", site)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def open_page(site: str, log_server: LogServer) -> Callable[..., Any]:
    """``open_page(page, **options)``: load the test page in ``page`` with a client for
    ``log_server`` made with ``options`` (the client's options) and wait until it is ready."""

    def load(page: Any, **options: Any) -> Any:
        query = urllib.parse.urlencode({"server": log_server.url, "options": json.dumps(options)})
        page.goto(f"{site}{PAGE}?{query}")
        page.wait_for_function("() => window.pageReady === true")
        return page

    return load


def wait_for(what: str, check: Callable[[], Any], timeout: float = ARRIVAL_TIMEOUT_S) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.2)


def series_numbers(server: LogServer) -> Counter[int]:
    """How often each ``series <n>`` record is stored."""
    return Counter(
        row["metadata"]["seq"] for row in server.rows() if row["message"].startswith("series ")
    )


def storage(page: Any, key: str) -> int | None:
    value = page.evaluate("(key) => localStorage.getItem(key)", key)
    return None if value is None else int(value)


def as_stored(text: str) -> str:
    """``text`` as a store holds it: the server replaces NUL (which PostgreSQL refuses in
    text) by U+FFFD, and reports the record coerced."""
    return text.replace("\x00", "\ufffd")


@contextlib.contextmanager
def process(command: list[str], env: dict[str, str], ready_url: str) -> Iterator[None]:
    """Run ``command`` until the block ends; wait first until ``ready_url`` answers 200."""
    started = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    try:
        wait_for(f"{ready_url} answering", functools.partial(answers_200, ready_url, started), 60)
        yield
    finally:
        started.terminate()
        try:
            started.wait(timeout=20)
        except subprocess.TimeoutExpired:
            started.kill()
            started.wait()


def answers_200(url: str, started: subprocess.Popen[bytes]) -> bool:
    if started.poll() is not None:
        raise AssertionError(f"{started.args} exited with {started.returncode}")
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def is_backend_error(row: dict[str, Any], trace_id: str) -> bool:
    """Whether ``row`` is the demo backend's error record, with its stack, of trace ``trace_id``."""
    return (
        row["service"] != "demo-frontend"
        and row["trace_id"] == trace_id
        and row["level"] == "ERROR"
        and bool(row["stack_trace"])
    )


@pytest.fixture
def node() -> str:
    """The node binary: the demo's web server runs on it."""
    found = shutil.which("node")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and no node on PATH")
        pytest.skip("no node on PATH")
    return found


def test_records_confirmed_before_a_reload_arrive_exactly_once(
    new_page: Callable[..., Any], open_page: Callable[..., Any], log_server: LogServer
) -> None:
    """A page logs without end and is reloaded part-way; the next page logs SECOND_PAGE
    records more: every record the first page had confirmed as persisted arrives, the second
    page's too, and no record is stored twice. The flush interval keeps the first page's
    records waiting (its pagehide request carries 48 KiB of them), so most reach the server
    only because the second page sends what the first one left in IndexedDB."""
    log_server.start()
    page = open_page(new_page(), flushInterval=60_000)
    page.evaluate("() => { window.logSeries(Infinity, 200); }")
    page.wait_for_function(f"() => Number(localStorage.getItem('confirmed')) >= {SECOND_PAGE}")
    page.reload()
    page.wait_for_function("() => window.pageReady === true")
    confirmed_first = storage(page, "confirmed")
    resumed_at = storage(page, "next")
    assert confirmed_first is not None and resumed_at is not None
    last = resumed_at + SECOND_PAGE
    flushed, acknowledged = page.evaluate(
        f"""async () => {{
          await window.logSeries({last}, 200);
          return [await window.logClient.flush(60000), window.logClient.stats().acknowledged];
        }}"""
    )
    page.close()
    assert flushed
    # The second page's server acknowledged more than it logged: it sent the first page's.
    assert acknowledged > SECOND_PAGE

    expected = set(range(confirmed_first + 1)) | set(range(resumed_at, last))
    stored = wait_for(
        "every confirmed record stored",
        lambda: (numbers := series_numbers(log_server)) and expected <= set(numbers) and numbers,
    )
    assert {} == {seq: n for seq, n in stored.items() if n > 1}, "stored twice"
    assert set(stored) <= set(range(last))


def test_records_persisted_before_the_tab_crashes_arrive_from_the_next_page(
    new_page: Callable[..., Any],
    open_page: Callable[..., Any],
    log_server: LogServer,
    page_problems: Any,
) -> None:
    """The renderer of a page that logged crashes while the server is down (nothing could
    have reached the server); the next page of the origin, opened once the server is up,
    sends every record the crashed page had persisted."""
    for problem in ("crash", *SERVER_DOWN_PROBLEMS):
        page_problems.allow(problem)
    crashed = open_page(new_page(), flushInterval=100, maxBackoff=1000)
    crashed.evaluate("() => window.logSeries(100)")
    assert 99 == storage(crashed, "confirmed")
    with crashed.expect_event("crash"), contextlib.suppress(Exception):
        crashed.goto("chrome://crash")  # Chromium's URL that crashes the renderer

    log_server.start()
    open_page(crashed.context.new_page(), flushInterval=100)
    wait_for("the crashed page's records stored", lambda: len(series_numbers(log_server)) == 100)
    assert Counter(range(100)) == series_numbers(log_server)


def test_records_logged_while_the_server_is_down_arrive_when_it_is_up(
    new_page: Callable[..., Any],
    open_page: Callable[..., Any],
    log_server: LogServer,
    page_problems: Any,
) -> None:
    """The server is down while the page logs (and reloads): once it is up, the page that
    stays open delivers every record, once, in gzip'd batches (200 records wait)."""
    for problem in SERVER_DOWN_PROBLEMS:
        page_problems.allow(problem)
    page = new_page()
    encodings: list[str | None] = []
    page.on(
        "request",
        lambda r: r.method == "POST" and encodings.append(r.all_headers().get("content-encoding")),
    )
    open_page(page, flushInterval=100, maxBackoff=1000)
    page.evaluate("() => window.logSeries(100)")
    page.reload()
    page.wait_for_function("() => window.pageReady === true")
    page.evaluate("() => window.logSeries(200)")
    assert 199 == storage(page, "confirmed")
    assert 0 == page.evaluate("() => window.logClient.stats().acknowledged")

    log_server.start()
    assert page.evaluate("() => window.logClient.flush(60000)")
    assert Counter(range(200)) == series_numbers(log_server)
    assert "gzip" in encodings


def test_a_page_opened_after_the_outage_sends_what_a_closed_page_left(
    new_page: Callable[..., Any],
    open_page: Callable[..., Any],
    log_server: LogServer,
    page_problems: Any,
) -> None:
    """A page logs while the server is down and is closed; a page of the same origin opened
    once the server is up sends those records."""
    for problem in SERVER_DOWN_PROBLEMS:
        page_problems.allow(problem)
    first = open_page(new_page(), flushInterval=100, maxBackoff=1000)
    context = first.context
    first.evaluate("() => window.logSeries(150)")
    first.close(run_before_unload=True)

    log_server.start()
    second = open_page(context.new_page(), flushInterval=100)
    wait_for("every record stored", lambda: len(series_numbers(log_server)) == 150)
    assert Counter(range(150)) == series_numbers(log_server)
    second.close()


def test_over_the_size_cap_the_oldest_records_are_dropped_counted_and_reported(
    new_page: Callable[..., Any],
    open_page: Callable[..., Any],
    log_server: LogServer,
    page_problems: Any,
) -> None:
    """With the server down, a page logs three times what its 64 KiB cap holds: the oldest
    records are dropped and counted, the newest arrive once the server is up, each record is
    either stored or counted as dropped, and one WARN record says how many were dropped."""
    for problem in SERVER_DOWN_PROBLEMS:
        page_problems.allow(problem)
    page = open_page(new_page(), flushInterval=100, maxBackoff=1000, maxSpoolBytes=65536)
    page.evaluate("() => window.logSeries(300, 400)")
    dropped = page.evaluate("() => window.logClient.stats().dropped.spool_full")
    assert 0 < dropped

    log_server.start()
    assert page.evaluate("() => window.logClient.flush(60000)")
    stored = series_numbers(log_server)
    assert 300 == len(stored) + dropped
    assert set(range(300 - len(stored), 300)) == set(stored)
    assert {1} == set(stored.values())
    warning = wait_for(
        "the WARN record on the drops",
        lambda: [r for r in log_server.rows() if r["message"].startswith("log-collector: dropped")],
    )
    assert [("WARN", dropped)] == [(r["level"], r["metadata"]["dropped"]) for r in warning]


def test_hostile_text_is_stored_as_the_same_text(
    page: Any, open_page: Callable[..., Any], log_server: LogServer
) -> None:
    """Markup, script, SQL, control characters, right-to-left marks and a long line are
    messages like any other: stored as exactly the text logged, in the message and in a
    metadata field. NUL and a lone surrogate (not valid UTF-16 text), which no store holds,
    are stored as U+FFFD."""
    log_server.start()
    open_page(page, flushInterval=100)
    messages = [
        *(payload.replace("LISTENER_ORIGIN", "http://127.0.0.1:9") for payload in PAYLOADS),
        "'; DROP TABLE logs; --",
        '" OR 1=1 --',
        "nul \x00 byte, bell \x07, escape \x1b[31mred\x1b[0m",
        "line one\nline two\r\nline three\ttabbed",
        "emoji \U0001f4a5 and accents \u00e9\u00e8 and CJK \u4e2d\u6587",
        "\u202eright-to-left override",
        "long " + "x" * 100_000,
    ]
    assert page.evaluate(
        """async (messages) => {
          window.logAll(messages);
          window.logClient.info('lone ' + String.fromCharCode(0xd800) + ' surrogate');
          return window.logClient.flush(60000);
        }""",
        messages,
    )
    stored = [as_stored(m) for m in messages]
    rows = log_server.rows()
    by_message = Counter(row["message"] for row in rows)
    assert {m: 1 for m in stored} == {m: by_message[m] for m in stored}
    for row in rows:
        if row["message"] in stored:
            assert row["message"] == row["metadata"]["hostile"]
    assert 1 == by_message["lone \ufffd surrogate"]


def test_records_of_a_page_closed_at_once_arrive_with_the_keepalive_request(
    new_page: Callable[..., Any], open_page: Callable[..., Any], log_server: LogServer
) -> None:
    """A page logs and is closed without waiting for anything: its pagehide handler sends
    the records with fetch(keepalive). The flush interval is a minute, so no other request
    could have carried them, and no page of the origin opens again."""
    log_server.start()
    page = open_page(new_page(), flushInterval=60_000)
    page.evaluate("() => { for (let i = 0; i < 40; i++) window.logClient.info(`closing ${i}`); }")
    page.close()
    wait_for(
        "the closed page's records stored",
        lambda: len([r for r in log_server.rows() if r["message"].startswith("closing ")]) == 40,
    )
    messages = Counter(r["message"] for r in log_server.rows())
    assert {f"closing {i}": 1 for i in range(40)} == {
        f"closing {i}": messages[f"closing {i}"] for i in range(40)
    }


def test_two_tabs_share_the_queue_and_never_send_a_record_twice(
    new_page: Callable[..., Any], open_page: Callable[..., Any], log_server: LogServer
) -> None:
    """Two tabs of one origin log at once into the one IndexedDB queue; a Web Lock lets one
    tab send at a time, so each record is sent once: all arrive, no duplicate is reported."""
    log_server.start()
    first = open_page(new_page(), flushInterval=50, batchSize=20)
    second = open_page(first.context.new_page(), flushInterval=50, batchSize=20)
    script = """async (tab) => {
      for (let i = 0; i < 150; i++) {
        window.logClient.info(`tab ${tab} record ${i}`);
        if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
      }
      return window.logClient.flush(60000);
    }"""
    handles = [p.evaluate_handle(f"() => ({script})({n})") for n, p in ((1, first), (2, second))]
    assert [True, True] == [handle.json_value() for handle in handles]
    messages = Counter(r["message"] for r in log_server.rows())
    expected = {f"tab {tab} record {i}": 1 for tab in (1, 2) for i in range(150)}
    assert expected == dict(messages)
    duplicates = [p.evaluate("() => window.logClient.stats().duplicates") for p in (first, second)]
    assert [0, 0] == duplicates


def test_the_record_carries_the_fields_of_the_call_the_contexts_and_the_caller(
    page: Any, open_page: Callable[..., Any], log_server: LogServer
) -> None:
    """One record through every layer: columns, metadata, user context, redaction, the
    caller's function and script, and errorWithTrace's stack."""
    log_server.start()
    open_page(page, flushInterval=100, serviceVersion="v9.9.9")
    assert page.evaluate(
        """async () => {
          const client = window.logClient;
          const Client = client.constructor;
          Client.setUserContext({ user_id: 'u-42', session_id: 's-1' });
          function checkout() {
            client.warn('paid', { order_id: 7, path: '/cart', password: 'hunter2', ok: false });
          }
          checkout();
          Client.clearUserContext();
          client.errorWithTrace('failed', new RangeError('out of range'));
          return client.flush(60000);
        }"""
    )
    rows = {row["message"]: row for row in log_server.rows()}
    paid, failed = rows["paid"], rows["failed"]
    assert ("WARN", "browser-test", "test", "v9.9.9", "FRONTEND") == (
        paid["level"],
        paid["service"],
        paid["environment"],
        paid["service_version"],
        paid["log_type"],
    )
    assert ("u-42", "s-1", "/cart", "checkout") == (
        paid["user_id"],
        paid["session_id"],
        paid["path"],
        paid["function_name"],
    )
    assert {"order_id": 7, "password": "[REDACTED]", "ok": False} == {
        k: paid["metadata"][k] for k in ("order_id", "password", "ok")
    }
    assert ("ERROR", "RangeError", None) == (
        failed["level"],
        failed["error_type"],
        failed["user_id"],
    )
    assert failed["stack_trace"].startswith("RangeError: out of range\n")


def answer_posts(
    page: Any, log_server: LogServer, answer: Callable[[list[dict]], tuple[int, dict] | None]
) -> list[int]:
    """Route the page's POSTs to /logs through ``answer(records)``: a ``(status, headers)``
    it gives is the response, None forwards the request to the real server. Returns the
    statuses answered, in order."""
    answers: list[int] = []

    def handle(route: Any) -> None:
        request = route.request
        if request.method != "POST":
            route.continue_()
            return
        records = json.loads(request.post_data_buffer or b"{}").get("logs", [])
        scripted = answer(records)
        if scripted is None:
            response = route.fetch()
            answers.append(response.status)
            route.fulfill(response=response)
            return
        status, headers = scripted
        answers.append(status)
        cors = {"Access-Control-Allow-Origin": log_server.origin, **headers}
        route.fulfill(
            status=status,
            headers=cors,
            content_type="application/json",
            body='{"detail":"scripted"}',
        )

    page.route(f"{log_server.url}/logs", handle)
    return answers


def test_faults_split_bisect_and_dead_letter_only_the_refused_record(
    page: Any, open_page: Callable[..., Any], log_server: LogServer, page_problems: Any
) -> None:
    """In front of the real server, the page's requests meet a 500, a 429 with Retry-After,
    a 413 for any batch of more than 8 records and a 400 for any batch holding the record
    "poison": the client retries, splits, bisects down to the poisoned record, dead-letters
    it alone, and every other record is stored once."""
    page_problems.allow("the server responded with a status of")
    page_problems.allow("HTTP 4")
    page_problems.allow("HTTP 5")
    log_server.start()
    scripted = iter([(500, {}), (429, {"Retry-After": "1"})])

    def answer(records: list[dict]) -> tuple[int, dict] | None:
        status, headers = next(scripted, (None, {}))
        if status is None and len(records) > 8:
            return 413, {}
        if status is None and any(r.get("message") == "poison" for r in records):
            return 400, {}
        return None if status is None else (status, headers)

    answers = answer_posts(page, log_server, answer)
    open_page(page, flushInterval=100, maxBackoff=500, enableCompression=False)
    assert page.evaluate(
        """async () => {
          for (let i = 0; i < 30; i++) window.logClient.info(i === 17 ? 'poison' : `fault ${i}`);
          return window.logClient.flush(60000);
        }"""
    )
    messages = Counter(r["message"] for r in log_server.rows())
    assert {f"fault {i}": 1 for i in range(30) if i != 17} == dict(messages)
    assert [500, 429, 413] == answers[:3] and 400 in answers
    stats = page.evaluate("() => window.logClient.stats()")
    assert (1, 2) == (stats["deadLettered"], stats["retries"])


def test_a_record_the_server_answers_500_for_alone_is_dead_lettered_and_the_rest_stored(
    page: Any, open_page: Callable[..., Any], log_server: LogServer, page_problems: Any
) -> None:
    """In front of the real server, any batch holding the record "crash" gets 500 (a record
    the server fails on): the client sends each such part three times, splits it, and once
    the server has stored the others, dead-letters that record alone."""
    page_problems.allow("the server responded with a status of")
    page_problems.allow("HTTP 5")
    log_server.start()
    answers = answer_posts(
        page,
        log_server,
        lambda records: (500, {}) if any(r.get("message") == "crash" for r in records) else None,
    )
    open_page(page, flushInterval=100, maxBackoff=200, enableCompression=False)
    assert page.evaluate(
        """async () => {
          for (let i = 0; i < 12; i++) window.logClient.info(i === 5 ? 'crash' : `fine ${i}`);
          return window.logClient.flush(60000);
        }"""
    )
    messages = Counter(r["message"] for r in log_server.rows())
    assert {f"fine {i}": 1 for i in range(12) if i != 5} == dict(messages)
    stats = page.evaluate("() => window.logClient.stats()")
    assert 1 == stats["deadLettered"]
    assert answers.count(500) % 3 == 0 and answers.count(500) >= 9


def test_the_demo_page_logs_its_actions_sharing_trace_ids_with_the_backend(
    new_page: Callable[..., Any], node: str, tmp_path: Path, page_problems: Any, expect: Any
) -> None:
    """The todo demo (tests/demo-app/frontend on the Python demo backend): a person logs in
    (once with a wrong password), adds a todo, marks it done, calls the failing endpoint and
    throws an uncaught error. The page shows each step; the store holds the page's records
    (redacted, with the user context) and the backend's, the failing call's under one trace
    id on both sides."""
    for allowed in ("401", "500", "Uncaught error thrown by the demo page"):
        page_problems.allow(allowed)
    frontend_port, backend_port = quiet_port(), quiet_port()
    frontend = f"http://127.0.0.1:{frontend_port}"
    backend = f"http://127.0.0.1:{backend_port}"
    logs = LogServer(quiet_port(), tmp_path / "demo.db", frontend)
    logs.start()
    backend_command = [sys.executable, str(DEMO / "backend-python" / "server.py")]
    backend_env = {"LOG_SERVER_URL": logs.url, "LOG_COLLECTOR_SPOOL_DIR": str(tmp_path / "spool")}
    frontend_command = [node, str(DEMO / "frontend" / "serve.js"), "--port", str(frontend_port)]
    frontend_command += ["--api", backend, "--log-server", logs.url]
    try:
        with (
            process(
                [*backend_command, "--port", str(backend_port)], backend_env, f"{backend}/health"
            ),
            process(frontend_command, {}, frontend),
        ):
            page = new_page()
            page.goto(frontend)
            expect(page.locator("body[data-ready=true]")).to_be_attached()
            page.get_by_label("Password").fill("wrong")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("status")).to_have_text("Wrong username or password.")
            page.get_by_label("Password").fill("demo123")
            page.get_by_role("button", name="Log in").click()
            expect(page.locator("#user-name")).to_have_text("user-demo")
            page.get_by_label("New todo").fill("<b>write</b> docs")
            page.get_by_role("button", name="Add").click()
            todo = page.get_by_role("listitem").filter(has_text="<b>write</b> docs")
            expect(todo).to_be_visible()
            todo.get_by_role("button", name="Done").click()
            expect(todo).to_have_class("done")
            page.get_by_role("button", name="Call the failing endpoint").click()
            expect(page.get_by_role("status")).to_contain_text("The backend answered 500")
            trace_id = page.get_by_role("status").inner_text().rsplit(" ", 1)[-1].rstrip(".")
            page.get_by_role("button", name="Throw an uncaught error").click()
            expect(page.get_by_role("status")).to_contain_text("Threw an uncaught error")
            assert page.evaluate("() => window.demoLogger.flush(60000)")

            rows = wait_for(
                "the backend's error record of the failing call, the page's uncaught error",
                lambda: (
                    (rows := logs.rows())
                    and any(is_backend_error(r, trace_id) for r in rows)
                    and any(r["message"] == "Uncaught error" for r in rows)
                    and rows
                ),
            )
    finally:
        logs.stop()

    page_rows = {r["message"]: r for r in rows if r["service"] == "demo-frontend"}
    assert {
        "Page loaded",
        "Login failed",
        "Login succeeded",
        "Todo created",
        "Todo updated",
    } <= set(page_rows)
    assert ("WARN", "demo", None) == (
        page_rows["Login failed"]["level"],
        page_rows["Login failed"]["metadata"]["username"],
        page_rows["Login failed"]["user_id"],
    )
    assert ("user-demo", "FRONTEND") == (
        page_rows["Login succeeded"]["user_id"],
        page_rows["Login succeeded"]["log_type"],
    )
    assert not any("demo123" in json.dumps(r, default=str) for r in rows), "the password was logged"
    failing = page_rows["The failing endpoint failed, as it should"]
    assert (trace_id, "ERROR", "Error") == (
        failing["trace_id"],
        failing["level"],
        failing["error_type"],
    )
    uncaught = page_rows["Uncaught error"]
    assert ("Error", True) == (
        uncaught["error_type"],
        "Uncaught error thrown by the demo page" in uncaught["stack_trace"],
    )
