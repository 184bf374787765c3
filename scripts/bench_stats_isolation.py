"""Ingest rate with and without /stats readers, in the same run, on one server.

A real server (``python -m log_collector.server``, its own process) on
127.0.0.1; posters send gzip'd batches of 1,000 records for ``--seconds``,
first alone, then while ``--stats-readers`` processes call GET /healthz in a
loop (the floor: what the readers' own CPU takes from ingest on this machine),
then while they call GET /stats. Reads have their own connections (Store.reading) and /stats is
computed at most once per few seconds, so the second rate should stay at
least half the first (the acceptance of "reads never starve ingest").

    .venv/bin/python scripts/bench_stats_isolation.py --db postgresql://postgres@127.0.0.1/x
    .venv/bin/python scripts/bench_stats_isolation.py --db sqlite:////tmp/x.db --stats-readers 8
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import socket
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

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


def _read(url: str, seconds: float, answered: Any) -> None:
    """GET ``url`` in a loop for ``seconds``; count the 200s in ``answered``."""
    deadline = time.monotonic() + seconds
    count = 0
    with requests.Session() as session:
        while time.monotonic() < deadline:
            if session.get(url, timeout=60).status_code == 200:
                count += 1
    with answered.get_lock():
        answered.value += count


def _ingest(
    url: str, seconds: float, posters: int, readers: int, run: int, path: str = "/stats"
) -> tuple[float, int]:
    """Records stored per second over ``seconds`` while ``readers`` processes GET ``path``,
    and the reads answered."""
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

    # The readers run in a process of their own: as threads here they would take the GIL
    # from the posters, and the figure would measure this script, not the server.
    readers_done = multiprocessing.Value("i", 0)
    reading = [
        multiprocessing.Process(target=_read, args=(f"{url}{path}", seconds, readers_done))
        for _ in range(readers)
    ]
    threads = [threading.Thread(target=post, args=(i,)) for i in range(posters)]
    started = time.monotonic()
    for process in reading:
        process.start()
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(120)
    for process in reading:
        process.join(120)
    answered[0] = readers_done.value
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
        floor, _ = _ingest(url, args.seconds, args.posters, args.stats_readers, 2, "/healthz")
        shared, answered = _ingest(url, args.seconds, args.posters, args.stats_readers, 3)
    finally:
        server.terminate()
        server.wait(30)
    print(f"ingest alone (records/s): {alone:.0f}")
    print(
        f"floor: ingest with {args.stats_readers} /healthz readers (records/s): {floor:.0f} "
        f"({floor / alone:.0%} of alone): the CPU the readers themselves take on this machine"
    )
    print(
        f"ingest with {args.stats_readers} /stats readers (records/s): {shared:.0f} "
        f"({shared / alone:.0%} of alone)"
    )
    print(f"/stats answered: {answered}")
    verdict = "met" if shared >= alone / 2 else "NOT MET"
    print(f"budget (with /stats readers >= half the rate alone): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
