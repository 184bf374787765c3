"""A real HTTP ingest server on 127.0.0.1 that client tests can script.

It speaks the ingest server's wire protocol (POST /logs, gzip, the 200 answer with accepted /
duplicates / rejected; docs/architecture.md says what each answer means) and can be told to
fail in the ways the sender must classify: scripted answers (500, 429 or 503 with Retry-After,
...), an ack lost on the wire, a slow answer, 413 for too many records, 400 for a poisoned
batch, 500 for any batch holding a record that crashes it, per-record rejections, 401,
something that is not a log-collector server (a redirect with a Location, a 200 HTML page), and
a server that is down (stop() closes the socket, so connections are refused).

In tests:   ``from receiver import Receiver`` (tests/conftest.py puts tests/ on sys.path).
In scripts: ``sys.path.insert(0, "tests")`` first, or run it as its own process:
``python tests/receiver.py --port N`` prints its URL and serves until SIGTERM or SIGINT, then
prints a JSON summary line (GET /stats gives the same numbers while it runs).
"""

from __future__ import annotations

import argparse
import collections
import errno
import gzip
import json
import random
import signal
import socket
import sys
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Receiver", "RequestInfo"]

HOST = "127.0.0.1"

# Ports picked for port=0 come from here, below the kernel's ephemeral range (Linux default
# 32768-60999, IANA 49152-65535). While the receiver is stopped, a client retrying
# 127.0.0.1:P could otherwise be given P as its own local port and connect to itself (TCP
# simultaneous open), so a "server down" test would see a connection instead of a refusal.
_AUTO_PORTS = range(20000, 32768)

LOGIN_PAGE = b"<!doctype html><html><body><form method=post>Sign in</form></body></html>"

