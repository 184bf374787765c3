"""A webhook receiver for the alert tests: a real HTTP server on 127.0.0.1 in a thread that
records each JSON body POSTed to it, and can be told to answer the first requests with a
failure status or to hold every answer until released."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, fail_first: int = 0, fail_status: int = 500, always: int | None = None):
        """``fail_first``: the first requests answered ``fail_status`` (their bodies are
        counted in ``attempts`` but not ``received``); ``always``: answer every request with
        this status instead."""
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.always = always
        self.attempts = 0
        # Requests that reached the handler, answered or still held at the gate.
        self.arrived = 0
        self.received: list[dict[str, Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self._changed = threading.Condition()
        self.url = ""

    def answer(self, body: bytes) -> int:
        with self._changed:
            self.arrived += 1
            self._changed.notify_all()
        self.gate.wait(30)
        with self._changed:
            self.attempts += 1
            if self.always is not None:
                status = self.always
            elif self.attempts <= self.fail_first:
                status = self.fail_status
            else:
                status = 204
                self.received.append(json.loads(body))
            self._changed.notify_all()
            return status

    def wait_for(
        self, *, received: int = 0, attempts: int = 0, arrived: int = 0, timeout: float = 30
    ) -> None:
        """Return once at least ``received`` bodies were accepted, ``attempts`` requests
        answered and ``arrived`` requests reached the handler; AssertionError after
        ``timeout`` seconds (a deadline, not a measurement)."""
        with self._changed:
            done = self._changed.wait_for(
                lambda: (
                    len(self.received) >= received
                    and self.attempts >= attempts
                    and self.arrived >= arrived
                ),
                timeout,
            )
        assert done, f"receiver: {self.attempts} attempts, {len(self.received)} received"


@contextlib.contextmanager
def running_receiver(receiver: Receiver) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            status = receiver.answer(body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield receiver
    finally:
        receiver.gate.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
