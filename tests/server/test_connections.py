"""Bounded connections (log_collector/server/connections.py): silent and trickling
connections are closed after the header timeout, open connections are capped
with the longest-waiting one closed first, and connection errors are logged
at a bounded rate. Real uvicorn servers on 127.0.0.1, real sockets."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest
import requests
from server_helpers import closed_port, record, running_server, stored_messages

from log_collector.server import create_app
from log_collector.server.connections import (
    RESERVED_FDS,
    ConnectionLimits,
    RateLimitedFilter,
    bounded_protocol,
    connection_cap,
)


def bounded_server(app: Any, limits: ConnectionLimits) -> contextlib.AbstractContextManager[str]:
    """uvicorn on a free port of 127.0.0.1 with the bounded protocol; yields its URL."""
    return running_server(app, http=bounded_protocol(limits), lifespan="auto")


def silent_socket(url: str) -> socket.socket:
    port = int(url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (end of stream, after whatever it
    still had to send) within the socket's timeout."""
    try:
        for _ in range(1000):
            if b"" == sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        pass
    return False


def still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1024) != b""
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False
    finally:
        sock.setblocking(True)


def test_silent_connections_are_closed_after_the_header_timeout_and_ingest_goes_on(sqlite_url):
    limits = ConnectionLimits(header_timeout=0.5)
    with bounded_server(create_app(sqlite_url), limits) as url:
        silent = [silent_socket(url) for _ in range(3)]
        response = requests.post(f"{url}/logs", json={"logs": [record("beside silence")]})
        assert 200 == response.status_code
        assert [True, True, True] == [closed_by_server(s) for s in silent]
    assert ["beside silence"] == stored_messages(sqlite_url)


def test_a_connection_trickling_its_headers_is_closed_after_the_header_timeout(sqlite_url):
    limits = ConnectionLimits(header_timeout=0.5)
    with bounded_server(create_app(sqlite_url), limits) as url:
        sock = silent_socket(url)
        head = b"POST /logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        sent = 0
        deadline = time.monotonic() + 10
        with pytest.raises(OSError):
            # A byte every 50 ms: each would have restarted uvicorn's keep-alive timer.
            while time.monotonic() < deadline:
                sock.sendall(head[sent % len(head) : sent % len(head) + 1])
                sent += 1
                time.sleep(0.05)
                if not still_open(sock):
                    raise ConnectionResetError("closed by the server")
        assert time.monotonic() < deadline


def test_a_keep_alive_connection_serves_requests_then_is_closed_when_silent(sqlite_url):
    """The deadline is re-armed after each response: a reused connection works,
    and an idle one is closed after the header timeout."""
    limits = ConnectionLimits(header_timeout=0.5)
    with bounded_server(create_app(sqlite_url), limits) as url:
        with requests.Session() as session:
            for i in range(3):
                response = session.post(f"{url}/logs", json={"logs": [record(str(i))]})
                assert 200 == response.status_code
        sock = silent_socket(url)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        assert closed_by_server(sock)
    assert ["0", "1", "2"] == stored_messages(sqlite_url)


def test_past_the_cap_the_longest_waiting_connection_makes_room_for_a_new_one(sqlite_url):
    limits = ConnectionLimits(header_timeout=60, max_connections=3)
    with bounded_server(create_app(sqlite_url), limits) as url:
        silent = [silent_socket(url) for _ in range(3)]
        time.sleep(0.2)  # all three made before the request below
        response = requests.post(f"{url}/logs", json={"logs": [record("past the cap")]})
        assert 200 == response.status_code
        assert closed_by_server(silent[0])
        assert [True, True] == [still_open(s) for s in silent[1:]]
    assert ["past the cap"] == stored_messages(sqlite_url)


def test_the_cap_leaves_descriptors_free_under_the_open_files_limit():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert min(10**9, soft - RESERVED_FDS) == connection_cap(10**9)
    assert 5 == connection_cap(5)


def test_the_rate_limited_filter_passes_one_of_a_kind_per_interval_and_counts_the_rest():
    now = [0.0]
    limiter = RateLimitedFilter(interval=60, clock=lambda: now[0])

    def passes(msg: str) -> bool:
        return limiter.filter(logging.LogRecord("asyncio", logging.ERROR, "", 0, msg, (), None))

    assert [True, False, False, True] == [
        passes("socket.accept() out of system resource\nsocket: <fd=6>"),
        passes("socket.accept() out of system resource\nsocket: <fd=6>"),
        passes("socket.accept() out of system resource\nsocket: <fd=7>"),
        passes("Invalid HTTP request received."),
    ]
    now[0] = 61.0
    later = logging.LogRecord(
        "asyncio", logging.ERROR, "", 0, "socket.accept() out of system resource", (), None
    )
    assert limiter.filter(later)
    assert later.getMessage().endswith("(2 more like this in the last 60 s were not logged)")


def _limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


@pytest.mark.slow
def test_1100_silent_sockets_under_ulimit_1024_leave_healthz_and_ingest_answering(tmp_path):
    """The acceptance form: a server process limited to 1,024 open files, 1,100
    silent sockets; /healthz and a POST still answer, the silent sockets are
    closed by the header timeout, and the server's log stays small."""
    db_url = f"sqlite:///{tmp_path}/logs.db"
    port = closed_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "log_collector.server",
                "--db",
                db_url,
                "--port",
                str(port),
                "--header-timeout",
                "3",
                "--no-access-log",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_limit_open_files,
        )
    url = f"http://127.0.0.1:{port}"
    sockets: list[socket.socket] = []
    # This process needs room for 1,100 sockets of its own.
    own_soft, own_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(own_hard, 4096), own_hard))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        for _ in range(1100):
            with contextlib.suppress(OSError):
                sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        answers = []
        for i in range(5):
            health = requests.get(f"{url}/healthz", timeout=10)
            post = requests.post(f"{url}/logs", json={"logs": [record(f"flood {i}")]}, timeout=10)
            answers.append((health.status_code, post.status_code))
            time.sleep(0.5)
        assert [(200, 200)] * 5 == answers
        server_fds = len(os.listdir(f"/proc/{process.pid}/fd"))
        assert server_fds < 1024
        time.sleep(4)  # past the header timeout
        assert 0 == sum(still_open(s) for s in sockets)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (own_soft, own_hard))
        for sock in sockets:
            sock.close()
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert [f"flood {i}" for i in range(5)] == stored_messages(db_url)
    assert log_path.stat().st_size < 64 * 1024, log_path.read_text()[:2000]