# How often serve_forever() checks for shutdown(); it bounds how long stop() takes.
_POLL_INTERVAL = 0.05
# How long stop() waits for handler threads once their sockets are shut down.
_STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class RequestInfo:
    """One request as the receiver saw it and answered it."""

    method: str
    path: str
    headers: dict[str, str]
    n_records: int
    gzip: bool
    status: int | None  # None when no answer was sent (dropped)
    dropped: bool
    body_size: int = 0  # bytes on the wire, before gunzip

    def header(self, name: str) -> str | None:
        """The header's value, looked up case-insensitively."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass(frozen=True)
class _Fail:
    status: int
    retry_after: float | None
    body: str


@dataclass(frozen=True)
class _Raw:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _DropAfterStore:
    pass


@dataclass(frozen=True)
class _Delay:
    seconds: float


_Fault = _Fail | _Raw | _DropAfterStore | _Delay


@dataclass
class _Answer:
    status: int | None  # None: close the connection without answering
    payload: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    n_records: int = 0
    gzip: bool = False
    raw: bytes | None = None  # sent as is instead of the JSON payload


class _BadRequest(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Receiver:
    """The stand-in ingest server. Attributes may be read and the rules set from any thread."""

    def __init__(self, port: int = 0) -> None:
        self.host = HOST
        self.port = port or _pick_port()
        self.url = f"http://{HOST}:{self.port}"

        # Standing rules; set them before the requests they should affect.
        self.max_records_per_request: int | None = None
        self.reject_batch_if: Callable[[dict], bool] | None = None
        # 500 for the whole batch (nothing stored) when any record matches: a record that
        # makes the server's application fail, while batches without one are stored.
        self.crash_batch_if: Callable[[dict], bool] | None = None
        # A truthy str return value becomes the rejection reason.
        self.reject_record_if: Callable[[dict], bool | str] | None = None
        self.require_api_key: str | None = None
        self.legacy_ack = False

        # Distinct records in arrival order: the first delivery of each event_id, and every
        # record without one.
        self.records: list[dict] = []
        # Deliveries per stored event_id (first one plus redeliveries); > 1 means redelivered.
        self.event_ids: collections.Counter[str] = collections.Counter()
        self.duplicates = 0  # redeliveries answered as duplicates, not stored again
        self.rejected_records: list[dict] = []  # refused one by one through reject_record_if
        self.requests: list[RequestInfo] = []
        self.errors: list[str] = []  # unexpected exceptions in handlers (a test bug, usually)

        # Reentrant so that wait_until() predicates may call count(), faults_pending, ...
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._faults: collections.deque[_Fault] = collections.deque()
        self._stored_ids: set[str] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle.

    def start(self) -> Receiver:
        """Listen on the receiver's port (the same one after a stop()); a no-op when running."""
        if self._server is not None:
            return self
        self._server = _Server((HOST, self.port), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"receiver:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down like a crashed server: refuse new connections, cut the open ones.

        Requests in flight (a delayed one, say) are abandoned unanswered and store nothing.
        """
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.cut_connections(_STOP_TIMEOUT)
        thread.join(_STOP_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Reading what arrived.

    def count(self) -> int:
        """How many distinct records are stored."""
        with self._lock:
            return len(self.records)

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until at least n records are stored; False if the timeout passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.records) >= n, timeout)

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until at least n requests were handled (answered or dropped)."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.requests) >= n, timeout)

    def wait_until(self, predicate: Callable[[Receiver], bool], timeout: float = 10.0) -> bool:
        """Wait until predicate(receiver) holds; it is re-checked whenever a record or request
        arrives or a scripted fault is consumed. False if the timeout passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def stats(self) -> dict[str, int]:
        """Counts for a receiver in another process (GET /stats and the exit summary)."""
        with self._lock:
            return {
                "total_logs": len(self.records),
                "duplicates": self.duplicates,
                "rejected": len(self.rejected_records),
                "requests": len(self.requests),
                "redelivered_event_ids": sum(1 for c in self.event_ids.values() if c > 1),
            }

    # Scripted faults: a FIFO consumed one per POST /logs, in order.

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        retry_after: float | None = None,
        body: str = "scripted failure",
    ) -> None:
        """Answer the next n batches with `status` (and Retry-After, in seconds) storing nothing.

        A fractional retry_after is sent as is ("0.1"); RFC 9110 allows only whole seconds,
        but it keeps throttling tests fast.
        """
        self._script(_Fail(status, retry_after, body), n)

    def answer_next(
        self,
        n: int = 1,
        status: int = 200,
        body: bytes | str = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next n batches with exactly this status, body and headers, storing
        nothing: what a proxy, a login page or a redirect in front of the server sends."""
        raw = body.encode() if isinstance(body, str) else body
        self._script(_Raw(status, raw, tuple((headers or {}).items())), n)

    def drop_after_store_next(self, n: int = 1) -> None:
        """Store the next n batches, then close the connection unanswered: the ack is lost."""
        self._script(_DropAfterStore(), n)

    def delay_next(self, seconds: float, n: int = 1) -> None:
        """Hold the next n batches for `seconds`, then store and answer them as usual.

        If the client timed out meanwhile, the batch is stored all the same (the server did its
        work; only the answer is lost), which is what a real slow server does.
        """
        self._script(_Delay(seconds), n)

    @property
    def faults_pending(self) -> int:
        """Scripted faults not yet consumed."""
        with self._lock:
            return len(self._faults)

    def clear_faults(self) -> None:
        """Forget the scripted faults not yet consumed: the next requests are answered normally."""
        with self._lock:
            self._faults.clear()

    def _script(self, fault: _Fault, n: int) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        with self._lock:
            self._faults.extend([fault] * n)

    def _next_fault(self) -> _Fault | None:
        with self._changed:
            self._changed.notify_all()
            return self._faults.popleft() if self._faults else None

    # Handling POST /logs (called from handler threads).

    def _ingest(self, headers: dict[str, str], body: bytes, fault: _Fault | None) -> _Answer:
        is_gzip = _header(headers, "Content-Encoding").strip().lower() == "gzip"
        if isinstance(fault, _Raw):
            answer = _Answer(fault.status, headers=dict(fault.headers), raw=fault.body)
            answer.gzip = is_gzip
            try:
                answer.n_records = len(_decode(headers, body))
            except _BadRequest:
                pass
            return answer
        if isinstance(fault, _Fail):
            answer = _Answer(fault.status, {"detail": fault.body}, gzip=is_gzip)
            try:
                answer.n_records = len(_decode(headers, body))  # for the test's RequestInfo
            except _BadRequest:
                pass
            if fault.retry_after is not None:
                answer.headers["Retry-After"] = f"{fault.retry_after:g}"
            return answer
        logs: list[dict] = []
        try:
            self._check_key(headers)
            logs = _decode(headers, body)
            self._check_batch(logs)
        except _BadRequest as bad:
            return _Answer(bad.status, {"detail": bad.detail}, n_records=len(logs), gzip=is_gzip)
        stored = self._store(logs)
        if self.legacy_ack:
            stored = {"status": "ok", "count": len(logs)}
        return _Answer(200, stored, n_records=len(logs), gzip=is_gzip)

    def _check_key(self, headers: dict[str, str]) -> None:
        key = self.require_api_key
        if key is not None and _header(headers, "Authorization") != f"Bearer {key}":
            raise _BadRequest(401, "missing or invalid API key")

    def _check_batch(self, logs: list[dict]) -> None:
        limit = self.max_records_per_request
        if limit is not None and len(logs) > limit:
            raise _BadRequest(413, f"too many records: {len(logs)} > {limit}")
        poisoned = self.reject_batch_if
        if poisoned is not None:
            for i, record in enumerate(logs):
                if poisoned(record):
                    raise _BadRequest(400, f"invalid record at index {i}; batch refused")
        crash = self.crash_batch_if
        if crash is not None and any(crash(record) for record in logs):
            raise _BadRequest(500, "Internal Server Error")

    def _store(self, logs: list[dict]) -> dict[str, Any]:
        verdicts = [self._verdict(record) for record in logs]
        accepted = duplicates = 0
        rejected = []
        with self._changed:
            for i, (record, reason) in enumerate(zip(logs, verdicts, strict=True)):
                if reason:
                    rejected.append({"index": i, "reason": reason})
                    self.rejected_records.append(record)
                    continue
                event_id = record.get("event_id")
                if event_id is not None:
                    self.event_ids[event_id] += 1
                    if event_id in self._stored_ids:
                        duplicates += 1
                        continue
                    self._stored_ids.add(event_id)
                self.records.append(record)
                accepted += 1
            self.duplicates += duplicates
            self._changed.notify_all()
        return {
            "status": "ok",
            "count": len(logs),
            "accepted": accepted,
            "duplicates": duplicates,
            "rejected": rejected,
        }

    def _verdict(self, record: dict) -> str:
        """Why this record is refused on its own, or "" when it is not."""
        if not isinstance(record.get("event_id", ""), str):
            return "event_id must be a string"
        rule = self.reject_record_if
        verdict = rule(record) if rule is not None else False
        if isinstance(verdict, str):
            return verdict
        return "rejected by reject_record_if" if verdict else ""

    def _log_request(self, info: RequestInfo) -> None:
        with self._changed:
            self.requests.append(info)
            self._changed.notify_all()


def _decode(headers: dict[str, str], body: bytes) -> list[dict]:
    encoding = _header(headers, "Content-Encoding").strip().lower()
    if encoding == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:
            raise _BadRequest(400, f"bad gzip body: {exc}") from None
    elif encoding not in ("", "identity"):
        raise _BadRequest(415, f"unsupported Content-Encoding: {encoding}")
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise _BadRequest(400, f"bad JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("logs"), list):
        raise _BadRequest(400, 'body must be {"logs": [...]}')
    logs = document["logs"]
    for i, record in enumerate(logs):
        if not isinstance(record, dict):
            raise _BadRequest(400, f"logs[{i}] is not a JSON object")
    return logs


def _header(headers: dict[str, str], name: str) -> str:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), "")


def _pick_port() -> int:
    for _ in range(100):
        port = random.choice(_AUTO_PORTS)
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
        return port
    raise RuntimeError(f"no free port in {_AUTO_PORTS}")


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that can cut its open connections, as a crashing server would.

    server_close() only closes the listening socket; a client's kept-alive connection would
    still be served by its handler thread, so stop() also shuts those sockets down.
    """

    daemon_threads = True  # a test that forgets stop() must not hang the interpreter at exit

    def __init__(self, address: tuple[str, int], handler: type, receiver: Receiver) -> None:
        self.receiver = receiver
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._idle = threading.Condition()
        super().__init__(address, handler)  # HTTPServer sets SO_REUSEADDR before bind

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._idle:
            self._connections.add(request)
            if self.stopping.is_set():
                _shut(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._idle:
                self._connections.discard(request)
                self._idle.notify_all()

    def cut_connections(self, timeout: float) -> None:
        with self._idle:
            for connection in self._connections:
                _shut(connection)
            self._idle.wait_for(lambda: not self._connections, timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exception()
        if isinstance(exc, OSError):  # the client went away, or stop() cut the connection
            return
        self.receiver.errors.append(repr(exc))
        super().handle_error(request, client_address)


def _shut(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real server behind uvicorn
    server_version = "log-receiver"
    sys_version = ""
    # The answer goes out as two writes (headers, then the body). With Nagle's algorithm on, the
    # body waits for the client's delayed ACK of the headers (Linux delays an ACK up to 40 ms),
    # so every request would pay that wait. Real servers (uvicorn) set TCP_NODELAY too.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/":
            answer = _Answer(200, {"status": "ok", "service": "log-server"})
        elif path == "/healthz":
            answer = _Answer(200, {"status": "ok"})
        elif path == "/login":  # where a redirect in front of the server may lead
            answer = _Answer(200, headers={"Content-Type": "text/html"}, raw=LOGIN_PAGE)
        elif path == "/stats":
            answer = _Answer(200, self.server.receiver.stats())
        else:
            answer = _Answer(404, {"detail": f"no route {path}"})
        self._finish(answer, body_size=0)

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if urlsplit(self.path).path != "/logs":
            self._finish(_Answer(404, {"detail": f"no route {self.path}"}), len(body))
            return
        fault = receiver._next_fault()
        if isinstance(fault, _Delay) and self.server.stopping.wait(fault.seconds):
            self._finish(_Answer(None), len(body))  # stop() came first: the server "crashed"
            return
        answer = receiver._ingest(dict(self.headers.items()), body, fault)
        if isinstance(fault, _DropAfterStore):
            answer.status = None
        self._finish(answer, len(body))

    def _finish(self, answer: _Answer, body_size: int) -> None:
        """Log the request, then answer it; logged first so a client never sees an answer
        before the test can see the request."""
        self.server.receiver._log_request(
            RequestInfo(
                method=self.command,
                path=self.path,
                headers=dict(self.headers.items()),
                n_records=answer.n_records,
                gzip=answer.gzip,
                status=answer.status,
                dropped=answer.status is None,
                body_size=body_size,
            )
        )
        if answer.status is None:
            self.close_connection = True  # the socket closes with nothing written
            return
        payload = json.dumps(answer.payload).encode() if answer.raw is None else answer.raw
        self.send_response(answer.status)
        if answer.raw is None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one stderr line per request would bury the test output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Stand-in log ingest server for tests and benchmarks.",
        epilog="example: python tests/receiver.py --port 18080",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--api-key", help="answer 401 unless Authorization: Bearer KEY")
    parser.add_argument("--max-records", type=int, help="answer 413 above this many records")
    parser.add_argument("--legacy-ack", action="store_true", help='answer {"status", "count"}')
    args = parser.parse_args(argv)

    receiver = Receiver(args.port)
    receiver.require_api_key = args.api_key
    receiver.max_records_per_request = args.max_records
    receiver.legacy_ack = args.legacy_ack

    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    with receiver:
        print(receiver.url, flush=True)
        done.wait()
    print(json.dumps(receiver.stats()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
