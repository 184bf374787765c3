"""A fault-injecting HTTP proxy on 127.0.0.1, for scripts/chaos.py.

The clients talk to the proxy; the proxy forwards each request to the real
ingest server over a fresh connection, unless its current mode says otherwise:

    pass      forward the request, relay the answer
    error     answer 500 or 502 itself; the server never sees the batch
    throttle  answer 429 with Retry-After; the server never sees the batch
    slow      hold the request or the answer (chosen per request) past the
              client's timeout: the server may store a batch the client gave up on
    lose_ack  forward, let the server answer (it has committed), then reset the
              client's connection instead of relaying the answer

When the server is down, the proxy answers 502, as a real reverse proxy does.
Only HTTP/1.1 requests with a Content-Length body are understood (what the
client's requests.Session sends); anything else closes the connection.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import struct
import threading
from collections import Counter

HOST = "127.0.0.1"
MODES = ("pass", "error", "throttle", "slow", "lose_ack")
MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
# How long one client connection may sit idle between requests before we close it.
IDLE_TIMEOUT = 30.0
UPSTREAM_TIMEOUT = 30.0
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


def _read_request(conn: socket.socket, buffered: bytearray) -> tuple[bytes, bytes] | None:
    """(head, body) of the next request on ``conn``; None at EOF or on anything odd."""
    while b"\r\n\r\n" not in buffered:
        if len(buffered) > MAX_HEAD:
            return None
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffered += chunk
    end = buffered.index(b"\r\n\r\n")
    head = bytes(buffered[:end])
    del buffered[: end + 4]
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            return None
    if length > MAX_BODY:
        return None
    while len(buffered) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffered += chunk
    body = bytes(buffered[:length])
    del buffered[:length]
    return head, body


def _response(status: int, reason: str, body: bytes, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in HOP_BY_HOP]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _reset(conn: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed middlebox would."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class ChaosProxy:
    """Listens on 127.0.0.1:``port`` (0: any) and forwards to 127.0.0.1:``upstream_port``."""

    def __init__(self, upstream_port: int, *, slow_delay: float, port: int = 0, seed: int = 0):
        self.upstream_port = upstream_port
        self.slow_delay = slow_delay
        self.retry_after = 1
        self.mode = "pass"
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._conns: set[socket.socket] = set()
        self._listener = socket.create_server((HOST, port))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self._thread = threading.Thread(target=self._accept, name="chaos-proxy", daemon=True)
        self._thread.start()

    def set_mode(self, mode: str, *, retry_after: int = 1) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}")
        self.retry_after = retry_after
        self.mode = mode

    def close(self) -> None:
        """Stop accepting and cut every open connection; returns within a second."""
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(1.0)

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(IDLE_TIMEOUT)
        buffered = bytearray()
        try:
            while not self._closing.is_set():
                request = _read_request(conn, buffered)
                if request is None:
                    return
                if not self._answer(conn, *request):
                    return
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _answer(self, conn: socket.socket, head: bytes, body: bytes) -> bool:
        """Handle one request; False when the client connection must be closed."""
        mode = self.mode
        self._count(f"requests:{mode}")
        if mode == "error":
            status = self._rng.choice((500, 502))
            conn.sendall(_response(status, "Chaos", b'{"detail":"injected"}', []))
            return True
        if mode == "throttle":
            headers = [("Retry-After", str(self.retry_after))]
            conn.sendall(_response(429, "Too Many Requests", b'{"detail":"slow down"}', headers))
            return True
        hold_request = mode == "slow" and self._rng.random() < 0.5
        if hold_request:
            # The client gives up while we wait; the server still stores the batch
            # afterwards, racing the client's resend of it.
            self._closing.wait(self.slow_delay)
        answer = self._forward(head, body)
        if answer is None:
            self._count("upstream_down")
            conn.sendall(_response(502, "Bad Gateway", b'{"detail":"server down"}', []))
            return True
        if mode == "lose_ack":
            self._count("acks_lost")
            _reset(conn)
            return False
        if mode == "slow" and not hold_request:
            self._closing.wait(self.slow_delay)  # stored; the answer comes too late
        if mode == "slow":
            self._count("slowed")
        conn.sendall(answer)
        return True

    def _forward(self, head: bytes, body: bytes) -> bytes | None:
        """The server's whole answer to this request, or None if it could not be reached."""
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() not in HOP_BY_HOP:
                headers[name.strip()] = value.strip()
        upstream = http.client.HTTPConnection(HOST, self.upstream_port, timeout=UPSTREAM_TIMEOUT)
        try:
            upstream.request(method, target, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            self._count(f"forwarded:{response.status}")
            return _response(response.status, response.reason, data, response.getheaders())
        except (OSError, http.client.HTTPException):
            return None
        finally:
            upstream.close()
