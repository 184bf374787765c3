"""Histogram, facets and services over real stores (both, through ``db_url``), checked against
the seeded rows counted in Python."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import test_query_search
from test_query_search import HOUR_US, LEVELS, NOW, NOW_US, execute, insert, iso

from log_collector.server.query import BadQuery, facets, histogram, parse_filters, services
from log_collector.server.query.aggregates import nice_interval

# The fixtures of the search tests: a store on each kind of database, and its seeded rows.
seeded = test_query_search.seeded


def test_histogram_counts_each_level_per_aligned_bucket_with_every_bucket_present(store, seeded):
    """6 hours in 60 buckets: 360 s each, rounded up to the 10-minute nice interval; edges at
    multiples of 600 s since the epoch; the first bucket counts only rows from ``since``."""
    since_us = NOW_US - 6 * HOUR_US + 123_456_789
    filters = parse_filters({"since": [iso(since_us)], "service": ["api", "web"]}, NOW)
    answer = histogram(store, filters, buckets=60)
    interval_us = 600 * 1_000_000
    start = since_us // interval_us * interval_us
    expected: dict[int, Counter] = {}
    for r in seeded:
        if r["service"] in ("api", "web") and since_us <= r["created_at"] < NOW_US:
            bucket = (r["created_at"] - start) // interval_us
            expected.setdefault(bucket, Counter())[r["level"]] += 1
    count = -(-(NOW_US - start) // interval_us)
    assert 600 == answer["interval_s"]
    assert [iso(start + i * interval_us) for i in range(count)] == [
        b["t"] for b in answer["buckets"]
    ]
    assert [
        {level: expected.get(i, Counter())[level] for level in LEVELS} for i in range(count)
    ] == [b["counts"] for b in answer["buckets"]]
    assert any(sum(b["counts"].values()) == 0 for b in answer["buckets"])
    assert sum(sum(c.values()) for c in expected.values()) > 0


def test_histogram_defaults_to_the_24_hours_before_now_and_lists_only_admitted_levels(
    store, seeded
):
    answer = histogram(store, parse_filters({"min_level": ["ERROR"]}, NOW), buckets=24)
    # NOW is 400 s past an hour: the first of the 25 hourly buckets starts before the window.
    assert 3600 == answer["interval_s"]
    assert 25 == len(answer["buckets"])
    assert iso(NOW_US - 24 * HOUR_US - 400_000_000) == answer["buckets"][0]["t"]
    expected = Counter(
        r["level"]
        for r in seeded
        if r["level"] in ("ERROR", "FATAL") and NOW_US - 24 * HOUR_US <= r["created_at"] < NOW_US
    )
    totals = Counter()
    for bucket in answer["buckets"]:
        assert ["ERROR", "FATAL"] == list(bucket["counts"])
        totals.update(bucket["counts"])
    assert expected == +totals


@pytest.mark.parametrize(
    ("span_s", "buckets", "interval_s"),
    [(60, 60, 1), (61, 60, 5), (3600, 60, 60), (86400, 60, 1800), (30 * 86400, 10, 3 * 86400)],
)
def test_the_interval_is_the_smallest_nice_width_covering_the_span(span_s, buckets, interval_s):
    assert interval_s == nice_interval(span_s, buckets)


def test_facets_give_each_fields_top_values_most_frequent_first(store, seeded):
    filters = parse_filters({"min_level": ["INFO"]}, NOW)
    answer = facets(store, filters, "service,level,path,error_type", top=3)
    live = [r for r in seeded if r["level"] in ("INFO", "WARN", "ERROR", "FATAL")]
    for field in ("service", "level", "path", "error_type"):
        counts = Counter(r[field] for r in live if r[field] is not None)
        expected = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:3]
        assert [{"value": v, "count": n} for v, n in expected] == answer[field], field
    assert ["service", "level", "path", "error_type"] == list(answer)


def test_facets_of_an_unknown_field_are_refused(store):
    with pytest.raises(BadQuery) as bad:
        facets(store, parse_filters({}, NOW), "service,message")
    assert "fields" == bad.value.parameter
    with pytest.raises(BadQuery) as bad:
        facets(store, parse_filters({}, NOW), "service", top=0)
    assert "top" == bad.value.parameter


def test_services_count_live_rows_last_seen_and_errors_of_the_last_hour(store, seeded):
    insert(
        store,
        [
            {"created_at": NOW - 60, "service": "api", "level": "FATAL", "message": "x"},
            {"created_at": NOW - 3599, "service": "zeta", "level": "ERROR", "message": "x"},
            {"created_at": NOW - 3601, "service": "zeta", "level": "ERROR", "message": "x"},
        ],
    )
    extra = [
        {"service": "api", "created_at": NOW_US - 60_000_000, "level": "FATAL"},
        {"service": "zeta", "created_at": NOW_US - 3_599_000_000, "level": "ERROR"},
        {"service": "zeta", "created_at": NOW_US - 3_601_000_000, "level": "ERROR"},
    ]
    rows: list[dict[str, Any]] = seeded + extra
    expected = []
    for name in sorted({r["service"] for r in rows}):
        mine = [r for r in rows if r["service"] == name]
        expected.append(
            {
                "service": name,
                "count": len(mine),
                "last_seen": iso(max(r["created_at"] for r in mine)),
                "errors_1h": sum(
                    1
                    for r in mine
                    if r["level"] in ("ERROR", "FATAL") and r["created_at"] >= NOW_US - HOUR_US
                ),
            }
        )
    assert expected == services(store, NOW)
    assert 1 == expected[-1]["errors_1h"]


def test_services_leave_out_a_service_whose_rows_are_all_deleted_and_count_future_rows(
    db_url, store, seeded
):
    """A service with no live row is not listed, whatever its counts once were; a row created
    after ``now`` (a client clock ahead) counts in errors_1h and sets last_seen, as the rows
    themselves say."""
    insert(
        store,
        [
            {"created_at": NOW - 30, "service": "ghost", "level": "ERROR", "message": "x"},
            {"created_at": NOW + 120, "service": "api", "level": "ERROR", "message": "late"},
        ],
    )
    execute(db_url, "UPDATE logs SET deleted = TRUE WHERE service = 'ghost'")
    answer = {s["service"]: s for s in services(store, NOW)}
    assert "ghost" not in answer
    api = [r for r in seeded if r["service"] == "api"]
    assert len(api) + 1 == answer["api"]["count"]
    assert iso(NOW_US + 120_000_000) == answer["api"]["last_seen"]
    recent = [
        r for r in api if r["level"] in ("ERROR", "FATAL") and r["created_at"] >= NOW_US - HOUR_US
    ]
    assert len(recent) + 1 == answer["api"]["errors_1h"]
