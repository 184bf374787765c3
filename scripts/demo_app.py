"""The demo's application: logs records from several threads through AsyncLogClient.

    python scripts/demo_app.py URL SPOOL_DIR START0,START1,... COUNT_PER_THREAD

Thread t logs records seq START_t .. COUNT-1, each with fields thread=t and
seq=i, and writes "t i" to stdout (unbuffered) after each log call RETURNED:
the parent knows exactly which records the app was promised durability for.
At the end it flushes and closes.

Each record is also the request that processed the order: ``method``, ``path`` and
``duration_ms`` (a long-tailed latency around the endpoint's typical one), drawn from
(thread, seq) alone, so a record run 2 logs again is the same request, and the dashboard's
Overview has slowest endpoints to show (``make ui``).
"""

from __future__ import annotations

import os
import random
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from log_collector import AsyncLogClient  # noqa: E402

LEVELS = ["INFO"] * 6 + ["DEBUG", "DEBUG", "WARN", "ERROR"]
# (method, path, typical milliseconds), repeated by how often the app serves them.
ENDPOINTS = [
    *[("GET", "/api/orders", 18.0)] * 4,
    *[("GET", "/api/orders/{id}", 6.0)] * 3,
    ("POST", "/api/orders", 45.0),
    ("POST", "/api/payments", 220.0),
    ("GET", "/api/reports/daily", 650.0),
]


def request_of(thread: int, seq: int) -> dict[str, object]:
    """The method, path and duration_ms of the request that logged record (thread, seq)."""
    rnd = random.Random(thread * 1_000_003 + seq)
    method, path, typical_ms = rnd.choice(ENDPOINTS)
    return {
        "method": method,
        "path": path,
        "duration_ms": round(typical_ms * rnd.lognormvariate(0, 0.6), 1),
    }


def work(client: AsyncLogClient, thread: int, start: int, count: int) -> None:
    for i in range(start, count):
        level = LEVELS[i % len(LEVELS)]
        client.log(
            level,
            f"order {i} processed",
            thread=thread,
            seq=i,
            order_id=thread * count + i,
            **request_of(thread, i),
        )
        os.write(1, f"{thread} {i}\n".encode())


def main() -> None:
    url, spool_dir, starts, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    client = AsyncLogClient(url, service="demo-app", spool_dir=spool_dir, flush_interval=0.2)
    threads = [
        threading.Thread(target=work, args=(client, t, int(start), count))
        for t, start in enumerate(starts.split(","))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    delivered = client.flush(timeout=120)
    client.close()
    os.write(1, f"flushed {delivered}\n".encode())


if __name__ == "__main__":
    main()
