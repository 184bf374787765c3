"""Client benchmark: per-call latency beside the bare-INSERT floors, the first call of a new
client, end-to-end rate with the sender's CPU per 1,000 records, backlog RSS.

    .venv/bin/python scripts/bench_client.py [--calls 20000] [--e2e 100000] [--backlog 1000000]

Prints one line per figure, the budget of each ratio beside it. The receiver
(tests/receiver.py) runs in its own process so it does not compete with the
client for the GIL. Figures vary with the machine's load; run it on an idle
machine and read them as a range.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from log_collector import AsyncLogClient  # noqa: E402

FIELDS = {"order_id": 42, "amount": 19.99, "currency": "EUR", "customer": "c-1029"}


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    return {
        "p50": at(0.50),
        "p99": at(0.99),
        "p99.9": at(0.999),
        "mean": statistics.fmean(ordered) / 1000,
    }


def fmt(p: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.1f}us" for k, v in p.items())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "receiver.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # the URL line: it is listening
    return proc, f"http://127.0.0.1:{port}"


def bare_insert_floor(body: str, calls: int, threads: int = 1) -> dict[str, float]:
    """One autocommit INSERT of the same JSON text per call, WAL, synchronous=NORMAL.

    With ``threads`` > 1 they share the one connection behind a lock, as the
    spool's appenders do (one write connection per spool), so the
    figure is what the GIL and two cores leave of a single INSERT per call.
    """
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(
            Path(tmp) / "floor.db", isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, created_at REAL, body TEXT)")
        # One thread takes no lock: the 1-thread floor is the INSERT alone.
        lock = threading.Lock() if threads > 1 else contextlib.nullcontext()

        def insert(n: int, out: list[int]) -> None:
            clock = time.perf_counter_ns
            for _ in range(n):
                t0 = clock()
                with lock:
                    conn.execute(
                        "INSERT INTO records(created_at, body) VALUES (?, ?)", (time.time(), body)
                    )
                out.append(clock() - t0)

        insert(calls // 10, [])  # warm up
        results: list[list[int]] = [[] for _ in range(threads)]
        workers = [
            threading.Thread(target=insert, args=(calls // threads, results[i]))
            for i in range(threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        conn.close()
    return percentiles([s for r in results for s in r])


def log_calls(client: AsyncLogClient, calls: int, out: list[int]) -> None:
    clock = time.perf_counter_ns
    info = client.info
    for i in range(calls):
        t0 = clock()
        info("payment accepted", order_id=i, amount=19.99, currency="EUR", customer="c-1029")
        out.append(clock() - t0)


def latency(url: str, calls: int, threads: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        client = AsyncLogClient(url, service="bench", spool_dir=tmp)
        log_calls(client, 1000, [])  # warm up: sender thread, page cache
        results: list[list[int]] = [[] for _ in range(threads)]
        workers = [
            threading.Thread(target=log_calls, args=(client, calls, results[i]))
            for i in range(threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        client.flush(timeout=60)
        client.close(timeout=1)
    return percentiles([s for r in results for s in r])


def thread_cpu(thread: threading.Thread) -> float:
    """Seconds of CPU (user and system) ``thread`` has used; it must be alive."""
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def sender_thread(client: AsyncLogClient) -> threading.Thread:
    sender = client._delivery.sender  # noqa: SLF001
    assert sender is not None and sender._thread is not None  # noqa: SLF001
    return sender._thread  # noqa: SLF001


def end_to_end(url: str, records: int, threads: int) -> tuple[float, float]:
    """Records/s from the first log call to flush() returning, ``threads`` producers, and
    the sender thread's CPU per 1,000 records acknowledged (ms) over the same span."""
    with tempfile.TemporaryDirectory() as tmp:
        client = AsyncLogClient(url, service="bench", spool_dir=tmp)
        log_calls(client, 1, [])  # the sender thread exists from here on
        if not client.flush(timeout=60):
            raise SystemExit("end-to-end: the first record was not delivered")
        sender = sender_thread(client)
        acked0, cpu0 = client.stats()["acknowledged"], thread_cpu(sender)
        per_thread = records // threads
        workers = [
            threading.Thread(target=log_calls, args=(client, per_thread, []))
            for _ in range(threads)
        ]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        delivered = client.flush(timeout=300)
        elapsed = time.perf_counter() - t0
        cpu = thread_cpu(sender) - cpu0
        acked = client.stats()["acknowledged"] - acked0
        client.close()
    if not delivered:
        raise SystemExit("end-to-end: flush timed out")
    return per_thread * threads / elapsed, cpu / acked * 1e6


