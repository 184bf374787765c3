"""The live tail's cursor (query.tail.TailCursor) over real stores: it passes every new id,
matching or not, gives each matching record once, and on PostgreSQL streams a row whose
transaction commits after a later-numbered one was polled (ids are drawn at insert, seen at
commit), forgetting a gap that never fills after GAP_TTL_S."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from server_helpers import row

from log_collector.server import open_store
from log_collector.server.query import parse_filters
from log_collector.server.query.tail import GAP_TTL_S, TailCursor, newest_id

NOW = 1_750_000_000.0


def messages(records: list[dict[str, Any]]) -> list[str]:
    return [r["message"] for r in records]


def test_a_filtered_cursor_passes_the_rows_it_does_not_match(store):
    """A stream for service ``api`` moves past the other services' rows, so the next poll reads
    only what arrived since, and each matching record comes once, in id order."""
    cursor = TailCursor(newest_id(store))
    store.insert([row(f"web {i}", service="web") for i in range(30)])
    store.insert([row("api 1", service="api"), row("web x", service="web")])
    api = parse_filters({"service": ["api"]}, NOW)
    records, more = cursor.poll(store, api, 100, 0.0)
    assert ["api 1"] == messages(records)
    assert not more
    assert newest_id(store) == cursor.after_id
    store.insert([row("api 2", service="api")])
    records, _ = cursor.poll(store, api, 100, 0.0)
    assert ["api 2"] == messages(records)
    assert ([], False) == cursor.poll(store, api, 100, 0.0)


def test_a_full_poll_stops_at_its_last_record_and_says_more_is_waiting(store):
    """With more matching rows than the limit, a poll returns the limit and says more; the
    next returns the rest: nothing skipped, nothing twice."""
    cursor = TailCursor(newest_id(store))
    store.insert([row(f"m{i:02}") for i in range(25)])
    everything = parse_filters({}, NOW)
    first, more = cursor.poll(store, everything, 10, 0.0)
    assert more
    second, _ = cursor.poll(store, everything, 10, 0.0)
    third, more = cursor.poll(store, everything, 10, 0.0)
    assert not more
    assert [f"m{i:02}" for i in range(25)] == messages(first + second + third)


@pytest.fixture
def pg_store(pg_session_url: str) -> Iterator[Any]:
    opened = open_store(pg_session_url)
    try:
        yield opened
    finally:
        opened.close()


def _insert_uncommitted(url: str, message: str) -> psycopg.Connection:
    """A connection whose open transaction has inserted one row (its id drawn, not visible)."""
    conn = psycopg.connect(url)
    conn.execute(
        "INSERT INTO logs (created_at, level, service, message) VALUES (now(), 'INFO', 'api', %s)",
        [message],
    )
    return conn


@pytest.mark.postgres
def test_a_row_committed_after_a_later_one_was_polled_is_still_streamed(pg_session_url, pg_store):
    cursor = TailCursor(newest_id(pg_store))
    everything = parse_filters({}, NOW)
    late = _insert_uncommitted(pg_session_url, "late")
    try:
        pg_store.insert([row("early")])
        records, _ = cursor.poll(pg_store, everything, 100, 0.0)
        assert ["early"] == messages(records)
        assert cursor.gaps, "the id the open transaction drew is remembered"
        late.commit()
    finally:
        late.close()
    records, _ = cursor.poll(pg_store, everything, 100, 1.0)
    assert ["late"] == messages(records)
    assert not cursor.gaps
    assert ([], False) == cursor.poll(pg_store, everything, 100, 2.0)


@pytest.mark.postgres
def test_a_gap_that_never_fills_is_forgotten_after_its_time(pg_session_url, pg_store):
    """An id drawn by a rolled-back batch never appears: it is asked for until GAP_TTL_S has
    passed, then dropped."""
    cursor = TailCursor(newest_id(pg_store))
    everything = parse_filters({}, NOW)
    lost = _insert_uncommitted(pg_session_url, "rolled back")
    lost.rollback()
    lost.close()
    pg_store.insert([row("after")])
    records, _ = cursor.poll(pg_store, everything, 100, 0.0)
    assert ["after"] == messages(records)
    assert 1 == len(cursor.gaps)
    cursor.poll(pg_store, everything, 100, GAP_TTL_S - 1)
    assert 1 == len(cursor.gaps)
    cursor.poll(pg_store, everything, 100, GAP_TTL_S + 1)
    assert not cursor.gaps
