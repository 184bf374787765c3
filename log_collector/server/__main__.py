"""``python -m log_collector.server --db URL --port N``: run the ingest server."""

from __future__ import annotations

import argparse
import sys

from . import DEFAULT_DB_URL, StoreUnavailable, serve
from .connections import ConnectionLimits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m log_collector.server",
        description="Run the log-collector ingest server.",
        epilog="example: python -m log_collector.server --db sqlite:///./logs.db --port 8000",
    )
    parser.add_argument("--db", default=DEFAULT_DB_URL, help=f"database URL ({DEFAULT_DB_URL})")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-access-log", action="store_true")
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=ConnectionLimits.header_timeout,
        help="seconds a connection has to send a request's headers (then closed)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=ConnectionLimits.max_connections,
        help="open connections at most (lowered to fit the open-files limit)",
    )
    args = parser.parse_args(argv)
    try:
        connections = ConnectionLimits(args.header_timeout, args.max_connections)
        serve(
            args.db,
            args.host,
            args.port,
            connections=connections,
            workers=args.workers,
            log_level=args.log_level,
            access_log=not args.no_access_log,
        )
    except (StoreUnavailable, ValueError) as exc:
        print(f"log-collector server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
