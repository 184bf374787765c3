"""The SQLite store's writer thread: batches from many threads, one transaction."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from server_helpers import stored_rows

from log_collector.server import open_store
from log_collector.server.store.base import ROW_COLUMNS, StoreUnavailable
from log_collector.server.validate import normalise

NOW = time.time()


def row(message: str = "m", event_id: str | None = None) -> tuple:
    return normalise({"message": message, "event_id": event_id or str(uuid.uuid4())}, NOW)


def migrated(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/logs.db")
    store.migrate()
    return store


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
