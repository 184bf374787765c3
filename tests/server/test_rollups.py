"""log_counts, the per-granule counts the histogram reads (migrations/*/0003_*), over real
stores (both, through ``db_url``): they stay equal to the rows through duplicates, deletion
marks and deletes, and the histogram built from them equals the rows counted in Python."""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections import Counter
from typing import Any

import psycopg
import pytest
from server_helpers import row
from test_query_search import execute, iso, read_rows

from log_collector.common.migrations import sql_files
from log_collector.server import open_store
from log_collector.server.query import histogram, parse_filters
from log_collector.server.query.aggregates import COUNT_GRANULES_S, time_pieces

# 2025-06-15T15:06:40Z, 400 s past an hour and 1,000 s past a half hour.
NOW = 1_750_000_000.0
NOW_US = 1_750_000_000_000_000
HOUR_US = 3_600_000_000
SERVICES = ("api", "billing", "web")
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")


def records(count: int, seed: int) -> list[dict[str, Any]]:
    """Rows over the 8 days before NOW; one in five exactly on a minute or half-hour edge."""
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        created_us = NOW_US - rnd.randrange(0, 8 * 24 * HOUR_US)
        if i % 5 == 0:
            edge = rnd.choice((60_000_000, 1_800_000_000))
            created_us -= created_us % edge
        out.append(
            {
                "created_at": created_us / 1_000_000,
                "service": rnd.choice(SERVICES),
                "level": rnd.choice(LEVELS),
                "message": rnd.choice(("payment failed", "user signed in")),
                "user_id": rnd.choice(("u1", "u2")),
                "region": rnd.choice(("eu", "us")),
                "event_id": str(uuid.uuid4()),
            }
        )
    return out


def insert(store: Any, recs: list[dict[str, Any]]) -> tuple[int, int]:
    accepted = duplicates = 0
    for start in range(0, len(recs), 500):
        a, d = store.insert([row(**r) for r in recs[start : start + 500]])
        accepted += a
        duplicates += d
    return accepted, duplicates


def counts_table(db_url: str) -> Counter:
    """log_counts as {(granule_s, bucket_us, service, level): n}, zero counts left out, read
    through the view log_counts_by_level (migrations/*/0005_*)."""
    sql = "SELECT granule_s, bucket_us, service, level, n FROM log_counts_by_level"
    if db_url.startswith("sqlite:///"):
        conn = sqlite3.connect(db_url[len("sqlite:///") :])
        try:
            found = conn.execute(sql).fetchall()
        finally:
            conn.close()
    else:
        with psycopg.connect(db_url) as pg:
            found = [(g, b, s, str(lv), n) for g, b, s, lv, n in pg.execute(sql).fetchall()]
    return Counter({(g, b, s, lv): n for g, b, s, lv, n in found if n})


def counted_from_rows(db_url: str) -> Counter:
    """What log_counts should hold: the rows not deleted, counted per granule in Python."""
    expected: Counter = Counter()
    for r in read_rows(db_url):
        if r["deleted"]:
            continue
        for granule in COUNT_GRANULES_S:
            width = granule * 1_000_000
            bucket = r["created_at"] // width * width
            expected[(granule, bucket, r["service"], r["level"])] += 1
    return expected


def test_counts_equal_the_rows_through_duplicates_deletion_marks_and_deletes(db_url, store):
    """Only rows actually stored are counted: a batch sent again and a batch half made of
    stored event_ids add only their new rows; marking rows deleted, unmarking them, and
    deleting rows move the counts with them."""
    first = records(400, seed=1)
    assert (400, 0) == insert(store, first)
    assert (0, 400) == insert(store, first)
    mixed = first[:150] + records(100, seed=2)
    assert (100, 150) == insert(store, mixed)
    assert counted_from_rows(db_url) == counts_table(db_url)
    assert 500 * len(COUNT_GRANULES_S) == sum(counts_table(db_url).values())

    execute(db_url, "UPDATE logs SET deleted = TRUE WHERE id % 3 = 0")
    assert counted_from_rows(db_url) == counts_table(db_url)
    execute(db_url, "UPDATE logs SET deleted = FALSE WHERE id % 6 = 0")
    execute(db_url, "UPDATE logs SET message = 'edited' WHERE id % 5 = 0")
    assert counted_from_rows(db_url) == counts_table(db_url)
    execute(db_url, "DELETE FROM logs WHERE id % 4 = 0")
    assert counted_from_rows(db_url) == counts_table(db_url)
    live = sum(1 for r in read_rows(db_url) if not r["deleted"])
    assert live * len(COUNT_GRANULES_S) == sum(counts_table(db_url).values())


