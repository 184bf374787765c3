"""Ingest throughput of the server, into PostgreSQL and into SQLite.

A real server (``python -m log_collector.server``, its own process) on
127.0.0.1 receives batches of 1,000 records, gzip'd and JSON-encoded before
the clock starts, from a load generator of threads with one
``requests.Session`` each (16 by default: a central server hears from many
services at once; ``--threads 4`` shows a quieter one). The figure is records
stored per second, checked against the store's row count. Budget (issue 3):
>= 50,000 records/s each.

The whole pipeline (client -> server -> PostgreSQL) is measured by
``measure_pipeline``, which takes any callable that logs N records; the one
used here is our ``AsyncLogClient`` when it is importable.

Each store is also measured alone (``measure_store_alone``: the same batches,
decoded before the clock starts, handed to ``Store.insert`` from as many
threads in this process), so the figure above can be read against the
ceiling of the store itself in the same run.

    .venv/bin/python scripts/bench_server.py                # both stores
    .venv/bin/python scripts/bench_server.py --store sqlite --batches 300
    LOG_COLLECTOR_BENCH_PG_URL=postgresql://postgres@127.0.0.1:5432/postgres ...
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import os
import queue
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

PG_ADMIN_URL = os.environ.get(
    "LOG_COLLECTOR_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BATCH_SIZE = 1000
BUDGET_RECORDS_PER_S = 50_000
PIPELINE_BUDGET_RECORDS_PER_S = 20_000


def uuid7() -> str:
    """A time-ordered UUID (RFC 9562 version 7), as our client makes event ids."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10))
    value = value & ~(0xF << 76) | 0x7 << 76  # version
    value = value & ~(0x3 << 62) | 0x2 << 62  # variant
    return str(uuid.UUID(int=value))


def make_record(i: int) -> dict:
    """A record shaped like our client's: caller, common fields, user fields."""
    level = ("INFO", "DEBUG", "WARN", "ERROR")[i % 4]
    return {
        "event_id": uuid7(),
        "created_at": time.time(),
        "level": level,
        "message": f"order {i} processed for customer",
        "service": f"bench-{i % 5}",
        "environment": "production",
        "service_version": "v1.4.2",
        "log_type": "BACKEND",
        "function_name": "process_order",
        "file_path": "/srv/app/orders/service.py",
        "line_no": 120 + i % 50,
        "trace_id": uuid.uuid4().hex,
        "user_id": f"user-{i % 997}",
        "duration_ms": 12.5 + i % 100,
        **({"error_type": "PaymentDeclined"} if level == "ERROR" else {}),
        "order_id": i,
        "cart": {"items": i % 7, "currency": "EUR"},
    }


def make_bodies(batches: int) -> list[bytes]:
    """``batches`` gzip'd request bodies of BATCH_SIZE records, every event_id distinct."""
    bodies = []
    for b in range(batches):
        records = [make_record(b * BATCH_SIZE + i) for i in range(BATCH_SIZE)]
        bodies.append(gzip.compress(json.dumps({"logs": records}).encode(), compresslevel=6))
    return bodies


def drain(
    items: list[Any], threads: int, make_handler: Callable[[], Callable[[Any], None]]
) -> float:
    """Hand every item to a handler from ``threads`` threads (``make_handler``
    is called once in each, so each can own a session); the seconds it took."""
    work: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for item in items:
        work.put(item)
    for _ in range(threads):
        work.put(None)

    def worker() -> None:
        handle = make_handler()
        while (item := work.get()) is not None:
            handle(item)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return time.perf_counter() - started


def post_all(base_url: str, bodies: list[bytes], threads: int) -> float:
    """POST every body once from ``threads`` sessions; return the seconds it took."""
    failures: list[str] = []
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}

    def poster() -> Callable[[bytes], None]:
        session = requests.Session()

        def post(body: bytes) -> None:
            response = session.post(f"{base_url}/logs", data=body, headers=headers)
            if response.status_code != 200 or response.json()["accepted"] != BATCH_SIZE:
                failures.append(f"{response.status_code} {response.text[:200]}")

        return post

    elapsed = drain(bodies, threads, poster)
    if failures:
        raise RuntimeError(f"{len(failures)} batches failed, first: {failures[0]}")
    return elapsed


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU seconds used) of every process (Linux /proc)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / _TICK)
    return table


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / _TICK  # minus idle and iowait


