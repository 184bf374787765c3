"""PostgreSQL's ``logs`` partitioned by day (migrations/postgres/0007_partitioned_logs.sql,
log_collector/server/store/partitions.py): the migration of an unpartitioned table with rows,
deduplication across retries on (event_id, created_at), the default partition's rows moved to
their days, and retention dropping whole days older than the limit and nothing newer, by the
command and by the server's setting. SQLite's retention deletes rows instead.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import requests

from log_collector.common.migrations import sql_files
from log_collector.server import create_app, open_store
from log_collector.server.store.base import retention_cutoff
from log_collector.server.store.postgres_migrations import BOOKKEEPING_TABLE

pytestmark = pytest.mark.postgres

PARTITIONING = "0007_partitioned_logs"
DAY = 86_400.0


def _migrate_before_partitioning(url: str) -> None:
    """The schema as it was before 0007, with the runner's bookkeeping."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {BOOKKEEPING_TABLE} ("
            "name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for name, sql in sql_files("postgres"):
            if name == PARTITIONING:
                break
            with conn.transaction():
                conn.execute(sql)
                conn.execute(f"INSERT INTO {BOOKKEEPING_TABLE} (name) VALUES (%s)", (name,))


def _rows(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT id, created_at, level::text, service, message, metadata, event_id, received_at, "
        "deleted FROM logs ORDER BY id"
    ).fetchall()


def _counts(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT granule_s, bucket_us, service, n_trace, n_debug, n_info, n_warn, n_error, "
        "n_fatal FROM log_counts ORDER BY 1, 2, 3"
    ).fetchall()


def _partitions(conn: psycopg.Connection) -> list[str]:
    return [
        name
        for (name,) in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'logs'::regclass ORDER BY 1"
        )
    ]


def _days_ahead(partition: str) -> int:
    """Days from today (UTC) to the day of ``partition`` (logs_pYYYY_MM_DD). pg_partman keeps
    7 days made ahead of now, so 7 or 8 ahead of today's midnight."""
    day = datetime.strptime(partition, "logs_p%Y_%m_%d").date()
    return (day - datetime.now(UTC).date()).days


def _record(created_at: float | None, **fields: Any) -> dict[str, Any]:
    record = {"service": "billing", "level": "INFO", "message": "m", **fields}
    record.setdefault("event_id", str(uuid.uuid4()))
    if created_at is not None:
        record["created_at"] = created_at
    return record


def post_logs(url: str, records: list[dict[str, Any]]) -> requests.Response:
    response = requests.post(f"{url}/logs", json={"logs": records}, timeout=30)
    response.raise_for_status()
    return response


