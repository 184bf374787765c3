"""The in-flight byte budget (Limits.max_inflight_bytes): bodies are counted before
they are read, past the budget a request gets 503 with Retry-After without its
body being read, and the client's retry is stored. Real servers on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from server_helpers import closed_port, record, stored_messages

from log_collector.server import Limits, create_app

BUDGET = Limits(max_body_bytes=100_000, max_inflight_bytes=150_000)


def body_of(message: str, size: int) -> bytes:
    """A one-record body of exactly ``size`` bytes."""
    head = json.dumps({"logs": [record(message, pad="")]}).encode()
    return head.replace(b'"pad": ""', b'"pad": "' + b"x" * (size - len(head)) + b'"')


def start_upload(url: str, body: bytes, sent: int) -> socket.socket:
    """A POST whose headers and first ``sent`` body bytes are out; the rest is held back."""
    port = int(url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:sent]
    )
    return sock


def finish_upload(sock: socket.socket, body: bytes, sent: int) -> bytes:
    sock.sendall(body[sent:])
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    return answer


def test_past_the_budget_a_post_gets_503_retry_after_and_its_retry_is_stored(sqlite_url, serve):
    url = serve(create_app(sqlite_url, limits=BUDGET))
    held = body_of("held", 90_000)
    upload = start_upload(url, held, 10)  # 90,000 of 150,000 bytes taken
    time.sleep(0.2)
    late = body_of("late", 90_000)
    busy = requests.post(
        f"{url}/logs", data=late, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert (503, "1") == (busy.status_code, busy.headers["Retry-After"])
    assert busy.json()["detail"].startswith("server is busy receiving other bodies")
    assert b"HTTP/1.1 200" in finish_upload(upload, held, 10)
    upload.close()
    retry = requests.post(
        f"{url}/logs", data=late, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert 200 == retry.status_code
    assert ["held", "late"] == stored_messages(sqlite_url)


def test_a_chunked_body_is_counted_as_it_streams_in(sqlite_url, serve):
    url = serve(create_app(sqlite_url, limits=BUDGET))
    held = body_of("held", 90_000)
    upload = start_upload(url, held, 10)
    time.sleep(0.2)
    late = body_of("late", 90_000)

    def chunks():
        for start in range(0, len(late), 10_000):
            yield late[start : start + 10_000]

    busy = requests.post(
        f"{url}/logs", data=chunks(), headers={"Content-Type": "application/json"}, timeout=10
    )
    assert 503 == busy.status_code
    assert b"HTTP/1.1 200" in finish_upload(upload, held, 10)
    upload.close()
    small = requests.post(
        f"{url}/logs", data=chunks(), headers={"Content-Type": "application/json"}, timeout=10
    )
    assert 200 == small.status_code
    assert ["held", "late"] == stored_messages(sqlite_url)


def test_the_budget_holds_at_least_one_body_of_the_largest_size():
    with pytest.raises(ValueError, match="max_inflight_bytes must be at least"):
        Limits(max_body_bytes=100, max_inflight_bytes=99)


def _rss_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.mark.slow
def test_300_concurrent_large_bodies_are_held_to_the_in_flight_budget(tmp_path):
    """300 connections each sending 9.9 MB at once to a real server process
    (default limits: 64 MiB in flight): its peak RSS grows by well under a
    GB, RSS falls back after they are answered, and every answer is a 200 or
    a 503 with Retry-After, so a client retries and nothing is lost."""
    db_url = f"sqlite:///{tmp_path}/logs.db"
    port = closed_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "log_collector.server", "--db", db_url, "--port", str(port)]
        + ["--log-level", "warning", "--no-access-log"],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        before = _rss_kib(process.pid, "VmRSS")
        body = body_of("big", 9_900_000)
        statuses: list[int] = []
        lock = threading.Lock()

        def send() -> None:
            try:
                status = requests.post(
                    f"{url}/logs",
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=120,
                ).status_code
            except requests.ConnectionError:
                status = 0
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=send) for _ in range(300)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        peak = _rss_kib(process.pid, "VmHWM")
        after = _rss_kib(process.pid, "VmRSS")
        print(f"RSS before {before} KiB, peak {peak} KiB, after {after} KiB; statuses", end=" ")
        print({s: statuses.count(s) for s in set(statuses)})
        assert set(statuses) <= {200, 503}
        assert statuses.count(200) >= 1
        assert peak - before < 700 * 1024
        assert after - before < 300 * 1024
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