FIRST_CALL_CHILD = """
import sys, tempfile, time
sys.path.insert(0, {root!r})
from log_collector import AsyncLogClient
with tempfile.TemporaryDirectory() as tmp:
    client = AsyncLogClient({url!r}, service="bench", spool_dir=tmp)
    clock = time.perf_counter_ns
    t0 = clock()
    client.info("payment accepted", order_id=1, amount=19.99, currency="EUR", customer="c-1029")
    t1 = clock()
    client.close(timeout=5)
print((t1 - t0) / 1000)
"""


def first_calls(url: str, processes: int) -> list[float]:
    """The first log call of a client made in a new process (us), once per process."""
    code = FIRST_CALL_CHILD.format(root=str(ROOT), url=url)
    return [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout.split()[-1]
        )
        for _ in range(processes)
    ]


BACKLOG_CHILD = """
import resource, sys, tempfile, json
sys.path.insert(0, {root!r})
from log_collector import AsyncLogClient
n = {n}
with tempfile.TemporaryDirectory() as tmp:
    url = "http://127.0.0.1:{port}"
    # 1 GiB: a million ~400-byte records exceed the default 256 MiB cap.
    client = AsyncLogClient(
        url, service="bench", spool_dir=tmp, max_backoff=1.0, max_spool_bytes=2**30
    )
    client.info("warm up")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(n):
        client.info("payment accepted", order_id=i, amount=19.99, currency="EUR", customer="c-1029")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stats = client.stats()
    client.close(timeout=0.1)
print(json.dumps({{"before_kb": before, "after_kb": after, "rows": stats["spool_rows"],
                  "bytes": stats["spool_bytes"], "dropped": stats["dropped"]}}))
"""


def backlog_rss(records: int) -> dict[str, int]:
    """Peak RSS growth of a producer logging ``records`` while the server is down."""
    code = BACKLOG_CHILD.format(root=str(ROOT), n=records, port=free_port())
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--e2e", type=int, default=100_000)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=20, help="new processes for first calls")
    args = parser.parse_args()

    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cpu")
    receiver, url = start_receiver()
    try:
        sample = AsyncLogClient(url, service="bench", spool_dir=tempfile.mkdtemp())
        body = sample._builder.build("INFO", "payment accepted", dict(FIELDS))[1]  # noqa: SLF001
        sample.close()
        floor = bare_insert_floor(body, args.calls)
        print(f"bare sqlite3 WAL INSERT ({len(body)} B JSON):  {fmt(floor)}")
        one = latency(url, args.calls, 1)
        print(
            f"log call, 1 thread:   {fmt(one)}   p50 {one['p50'] / floor['p50']:.2f}x the bare "
            f"INSERT's (budget 1.3x), p99 {one['p99'] / floor['p99']:.2f}x its p99 (budget 3x)"
        )
        floor4 = bare_insert_floor(body, args.calls, threads=4)
        print(f"bare sqlite3 WAL INSERT, 4 threads on one connection behind a lock:  {fmt(floor4)}")
        four = latency(url, args.calls // 4, 4)
        print(
            f"log call, 4 threads:  {fmt(four)}   p99 {four['p99'] / floor4['p99']:.2f}x its "
            "floor's (budget 1.0x)"
        )
        firsts = first_calls(url, args.processes)
        first = statistics.median(firsts)
        print(
            f"first log call of a new client, {len(firsts)} new processes: median {first:.1f}us "
            f"(min {min(firsts):.1f}, max {max(firsts):.1f}), {first / one['p50']:.2f}x the "
            "1-thread p50 (budget 3x)"
        )
        # The same calls with nothing shipping: what the receiver and the
        # sender, sharing the two cores, add to the figures above.
        # (Their "cannot deliver" notices on stderr are expected: dropped.)
        down = f"http://127.0.0.1:{free_port()}"
        with contextlib.redirect_stderr(io.StringIO()):
            one_down = latency(down, args.calls, 1)
            four_down = latency(down, args.calls // 4, 4)
        print(f"log call, 1 thread, server down:   {fmt(one_down)}")
        print(f"log call, 4 threads, server down:  {fmt(four_down)}")
        for threads in (1, 4):
            rate, cpu = end_to_end(url, args.e2e, threads)
            print(
                f"end-to-end {args.e2e:,} records, {threads} producer thread(s), to a local "
                f"receiver: {rate:,.0f} records/s; sender CPU {cpu:.2f} ms per 1,000 records"
            )
    finally:
        receiver.terminate()
        receiver.wait()
    rss = backlog_rss(args.backlog)
    growth_mb = (rss["after_kb"] - rss["before_kb"]) / 1024
    print(
        f"backlog of {args.backlog:,} records, server down: peak RSS growth {growth_mb:.1f} MB "
        f"(spool {rss['rows']:,} rows, {rss['bytes'] / 2**20:.0f} MiB, dropped {rss['dropped']})"
    )


if __name__ == "__main__":
    main()
