"""One of several processes that start on the same spool directory at the same moment.

    python tests/helpers/mp_contender.py SERVER_URL SPOOL_DIR

It imports the library, prints "ready", and waits for a line on stdin; then it makes a client
(which looks for orphaned spool files there and adopts those it can lock), logs one record,
calls flush() (which scans again and waits for what it adopted) and prints one JSON line:
{"pid", "flushed", "stats"}. Small batches keep a drain going over many requests, so that two
senders draining one file at once would show as event ids delivered twice.
"""

from __future__ import annotations

import json
import os
import sys

from log_collector import AsyncLogClient


def main() -> int:
    server_url, spool_dir = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    sys.stdin.readline()
    client = AsyncLogClient(
        server_url,
        service="contender",
        spool_dir=spool_dir,
        batch_size=50,
        max_backoff=0.2,
        close_timeout=5.0,
    )
    try:
        client.info("contender started", pid=os.getpid())
        flushed = client.flush(timeout=30.0)
        stats = client.stats()
    finally:
        client.close()
    print(json.dumps({"pid": os.getpid(), "flushed": flushed, "stats": stats}), flush=True)
    return 0 if flushed else 1


if __name__ == "__main__":
    sys.exit(main())