class CpuMeter:
    """CPU seconds used while it runs by the server (with its workers), PostgreSQL
    (every postgres process, including other users' on a shared machine), this
    load generator, and the machine as a whole."""

    def __init__(self, server_pid: int):
        self._server_pid = server_pid

    def _sample(self) -> dict[str, float]:
        table = _process_table()

        def in_server(pid: int) -> bool:
            while pid > 1 and pid in table:
                if pid == self._server_pid:
                    return True
                pid = table[pid][0]
            return False

        return {
            "server": sum(cpu for pid, (_, _, cpu) in table.items() if in_server(pid)),
            "postgres": sum(cpu for _, name, cpu in table.values() if name == "postgres"),
            "load generator": time.process_time(),
            "machine": _busy_seconds(),
        }

    def __enter__(self) -> CpuMeter:
        self._start = self._sample()
        self.used: dict[str, float] = {}
        return self

    def __exit__(self, *exc_info: object) -> None:
        end = self._sample()
        self.used = {key: end[key] - self._start[key] for key in end}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server_process(db_url: str, workers: int) -> Iterator[tuple[str, int]]:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "log_collector.server",
        "--db",
        db_url,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    process = subprocess.Popen(command)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {' '.join(command)}")
            time.sleep(0.1)
        yield base_url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"lc_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(PG_ADMIN_URL)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="lc_bench_") as directory:
        yield f"sqlite:///{Path(directory) / 'logs.db'}"


def stored_count(base_url: str) -> int:
    return requests.get(f"{base_url}/stats", timeout=60).json()["total_logs"]


@dataclass
class Run:
    records_per_s: float
    cpu_ms_per_1000: dict[str, float]
    table_rows: int


def measure_ingest(
    store: str, bodies: list[bytes], warmup: list[bytes], threads: int, workers: int
) -> Run:
    """Records/s of one server on a fresh database, posting ``warmup`` then ``bodies``."""
    database = postgres_database() if store == "postgres" else sqlite_database()
    with database as db_url, server_process(db_url, workers) as (base_url, pid):
        post_all(base_url, warmup, threads)
        with CpuMeter(pid) as meter:
            elapsed = post_all(base_url, bodies, threads)
        expected = (len(warmup) + len(bodies)) * BATCH_SIZE
        stored = stored_count(base_url)
        if stored != expected:
            raise RuntimeError(f"{store}: stored {stored} records, expected {expected}")
    records = len(bodies) * BATCH_SIZE
    per_1000 = {key: used * 1e6 / records for key, used in meter.used.items()}
    return Run(records / elapsed, per_1000, stored)


def measure_store_alone(store: str, bodies: list[bytes], warmup: list[bytes], threads: int) -> Run:
    """Records/s of the store alone: the same batches, decoded and normalised
    before the clock starts, handed to ``Store.insert`` from ``threads``
    threads in this process (no HTTP, no decoding): the ceiling the server's
    figure runs up against, measured in the same run."""
    from log_collector.server.ingest import Limits, decode_body, normalise_all
    from log_collector.server.store import open_store

    def rows_of(batch_bodies: list[bytes]) -> list[list]:
        now = time.time()
        return [normalise_all(decode_body(b, True, Limits()), now).rows for b in batch_bodies]

    batches = rows_of(bodies)
    database = postgres_database() if store == "postgres" else sqlite_database()
    with database as db_url:
        target = open_store(db_url)
        try:
            target.migrate()
            for rows in rows_of(warmup):
                target.insert(rows)

            with CpuMeter(os.getpid()) as meter:
                elapsed = drain(batches, threads, lambda: target.insert)
            stored = target.stats()["total_logs"]
        finally:
            target.close()
    expected = (len(warmup) + len(bodies)) * BATCH_SIZE
    if stored != expected:
        raise RuntimeError(f"{store} alone: stored {stored} records, expected {expected}")
    records = len(bodies) * BATCH_SIZE
    per_1000 = {key: used * 1e6 / records for key, used in meter.used.items()}
    return Run(records / elapsed, per_1000, stored)


