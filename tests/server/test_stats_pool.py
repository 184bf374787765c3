"""Reads never starve ingest: /stats runs on the store's own read connections
(Store.reading), apart from ingest's, and is computed at most once per TTL.
Real servers on 127.0.0.1 on both stores; the benchmark form on PostgreSQL."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from server_helpers import record, stored_messages

from log_collector.server import StoreUnavailable, create_app

BENCH = Path(__file__).parents[2] / "scripts" / "bench_stats_isolation.py"


def test_with_every_read_connection_taken_stats_is_503_and_posts_are_still_stored(db_url, serve):
    app = create_app(db_url, store_timeout=1)
    url = serve(app)
    store = app.state.store
    with contextlib.ExitStack() as held:
        for _ in range(8):  # every connection of the read pool, then one more fails
            try:
                held.enter_context(store.reading())
            except StoreUnavailable:
                break
        else:
            pytest.fail("the read pool never ran out")
        response = requests.post(f"{url}/logs", json={"logs": [record("while reads wait")]})
        assert 200 == response.status_code
        stats = requests.get(f"{url}/stats", timeout=30)
        assert (503, "5") == (stats.status_code, stats.headers["Retry-After"])
    assert ["while reads wait"] == stored_messages(db_url)
    assert 1 == requests.get(f"{url}/stats").json()["total_logs"]


def test_stats_is_computed_at_most_once_per_ttl(db_url, serve):
    url = serve(create_app(db_url))
    requests.post(f"{url}/logs", json={"logs": [record("first")]})
    assert 1 == requests.get(f"{url}/stats").json()["total_logs"]
    requests.post(f"{url}/logs", json={"logs": [record("second")]})
    # Within the TTL (5 s) the same answer is reused.
    assert 1 == requests.get(f"{url}/stats").json()["total_logs"]


@pytest.mark.slow
@pytest.mark.postgres
def test_the_stats_isolation_benchmark_runs_and_reports_its_budget(pg_databases):
    """scripts/bench_stats_isolation.py runs ingest alone, beside /healthz readers (the floor)
    and beside /stats readers, and says whether the budget (half the rate alone) was met.
    The rates themselves are a benchmark's to measure (docs/performance.md), not a test's:
    on a shared 2-core machine they move with whatever else runs."""
    url = pg_databases.create()
    result = subprocess.run(
        [sys.executable, str(BENCH), "--db", url, "--seconds", "4", "--stats-readers", "8"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert 0 == result.returncode, result.stderr
    rates = dict(re.findall(r"^(.*?) \(records/s\): (\d+)", result.stdout, re.MULTILINE))
    assert {"ingest alone", "floor: ingest with 8 /healthz readers"} <= set(rates)
    assert 0 < float(rates["ingest with 8 /stats readers"])
    assert int(re.search(r"^/stats answered: (\d+)", result.stdout, re.MULTILINE)[1]) > 0
    assert re.search(r"^budget .*: (met|NOT MET)$", result.stdout, re.MULTILINE)
