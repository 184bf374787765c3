"""What a new client does before its first log call (log_collector/client/delivery.py
``Delivery.start``): the spool is open and its WAL started, the sender thread runs, and the
append path has been rehearsed in a transaction that is rolled back. Nothing of the
rehearsal may be stored, counted or sent."""

import contextlib
import sqlite3
import threading
import time

import pytest
from helpers import crash_spool

from log_collector import AsyncLogClient
from log_collector.client.spool import Spool, SpoolError


def senders() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "log-collector-sender"]


def test_the_sender_runs_before_the_first_log_call_and_that_call_starts_no_thread(
    make_client, receiver
):
    client = make_client()
    assert client._delivery.sender is not None and client._delivery.sender.alive
    threads = set(threading.enumerate())

    client.info("first")

    assert threads == set(threading.enumerate())
    assert client.flush(timeout=10)
    assert ["first"] == [r["message"] for r in receiver.records]


def test_the_rehearsal_leaves_nothing_in_the_spool_the_stats_or_the_ids(make_client, receiver):
    client = make_client()
    spool = client._delivery.spool

    stats = client.stats()
    with spool.hold() as conn:
        stored = conn.execute("SELECT count(*) FROM records").fetchone()[0]
        wal_started = conn.execute("SELECT value FROM meta WHERE key = 'opened_at'").fetchone()

    assert (0, 0, 0, {}, 0) == (
        stored,
        stats["appended"],
        stats["spool_rows"],
        stats["dropped"],
        stats["spool_bytes"],
    )
    assert wal_started is not None
    assert 0 == spool.high_water()
    client.info("one")
    assert 1 == spool.high_water()  # the first record's id is 1: none was used up
    assert client.flush(timeout=10)
    assert ["one"] == [r["message"] for r in receiver.records]
    assert 1 == client.stats()["appended"]


def test_a_sender_that_wakes_during_a_slow_rehearsal_sends_none_of_it(
    make_client, receiver, monkeypatch
):
    """flush_interval 10 ms and a rehearsal of 16 calls 20 ms apart: the sender's first
    wait ends long before the rehearsal does, and it must not read the rolled-back rows."""
    real = AsyncLogClient._rehearsal_call

    def slow(self):
        real(self)
        time.sleep(0.02)

    monkeypatch.setattr(AsyncLogClient, "_rehearsal_call", slow)
    client = make_client(flush_interval=0.01)
    client.info("real")

    assert client.flush(timeout=10)
    assert ["real"] == [r["message"] for r in receiver.records]
    assert 0 == client._delivery.spool.pending()


def test_orphans_waiting_are_drained_after_the_rehearsal_and_only_they_arrive(
    make_client, receiver, tmp_path
):
    spool_dir = tmp_path / "spool"
    left = Spool.create(spool_dir, target_url=receiver.url, service="app")
    left.append(time.time(), '{"message":"left behind","event_id":"e-orphan"}')
    crash_spool(left)

    client = make_client(spool_dir=spool_dir)
    assert client.flush(timeout=10)

    assert ["left behind"] == [r["message"] for r in receiver.records]


def test_appends_inside_a_rehearsal_are_rolled_back_and_never_reach_the_fallback(tmp_path):
    fallen: list = []
    spool = Spool.create(
        tmp_path / "spool", target_url="http://x", fallback=lambda rows, exc: fallen.extend(rows)
    )
    try:
        with spool.rehearsal() as rehearsing:
            assert rehearsing
            for i in range(5):
                spool.append(1.0 + i, f'{{"n":{i}}}')
            assert 5 == spool.pending()
            spool._conn._conn.execute("DROP TABLE records")  # the next append fails
            with pytest.raises(sqlite3.Error):
                spool.append(9.0, '{"n":9}')

        assert ([], 0, 0, 0) == (fallen, spool.pending(), spool.nbytes(), spool.high_water())
        assert [] == spool.read_batch(10)
        spool.append(2.0, '{"n":"kept"}')
        assert [(1, '{"n":"kept"}')] == spool.read_batch(10)
    finally:
        spool.close()


def test_a_spool_that_holds_rows_is_not_rehearsed(tmp_path):
    spool = Spool.create(tmp_path / "spool", target_url="http://x")
    try:
        spool.append(1.0, '{"n":1}')
        with spool.rehearsal() as rehearsing:
            assert not rehearsing
        assert [(1, '{"n":1}')] == spool.read_batch(10)
    finally:
        spool.close()


def test_a_failed_rehearsal_leaves_the_client_working(make_client, receiver, monkeypatch):
    def broken(self):
        raise RuntimeError("rehearsal trouble")

    monkeypatch.setattr(AsyncLogClient, "_rehearsal_call", broken)
    client = make_client()
    client.info("still logs")

    assert client.flush(timeout=10)
    assert ["still logs"] == [r["message"] for r in receiver.records]
    assert {} == client.stats()["dropped"]


def test_a_spool_whose_rehearsal_cannot_be_rolled_back_is_closed_for_a_new_one(
    make_client, receiver, monkeypatch, caplog
):
    real = Spool.rehearsal

    @contextlib.contextmanager
    def unrollable(self):
        with real(self) as rehearsing:
            yield rehearsing
        raise SpoolError("cannot roll back the warm-up transaction")

    monkeypatch.setattr(Spool, "rehearsal", unrollable)
    client = make_client()
    first = client._delivery.spool

    client.info("after")

    assert first is None or first is not client._delivery.spool
    assert client.flush(timeout=10)
    assert ["after"] == [r["message"] for r in receiver.records]
    assert "cannot use the spool" in caplog.text
