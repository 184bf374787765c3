"""The store contract: the same behaviour from the SQLite and the PostgreSQL store."""

from __future__ import annotations

import sqlite3
import time
import uuid

import pytest
from server_helpers import NOW, closed_port, migration_steps, row, stored_rows

from log_collector.server import open_store
from log_collector.server.store.base import ROW_COLUMNS, StoreUnavailable


def test_migrate_on_a_fresh_database_applies_the_schema_then_nothing(fresh_db_url):
    store = open_store(fresh_db_url)
    try:
        assert migration_steps(fresh_db_url) == store.migrate()
        assert [] == store.migrate()
        assert (1, 0) == store.insert([row()])
    finally:
        store.close()


def test_insert_returns_accepted_and_duplicates(store):
    assert (3, 0) == store.insert([row("a"), row("b"), row("c")])


def test_an_empty_batch_stores_nothing(store, db_url):
    assert (0, 0) == store.insert([])
    assert [] == stored_rows(db_url)


def test_the_same_batch_twice_is_stored_once(store, db_url):
    batch = [row("a"), row("b")]
    assert (2, 0) == store.insert(batch)
    assert (0, 2) == store.insert(batch)
    assert ["a", "b"] == [r["message"] for r in stored_rows(db_url)]


def test_a_repeat_inside_one_batch_is_a_duplicate(store, db_url):
    event_id = str(uuid.uuid4())
    assert (1, 1) == store.insert([row("a", event_id=event_id), row("a", event_id=event_id)])
    assert 1 == len(stored_rows(db_url))


def test_a_partly_known_batch_stores_only_the_new_records(store, db_url):
    known = row("known")
    store.insert([known])
    assert (1, 1) == store.insert([known, row("new")])
    assert ["known", "new"] == [r["message"] for r in stored_rows(db_url)]


def test_records_without_event_id_cannot_be_deduplicated(store, db_url):
    batch = [row("old client", event_id=None)]
    assert (1, 0) == store.insert(batch)
    assert (1, 0) == store.insert(batch)
    assert [None, None] == [r["event_id"] for r in stored_rows(db_url)]


def test_every_column_round_trips(store, db_url):
    event_id = str(uuid.uuid4())
    stored = row(
        "paid",
        event_id=event_id,
        created_at=1_700_000_000.123456,
        level="ERROR",
        log_type="WORKER",
        service="billing",
        environment="staging",
        service_version="v2.0.1",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        user_id="u-1",
        session_id="s-1",
        error_type="ValueError",
        stack_trace="Traceback (most recent call last):\n  ...\tline\\2",
        path="/pay",
        method="POST",
        action_type="click",
        function_name="pay",
        file_path="/srv/app/pay.py",
        duration_ms=12.75,
        order_id=42,
        text="é ✓ 漢字",
    )
    store.insert([stored])
    [actual] = stored_rows(db_url)
    expected = dict(zip(ROW_COLUMNS, stored, strict=True))
    expected["metadata"] = {"order_id": 42, "text": "é ✓ 漢字"}
    assert 1_700_000_000.123456 == pytest.approx(actual.pop("created_at"), abs=1e-6)
    assert NOW == pytest.approx(actual.pop("received_at"), abs=1e-6)
    del expected["created_at"], expected["received_at"]
    assert {**expected, "id": 1, "deleted": False} == actual


def test_stats_count_levels_services_and_recent_errors(store):
    an_hour_ago = time.time() - 3700
    store.insert(
        [
            row(level="INFO", service="api"),
            row(level="INFO", service="api"),
            row(level="ERROR", service="api"),
            row(level="FATAL", service="worker"),
            row(level="ERROR", service="worker", created_at=an_hour_ago),
        ]
    )
    assert {
        "total_logs": 5,
        "level_distribution": [
            {"level": "ERROR", "count": 2},
            {"level": "INFO", "count": 2},
            {"level": "FATAL", "count": 1},
        ],
        "service_distribution": [
            {"service": "api", "count": 3},
            {"service": "worker", "count": 2},
        ],
        "recent_errors_1h": 2,
    } == store.stats()


def test_stats_of_an_empty_store(store):
    assert {
        "total_logs": 0,
        "level_distribution": [],
        "service_distribution": [],
        "recent_errors_1h": 0,
    } == store.stats()


def test_stats_lists_the_top_ten_services(store):
    store.insert([row(service=f"svc-{i:02d}") for i in range(12) for _ in range(i + 1)])
    services = store.stats()["service_distribution"]
    assert [f"svc-{i:02d}" for i in range(11, 1, -1)] == [s["service"] for s in services]


def test_ping_answers_when_the_database_is_up(store):
    assert None is store.ping()


def test_an_unreachable_postgres_is_store_unavailable():
    store = open_store(f"postgresql://postgres@127.0.0.1:{closed_port()}/none", timeout=1)
    try:
        with pytest.raises(StoreUnavailable):
            store.ping()
        with pytest.raises(StoreUnavailable):
            store.migrate()
    finally:
        store.close()


def test_a_locked_sqlite_file_is_store_unavailable(tmp_path):
    url = f"sqlite:///{tmp_path}/logs.db"
    store = open_store(url, timeout=0.1)
    store.migrate()
    other = sqlite3.connect(tmp_path / "logs.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable, match="database is locked"):
            store.insert([row()])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert (1, 0) == store.insert([row()])
    store.close()


@pytest.mark.parametrize("url", ["mysql://x", "sqlite:///", "sqlite:///:memory:", "logs.db"])
def test_an_unsupported_url_is_refused_with_the_forms_it_takes(url):
    with pytest.raises(ValueError, match="sqlite:///path/to/logs.db"):
        open_store(url)
