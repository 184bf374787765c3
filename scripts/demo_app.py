"""The demo's application: logs records from several threads through AsyncLogClient.

    python scripts/demo_app.py URL SPOOL_DIR START0,START1,... COUNT_PER_THREAD

Thread t logs records seq START_t .. COUNT-1, each with fields thread=t and
seq=i, and writes "t i" to stdout (unbuffered) after each log call RETURNED:
the parent knows exactly which records the app was promised durability for.
At the end it flushes and closes.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from log_collector import AsyncLogClient  # noqa: E402

LEVELS = ["INFO"] * 6 + ["DEBUG", "DEBUG", "WARN", "ERROR"]


def work(client: AsyncLogClient, thread: int, start: int, count: int) -> None:
    for i in range(start, count):
        level = LEVELS[i % len(LEVELS)]
        client.log(level, f"order {i} processed", thread=thread, seq=i, order_id=thread * count + i)
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
