"""Retention on the embedded SQLite store: ``log-collector retention`` and the server setting
delete the rows older than the day that holds now - keep, in small transactions, and the
histogram's counts follow (log_collector/server/store/sqlite.py ``maintain``)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from log_collector.server import create_app, open_store
from log_collector.server.store.base import retention_cutoff
from log_collector.server.store.sqlite import RETENTION_BATCH

DAYS = 12
PER_DAY = RETENTION_BATCH // 4  # several transactions' worth of old rows


def _seed(url: str) -> None:
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    now = time.time()
    store = open_store(url)
    try:
        store.migrate()
        rows = [
            (
                (noon - timedelta(days=day)).timestamp() + n / 1000, "INFO", "BACKEND", "api",
                "development", "v0.0.0-dev", None, None, None, None, f"day {day}", None, None,
                None, None, None, None, None, None, str(uuid.uuid4()), now,
            )
            for day in range(DAYS + 1)
            for n in range(PER_DAY)
        ]  # fmt: skip
        assert store.insert(rows) == (len(rows), 0)
    finally:
        store.close()


def _check(path: str, keep_days: int) -> None:
    cutoff = retention_cutoff(timedelta(days=keep_days), datetime.now(UTC))
    cutoff_us = int(cutoff.timestamp()) * 1_000_000
    kept_days = (datetime.now(UTC) - cutoff).days + 1
    with sqlite3.connect(path) as conn:
        oldest, count = conn.execute("SELECT min(created_at), count(*) FROM logs").fetchone()
        assert oldest >= cutoff_us and count == kept_days * PER_DAY
        counted = conn.execute("SELECT sum(n) FROM log_counts_by_level WHERE granule_s = 60")
        assert counted.fetchone() == (count,)


def test_the_retention_command_deletes_the_older_days(tmp_path) -> None:
    path = tmp_path / "logs.db"
    _seed(f"sqlite:///{path}")
    result = subprocess.run(
        [sys.executable, "-m", "log_collector", "retention", "--db", f"sqlite:///{path}",
         "--keep", "5d"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Days 6 to 12 before today are older than the day that holds now - 5 days.
    assert f"deleted {(DAYS - 5) * PER_DAY} row(s)" in result.stdout
    _check(str(path), 5)


def test_the_server_setting_deletes_the_older_days(tmp_path, serve) -> None:
    path = tmp_path / "logs.db"
    _seed(f"sqlite:///{path}")
    app = create_app(f"sqlite:///{path}", retention="3d")
    serve(app)
    assert app.state.maintainer.first_run.wait(60)
    _check(str(path), 3)


def test_without_a_retention_nothing_runs(tmp_path) -> None:
    app = create_app(f"sqlite:///{tmp_path}/logs.db")
    assert app.state.maintainer is None
