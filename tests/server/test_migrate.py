"""The PostgreSQL migration runner: bookkeeping, one transaction per step, a lock."""

from __future__ import annotations

import threading

import psycopg
import pytest

from log_collector.server.store.postgres_migrations import (
    BOOKKEEPING_TABLE,
    applied_postgres,
    apply_postgres,
)

pytestmark = pytest.mark.postgres

STEPS = [
    "0001_logs",
    "0002_reader_role",
    "0003_time_index_and_log_counts",
    "0004_saved_views",
    "0005_log_counts_by_service",
    "0006_alerts",
    "0007_partitioned_logs",
]


@pytest.fixture
def fresh_pg(pg_databases):
    return pg_databases.create()


def test_each_applied_step_has_its_bookkeeping_row(fresh_pg):
    with psycopg.connect(fresh_pg, autocommit=True) as conn:
        assert [] == applied_postgres(conn)
        assert STEPS == apply_postgres(conn)
        assert STEPS == applied_postgres(conn)
        names = conn.execute(f"SELECT name FROM {BOOKKEEPING_TABLE} ORDER BY name").fetchall()
    assert [(name,) for name in STEPS] == names


def test_the_original_enum_types_and_partial_indexes_exist(fresh_pg):
    with psycopg.connect(fresh_pg, autocommit=True) as conn:
        apply_postgres(conn)
        enums = conn.execute(
            "SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) "
            "FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname"
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'logs' "
            "AND indexdef LIKE '%WHERE%deleted = false%' ORDER BY indexname"
        ).fetchall()
    assert {
        "env_type": ["production", "staging", "development", "test", "local"],
        "http_method": ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"],
        "log_level": ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"],
        "source_type": ["BACKEND", "FRONTEND", "MOBILE", "IOT", "WORKER"],
    } == dict(enums)
    assert [
        ("idx_error_time",),
        ("idx_logs_time",),
        ("idx_service_level_time",),
        ("idx_trace",),
        ("idx_user_time",),
    ] == indexes


def test_servers_migrating_at_once_apply_each_step_once(fresh_pg):
    results: list[list[str]] = []

    def run() -> None:
        with psycopg.connect(fresh_pg, autocommit=True) as conn:
            results.append(apply_postgres(conn))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [[], [], [], STEPS] == sorted(results)


def test_a_failing_step_leaves_no_trace(fresh_pg, monkeypatch):
    from log_collector.server.store import postgres_migrations as runner

    monkeypatch.setattr(
        runner, "sql_files", lambda kind: [("0001_logs", "CREATE TABLE half (x int); SELECT 1/0")]
    )
    with psycopg.connect(fresh_pg, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            apply_postgres(conn)
        assert [] == applied_postgres(conn)
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,)
