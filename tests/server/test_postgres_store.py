"""The PostgreSQL store's two paths: a binary COPY straight into ``logs``, and,
for a batch that repeats an event_id, the staging table with ON CONFLICT."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from server_helpers import row, stored_rows

from log_collector.server import open_store
from log_collector.server.store.base import ROW_COLUMNS

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url(pg_session_url):
    with psycopg.connect(pg_session_url, autocommit=True) as conn:
        conn.execute("TRUNCATE logs RESTART IDENTITY")
    return pg_session_url


@pytest.fixture
def store(pg_url):
    store = open_store(pg_url)
    yield store
    store.close()


def without_ids(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("id", "event_id")} for r in rows]


def test_a_batch_holding_a_stored_event_id_stores_the_others_once(store, pg_url):
    known = row("known")
    assert (1, 0) == store.insert([known])
    assert (2, 1) == store.insert([row("a"), known, row("b")])
    assert ["known", "a", "b"] == [r["message"] for r in stored_rows(pg_url)]


def test_a_batch_holding_one_event_id_twice_stores_it_once(store, pg_url):
    event_id = str(uuid.uuid4())
    batch = [row("first", event_id), row("other"), row("second", event_id)]
    assert (2, 1) == store.insert(batch)
    assert ["first", "other"] == [r["message"] for r in stored_rows(pg_url)]


def test_both_paths_store_the_same_values(store, pg_url):
    fields = {
        "created_at": 1_700_000_000.000_000_5,  # half a microsecond: rounding decides
        "level": "FATAL",
        "log_type": "IOT",
        "environment": "test",
        "method": "OPTIONS",
        "duration_ms": -0.25,
        "trace_id": "t" * 100,
        "text": "é ✓ 漢字 \\ \t \n",
        "nested": {"list": [1, 2.5, None, True], "empty": {}},
    }
    copied = row("same", **fields)
    store.insert([copied])
    # The same values again, with a stored event_id: this batch takes the staging path.
    assert (1, 1) == store.insert([copied, row("same", **fields)])
    first, second = stored_rows(pg_url)
    assert without_ids([first]) == without_ids([second])


def test_times_are_rounded_to_the_microsecond_as_to_timestamp_does(store, pg_url):
    created = [0.0, 0.000_000_5, 1_700_000_000.123_456_5, 1_700_000_000.999_999_9, 99_999_999_999.5]
    rows = [row(f"t{i}", created_at=t) for i, t in enumerate(created)]
    store.insert(rows)
    times = [r[0] for r in rows]
    with psycopg.connect(pg_url) as conn:
        same = conn.execute(
            "SELECT bool_and(created_at = to_timestamp(t)) "
            "FROM logs JOIN unnest(%s::float8[]) WITH ORDINALITY AS u(t, n) "
            "ON message = 't' || (n - 1)",
            (times,),
        ).fetchone()
    assert (True,) == same


def test_concurrent_batches_sharing_event_ids_in_opposite_orders_store_each_once(store, pg_url):
    # Each waits on the other's uncommitted rows; PostgreSQL may fail one COPY
    # as a deadlock, which then settles its batch by ON CONFLICT.
    shared = [row(f"shared {i}") for i in range(200)]
    batches = [
        shared + [row("only a")],
        list(reversed(shared)) + [row("only b")],
    ]
    results: list[tuple[int, int]] = []
    start = threading.Barrier(len(batches))

    def insert(batch: list[tuple]) -> None:
        start.wait()
        results.append(store.insert(batch))

    threads = [threading.Thread(target=insert, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = stored_rows(pg_url)
    assert 202 == len(rows) == len({r["event_id"] for r in rows})
    assert (202, 200) == tuple(map(sum, zip(*results, strict=True)))


def test_the_copy_fills_every_column_of_the_row(store, pg_url):
    store.insert([row("all", user_id="u", session_id="s", path="/p", error_type="E")])
    [stored] = stored_rows(pg_url)
    assert set(ROW_COLUMNS) | {"id", "deleted"} == set(stored)
    assert ("u", "s", "/p", "E") == (
        stored["user_id"],
        stored["session_id"],
        stored["path"],
        stored["error_type"],
    )
