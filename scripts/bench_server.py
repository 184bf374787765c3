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

The same records also go to ``POST /v1/logs`` as OpenTelemetry OTLP/HTTP
(``make_otlp_bodies``: a gzip'd protobuf ``ExportLogsServiceRequest`` per
batch, built before the clock starts), runs alternating with the JSON ones on
a fresh database each; the figure is printed beside the JSON one and their
ratio (``--skip-otlp`` leaves it out).

``--compare-partitioned`` measures JSON ingest into PostgreSQL's table partitioned by day
against the unpartitioned table of migration 0006 (budget: >= 0.9x), runs alternating.

``--compare-workers`` measures PostgreSQL ingest with 2 server worker
processes against 1, runs alternating, and prints the ratio (for JSON beside
its budget, >= 1.3x on a 2-core machine) with the CPU each part kept busy, in
cores: the machine, each server process, PostgreSQL, the load generator.

Each store is also measured alone (``measure_store_alone``: the same batches,
decoded before the clock starts, handed to ``Store.insert`` from as many
threads in this process), so the figure above can be read against the
ceiling of the store itself in the same run.

    .venv/bin/python scripts/bench_server.py                # both stores
    .venv/bin/python scripts/bench_server.py --store all --repeat 2 --skip-pipeline \
        --compare-workers
    .venv/bin/python scripts/bench_server.py --store postgres --skip-pipeline --skip-otlp \
        --no-store-alone --compare-partitioned
    .venv/bin/python scripts/bench_server.py --store sqlite --batches 300
    LOG_COLLECTOR_BENCH_PG_URL=postgresql://postgres@127.0.0.1:5432/postgres ...