def _v7(unix_ms: int) -> str:
    """A UUID v7 whose time is ``unix_ms`` (RFC 9562 section 5.7)."""
    value = (unix_ms << 80) | (0x7 << 76) | (0x2 << 62) | (uuid.uuid4().int & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def test_the_migration_keeps_every_row_of_an_unpartitioned_table(pg_databases) -> None:
    url = pg_databases.create()
    _migrate_before_partitioning(url)
    now = time.time()
    with psycopg.connect(url, autocommit=True) as conn:
        # Rows over 40 days, one from 1971, one from 2150, some without an event_id, one
        # deleted, each with metadata: every one must arrive unchanged, id included.
        conn.execute(
            "INSERT INTO logs (created_at, level, service, message, metadata, event_id, deleted) "
            "SELECT to_timestamp(%s - i * 3600.5), "
            "(ARRAY['INFO','WARN','ERROR']::log_level[])[1 + i %% 3], 's' || (i %% 4), "
            "'message ' || i, jsonb_build_object('i', i), "
            "CASE WHEN i %% 10 = 0 THEN NULL ELSE gen_random_uuid() END, i = 7 "
            "FROM generate_series(0, 960) AS i",
            (now,),
        )
        conn.execute(
            "INSERT INTO logs (created_at, service, message, event_id) VALUES "
            "('1971-03-01T00:00:00Z', 'old', 'ancient', gen_random_uuid()), "
            "('2150-01-01T00:00:00Z', 'future', 'far ahead', gen_random_uuid())"
        )
        rows_before, counts_before = _rows(conn), _counts(conn)
    assert len(rows_before) == 963

    store = open_store(url)
    try:
        assert store.migrate() == [PARTITIONING]
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(
                "SELECT relkind FROM pg_class WHERE relname = 'logs'"
            ).fetchone() == ("p",)
            assert _rows(conn) == rows_before
            assert _counts(conn) == counts_before
            partitions = _partitions(conn)
            assert "logs_p1971_03_01" in partitions
            # Past the days made ahead: the default partition.
            assert conn.execute("SELECT message FROM logs_default").fetchall() == [("far ahead",)]
            assert _days_ahead(partitions[-1]) in (7, 8) and "logs_default" in partitions
            assert conn.execute("SELECT to_regclass('logs_unpartitioned')").fetchone() == (None,)
            # Ids go on from the old sequence; a retry of a moved row is a duplicate.
            max_id = rows_before[-1][0]
            old = rows_before[1]
        accepted, duplicates = store.insert(
            [_row_like(old, now)],
        )
        assert (accepted, duplicates) == (0, 1)
        assert store.insert([_row_like(old, now, event_id=str(uuid.uuid4()))]) == (1, 0)
        with psycopg.connect(url, autocommit=True) as conn:
            # (A sequence is not transactional: the refused attempts took numbers too.)
            newest = conn.execute("SELECT id, message FROM logs ORDER BY id DESC LIMIT 1")
            new_id, message = newest.fetchone()
            assert new_id > max_id and message == "again"
    finally:
        store.close()


def _row_like(row: tuple[Any, ...], now: float, *, event_id: str | None = None) -> tuple:
    """A store row (ROW_COLUMNS order) with the time and event_id of a stored one."""
    created_at = row[1].timestamp()
    return (
        created_at, "INFO", "BACKEND", row[3], "development", "v0.0.0-dev", None, None, None,
        None, "again", None, None, None, None, None, None, None, None,
        event_id or str(row[6]), now,
    )  # fmt: skip


def test_a_retried_batch_is_stored_once_on_every_day_it_touches(pg_session_url: str, serve) -> None:
    with psycopg.connect(pg_session_url, autocommit=True) as conn:
        conn.execute("TRUNCATE logs")
    app = create_app(pg_session_url)
    url = serve(app)
    # Its first maintenance run moves rows out of the default partition; a read while a move
    # commits may miss the rows it moves (docs/deployment.md, "Retention and partitions").
    assert app.state.maintainer.first_run.wait(60)
    now = time.time()
    batch = [
        _record(now),
        _record(now - 2 * DAY),
        # Outside the partitions made ahead and behind: the default partition.
        _record(now - 400 * DAY),
        _record(now + 60 * DAY),
        # No created_at: the time of its UUID v7 event_id stands in, the same on each retry.
        _record(None, event_id=_v7(int((now - 3600) * 1000))),
        # A time outside 1970-2200: the same.
        _record(1e13 * 1000, event_id=_v7(int((now - 7200) * 1000))),
    ]
    first = post_logs(url, batch).json()
    assert (first["accepted"], first["duplicates"]) == (len(batch), 0)
    again = post_logs(url, batch).json()
    assert (again["accepted"], again["duplicates"]) == (0, len(batch))
    with psycopg.connect(pg_session_url, autocommit=True) as conn:
        stored = conn.execute("SELECT event_id::text, created_at FROM logs").fetchall()
        assert sorted(e for e, _ in stored) == sorted(r["event_id"] for r in batch)
        by_id = dict(stored)
        stood_in = by_id[batch[4]["event_id"]].timestamp()
        assert stood_in == pytest.approx(now - 3600, abs=0.002)
        assert by_id[batch[5]["event_id"]].timestamp() == pytest.approx(now - 7200, abs=0.002)


def test_maintenance_moves_default_rows_to_their_days(pg_session_url: str) -> None:
    store = open_store(pg_session_url)
    try:
        with psycopg.connect(pg_session_url, autocommit=True) as conn:
            conn.execute("TRUNCATE logs")
            old = datetime.now(UTC) - timedelta(days=300)
            far = datetime.now(UTC) + timedelta(days=400)
            conn.execute(
                "INSERT INTO logs (created_at, service, message, event_id) VALUES "
                "(%s, 'old', 'replayed', gen_random_uuid()), "
                "(%s, 'far', 'clock ahead', gen_random_uuid())",
                (old, far),
            )
            assert conn.execute("SELECT count(*) FROM logs_default").fetchone() == (2,)
        done = store.maintain()
        assert done.ran and done.moved == 1
        old_day = old.strftime("logs_p%Y_%m_%d")
        assert old_day in done.created
        with psycopg.connect(pg_session_url, autocommit=True) as conn:
            assert conn.execute(f"SELECT message FROM {old_day}").fetchall() == [("replayed",)]
            # A row far ahead stays in the default partition, and no day up to it is made:
            # the newest partition is still the 7th day ahead.
            assert conn.execute("SELECT message FROM logs_default").fetchall() == [("clock ahead",)]
            assert _days_ahead(_partitions(conn)[-1]) in (7, 8)
            assert conn.execute("SELECT count(*) FROM logs").fetchone() == (2,)
        assert store.maintain().moved == 0
    finally:
        store.close()


def _seed_days(url: str, days: int) -> float:
    """Four rows at noon UTC of each of the last ``days`` days (and today's four), through the
    store's own insert (the counts follow); returns now."""
    now = time.time()
    today_noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    store = open_store(url)
    try:
        rows = []
        for day in range(days + 1):
            moment = (today_noon - timedelta(days=day)).timestamp()
            for n in range(4):
                level = ("INFO", "ERROR")[n % 2]
                rows.append(
                    (
                        moment + n, level, "BACKEND", f"s{n % 2}", "development", "v0.0.0-dev",
                        None, None, None, None, f"day {day}", None, None, None, None, None,
                        None, None, None, str(uuid.uuid4()), now,
                    )
                )  # fmt: skip
        assert store.insert(rows) == (len(rows), 0)
    finally:
        store.close()
    return now


def _check_kept(url: str, cutoff: datetime) -> None:
    cutoff_us = int(cutoff.timestamp()) * 1_000_000
    with psycopg.connect(url, autocommit=True) as conn:
        oldest = conn.execute("SELECT min(created_at), count(*) FROM logs").fetchone()
        assert oldest[0] >= cutoff
        # Everything from the cutoff on is still there: 4 rows a day.
        kept_days = (datetime.now(UTC) - cutoff).days + 1
        assert oldest[1] == 4 * kept_days
        for name in _partitions(conn):
            if name != "logs_default":
                day = datetime.strptime(name, "logs_p%Y_%m_%d").replace(tzinfo=UTC)
                assert day >= cutoff, name
        # The counts left are exactly those of the rows left.
        stale = conn.execute(
            "SELECT count(*) FROM log_counts WHERE bucket_us < %s", (cutoff_us,)
        ).fetchone()
        assert stale == (0,)
        counted = conn.execute(
            "SELECT sum(n_info + n_error) FROM log_counts WHERE granule_s = 60"
        ).fetchone()
        assert counted == (oldest[1],)


def test_the_retention_command_drops_the_days_older_than_the_limit(pg_databases) -> None:
    url = pg_databases.create()
    open_store(url).migrate()
    _seed_days(url, 40)
    # The days older than the partitions made at migration went to the default partition;
    # maintenance gives each its partition, as the days had when they were today.
    assert open_store(url).maintain().moved > 0
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM logs_default").fetchone() == (0,)
        # A row of a day older than any partition lands in the default partition: it goes too.
        conn.execute(
            "INSERT INTO logs (created_at, service, message, event_id) "
            "VALUES (now() - interval '900 days', 'old', 'ancient', gen_random_uuid())"
        )
    result = subprocess.run(
        [sys.executable, "-m", "log_collector", "retention", "--db", url, "--keep", "30d"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    cutoff = retention_cutoff(timedelta(days=30), datetime.now(UTC))
    assert f"kept rows from {cutoff.isoformat()} on" in result.stdout
    older_days = sum(
        (datetime.now(UTC) - timedelta(days=day)).date() < cutoff.date() for day in range(41)
    )
    assert f"dropped {older_days} partition(s)" in result.stdout
    assert "deleted 1 row(s)" in result.stdout
    _check_kept(url, cutoff)
    # Run again: nothing more goes.
    again = subprocess.run(
        [sys.executable, "-m", "log_collector", "retention", "--db", url, "--keep", "30d"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0 and "deleted 0 row(s)" in again.stdout
    _check_kept(url, cutoff)


def test_the_server_setting_keeps_the_limit(pg_databases, serve) -> None:
    url = pg_databases.create()
    open_store(url).migrate()
    _seed_days(url, 12)
    base = serve(create_app(url, retention="7d"))
    cutoff = retention_cutoff(timedelta(days=7), datetime.now(UTC))
    deadline = time.monotonic() + 60
    while True:
        with psycopg.connect(url, autocommit=True) as conn:
            oldest = conn.execute("SELECT min(created_at) FROM logs").fetchone()[0]
        if oldest >= cutoff or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    _check_kept(url, cutoff)
    # What the server answers agrees with the table.
    total = requests.get(f"{base}/stats", timeout=10).json()["total_logs"]
    assert total == 4 * ((datetime.now(UTC) - cutoff).days + 1)


def test_a_bad_retention_is_one_clear_error(pg_session_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "log_collector", "retention", "--db", pg_session_url, "--keep",
         "soon"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "log-collector: error: retention 'soon': expected a span such as 30d, 4w or 36h"
    )
    with pytest.raises(ValueError, match="keep at least a day"):
        create_app(pg_session_url, retention="12h")
