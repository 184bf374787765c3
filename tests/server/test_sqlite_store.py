"""The SQLite store: its writer thread (batches from many threads, one transaction), its pool
of read connections (readers beside each other and beside a write, at most READ_CONNECTIONS,
returned rolled back, closed with the store), and its migrations."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import uuid

import pytest
import sqlite_utils
from server_helpers import NOW, row, stored_rows
from sqlite_utils.migrations import Migrations

from log_collector.common.migrations import split_statements, sql_files
from log_collector.server import open_store
from log_collector.server.store.base import ROW_COLUMNS, StoreUnavailable
from log_collector.server.store.sqlite import READ_CONNECTIONS


def migrated(tmp_path, timeout: float = 5.0):
    store = open_store(f"sqlite:///{tmp_path}/logs.db", timeout=timeout)
    store.migrate()
    return store


def count_logs(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM logs").fetchone()[0]


def test_batches_inserted_at_once_from_many_threads_each_get_their_own_counts(tmp_path):
    store = migrated(tmp_path)
    shared = str(uuid.uuid4())
    batches = [[row(f"t{t}-{i}") for i in range(50)] + [row("shared", shared)] for t in range(8)]
    results: list[tuple[int, int] | None] = [None] * len(batches)
    start = threading.Barrier(len(batches))

    def insert(index: int) -> None:
        start.wait()
        results[index] = store.insert(batches[index])

    threads = [threading.Thread(target=insert, args=(t,)) for t in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    # Exactly one batch stored the shared event; every other saw it as a duplicate.
    assert sorted(results) == [(50, 1)] * 7 + [(51, 0)]
    assert 8 * 50 + 1 == len(stored_rows(f"sqlite:///{tmp_path}/logs.db"))


def test_a_batch_that_fails_fails_alone_and_the_others_are_stored(tmp_path):
    store = migrated(tmp_path)
    bad = list(row("bad"))
    bad[ROW_COLUMNS.index("level")] = "LOUD"  # breaks the CHECK; validation never sends it
    outcomes: list[object] = [None, None, None]
    batches = [[row("a")], [row("b"), tuple(bad)], [row("c")]]
    start = threading.Barrier(3)

    def insert(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = store.insert(batches[index])
        except Exception as exc:  # noqa: BLE001  # the outcome is what is checked
            outcomes[index] = type(exc).__name__

    threads = [threading.Thread(target=insert, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert [(1, 0), "IntegrityError", (1, 0)] == outcomes
    assert ["a", "c"] == sorted(r["message"] for r in stored_rows(f"sqlite:///{tmp_path}/logs.db"))


def test_close_waits_for_queued_batches_and_later_inserts_are_refused(tmp_path):
    store = migrated(tmp_path)
    assert (1, 0) == store.insert([row()])
    store.close()
    assert 1 == len(stored_rows(f"sqlite:///{tmp_path}/logs.db"))
    with pytest.raises(StoreUnavailable, match="closed"):
        store.insert([row()])


def test_a_batch_larger_than_one_statement_is_stored_whole_with_its_counts(tmp_path):
    store = migrated(tmp_path)
    repeated = row("repeated")
    # 2,500 rows take three INSERT statements; the repeat sits in the last one.
    batch = [row(f"m{i}") for i in range(2_499)]
    batch.insert(0, repeated)
    batch.append(repeated)
    try:
        assert (2_500, 1) == store.insert(batch)
    finally:
        store.close()
    messages = [r["message"] for r in stored_rows(f"sqlite:///{tmp_path}/logs.db")]
    assert ["repeated", *(f"m{i}" for i in range(2_499))] == messages


# the read connections


def test_a_second_reader_is_served_while_a_first_holds_its_read_transaction(tmp_path):
    """WAL readers do not block each other: the second reader needs no wait (the store's
    timeout is a liveness bound only), and each reads its own snapshot beside a write."""
    store = migrated(tmp_path, timeout=30)
    try:
        store.insert([row("before")])
        with store.reading() as first:
            first.execute("BEGIN")
            assert 1 == count_logs(first)
            store.insert([row("after")])
            with store.reading() as second:
                assert second is not first
                assert 2 == count_logs(second)
            assert 1 == count_logs(first)
            first.execute("COMMIT")
    finally:
        store.close()


def test_with_every_reader_held_the_next_is_refused_after_the_store_timeout(tmp_path):
    store = migrated(tmp_path, timeout=0.2)
    try:
        with contextlib.ExitStack() as held:
            for _ in range(READ_CONNECTIONS):
                held.enter_context(store.reading())
            busy = pytest.raises(StoreUnavailable, match="every read connection is busy")
            with busy, store.reading():
                pass
        # Once they are returned, a reader is served again.
        with store.reading() as conn:
            assert 0 == count_logs(conn)
    finally:
        store.close()


def test_a_waiting_reader_gets_the_connection_the_first_to_finish_returns(tmp_path):
    store = migrated(tmp_path, timeout=30)
    served: list[sqlite3.Connection] = []
    done = threading.Event()

    def wait_for_a_reader() -> None:
        with store.reading() as conn:
            served.append(conn)
        done.set()

    try:
        with contextlib.ExitStack() as held:
            conns = [held.enter_context(store.reading()) for _ in range(READ_CONNECTIONS)]
            waiter = threading.Thread(target=wait_for_a_reader)
            waiter.start()
            # While every reader is held the waiter is not served (were it, it would be well
            # within this wait).
            assert not done.wait(0.2)
        waiter.join(10)
        assert done.is_set()
        assert served[0] in conns
    finally:
        store.close()


def test_a_reader_returned_inside_its_transaction_is_rolled_back_and_reused(tmp_path):
    """A request that fails half-way leaves its transaction open: the store rolls it back, so
    the next request on that connection reads fresh data and the write lock is free."""
    store = migrated(tmp_path, timeout=2)
    try:
        with pytest.raises(RuntimeError), store.reading() as conn:
            returned = conn
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO saved_views (name, page, query, created_at) "
                "VALUES ('draft', 'explore', '', 0)"
            )
            raise RuntimeError("the request failed before COMMIT")
        with store.reading() as conn:
            assert conn is returned
            assert not conn.in_transaction
            assert [] == conn.execute("SELECT name FROM saved_views").fetchall()
        # The write lock went with the transaction: the writer thread commits.
        assert (1, 0) == store.insert([row()])
    finally:
        store.close()


def test_close_closes_the_idle_readers(tmp_path):
    store = migrated(tmp_path)
    with store.reading() as first, store.reading() as second:
        readers = [first, second]
    store.close()
    for conn in readers:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")


def test_a_database_made_before_integer_times_keeps_every_row_and_time(tmp_path):
    """0002 rebuilds logs with integer times: rows written with text times by
    0001's schema come through with their ids, values and exact microseconds."""
    path = tmp_path / "logs.db"
    first_name, first_sql = sql_files("sqlite")[0]
    only_first = Migrations("log-collector-sqlite")

    @only_first(name=first_name)
    def _first(db: sqlite_utils.Database) -> None:
        for statement in split_statements(first_sql):
            db.execute(statement)

    conn = sqlite3.connect(path)
    only_first.apply(sqlite_utils.Database(conn))
    old_event = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO logs (id, created_at, service, message, user_id, event_id, received_at) "
        "VALUES (7, '2024-05-01T12:00:00.000001+00:00', 's', 'old', 'u1', ?, "
        "'2024-05-01T12:00:01.999999+00:00'), "
        "(9, '1970-01-01T00:00:00.000000+00:00', 's', 'epoch', NULL, NULL, "
        "'2038-01-19T03:14:08.500000+00:00')",
        (old_event,),
    )
    conn.commit()
    conn.close()

    store = migrated(tmp_path)
    assert (1, 0) == store.insert([row("new")])
    # The old event_ids still deduplicate after the rebuild.
    assert (0, 1) == store.insert([row("again", old_event)])
    store.close()

    conn = sqlite3.connect(path)
    times = conn.execute("SELECT id, created_at, received_at FROM logs ORDER BY id").fetchall()
    readable = conn.execute(
        "SELECT id, created_at, received_at FROM logs_iso ORDER BY id"
    ).fetchall()
    indexes = {
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    conn.close()
    may_2024 = 1_714_564_800_000_000
    assert [
        (7, may_2024 + 1, may_2024 + 1_999_999),
        (9, 0, 2_147_483_648_500_000),
    ] == times[:2]
    assert round(NOW * 1_000_000) == times[2][2]
    assert [
        (7, "2024-05-01T12:00:00.000001+00:00", "2024-05-01T12:00:01.999999+00:00"),
        (9, "1970-01-01T00:00:00.000000+00:00", "2038-01-19T03:14:08.500000+00:00"),
    ] == readable[:2]
    assert {
        "idx_service_level_time",
        "idx_error_time",
        "idx_user_time",
        "idx_trace",
        "idx_logs_event_id",
    } <= indexes
