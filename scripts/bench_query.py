"""Read API latencies on a realistic table, and what the read side's migration costs ingest.

Generates a week of logs ending now, in time order as ingest writes them (20 services, a level
mix, 10,000 users, traces of 2-20 lines, event ids time-ordered like our client's UUIDv7),
10,000,000 rows into a throwaway PostgreSQL database (``lc_bench_query_<random>``, dropped at
the end unless ``--keep``) and 1,000,000 into an SQLite file in a temporary directory. Both are
migrated with every migration, so the triggers of ``log_counts`` count the rows as they load.
Then each query runs ``--runs`` times through the library functions of
``log_collector.server.query`` on the store's ``reading()`` connection, as the routes run them,
and its p50/p95 is printed beside its budget, with a ``SELECT 1`` round trip on the same
connection as the floor.

Ingest: ``Store.insert`` of pre-built batches of 1,000 rows from 4 threads (as
scripts/bench_server.py's "store alone"), into a fresh database with every migration and into
one migrated only up to the step before ``0003_time_index_and_log_counts``, alternating, in the
same run; the median of the rounds counts.

    .venv/bin/python scripts/bench_query.py                                  # the full run
    .venv/bin/python scripts/bench_query.py --rows-pg 200000 --rows-sqlite 100000 --runs 20
    .venv/bin/python scripts/bench_query.py --store sqlite --keep
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from log_collector.common.migrations import split_statements, sql_files  # noqa: E402
from log_collector.server.store import open_store  # noqa: E402
from log_collector.server.store.base import ROW_COLUMNS  # noqa: E402

PG_ADMIN_URL = os.environ.get(
    "LOG_COLLECTOR_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
READ_MIGRATION = "0003_time_index_and_log_counts"
WEEK_S = 7 * 86400
BATCH_SIZE = 1000
INGEST_THREADS = 4

# Budgets of the issue, in milliseconds (ingest: a fraction of the rate without the migration).
BUDGET_MS = {
    "filtered page (service + level + 1 h)": 20,
    "trace lookup": 20,
    "q common term over 24 h": 300,
    "q matching nothing over 24 h": 1000,
    "histogram 24 h, 60 buckets": 50,
    "histogram 24 h, 60 buckets, one service": 50,
    "facets over 1 h": 50,
}
INGEST_BUDGET = 0.85

SERVICES = [
    "api-gateway", "auth", "billing", "cart", "catalog", "checkout", "email", "search",
    "inventory", "orders", "payments", "pricing", "profile", "recommend", "reviews",
    "shipping", "notifications", "reports", "scheduler", "web",
]  # fmt: skip
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
LEVEL_WEIGHTS = (2, 18, 62, 10, 7, 1)
PATHS = ("/api/orders", "/api/cart", "/api/login", "/api/search", "/api/pay", "/health")
METHODS = ("GET", "GET", "GET", "POST", "POST", "PUT", "DELETE")
# Message templates; "timeout" is the common term (about one message in twelve).
MESSAGES = (
    "GET {path} 200 in {ms} ms",
    "user {user} signed in",
    "payment declined for order {order}",
    "timeout calling inventory after {ms} ms",
    "cache miss for key product:{order}",
    "retrying job {order} (attempt {attempt})",
    "published event order.created {order}",
    "slow query on orders took {ms} ms",
    "connection reset by peer while reading response",
    "validation failed: field email is not an address",
    "order {order} shipped to warehouse {attempt}",
    "rendered page {path} for user {user}",
)
COMMON_TERM = "timeout"
NO_MATCH_TERM = "zebra-quartz-nomatch"
ERROR_TYPES = ("TimeoutError", "PaymentDeclined", "ValidationError", "ConnectionResetError")


def generate(count: int, end_s: float, span_s: float, seed: int) -> Iterator[tuple[Any, ...]]:
    """``count`` rows in ROW_COLUMNS order, created_at (Unix seconds) rising evenly over the
    ``span_s`` seconds before ``end_s``. A trace is 2-20 consecutive lines of one request that
    crosses up to three services."""
    rnd = random.Random(seed)
    step = span_s / max(count, 1)
    start = end_s - span_s
    trace_left = 0
    trace_id = ""
    trace_services: list[str] = []
    user = session = ""
    levels = rnd.choices(LEVELS, LEVEL_WEIGHTS, k=4096)
    for i in range(count):
        if trace_left == 0:
            trace_left = rnd.randint(2, 20)
            trace_id = f"{rnd.getrandbits(128):032x}"
            trace_services = rnd.sample(SERVICES, rnd.randint(1, 3))
            user = f"user-{rnd.randrange(10_000)}"
            session = f"sess-{rnd.getrandbits(48):012x}"
        trace_left -= 1
        created = start + i * step
        level = levels[i & 4095]
        service = trace_services[i % len(trace_services)]
        path = PATHS[i % len(PATHS)]
        ms = rnd.randrange(1, 3000)
        order = rnd.randrange(1_000_000)
        message = MESSAGES[rnd.randrange(len(MESSAGES))].format(
            path=path, ms=ms, user=user, order=order, attempt=i % 5 + 1
        )
        erroneous = level in ("ERROR", "FATAL")
        error_type = ERROR_TYPES[order % len(ERROR_TYPES)] if erroneous else None
        stack = (
            f'Traceback (most recent call last):\n  File "/srv/{service}/app.py", line {ms % 400}'
            f", in handle\n{error_type}: {message}"
            if erroneous
            else None
        )
        millis = int(created * 1000)
        event_id = (
            f"{millis:012x}7{rnd.getrandbits(12):03x}{8 | rnd.getrandbits(2):x}"
            f"{rnd.getrandbits(60):015x}"
        )
        event_id = (
            f"{event_id[:8]}-{event_id[8:12]}-{event_id[12:16]}-{event_id[16:20]}-{event_id[20:]}"
        )
        yield (
            created,
            level,
            "BACKEND",
            service,
            "production",
            f"v1.{SERVICES.index(service) % 9}.0",
            trace_id,
            user,
            session,
            error_type,
            message,
            stack,
            path,
            METHODS[i % len(METHODS)],
            None,
            "handle_request",
            f"/srv/{service}/app.py",
            float(ms),
            f'{{"order_id": {order}, "region": "{("eu", "us", "ap")[order % 3]}"}}',
            event_id,
            created + 0.05,
        )


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    return repr(value)


_TIME_COLUMNS = {ROW_COLUMNS.index("created_at"), ROW_COLUMNS.index("received_at")}


def load_postgres(url: str, count: int, end_s: float, chunk: int = 200_000) -> float:
    """COPY ``count`` generated rows into logs in time order, ``chunk`` rows per statement
    (each fires the log_counts trigger once); the seconds it took."""
    columns = ", ".join(ROW_COLUMNS)
    started = time.perf_counter()
    rows = generate(count, end_s, WEEK_S, seed=1)
    with psycopg.connect(url, autocommit=True) as conn:
        # COPY text takes timestamptz as text; epoch seconds go through a staging column.
        conn.execute("SET synchronous_commit = off")
        done = 0
        while done < count:
            n = min(chunk, count - done)
            with conn.cursor() as cur, cur.copy(f"COPY logs ({columns}) FROM STDIN") as copy:
                lines = []
                for _ in range(n):
                    row = next(rows)
                    fields = [
                        _pg_time(v) if k in _TIME_COLUMNS else _copy_text(v)
                        for k, v in enumerate(row)
                    ]
                    lines.append("\t".join(fields))
                copy.write("\n".join(lines) + "\n")
            done += n
            print(f"  postgres: {done:,} rows loaded", end="\r", flush=True)
        print()
        conn.execute("VACUUM ANALYZE logs")
        conn.execute("VACUUM ANALYZE log_counts")
    return time.perf_counter() - started


def _pg_time(seconds: float) -> str:
    whole = int(seconds)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole)) + (
        f".{round((seconds - whole) * 1e6):06d}+00" if seconds != whole else "+00"
    )


def load_sqlite(store: Any, count: int, end_s: float) -> float:
    """Insert ``count`` generated rows in time order through ``store.insert`` (which counts
    them in log_counts), in batches of BATCH_SIZE."""
    started = time.perf_counter()
    rows = generate(count, end_s, WEEK_S, seed=2)
    done = 0
    while done < count:
        n = min(BATCH_SIZE, count - done)
        store.insert([next(rows) for _ in range(n)])
        done += n
        if done % 100_000 == 0 or done == count:
            print(f"  sqlite: {done:,} rows loaded", end="\r", flush=True)
    print()
    return time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed(runs: int, action: Callable[[int], Any]) -> tuple[float, float]:
    """p50 and p95 in milliseconds of ``runs`` calls ``action(i)``, after one unmeasured call."""
    action(runs)
    times = []
    for i in range(runs):
        started = time.perf_counter()
        action(i)
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 0.5), percentile(times, 0.95)


def sample_trace_ids(store: Any, count: int) -> list[str]:
    with store.reading() as conn:
        sql = "SELECT trace_id FROM logs WHERE id % {} = 0 LIMIT {}"
        total = conn.execute("SELECT max(id) FROM logs").fetchone()[0] or 1
        rows = conn.execute(sql.format(max(1, total // (count * 2)), count)).fetchall()
    return [r[0] for r in rows]


def measure_queries(store: Any, runs: int, now: float) -> list[tuple[str, float, float]]:
    from log_collector.server.query import facets, histogram, parse_filters, search, trace
    from log_collector.server.query import services as list_services

    def f(params: dict[str, str]) -> Any:
        return parse_filters({k: [v] for k, v in params.items()}, now)

    traces = sample_trace_ids(store, runs + 1)

    def select_one(_: int) -> None:
        with store.reading() as conn:
            conn.execute("SELECT 1").fetchone()

    def page(i: int) -> None:
        level = ("INFO", "ERROR", "WARN")[i % 3]
        search(store, f({"service": SERVICES[i % 20], "level": level, "since": "1h"}), 50)

    cases: list[tuple[str, Callable[[int], Any]]] = [
        ("floor: SELECT 1 on reading()", select_one),
        ("filtered page (service + level + 1 h)", page),
        ("trace lookup", lambda i: trace(store, traces[i % len(traces)])),
        ("q common term over 24 h", lambda i: search(store, f({"q": COMMON_TERM, "since": "24h"}))),
        (
            "q matching nothing over 24 h",
            lambda i: search(store, f({"q": NO_MATCH_TERM, "since": "24h"})),
        ),
        ("histogram 24 h, 60 buckets", lambda i: histogram(store, f({"since": "24h"}), 60)),
        (
            "histogram 24 h, 60 buckets, one service",
            lambda i: histogram(store, f({"since": "24h", "service": SERVICES[i % 20]}), 60),
        ),
        (
            "histogram 24 h from the rows (user_id filter)",
            lambda i: histogram(store, f({"since": "24h", "user_id": f"user-{i}"}), 60),
        ),
        ("facets over 1 h", lambda i: facets(store, f({"since": "1h"}))),
        (
            "facets over 1 h, path and error_type (from the rows)",
            lambda i: facets(store, f({"since": "1h"}), "path,error_type"),
        ),
        ("services", lambda i: list_services(store, now)),
    ]
    return [(label, *timed(runs, action)) for label, action in cases]


def print_queries(title: str, results: list[tuple[str, float, float]]) -> bool:
    print(f"\n{title}")
    print(f"  {'query':48} {'p50 ms':>9} {'p95 ms':>9}  budget (p95)")
    ok = True
    for label, p50, p95 in results:
        budget = BUDGET_MS.get(label)
        verdict = ""
        if budget is not None:
            within = p95 <= budget
            ok = ok and within
            verdict = f"<= {budget} ms  {'ok' if within else 'OVER BUDGET'}"
        print(f"  {label:48} {p50:9.2f} {p95:9.2f}  {verdict}")
    return ok


def ingest_batches(count: int, seed: int) -> list[list[tuple[Any, ...]]]:
    now = time.time()
    rows = list(generate(count * BATCH_SIZE, now, 60.0, seed))
    return [rows[i : i + BATCH_SIZE] for i in range(0, len(rows), BATCH_SIZE)]


def insert_rate(store: Any, batches: list[list[tuple[Any, ...]]]) -> float:
    """Rows/s of ``store.insert`` over ``batches`` from INGEST_THREADS threads."""
    pending = list(reversed(batches))
    lock = threading.Lock()
    failures: list[BaseException] = []

    def work() -> None:
        while True:
            with lock:
                if not pending:
                    return
                batch = pending.pop()
            try:
                accepted, _ = store.insert(batch)
                if accepted != len(batch):
                    raise RuntimeError(f"stored {accepted} of {len(batch)} rows")
            except BaseException as exc:  # reported after the join
                failures.append(exc)
                return

    threads = [threading.Thread(target=work) for _ in range(INGEST_THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise failures[0]
    return sum(len(b) for b in batches) / elapsed


def migrate_before_read_migration(kind: str, db: str) -> None:
    """Apply the ``kind`` migrations that come before READ_MIGRATION (no bookkeeping: the
    database only serves the ingest measure and is dropped after it)."""
    files = [(name, sql) for name, sql in sql_files(kind) if name < READ_MIGRATION]
    if kind == "postgres":
        with psycopg.connect(db, autocommit=True) as conn:
            for _, sql in files:
                conn.execute(sql)
        return
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        for _, sql in files:
            for statement in split_statements(sql):
                conn.execute(statement)
    finally:
        conn.close()


def measure_ingest(kind: str, batches_per_round: int, rounds: int) -> tuple[list[float], ...]:
    """Rows/s with and without the read migration, alternating ``rounds`` times."""
    with_rates: list[float] = []
    without_rates: list[float] = []
    for r in range(rounds):
        for full in (True, False):
            batches = ingest_batches(batches_per_round, seed=100 + 2 * r + full)
            with scratch_database(kind) as db:
                url = db if kind == "postgres" else f"sqlite:///{db}"
                if full:
                    open_store(url).migrate()
                else:
                    migrate_before_read_migration(kind, db)
                store = open_store(url)
                try:
                    store.insert(ingest_batches(5, seed=99)[0])
                    rate = insert_rate(store, batches)
                finally:
                    store.close()
            (with_rates if full else without_rates).append(rate)
    return with_rates, without_rates


def print_ingest(kind: str, with_rates: list[float], without_rates: list[float]) -> bool:
    with_rate = statistics.median(with_rates)
    without_rate = statistics.median(without_rates)
    ratio = with_rate / without_rate
    within = ratio >= INGEST_BUDGET
    print(f"\n{kind} ingest, Store.insert of 1,000-row batches from {INGEST_THREADS} threads")
    step = READ_MIGRATION[:4]
    print(f"  {step} and later: {with_rate:10,.0f} rows/s (median of " + _rates(with_rates))
    print(f"  before {step}:   {without_rate:10,.0f} rows/s (median of " + _rates(without_rates))
    print(
        f"  ratio {ratio:.0%}  budget >= {INGEST_BUDGET:.0%}  {'ok' if within else 'UNDER BUDGET'}"
    )
    return within


def _rates(rates: list[float]) -> str:
    return ", ".join(f"{r:,.0f}" for r in rates) + ")"


@contextmanager
def scratch_database(kind: str, keep: bool = False) -> Iterator[str]:
    """A fresh PostgreSQL database URL or SQLite file path, removed afterwards unless
    ``keep``."""
    if kind == "postgres":
        name = f"lc_bench_query_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(PG_ADMIN_URL)._replace(path=f"/{name}"))
        finally:
            if keep:
                print(f"  kept database {name}")
            else:
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    directory = tempfile.mkdtemp(prefix="lc_bench_query_")
    try:
        yield str(Path(directory) / "logs.db")
    finally:
        if keep:
            print(f"  kept {directory}/logs.db")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def bench_store(kind: str, rows: int, args: argparse.Namespace) -> bool:
    now = time.time()
    ok = True
    with scratch_database(kind, keep=args.keep) as db:
        url = db if kind == "postgres" else f"sqlite:///{db}"
        store = open_store(url)
        try:
            store.migrate()
            if kind == "postgres":
                seconds = load_postgres(db, rows, now)
            else:
                seconds = load_sqlite(store, rows, now)
            print(f"  {kind}: {rows:,} rows loaded in {seconds:.0f} s")
            results = measure_queries(store, args.runs, now)
        finally:
            store.close()
    ok = print_queries(f"{kind}, {rows:,} rows over 7 days, {args.runs} runs each", results) and ok
    with_rates, without_rates = measure_ingest(kind, args.ingest_batches, args.ingest_rounds)
    return print_ingest(kind, with_rates, without_rates) and ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--rows-pg", type=int, default=10_000_000)
    parser.add_argument("--rows-sqlite", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50, help="timed runs of each query")
    parser.add_argument(
        "--ingest-batches", type=int, default=300, help="batches of 1,000 per ingest round"
    )
    parser.add_argument(
        "--ingest-rounds", type=int, default=5, help="alternating rounds with and without"
    )
    parser.add_argument("--keep", action="store_true", help="keep the loaded databases")
    args = parser.parse_args()
    ok = True
    if args.store in ("postgres", "all"):
        ok = bench_store("postgres", args.rows_pg, args) and ok
    if args.store in ("sqlite", "all"):
        ok = bench_store("sqlite", args.rows_sqlite, args) and ok
    print("\nall within budget" if ok else "\nSOME FIGURES ARE OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
