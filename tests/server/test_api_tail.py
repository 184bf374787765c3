"""GET /api/tail over HTTP, against a real uvicorn server on each store: records logged through
the real client arrive on an open stream when they match its filters and never otherwise,
Last-Event-ID resumes after the id given, an idle stream sends heartbeats, streams past the cap
get a 503, and a reader that stops reading is dropped rather than buffered."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from server_helpers import row

from log_collector.server import create_app
from log_collector.server.query.tail import TailSettings

# Short intervals so a test sees a poll, a heartbeat or a drop quickly.
FAST = TailSettings(poll_s=0.05, heartbeat_s=0.2)
# Every wait below is bounded by this many seconds (liveness, not a timing claim).
DEADLINE_S = 15.0


class Stream:
    """A raw HTTP/1.0 GET of /api/tail read by a thread: the status line, then each SSE block
    (an event's fields, or a comment) as it arrives. HTTP/1.0 keeps the body free of chunk
    framing: it is the event stream itself, until the server closes."""

    def __init__(self, url: str, params: Any = None, headers: dict[str, str] | None = None):
        parts = urlsplit(url)
        self._sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
        self._sock.settimeout(0.1)
        target = "/api/tail" + (f"?{urlencode(params)}" if params else "")
        lines = [f"GET {target} HTTP/1.0", f"Host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.head = b""
        self.blocks: list[str] = []
        self.closed = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buffer = b""
        head_done = False
        deadline = time.monotonic() + 4 * DEADLINE_S
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            buffer += data
            if not head_done:
                if b"\r\n\r\n" not in buffer:
                    continue
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                with self._lock:
                    self.head = head
                head_done = True
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                with self._lock:
                    self.blocks.append(block.decode())
        with self._lock:
            self.closed = True

    def status(self) -> int:
        self.wait_for(lambda: bool(self.head))
        return int(self.head.split()[1])

    def events(self) -> list[dict[str, Any]]:
        """The events received: ``{"id", "event", "data"}``, data decoded from JSON."""
        with self._lock:
            blocks = list(self.blocks)
        found = []
        for block in blocks:
            fields = dict(line.split(": ", 1) for line in block.split("\n") if line[:1] != ":")
            if fields:
                found.append({**fields, "data": json.loads(fields["data"])})
        return found

    def comments(self) -> list[str]:
        with self._lock:
            return [block for block in self.blocks if block.startswith(":")]

    def wait_for(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not condition():
            assert time.monotonic() < deadline, "condition not met within the deadline"
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def streams() -> Iterator[Callable[..., Stream]]:
    opened: list[Stream] = []

    def open_stream(url: str, params: Any = None, headers: dict[str, str] | None = None):
        stream = Stream(url, params, headers)
        opened.append(stream)
        return stream

    yield open_stream
    for stream in opened:
        stream.close()


def started(stream: Stream) -> Stream:
    """``stream`` once the server has fixed where it starts (its first comment)."""
    assert 200 == stream.status()
    stream.wait_for(lambda: bool(stream.comments()))
    return stream


def test_a_matching_record_logged_through_the_client_arrives_and_another_never_does(
    db_url, serve, streams, make_client
):
    url = serve(create_app(db_url, tail=FAST))
    stream = started(streams(url, {"service": "checkout", "min_level": "WARN"}))
    checkout = make_client(server_url=url, service="checkout")
    checkout.info("below the level")
    checkout.error("card declined", order_id=42)
    assert checkout.flush(timeout=DEADLINE_S)

    stream.wait_for(lambda: bool(stream.events()))
    events = stream.events()
    assert [("log", "card declined", "ERROR", 42)] == [
        (e["event"], e["data"]["message"], e["data"]["level"], e["data"]["metadata"]["order_id"])
        for e in events
    ]
    assert events[0]["id"] == str(events[0]["data"]["id"])
    # Both were stored; the INFO one came first, so the stream has passed it for good.
    stored = requests.get(f"{url}/api/logs", params={"service": "checkout"}, timeout=30).json()
    assert ["card declined", "below the level"] == [log["message"] for log in stored["logs"]]
    assert stored["logs"][1]["id"] < events[0]["data"]["id"]


def test_a_stream_sends_only_rows_stored_after_it_opened(db_url, store, serve, streams):
    store.insert([row("old")])
    url = serve(create_app(db_url, tail=FAST))
    stream = started(streams(url))
    store.insert([row("new")])
    stream.wait_for(lambda: bool(stream.events()))
    assert ["new"] == [e["data"]["message"] for e in stream.events()]


def test_last_event_id_resumes_after_that_id_in_id_order(db_url, store, serve, streams):
    store.insert([row(f"m{i}") for i in range(6)])
    url = serve(create_app(db_url, tail=FAST))
    ids = [log["id"] for log in requests.get(f"{url}/api/logs", timeout=30).json()["logs"]][::-1]
    stream = started(streams(url, headers={"Last-Event-ID": str(ids[2])}))
    stream.wait_for(lambda: len(stream.events()) >= 3)
    store.insert([row("m6")])
    stream.wait_for(lambda: len(stream.events()) >= 4)
    assert [(str(i), f"m{n}") for n, i in enumerate(ids[3:], 3)] + [(str(ids[-1] + 1), "m6")] == [
        (e["id"], e["data"]["message"]) for e in stream.events()
    ]


def test_an_idle_stream_sends_heartbeat_comments(sqlite_url, serve, streams):
    url = serve(create_app(sqlite_url, tail=FAST))
    stream = started(streams(url))
    stream.wait_for(lambda: ": heartbeat" in stream.comments())
    assert [] == stream.events()


def test_the_stream_is_event_stream_uncached_and_unbuffered(sqlite_url, serve):
    url = serve(create_app(sqlite_url, tail=FAST))
    with requests.get(f"{url}/api/tail", stream=True, timeout=30) as response:
        assert (200, "text/event-stream; charset=utf-8", "no-cache", "no") == (
            response.status_code,
            response.headers["content-type"],
            response.headers["cache-control"],
            response.headers["x-accel-buffering"],
        )


@pytest.mark.parametrize(
    ("params", "headers", "parameter"),
    [
        ({"colour": "red"}, {}, "colour"),
        ({"since": "yesterday"}, {}, "since"),
        ({}, {"Last-Event-ID": "abc"}, "Last-Event-ID"),
        ({}, {"Last-Event-ID": "-4"}, "Last-Event-ID"),
    ],
)
def test_bad_filters_or_last_event_id_are_a_400_naming_them(
    sqlite_url, serve, params, headers, parameter
):
    url = serve(create_app(sqlite_url, tail=FAST))
    response = requests.get(f"{url}/api/tail", params=params, headers=headers, timeout=30)
    assert (400, "bad_request", parameter) == (
        response.status_code,
        response.json()["error"],
        response.json()["parameter"],
    )


def test_tail_needs_a_read_key(sqlite_url, serve):
    url = serve(create_app(sqlite_url, api_keys=["ingest-1"], read_keys=["read-1"], tail=FAST))
    assert (
        403
        == requests.get(
            f"{url}/api/tail", headers={"Authorization": "Bearer ingest-1"}, timeout=30
        ).status_code
    )
    with requests.get(
        f"{url}/api/tail", headers={"Authorization": "Bearer read-1"}, stream=True, timeout=30
    ) as response:
        assert 200 == response.status_code


def test_streams_past_the_cap_get_503_until_one_closes(sqlite_url, serve, streams):
    app = create_app(sqlite_url, tail=TailSettings(poll_s=0.05, max_streams=1))
    url = serve(app)
    first = started(streams(url))
    # stream=True: a stream let through would never end, and its status alone shows it.
    with requests.get(f"{url}/api/tail", stream=True, timeout=30) as refused:
        assert 503 == refused.status_code
        assert ("busy", "5") == (refused.json()["error"], refused.headers["retry-after"])
    first.close()
    first.wait_for(lambda: app.state.server.tail_streams == 0)
    assert 200 == started(streams(url)).status()


def test_a_reader_that_stops_reading_is_dropped_and_its_slot_freed(db_url, store, serve):
    """The server holds at most a batch and the transport's buffer for it: once a write waits
    longer than write_timeout_s the connection is closed, however much more is stored."""
    settings = TailSettings(poll_s=0.05, write_timeout_s=0.5)
    app = create_app(db_url, tail=settings)
    url = serve(app)
    parts = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    try:
        sock.sendall(b"GET /api/tail HTTP/1.0\r\n\r\n")
        deadline = time.monotonic() + DEADLINE_S
        while app.state.server.tail_streams == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        text = "x" * 8000
        for _ in range(40):
            store.insert([row(text) for _ in range(100)])
            if app.state.server.tail_streams == 0:
                break
        while app.state.server.tail_streams:
            assert time.monotonic() < deadline, "the stalled reader was never dropped"
            time.sleep(0.05)
        received = 0
        sock.settimeout(5)
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
        # The connection ended (EOF) before all 32 MB stored reached the reader.
        assert received < 40 * 100 * 8000
    finally:
        sock.close()