"""

from __future__ import annotations

import argparse
import contextlib
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

PG_ADMIN_URL = os.environ.get(
    "LOG_COLLECTOR_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BATCH_SIZE = 1000
BUDGET_RECORDS_PER_S = 50_000
PIPELINE_BUDGET_RECORDS_PER_S = 20_000
BUDGET_TWO_WORKERS_RATIO = 1.3
# Partitioned PostgreSQL ingest against the table before partitioning (issue 22).
BUDGET_PARTITIONED_RATIO = 0.9
PARTITIONING_MIGRATION = "0007_partitioned_logs"


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


_SEVERITY = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}
# make_record's fields under the names of the semantic conventions, as the server's
# ingest/otlp.py reads them (https://opentelemetry.io/docs/specs/semconv/).
_OTLP_RESOURCE = {
    "service": "service.name",
    "service_version": "service.version",
    "environment": "deployment.environment.name",
}
_OTLP_ATTRIBUTES = {
    "event_id": "log.record.uid",
    "function_name": "code.function.name",
    "file_path": "code.file.path",
    "line_no": "code.line.number",
    "user_id": "user.id",
    "error_type": "exception.type",
}
_OTLP_OWN = {"level", "message", "created_at", "trace_id", *_OTLP_RESOURCE}


def set_any_value(out: common_pb2.AnyValue, value: Any) -> None:
    """``value`` (a str, int, float, or a dict of them) as an OTLP AnyValue."""
    if isinstance(value, dict):
        for key, item in value.items():
            set_any_value(out.kvlist_value.values.add(key=key).value, item)
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, int):
        out.int_value = value
    else:
        out.double_value = value


def make_otlp_body(first: int) -> bytes:
    """A gzip'd ``ExportLogsServiceRequest`` of the BATCH_SIZE records ``make_record``
    makes from ``first`` on, every field mapped to OTLP, one ``ResourceLogs`` per service."""
    request = logs_service_pb2.ExportLogsServiceRequest()
    scopes: dict[str, logs_pb2.ScopeLogs] = {}
    for i in range(first, first + BATCH_SIZE):
        record = make_record(i)
        scope = scopes.get(record["service"])
        if scope is None:
            resource = request.resource_logs.add()
            for name, key in _OTLP_RESOURCE.items():
                set_any_value(resource.resource.attributes.add(key=key).value, record[name])
            scope = scopes[record["service"]] = resource.scope_logs.add()
        out = scope.log_records.add(
            time_unix_nano=int(record["created_at"] * 1e9),
            severity_number=_SEVERITY[record["level"]],
            severity_text=record["level"],
            trace_id=bytes.fromhex(record["trace_id"]),
        )
        out.body.string_value = record["message"]
        for name, value in record.items():
            if name not in _OTLP_OWN:
                key = _OTLP_ATTRIBUTES.get(name, name)
                set_any_value(out.attributes.add(key=key).value, value)
    return gzip.compress(request.SerializeToString(), compresslevel=6)


def make_otlp_bodies(batches: int) -> list[bytes]:
    """``batches`` OTLP bodies of BATCH_SIZE records, every event_id distinct."""
    return [make_otlp_body(b * BATCH_SIZE) for b in range(batches)]


@dataclass(frozen=True)
class Wire:
    """Where the load generator posts a body, as what, and how it reads a stored batch."""

    name: str
    path: str
    content_type: str
    all_accepted: Callable[[requests.Response], bool]


def _json_all_accepted(response: requests.Response) -> bool:
    return response.json()["accepted"] == BATCH_SIZE


def _otlp_all_accepted(response: requests.Response) -> bool:
    answer = logs_service_pb2.ExportLogsServiceResponse.FromString(response.content)
    return answer.partial_success.rejected_log_records == 0


JSON_WIRE = Wire("JSON /logs", "/logs", "application/json", _json_all_accepted)
OTLP_WIRE = Wire("OTLP /v1/logs", "/v1/logs", "application/x-protobuf", _otlp_all_accepted)


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


def post_all(base_url: str, bodies: list[bytes], threads: int, wire: Wire = JSON_WIRE) -> float:
    """POST every body once to ``wire``'s path from ``threads`` sessions; return the
    seconds it took."""
    failures: list[str] = []
    headers = {"Content-Type": wire.content_type, "Content-Encoding": "gzip"}
    url = f"{base_url}{wire.path}"

    def poster() -> Callable[[bytes], None]:
        session = requests.Session()

        def post(body: bytes) -> None:
            response = session.post(url, data=body, headers=headers)
            if response.status_code != 200 or not wire.all_accepted(response):
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
    load generator, and the machine as a whole (``used``); and by each server
    process, busiest first (``server_processes``)."""

    def __init__(self, server_pid: int):
        self._server_pid = server_pid

    def _sample(self) -> tuple[dict[str, float], dict[int, float]]:
        table = _process_table()

        def in_server(pid: int) -> bool:
            while pid > 1 and pid in table:
                if pid == self._server_pid:
                    return True
                pid = table[pid][0]
            return False

        server = {pid: cpu for pid, (_, _, cpu) in table.items() if in_server(pid)}
        totals = {
            "server": sum(server.values()),
            "postgres": sum(cpu for _, name, cpu in table.values() if name == "postgres"),
            "load generator": time.process_time(),
            "machine": _busy_seconds(),
        }
        return totals, server

    def __enter__(self) -> CpuMeter:
        self._start, self._start_server = self._sample()
        self.used: dict[str, float] = {}
        self.server_processes: list[float] = []
        return self

    def __exit__(self, *exc_info: object) -> None:
        end, end_server = self._sample()
        self.used = {key: end[key] - self._start[key] for key in end}
        self.server_processes = sorted(
            (cpu - self._start_server.get(pid, 0.0) for pid, cpu in end_server.items()),
            reverse=True,
        )


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
    server_processes_ms_per_1000: list[float] = field(default_factory=list)

    def cores(self, ms_per_1000: float) -> float:
        """CPU cores that ``ms_per_1000`` kept busy on average over the run."""
        return ms_per_1000 * self.records_per_s / 1e6


