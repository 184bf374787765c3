"""An acknowledgement lost on the wire produces no duplicate (docs/architecture.md, the rules).

A fault-injecting TCP proxy on 127.0.0.1 forwards each request to a real
server, reads the whole response (so the server has committed), then drops
the client's connection instead of passing the response on. The client,
having heard nothing, sends the same batch again.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from urllib.parse import urlsplit

import pytest
import requests
from server_helpers import gzip_json, record, stored_rows


def read_http_message(sock: socket.socket) -> bytes | None:
    """One HTTP/1.1 request or response with a Content-Length body; None at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


class AckDroppingProxy:
    """Passes requests to ``upstream``; swallows the first ``drop`` responses and
    resets the client's connection in their place."""

    def __init__(self, upstream: tuple[str, int], drop: int):
        self.upstream = upstream
        self.drop = drop
        self.dropped = 0
        self.forwarded = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.upstream) as upstream:
            while (request := read_http_message(client)) is not None:
                upstream.sendall(request)
                response = read_http_message(upstream)
                assert response is not None
                with self._lock:
                    self.forwarded += 1
                    lose_it = self.dropped < self.drop
                    self.dropped += lose_it
                if lose_it:
                    # SO_LINGER 0: close with a reset, as a crashed middlebox would.
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                client.sendall(response)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def proxy(server_url):
    parts = urlsplit(server_url)
    proxy = AckDroppingProxy((parts.hostname, parts.port), drop=2)
    yield proxy
    proxy.close()


def post_until_acknowledged(url: str, body: bytes, attempts: int = 5) -> requests.Response:
    """What a client does: send, and on a lost answer send the same batch again."""
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with requests.Session() as session:
        for _ in range(attempts):
            try:
                return session.post(f"{url}/logs", data=body, headers=headers, timeout=30)
            except requests.ConnectionError:
                continue
    raise AssertionError(f"no answer after {attempts} attempts")


def test_a_batch_whose_ack_is_lost_twice_is_stored_exactly_once(proxy, db_url):
    logs = [record(f"event {i}") for i in range(100)]
    response = post_until_acknowledged(proxy.url, gzip_json({"logs": logs}))
    assert (2, 3) == (proxy.dropped, proxy.forwarded)
    # The first attempt stored everything; the answer the client finally got
    # says the retry found every record already there.
    assert {"status": "ok", "count": 100, "accepted": 0, "duplicates": 100, "rejected": []} == (
        response.json()
    )
    rows = stored_rows(db_url)
    assert Counter(r["event_id"] for r in logs) == Counter(r["event_id"] for r in rows)
    assert [f"event {i}" for i in range(100)] == [r["message"] for r in rows]
