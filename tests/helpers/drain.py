"""The process started after a crash: a client on the same spool directory that logs nothing
and calls flush(), so what orphaned spool files hold must be adopted and delivered.

    python tests/helpers/drain.py SERVER_URL SPOOL_DIR [--timeout T] [--api-key KEY]

Prints one JSON line: {"flushed": bool, "stats": client.stats() before close, "errors": [...]}.
Exit status 0 when flush() returned True.
"""

from __future__ import annotations

import argparse
import json
import sys

from log_collector import AsyncLogClient


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("server_url")
    parser.add_argument("spool_dir")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--api-key")
    args = parser.parse_args()

    client = AsyncLogClient(
        args.server_url,
        service="drain",
        spool_dir=args.spool_dir,
        api_key=args.api_key,
        max_backoff=0.2,
    )
    errors = []
    try:
        for _ in range(3):
            # flush() can raise while the sender closes an adopted spool it drained (a race
            # in AsyncLogClient.flush; tests/test_crash.py keeps an xfail test for it). The
            # crash tests are about records, not that race: report it and flush again.
            try:
                flushed = client.flush(timeout=args.timeout)
                break
            except Exception as exc:
                errors.append(repr(exc))
        else:
            flushed = False
        stats = client.stats()
    finally:
        client.close(timeout=2.0)
    print(json.dumps({"flushed": flushed, "stats": stats, "errors": errors}), flush=True)
    return 0 if flushed else 1


if __name__ == "__main__":
    sys.exit(main())