def unpartitioned(db_url: str) -> None:
    """The PostgreSQL schema before ``logs`` was partitioned: migrations up to 0006, with
    0007 recorded as applied so the server leaves the table as it is (its maintenance does
    nothing on a table that is not partitioned)."""
    from log_collector.common.migrations import sql_files
    from log_collector.server.store.postgres_migrations import BOOKKEEPING_TABLE

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {BOOKKEEPING_TABLE} ("
            "name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for name, sql in sql_files("postgres"):
            with conn.transaction():
                if name < PARTITIONING_MIGRATION:
                    conn.execute(sql)
                conn.execute(f"INSERT INTO {BOOKKEEPING_TABLE} (name) VALUES (%s)", (name,))


def measure_ingest(
    store: str,
    bodies: list[bytes],
    warmup: list[bytes],
    threads: int,
    workers: int,
    wire: Wire = JSON_WIRE,
    prepare: Callable[[str], None] | None = None,
) -> Run:
    """Records/s of one server on a fresh database, posting ``warmup`` then ``bodies``
    as ``wire``; ``prepare(db_url)`` runs on the database before the server starts."""
    database = postgres_database() if store == "postgres" else sqlite_database()
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(database)
        if prepare is not None:
            prepare(db_url)
        base_url, pid = stack.enter_context(server_process(db_url, workers))
        post_all(base_url, warmup, threads, wire)
        with CpuMeter(pid) as meter:
            elapsed = post_all(base_url, bodies, threads, wire)
        expected = (len(warmup) + len(bodies)) * BATCH_SIZE
        stored = stored_count(base_url)
        if stored != expected:
            raise RuntimeError(
                f"{store} ({wire.name}): stored {stored} records, expected {expected}"
            )
    records = len(bodies) * BATCH_SIZE
    per_1000 = {key: used * 1e6 / records for key, used in meter.used.items()}
    processes = [used * 1e6 / records for used in meter.server_processes]
    return Run(records / elapsed, per_1000, stored, processes)


@dataclass(frozen=True)
class Load:
    """One kind of body to post: its wire, the warm-up bodies and the measured ones."""

    wire: Wire
    warmup: list[bytes]
    bodies: list[bytes]


def measure_alternating(
    store: str, loads: list[Load], workers: list[int], threads: int, repeat: int
) -> dict[tuple[str, int], list[Run]]:
    """``repeat`` rounds of one run of every load with every number of server
    workers, so that drift on a shared machine falls on every figure alike;
    the runs by (wire name, workers)."""
    runs: dict[tuple[str, int], list[Run]] = {
        (load.wire.name, count): [] for load in loads for count in workers
    }
    for _ in range(repeat):
        for load in loads:
            for count in workers:
                run = measure_ingest(store, load.bodies, load.warmup, threads, count, load.wire)
                runs[load.wire.name, count].append(run)
    return runs


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


def _best(runs: list[Run]) -> Run:
    return max(runs, key=lambda run: run.records_per_s)


def _report(label: str, runs: list[Run], budget: float | None) -> bool:
    """Print the best of ``runs`` (the machine is shared: slower runs met other
    load), the spread, and where the CPU went in the best run; whether the best
    meets ``budget`` (None: no budget)."""
    best = _best(runs)
    rates = ", ".join(f"{run.records_per_s:,.0f}" for run in runs)
    ok = budget is None or best.records_per_s >= budget
    verdict = "" if budget is None else "ok; " if ok else "UNDER BUDGET; "
    print(f"{label}: {best.records_per_s:10,.0f} records/s  ({verdict}runs: {rates})")
    cpu = ", ".join(f"{key} {ms:.1f}" for key, ms in best.cpu_ms_per_1000.items())
    print(f"    CPU ms per 1,000 records: {cpu}; table holds {best.table_rows:,} rows")
    return ok


def _report_ratio(
    label: str, runs: list[Run], against: list[Run], budget: float | None = None
) -> bool:
    """Print the best of ``runs`` over the best of ``against`` and the ratio of each
    pair of runs made one after the other; whether the best ratio meets ``budget``."""
    ratio = _best(runs).records_per_s / _best(against).records_per_s
    pairs = ", ".join(
        f"{run.records_per_s / other.records_per_s:.2f}"
        for run, other in zip(runs, against, strict=True)
    )
    ok = budget is None or ratio >= budget
    verdict = "" if budget is None else f"; budget >= {budget}x: {'ok' if ok else 'UNDER BUDGET'}"
    print(f"    {label}: {ratio:.2f}x best against best (each pair: {pairs}){verdict}")
    return ok


def _report_cores(label: str, run: Run) -> None:
    """Print the CPU cores each part kept busy over ``run``, each server process apart."""
    cores = os.cpu_count() or 1
    used = {key: run.cores(ms) for key, ms in run.cpu_ms_per_1000.items()}
    processes = ", ".join(f"{run.cores(ms):.2f}" for ms in run.server_processes_ms_per_1000)
    print(
        f"    {label}: machine {used['machine']:.2f} of {cores} cores busy; "
        f"server {used['server']:.2f} (each process: {processes}), "
        f"postgres {used['postgres']:.2f}, load generator {used['load generator']:.2f}"
    )


def report_ingest(
    store: str, runs: dict[tuple[str, int], list[Run]], loads: list[Load], workers: list[int]
) -> bool:
    """Print each load's figure beside the JSON one, and 2 workers beside 1 with the
    CPU of each part; whether the budgets (JSON only) are met."""
    json_name = JSON_WIRE.name
    ok = _report(f"ingest into {store:8}", runs[json_name, workers[0]], BUDGET_RECORDS_PER_S)
    for load in loads:
        if load.wire is not JSON_WIRE:
            name = load.wire.name
            _report(f"  {store}, {name}", runs[name, workers[0]], None)
            _report_ratio(
                f"{name} against {json_name}", runs[name, workers[0]], runs[json_name, workers[0]]
            )
    if 2 not in workers:
        return ok
    for load in loads:
        one, two = runs[load.wire.name, 1], runs[load.wire.name, 2]
        budgeted = load.wire is JSON_WIRE
        _report(
            f"  {store}, {load.wire.name}, 2 server workers",
            two,
            BUDGET_RECORDS_PER_S if budgeted else None,
        )
        ok &= _report_ratio(
            f"2 workers against 1 (on this {os.cpu_count()}-core machine)",
            two,
            one,
            BUDGET_TWO_WORKERS_RATIO if budgeted else None,
        )
        _report_cores("1 worker, best run", _best(one))
        _report_cores("2 workers, best run", _best(two))
    return ok


def compare_partitioned(load: Load, threads: int, workers: int, repeat: int) -> bool:
    """JSON ingest into the partitioned table (today's partition, as in production) against
    the unpartitioned table of migration 0006, alternating runs on fresh databases; whether
    the ratio meets its budget."""
    partitioned: list[Run] = []
    flat: list[Run] = []
    for _ in range(repeat):
        partitioned.append(measure_ingest("postgres", load.bodies, load.warmup, threads, workers))
        flat.append(
            measure_ingest(
                "postgres", load.bodies, load.warmup, threads, workers, prepare=unpartitioned
            )
        )
    _report("  postgres, unpartitioned table (0006)", flat, None)
    _report("  postgres, partitioned by day (0007)", partitioned, None)
    return _report_ratio(
        "partitioned against unpartitioned", partitioned, flat, BUDGET_PARTITIONED_RATIO
    )


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
        "--skip-otlp",
        dest="otlp",
        action="store_false",
        help="skip the figure of the same batches as OTLP protobuf to /v1/logs",
    )
    parser.add_argument(
        "--compare-workers",
        action="store_true",
        help="measure PostgreSQL ingest with 2 server workers against 1 (needs --workers 1)",
    )
    parser.add_argument(
        "--compare-partitioned",
        action="store_true",
        help="measure PostgreSQL ingest into the partitioned table against the unpartitioned one",
    )
    parser.add_argument(
        "--no-store-alone",
        dest="store_alone",
        action="store_false",
        help="skip the figure of each store alone, in this process, without HTTP",
    )
    args = parser.parse_args()
    if args.compare_workers and args.workers != 1:
        parser.error("--compare-workers measures 2 workers against 1: leave --workers at 1")

    stores = ["postgres", "sqlite"] if args.store == "all" else [args.store]
    print(
        f"encoding {args.batches} batches of {BATCH_SIZE} records "
        f"(+10 warm-up); {args.threads} client threads, {args.workers} server worker(s), "
        f"best of {args.repeat}"
    )
    warmup = make_bodies(10)
    bodies = make_bodies(args.batches)
    loads = [Load(JSON_WIRE, warmup, bodies)]
    if args.otlp:
        loads.append(Load(OTLP_WIRE, make_otlp_bodies(10), make_otlp_bodies(args.batches)))
    sizes = ", ".join(
        f"{sum(map(len, load.bodies)) // len(load.bodies)} bytes ({load.wire.name})"
        for load in loads
    )
    print(f"mean gzip'd body: {sizes}")
    ok = True
    for store in stores:
        compare = args.compare_workers and store == "postgres"
        workers = [1, 2] if compare else [args.workers]
        runs = measure_alternating(store, loads, workers, args.threads, args.repeat)
        ok &= report_ingest(store, runs, loads, workers)
        if args.compare_partitioned and store == "postgres":
            ok &= compare_partitioned(loads[0], args.threads, args.workers, args.repeat)
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
