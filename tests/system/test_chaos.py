"""scripts/chaos.py in short: every kind of fault at least once, against a real server and
real client processes, and nothing whose log call returned is lost or stored twice.

The SQLite run is part of `make test`; the same run on PostgreSQL is `slow` (skipped when no
PostgreSQL answers, except under CI=true, where that is a failure). The five-minute run is
`python scripts/chaos.py --minutes 5` (RELIABILITY.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get(
    "LOG_COLLECTOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
FAULTS = {
    "client_kill",
    "server_kill",
    "error",
    "throttle",
    "slow",
    "lose_ack",
    "clock_jump",
    "spool_full",
    "full_disk",
}


def run_chaos(tmp_path: Path, *options: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chaos.py"), "--seconds", "25",
         "--workdir", str(tmp_path), *options],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    summaries = [line for line in result.stdout.splitlines() if line.startswith("CHAOS_SUMMARY ")]
    assert summaries, f"no summary\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result, json.loads(summaries[-1].removeprefix("CHAOS_SUMMARY "))


def assert_nothing_lost_or_duplicated(result: subprocess.CompletedProcess[str], summary: Any):
    assert 0 == result.returncode, result.stdout[-4000:]
    assert 0 == summary["lost"]
    assert 0 == summary["duplicated"]
    assert 0 == summary["rows_sharing_an_event_id"]
    assert 0 == summary["unexplained_stored"]
    assert 0 == summary["pending_in_spools"]
    # The run really did what it says: every fault, and the counted policies fired.
    assert FAULTS <= summary["faults"].keys()
    assert summary["logged"] > 1000
    assert summary["dropped_by_reason"].get("spool_full", 0) > 0
    assert summary["fallback_records"] > 0
    assert summary["server_kills"] >= 1
    assert summary["client_kills"] >= 1


def test_a_short_chaos_run_on_sqlite_loses_nothing_and_duplicates_nothing(tmp_path):
    assert_nothing_lost_or_duplicated(*run_chaos(tmp_path, "--store", "sqlite", "--seed", "5"))


@pytest.fixture
def pg_admin_url() -> str:
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        message = f"no PostgreSQL at {PG_ADMIN_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)
    return PG_ADMIN_URL


@pytest.mark.slow
@pytest.mark.postgres
def test_a_short_chaos_run_on_postgres_loses_nothing_and_duplicates_nothing(tmp_path, pg_admin_url):
    result, summary = run_chaos(
        tmp_path, "--store", "postgres", "--pg-url", pg_admin_url, "--seed", "6"
    )
    assert_nothing_lost_or_duplicated(result, summary)
    with psycopg.connect(pg_admin_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (summary["database"],)
        ).fetchone()
    assert (0,) == left  # the run dropped its database
