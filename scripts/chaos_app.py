"""The application that scripts/chaos.py runs (and SIGKILLs, and restarts) as a client.

    python scripts/chaos_app.py --url URL --spool-dir DIR --client C --run R \\
        --starts S0,S1 [--rate N] [--clock-file F] [client options]

Thread t logs records seq S_t, S_t+1, ... with fields client=C, run=R,
thread=t, seq=i, at about N records a second, until stdin is closed (or says
"stop"). On stdout, unbuffered, one line each:

    spool PATH          once, the spool file this process writes
    R t i               after the log call for (t, i) RETURNED: the driver knows
                        exactly which records were promised durability
    stats {...}         at a clean exit: client.stats() after the final flush
    flushed True|False  then close()

The clock is the client's ``clock=`` seam: real time plus an offset in
seconds that the driver writes to --clock-file (a clock jump).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

# A write past RLIMIT_FSIZE must fail with EFBIG instead of killing us (CPython
# ignores SIGXFSZ already; say so explicitly, this app depends on it).
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from log_collector import AsyncLogClient  # noqa: E402

LEVELS = ["INFO"] * 6 + ["DEBUG", "DEBUG", "WARN", "ERROR"]


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())


class Clock:
    """time.time() plus the offset the driver wrote last (re-read every 50 ms)."""

    def __init__(self, path: str | None, stop: threading.Event) -> None:
        self.offset = 0.0
        self._path = path
        if path:
            self._read()
            threading.Thread(target=self._watch, args=(stop,), daemon=True).start()

    def __call__(self) -> float:
        return time.time() + self.offset

    def _read(self) -> None:
        try:
            self.offset = float(Path(self._path).read_text() or 0)  # type: ignore[arg-type]
        except (OSError, ValueError):
            pass

    def _watch(self, stop: threading.Event) -> None:
        while not stop.wait(0.05):
            self._read()


def work(
    client: AsyncLogClient, args: argparse.Namespace, thread: int, start: int, stop: threading.Event
) -> None:
    rng = random.Random(f"{args.client}-{args.run}-{thread}")
    interval = 1.0 / args.rate
    i = start
    while not stop.is_set():
        client.log(
            LEVELS[i % len(LEVELS)],
            f"chaos record {i}",
            client=args.client,
            run=args.run,
            thread=thread,
            seq=i,
            pad="x" * rng.randrange(0, 200),
        )
        say(f"R {thread} {i}")
        i += 1
        stop.wait(interval * rng.uniform(0.5, 1.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--spool-dir", required=True)
    parser.add_argument("--client", type=int, required=True)
    parser.add_argument("--run", type=int, required=True)
    parser.add_argument("--starts", required=True, help="first seq of each thread: S0,S1,...")
    parser.add_argument("--rate", type=float, default=40.0, help="records a second per thread")
    parser.add_argument("--clock-file")
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--max-backoff", type=float, default=2.0)
    parser.add_argument("--flush-interval", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--max-spool-bytes", type=int, default=256 * 1024 * 1024)
    parser.add_argument("--spool-full-policy", default="drop_oldest")
    parser.add_argument("--max-record-age", type=float)
    parser.add_argument("--fallback-capacity", type=int, default=10_000)
    parser.add_argument("--flush-timeout", type=float, default=60.0)
    args = parser.parse_args()

    stop = threading.Event()
    client = AsyncLogClient(
        args.url,
        service="chaos-app",
        environment="test",
        spool_dir=args.spool_dir,
        timeout=args.timeout,
        max_backoff=args.max_backoff,
        flush_interval=args.flush_interval,
        batch_size=args.batch_size,
        max_spool_bytes=args.max_spool_bytes,
        spool_full_policy=args.spool_full_policy,
        max_record_age=args.max_record_age,
        fallback_capacity=args.fallback_capacity,
        clock=Clock(args.clock_file, stop),
    )
    say(f"spool {client.spool_path}")
    threads = [
        threading.Thread(target=work, args=(client, args, t, int(s), stop), daemon=True)
        for t, s in enumerate(args.starts.split(","))
    ]
    for t in threads:
        t.start()
    for line in sys.stdin:  # the driver closes our stdin (or writes "stop") to end the run
        if line.strip() == "stop":
            break
    stop.set()
    for t in threads:
        t.join()
    flushed = client.flush(timeout=args.flush_timeout)
    say("stats " + json.dumps(client.stats()))
    say(f"flushed {flushed}")
    client.close(timeout=5.0)


if __name__ == "__main__":
    main()
