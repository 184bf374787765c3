"""A process that logs and prints, after each log call RETURNED, the record's index.

The parent kills it at any moment; every index printed on a complete line is a record whose
log call returned, so it must reach the server eventually.

    python tests/helpers/log_child.py SERVER_URL SPOOL_DIR [--count N] [--run ID]
        [--then exit|os_exit|hang] [--close-first]

--count 0 (the default) logs until killed. After the last record: `exit` returns normally
(atexit closes the client), `os_exit` leaves without atexit (a crashed worker that did not
flush), `hang` prints "done" and waits to be killed. --close-first closes the client before
logging: those log calls must not raise and their records must still land in a spool file.
Each record carries `run` (the --run ID) and `seq` (the index).
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import sys

from log_collector import AsyncLogClient


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("server_url")
    parser.add_argument("spool_dir")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--run", default="run")
    parser.add_argument("--then", choices=("exit", "os_exit", "hang"), default="exit")
    parser.add_argument("--close-first", action="store_true")
    args = parser.parse_args()

    client = AsyncLogClient(
        args.server_url,
        service="crash-child",
        spool_dir=args.spool_dir,
        max_backoff=0.2,
        close_timeout=2.0,
    )
    if args.close_first:
        client.close(timeout=1.0)
    indexes = range(args.count) if args.count else itertools.count()
    out = sys.stdout
    for i in indexes:
        client.info("child record", run=args.run, seq=i, payload="x" * 100)
        out.write(f"{i}\n")
        out.flush()
    if args.then == "os_exit":
        os._exit(0)
    if args.then == "hang":
        out.write("done\n")
        out.flush()
        signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
