"""Logs onto a disk that fills up: SQLite's writes to the spool then fail with EFBIG.

    python tests/helpers/full_disk_child.py SERVER_URL SPOOL_DIR BEFORE AFTER

The server is down while this logs. BEFORE records go to the spool; then RLIMIT_FSIZE is set
to the current size of the spool's WAL, so no spool file can grow any more (SIGXFSZ is
ignored, so a write past the limit fails with EFBIG instead of killing the process), and AFTER
more records are logged. It prints {"raised": n, "stats": ...}, waits for a line on stdin
(the parent starts the server meanwhile), calls flush() and prints {"flushed": bool, ...}.

The client's ``sleep=`` seam replaces the sender's backoff wait, which also checkpoints the
WAL; without that checkpoint the WAL cannot be recycled, so what happens when the disk is full
no longer depends on whether a checkpoint happened to run just before (with the default
sleep the outcome is the same in most runs, not all).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

from log_collector import AsyncLogClient  # noqa: E402 - after the signal setup


def main() -> int:
    server_url, spool_dir = sys.argv[1], sys.argv[2]
    before, after = int(sys.argv[3]), int(sys.argv[4])
    client = AsyncLogClient(
        server_url,
        service="full-disk",
        spool_dir=spool_dir,
        max_backoff=0.2,
        sleep=lambda seconds: time.sleep(min(seconds, 0.05)),
    )
    raised = 0
    for i in range(before + after):
        if i == before:
            limit = os.path.getsize(f"{client.spool_path}-wal")
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        try:
            client.info("record on a filling disk", seq=i, payload="x" * 200)
        except Exception:
            raised += 1
    print(json.dumps({"raised": raised, "stats": client.stats()}), flush=True)
    sys.stdin.readline()
    flushed = client.flush(timeout=15.0)
    print(json.dumps({"flushed": flushed, "stats": client.stats()}), flush=True)
    client.close(timeout=2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
