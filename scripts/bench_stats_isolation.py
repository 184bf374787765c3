"""Ingest rate with and without /stats readers, in the same run, on one server.

A real server (``python -m log_collector.server``, its own process) on
127.0.0.1; posters send gzip'd batches of 1,000 records for ``--seconds``,
first alone, then while ``--stats-readers`` threads call GET /stats in a
loop. Reads have their own connections (Store.reading) and /stats is
computed at most once per few seconds, so the second rate should stay at
least half the first (the acceptance of "reads never starve ingest").

    .venv/bin/python scripts/bench_stats_isolation.py --db postgresql://postgres@127.0.0.1/x
    .venv/bin/python scripts/bench_stats_isolation.py --db sqlite:////tmp/x.db --stats-readers 8
"""

from __future__ import annotations

import argparse
import gzip
import json
import socket
import subprocess
import sys
import threading
import time
import uuid

import requests

BATCH = 1000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _body(run: int, n: int) -> bytes:
    logs = [
        {
            "event_id": str(uuid.uuid4()),
            "level": ("INFO", "WARN", "ERROR")[i % 3],
            "service": f"svc-{i % 7}",
            "message": f"run {run} batch {n} record {i}",
            "order_id": i,
        }
        for i in range(BATCH)
    ]
    return gzip.compress(json.dumps({"logs": logs}).encode(), 1)


def _ingest(url: str, seconds: float, posters: int, readers: int, run: int) -> tuple[float, int]:
    """Records stored per second over ``seconds``, and the /stats calls answered."""
    stop = threading.Event()
    stored = [0]
    answered = [0]
    lock = threading.Lock()
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    bodies = [_body(run, n) for n in range(posters * 4)]

    def post(index: int) -> None:
        with requests.Session() as session:
            n = index
            while not stop.is_set():
                body = bodies[n % len(bodies)] if run < 0 else _body(run, n)
                response = session.post(f"{url}/logs", data=body, headers=headers, timeout=60)
                if response.status_code == 200:
                    with lock:
                        stored[0] += response.json()["accepted"]
                n += posters

    def read() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                if session.get(f"{url}/stats", timeout=60).status_code == 200:
                    with lock:
                        answered[0] += 1

    threads = [threading.Thread(target=post, args=(i,)) for i in range(posters)]
    threads += [threading.Thread(target=read) for _ in range(readers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(120)
    return stored[0] / (time.monotonic() - started), answered[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="store URL (sqlite:///... or postgresql://...)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--posters", type=int, default=8)
    parser.add_argument("--stats-readers", type=int, default=8)
    args = parser.parse_args()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "log_collector.server", "--db", args.db, "--port", str(port)]
        + ["--log-level", "warning", "--no-access-log"]
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        alone, _ = _ingest(url, args.seconds, args.posters, 0, 1)
        shared, answered = _ingest(url, args.seconds, args.posters, args.stats_readers, 2)
    finally:
        server.terminate()
        server.wait(30)
    print(f"ingest alone (records/s): {alone:.0f}")
    print(f"ingest with {args.stats_readers} /stats readers (records/s): {shared:.0f}")
    print(f"/stats answered: {answered}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