def measure_pipeline(log_records: Callable[[str, int], None], count: int, workers: int) -> Run:
    """Records/s from the first log call until PostgreSQL holds all ``count`` records.

    ``log_records(server_url, count)`` logs ``count`` records to the server
    at ``server_url`` however it likes and returns once they are flushed.
    """
    with (
        postgres_database() as db_url,
        server_process(db_url, workers) as (base_url, pid),
        CpuMeter(pid) as meter,
    ):
        started = time.perf_counter()
        log_records(base_url, count)
        while (stored := stored_count(base_url)) < count:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    per_1000 = {key: used * 1e6 / count for key, used in meter.used.items()}
    return Run(count / elapsed, per_1000, stored)


def log_with_client(server_url: str, count: int, threads: int = 4) -> None:
    """Log ``count`` records through AsyncLogClient from ``threads`` threads, then flush."""
    from log_collector import AsyncLogClient  # type: ignore[attr-defined]

    with tempfile.TemporaryDirectory(prefix="lc_bench_spool_") as spool_dir:
        client = AsyncLogClient(server_url, service="bench-pipeline", spool_dir=spool_dir)

        def work(offset: int) -> None:
            for i in range(offset, count, threads):
                client.info("order processed", order_id=i)

        pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        if not client.flush(timeout=600):
            raise RuntimeError("AsyncLogClient.flush() timed out")
        client.close()


def client_available() -> bool:
    try:
        from log_collector import AsyncLogClient  # type: ignore[attr-defined]  # noqa: F401
    except ImportError:
        return False
    return True


def _report(label: str, runs: list[Run], budget: float) -> bool:
    """Print the best of ``runs`` (the machine is shared: slower runs met other
    load), the spread, and where the CPU went in the best run."""
    best = max(runs, key=lambda run: run.records_per_s)
    rates = ", ".join(f"{run.records_per_s:,.0f}" for run in runs)
    verdict = "ok" if best.records_per_s >= budget else "UNDER BUDGET"
    print(f"{label}: {best.records_per_s:10,.0f} records/s  ({verdict}; runs: {rates})")
    cpu = ", ".join(f"{key} {ms:.1f}" for key, ms in best.cpu_ms_per_1000.items())
    print(f"    CPU ms per 1,000 records: {cpu}; table holds {best.table_rows:,} rows")
    return best.records_per_s >= budget


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--batches", type=int, default=200, help="batches of 1,000 per store")
    parser.add_argument(
        "--threads",
        type=int,
        default=16,
        help="load generator threads: clients sending at once, as many services would",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best counts")
    parser.add_argument("--pipeline-records", type=int, default=100_000)
    parser.add_argument(
        "--pipeline-threads", default="1,4", help="producer threads, one figure each"
    )
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument(
        "--no-store-alone",
        dest="store_alone",
        action="store_false",
        help="skip the figure of each store alone, in this process, without HTTP",
    )
    args = parser.parse_args()

    stores = ["postgres", "sqlite"] if args.store == "all" else [args.store]
    print(
        f"encoding {args.batches} batches of {BATCH_SIZE} records "
        f"(+10 warm-up); {args.threads} client threads, {args.workers} server worker(s), "
        f"best of {args.repeat}"
    )
    warmup = make_bodies(10)
    bodies = make_bodies(args.batches)
    print(f"mean gzip'd body: {sum(map(len, bodies)) // len(bodies)} bytes")
    ok = True
    for store in stores:
        runs = [
            measure_ingest(store, bodies, warmup, args.threads, args.workers)
            for _ in range(args.repeat)
        ]
        ok &= _report(f"ingest into {store:8}", runs, BUDGET_RECORDS_PER_S)
        if args.store_alone:
            alone = [
                measure_store_alone(store, bodies, warmup, args.threads) for _ in range(args.repeat)
            ]
            _report(f"  {store} store alone (no HTTP, no decoding)", alone, BUDGET_RECORDS_PER_S)

    if args.skip_pipeline or args.store == "sqlite":
        pass
    elif not client_available():
        print("pipeline client -> server -> postgres: PENDING (log_collector.AsyncLogClient")
        print("  is not importable yet; measure_pipeline(log_with_client, ...) is ready for it)")
    else:
        for threads in map(int, args.pipeline_threads.split(",")):
            runs = [
                measure_pipeline(
                    functools.partial(log_with_client, threads=threads),
                    args.pipeline_records,
                    args.workers,
                )
                for _ in range(args.repeat)
            ]
            label = f"pipeline client ({threads} thread(s)) -> server -> postgres"
            ok &= _report(label, runs, PIPELINE_BUDGET_RECORDS_PER_S)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