@pytest.mark.postgres
def test_truncating_logs_empties_the_counts(pg_session_url):
    url = pg_session_url
    execute(url, "TRUNCATE logs RESTART IDENTITY")
    store = open_store(url)
    try:
        insert(store, records(50, seed=3))
    finally:
        store.close()
    assert counts_table(url)
    execute(url, "TRUNCATE logs RESTART IDENTITY")
    assert Counter() == counts_table(url)


def expected_histogram(
    rows: list[dict[str, Any]], since_us: int, until_us: int, interval_s: int, levels: tuple
) -> list[dict[str, int]]:
    interval_us = interval_s * 1_000_000
    start = since_us // interval_us * interval_us
    count = -(-(until_us - start) // interval_us)
    buckets = [dict.fromkeys(levels, 0) for _ in range(count)]
    for r in rows:
        if since_us <= r["created_at"] < until_us and r["level"] in levels:
            buckets[(r["created_at"] - start) // interval_us][r["level"]] += 1
    return buckets


# (query string, buckets, the interval it gives): windows whose interval the half-hour counts
# answer, the minute counts answer, and none answers; edges on and off the granules.
WINDOWS = [
    ({"since": ["24h"]}, 60, 1800),
    ({"since": ["7d"]}, 60, 3 * 3600),
    ({"since": ["6h"]}, 60, 600),
    ({"since": ["3h"], "until": [iso(NOW_US - 1_800_000_000)]}, 10, 900),
    ({"since": [iso(NOW_US - 48 * HOUR_US - 1)], "until": [iso(NOW_US - HOUR_US + 7)]}, 30, 10800),
    ({"since": ["10m"]}, 60, 10),
]
FILTERS = [
    ({}, lambda r: True),
    ({"service": ["api"]}, lambda r: r["service"] == "api"),
    ({"service": ["api", "web"], "min_level": ["WARN"]}, lambda r: r["service"] in ("api", "web")),
    ({"level": ["DEBUG", "FATAL"]}, lambda r: True),
    ({"not.service": ["web"], "not.level": ["INFO"]}, lambda r: r["service"] != "web"),
]


@pytest.fixture
def seeded(db_url, store) -> list[dict[str, Any]]:
    """3,000 rows over 8 days, every seventh deleted; the live rows as stored."""
    insert(store, records(3000, seed=4))
    execute(db_url, "UPDATE logs SET deleted = TRUE WHERE id % 7 = 0")
    return [r for r in read_rows(db_url) if not r["deleted"]]


@pytest.mark.parametrize(("window", "buckets", "interval_s"), WINDOWS)
def test_the_histogram_from_counts_equals_the_rows_counted(
    store, seeded, window, buckets, interval_s
):
    """For every filter the counts can answer (service, level, time), each bucket equals the
    live rows counted in Python, including rows on granule edges and windows whose ends fall
    inside a granule."""
    for extra, keep in FILTERS:
        filters = parse_filters({**window, **extra}, NOW)
        answer = histogram(store, filters, buckets=buckets)
        assert interval_s == answer["interval_s"]
        levels = filters.levels or LEVELS
        until_us = filters.until_us or NOW_US
        since_us = filters.since_us
        rows = [r for r in seeded if keep(r)]
        expected = expected_histogram(rows, since_us, until_us, interval_s, levels)
        assert expected == [b["counts"] for b in answer["buckets"]], extra
        assert sum(sum(b.values()) for b in expected) > 0


@pytest.mark.parametrize(
    ("extra", "keep"),
    [
        ({"user_id": ["u1"]}, lambda r: r["user_id"] == "u1"),
        ({"q": ["FAILED"]}, lambda r: "failed" in r["message"]),
        ({"meta.region": ["eu"]}, lambda r: (r["metadata"] or {}).get("region") == "eu"),
        ({"environment": ["production"]}, lambda r: r["environment"] == "production"),
    ],
)
def test_filters_the_counts_cannot_answer_are_counted_from_the_rows(store, seeded, extra, keep):
    """log_counts knows only service, level and time: a histogram filtered on anything else
    counts the rows, so it shows only the matching ones."""
    filters = parse_filters({"since": ["24h"], "service": ["api"], **extra}, NOW)
    answer = histogram(store, filters, buckets=60)
    rows = [r for r in seeded if r["service"] == "api" and keep(r)]
    expected = expected_histogram(rows, NOW_US - 24 * HOUR_US, NOW_US, 1800, LEVELS)
    assert expected == [b["counts"] for b in answer["buckets"]]
    everything = histogram(store, parse_filters({"since": ["24h"], "service": ["api"]}, NOW))
    assert sum(sum(b["counts"].values()) for b in answer["buckets"]) < sum(
        sum(b["counts"].values()) for b in everything["buckets"]
    )


@pytest.mark.parametrize(
    ("low", "high", "granules"),
    [
        (0, 7_200_000_000, (1800, 60)),
        (123, 10 * 3_600_000_000 + 59_999_999, (1800, 60)),
        (61_000_000, 119_000_000, (1800, 60)),
        (5, 1_799_999_999, (1800,)),
        (5, 10, ()),
    ],
)
def test_time_pieces_tile_the_window_with_aligned_granules(low, high, granules):
    """The pieces follow each other without gap or overlap from low to high, and each piece of
    a granule starts and ends on that granule's edges."""
    pieces = time_pieces(low, high, granules)
    assert low == pieces[0][1]
    assert high == pieces[-1][2]
    for (_, _, end), (_, start, _) in zip(pieces, pieces[1:], strict=False):
        assert end == start
    for granule, start, end in pieces:
        assert start < end
        if granule is not None:
            assert 0 == start % (granule * 1_000_000) == end % (granule * 1_000_000)


@pytest.mark.parametrize(
    ("cut", "first_applied"),
    [("0003", "0003_time_index_and_log_counts"), ("0005", "0005_log_counts_by_service")],
)
def test_rows_stored_before_the_migration_are_counted_by_it(
    fresh_db_url, monkeypatch, cut, first_applied
):
    """Migrating a database that already holds rows fills log_counts from its live rows: 0003,
    which creates the counts, and 0005, which gives them a row per service on PostgreSQL."""
    from log_collector.common import migrations
    from log_collector.server.store import postgres_migrations

    def earlier_files(kind: str) -> list[tuple[str, str]]:
        return [(name, sql) for name, sql in sql_files(kind) if name < cut]

    with monkeypatch.context() as patch:
        patch.setattr(migrations, "sql_files", earlier_files)
        patch.setattr(postgres_migrations, "sql_files", earlier_files)
        store = open_store(fresh_db_url)
        try:
            assert int(cut) - 1 == len(store.migrate())
            insert(store, records(200, seed=5))
        finally:
            store.close()
    execute(fresh_db_url, "UPDATE logs SET deleted = TRUE WHERE id % 9 = 0")
    store = open_store(fresh_db_url)
    try:
        assert first_applied == store.migrate()[0]
    finally:
        store.close()
    assert counted_from_rows(fresh_db_url) == counts_table(fresh_db_url)
    assert 200 > sum(counts_table(fresh_db_url).values()) / len(COUNT_GRANULES_S) > 150


def test_facets_over_a_window_of_time_count_the_rows_of_that_window(store, seeded):
    """Facets with ``since`` count only the live rows from then on, each field's values most
    frequent first (on SQLite the query groups by ``+field`` to keep the time index)."""
    from log_collector.server.query import facets

    answer = facets(store, parse_filters({"since": ["36h"]}, NOW), "service,level", top=10)
    window = [r for r in seeded if r["created_at"] >= NOW_US - 36 * HOUR_US]
    for field in ("service", "level"):
        counts = Counter(r[field] for r in window)
        expected = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        assert [{"value": v, "count": n} for v, n in expected] == answer[field]
    assert 0 < len(window) < len(seeded)


@pytest.mark.parametrize(
    "window", [{}, {"until": [iso(NOW_US - 5 * HOUR_US - 7)]}] + [w for w, _, _ in WINDOWS]
)
def test_service_and_level_facets_from_counts_equal_the_rows_counted(store, seeded, window):
    """Service and level facets under filters log_counts keeps are read from its granules and
    the rows at the window's ends: for every window (none, open at either end, ends inside a
    granule) and filter, they equal the live rows counted in Python, ties by value."""
    from log_collector.server.query import facets

    for extra, keep in FILTERS:
        filters = parse_filters({**window, **extra}, NOW)
        answer = facets(store, filters, "service,level", top=10)
        low = filters.since_us if filters.since_us is not None else -(2**63)
        high = filters.until_us if filters.until_us is not None else 2**63
        levels = filters.levels or LEVELS
        rows = [
            r for r in seeded if keep(r) and low <= r["created_at"] < high and r["level"] in levels
        ]
        assert rows, (window, extra)
        for field in ("service", "level"):
            counts = Counter(r[field] for r in rows)
            expected = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            assert [{"value": v, "count": n} for v, n in expected] == answer[field], extra
