"""What the counting trigger costs PostgreSQL ingest, on the partitioned ``logs`` (every
migration) and on the table before it was partitioned (the migrations before 0007).

``Store.insert`` COPYs each batch into ``logs``; ``logs_counts_insert`` is a statement trigger
whose transition table counts the rows into ``log_counts``. PostgreSQL's COPY batches the
heap inserts of a plain table whatever its triggers, but into a partitioned table whose insert
trigger has a transition table it inserts row by row (src/backend/commands/copyfrom.c, the
CIM_SINGLE branch for "statement level insert triggers" on a partitioned target). This
measures the store's insert rate with the trigger and with it dropped, on both tables,
alternating, from the same threads and batches as scripts/bench_query.py:

    .venv/bin/python scripts/bench_copy_trigger.py [--batches 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_query  # noqa: E402

from log_collector.common.migrations import sql_files  # noqa: E402
from log_collector.server.store import open_store  # noqa: E402

PARTITIONING = "0007_partitioned_logs"
CONFIGS = (
    ("partitioned", True),
    ("partitioned", False),
    ("not partitioned", True),
    ("not partitioned", False),
)


def prepare(db: str, partitioned: bool, trigger: bool) -> None:
    if partitioned:
        open_store(db).migrate()
    else:
        with psycopg.connect(db, autocommit=True) as conn:
            for name, sql in sql_files("postgres"):
                if name < PARTITIONING:
                    conn.execute(sql)
    if not trigger:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("DROP TRIGGER logs_counts_insert ON logs")


def rate(partitioned: bool, trigger: bool, batches: list) -> float:
    with bench_query.scratch_database("postgres") as db:
        prepare(db, partitioned, trigger)
        store = open_store(db)
        try:
            store.insert(bench_query.ingest_batches(5, seed=99)[0])
            return bench_query.insert_rate(store, batches)
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200, help="batches of 1,000 per run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    args = parser.parse_args()
    rates: dict[tuple[str, bool], list[float]] = {config: [] for config in CONFIGS}
    for r in range(args.rounds):
        batches = bench_query.ingest_batches(args.batches, seed=300 + r)
        for table, trigger in CONFIGS:
            rates[(table, trigger)].append(rate(table == "partitioned", trigger, batches))
    print(
        f"Store.insert of {args.batches} batches of 1,000 rows from "
        f"{bench_query.INGEST_THREADS} threads, {args.rounds} alternating rounds (rows/s)"
    )
    for table in ("partitioned", "not partitioned"):
        with_trigger = statistics.median(rates[(table, True)])
        without = statistics.median(rates[(table, False)])
        shown = ", ".join(f"{r:,.0f}" for r in rates[(table, True)])
        bare = ", ".join(f"{r:,.0f}" for r in rates[(table, False)])
        print(f"  {table:16} with the counting trigger {with_trigger:9,.0f} ({shown})")
        print(f"  {'':16} without it                {without:9,.0f} ({bare})")
        print(f"  {'':16} with / without: {with_trigger / without:.0%}")


if __name__ == "__main__":
    main()
