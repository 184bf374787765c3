"""The read functions over real stores (both, through ``db_url``): each answer equals what a
plain reading of the seeded rows gives.

The rows are inserted through the store's own ``insert``, some then marked deleted with
plain SQL; the expected side filters and orders those rows in Python.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from server_helpers import execute, row

from log_collector.server.query import (
    BadQuery,
    NotFound,
    context,
    get_log,
    parse_filters,
    search,
    trace,
)

# The clock every test reads: 2025-06-15T15:06:40Z.
NOW = 1_750_000_000.0
NOW_US = 1_750_000_000_000_000
HOUR_US = 3_600_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SERVICES = ("api", "billing", "web", "worker")
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
MESSAGES = ("user signed in", "Payment FAILED: 50% refund_x", "cache miss", "timeout calling db")


def iso(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds")


def seed_records(count: int = 240, seed: int = 7) -> list[dict[str, Any]]:
    """Records spread over the 3 days before NOW, inserted out of time order; every tenth
    shares the created_at of the one before (ties broken by id)."""
    rnd = random.Random(seed)
    records = []
    for i in range(count):
        created_us = NOW_US - rnd.randrange(0, 72 * HOUR_US)
        if i % 10 == 9:
            created_us = records[-1]["_us"]
        level = rnd.choice(LEVELS)
        record: dict[str, Any] = {
            "_us": created_us,
            "created_at": created_us / 1_000_000,
            "service": rnd.choice(SERVICES),
            "level": level,
            "environment": rnd.choice(("production", "staging")),
            "message": f"{rnd.choice(MESSAGES)} #{i}",
            "trace_id": rnd.choice(("t-1", "t-2", "t-3", None)),
            "user_id": rnd.choice(("u1", "u2", None)),
            "session_id": rnd.choice(("s1", None)),
            "path": rnd.choice(("/pay", "/login", None)),
            "method": rnd.choice(("GET", "POST", None)),
            "function_name": rnd.choice(("charge", "handle", None)),
            "order_id": rnd.choice((42, 7, None)),
            "region": rnd.choice(("eu", "us")),
            "flag": rnd.choice((True, False)),
            'odd "key"': rnd.choice(("x\\y", "z")),
        }
        if level in ("ERROR", "FATAL"):
            record["error_type"] = rnd.choice(("ValueError", "KeyError"))
        records.append(record)
    return records


def insert(store: Any, records: list[dict[str, Any]]) -> None:
    rows = []
    for record in records:
        fields = {k: v for k, v in record.items() if not k.startswith("_") and v is not None}
        rows.append(row(**fields))
    store.insert(rows)


def read_rows(db_url: str) -> list[dict[str, Any]]:
    """Every row, times as integer microseconds, metadata a dict, enums and UUIDs as text."""
    if db_url.startswith("sqlite:///"):
        conn = sqlite3.connect(db_url[len("sqlite:///") :])
        conn.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in conn.execute("SELECT * FROM logs")]
        finally:
            conn.close()
        for r in rows:
            r["metadata"] = json.loads(r["metadata"]) if r["metadata"] else None
            r["deleted"] = bool(r["deleted"])
        return rows
    with psycopg.connect(db_url) as conn:
        cur = conn.execute("SELECT * FROM logs")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for r in rows:
        for column in ("created_at", "received_at"):
            r[column] = (r[column] - EPOCH) // timedelta(microseconds=1)
        r["event_id"] = str(r["event_id"]) if r["event_id"] else None
        for column in ("level", "log_type", "environment", "method"):
            r[column] = None if r[column] is None else str(r[column])
    return rows


def newest_first(rows: list[dict[str, Any]]) -> list[int]:
    return [r["id"] for r in sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)]


@pytest.fixture
def seeded(db_url: str, store: Any) -> list[dict[str, Any]]:
    """240 rows in the store, every seventh (by id) deleted; the live rows as stored."""
    insert(store, seed_records())
    execute(db_url, "UPDATE logs SET deleted = TRUE WHERE id % 7 = 0")
    return [r for r in read_rows(db_url) if not r["deleted"]]


def meta(r: dict[str, Any], key: str) -> Any:
    return (r["metadata"] or {}).get(key)


# (query string, the rows it selects), written independently of the SQL under test.
FILTER_CASES: list[tuple[dict[str, list[str]], Callable[[dict[str, Any]], bool]]] = [
    ({}, lambda r: True),
    ({"service": ["api"]}, lambda r: r["service"] == "api"),
    ({"service": ["api", "web"]}, lambda r: r["service"] in ("api", "web")),
    ({"level": ["error", "FATAL"]}, lambda r: r["level"] in ("ERROR", "FATAL")),
    ({"min_level": ["warning"]}, lambda r: r["level"] in ("WARN", "ERROR", "FATAL")),
    (
        {"level": ["DEBUG", "ERROR"], "min_level": ["INFO"]},
        lambda r: r["level"] == "ERROR",
    ),
    ({"environment": ["prod"]}, lambda r: r["environment"] == "production"),
    ({"since": ["1h"]}, lambda r: r["created_at"] >= NOW_US - HOUR_US),
    (
        {"since": ["2025-06-14T00:00:00Z"], "until": ["2025-06-15T00:00:00+00:00"]},
        lambda r: 1_749_859_200_000_000 <= r["created_at"] < 1_749_945_600_000_000,
    ),
    ({"until": ["2d"]}, lambda r: r["created_at"] < NOW_US - 48 * HOUR_US),
    ({"q": ["payment failed"]}, lambda r: "payment failed" in r["message"].lower()),
    ({"q": ["50% refund_x"]}, lambda r: "50% refund_x" in r["message"].lower()),
    ({"q": ["5_%"]}, lambda r: "5_%" in r["message"].lower()),
    ({"trace_id": ["t-2"]}, lambda r: r["trace_id"] == "t-2"),
    ({"user_id": ["u1"]}, lambda r: r["user_id"] == "u1"),
    ({"session_id": ["s1"]}, lambda r: r["session_id"] == "s1"),
    ({"path": ["/pay"]}, lambda r: r["path"] == "/pay"),
    ({"method": ["post"]}, lambda r: r["method"] == "POST"),
    ({"error_type": ["KeyError"]}, lambda r: r["error_type"] == "KeyError"),
    ({"function_name": ["charge"]}, lambda r: r["function_name"] == "charge"),
    ({"meta.region": ["eu"]}, lambda r: meta(r, "region") == "eu"),
    ({"meta.order_id": ["42"]}, lambda r: meta(r, "order_id") == 42),
    ({"meta.flag": ["true"]}, lambda r: meta(r, "flag") is True),
    ({'meta.odd "key"': ["x\\y"]}, lambda r: meta(r, 'odd "key"') == "x\\y"),
    ({"meta.absent": ["1"]}, lambda r: False),
    ({"not.service": ["api", "web"]}, lambda r: r["service"] not in ("api", "web")),
    ({"not.level": ["info", "DEBUG"]}, lambda r: r["level"] not in ("INFO", "DEBUG")),
    (
        {"min_level": ["WARN"], "not.level": ["ERROR"]},
        lambda r: r["level"] in ("WARN", "FATAL"),
    ),
    ({"not.error_type": ["KeyError"]}, lambda r: r["error_type"] != "KeyError"),
    ({"not.method": ["get"]}, lambda r: r["method"] != "GET"),
    (
        {"not.path": ["/pay"], "not.user_id": ["u1", "u2"]},
        lambda r: r["path"] != "/pay" and r["user_id"] not in ("u1", "u2"),
    ),
    (
        {
            "service": ["api", "billing"],
            "min_level": ["WARN"],
            "since": ["36h"],
            "meta.region": ["us"],
            "method": ["GET"],
        },
        lambda r: (
            r["service"] in ("api", "billing")
            and r["level"] in ("WARN", "ERROR", "FATAL")
            and r["created_at"] >= NOW_US - 36 * HOUR_US
            and meta(r, "region") == "us"
            and r["method"] == "GET"
        ),
    ),
]


@pytest.mark.parametrize(("params", "selects"), FILTER_CASES, ids=lambda c: str(c)[:60])
def test_search_returns_the_live_rows_the_filters_select_newest_first(
    store, seeded, params, selects
):
    expected = newest_first([r for r in seeded if selects(r)])
    page = search(store, parse_filters(params, NOW), limit=1000)
    assert expected == [log["id"] for log in page["logs"]]
    assert page["next_cursor"] is None


def test_the_filter_cases_each_select_some_rows_but_not_all(seeded):
    """Guards the table above: a filter matching nothing or everything would prove little.
    Two cases select nothing on purpose: a literal ``_`` and ``%`` in ``q`` (unescaped, they
    would match "50% refund_x"), and a metadata key no row has."""
    selects_nothing = ({"q": ["5_%"]}, {"meta.absent": ["1"]})
    for params, selects in FILTER_CASES[1:]:
        count = sum(1 for r in seeded if selects(r))
        if params in selects_nothing:
            assert 0 == count
        else:
            assert 0 < count < len(seeded), params


def test_a_record_holds_every_column_metadata_as_an_object_and_iso_utc_times(store):
    insert(
        store,
        [
            {
                "created_at": 1_750_000_000.123456,
                "service": "api",
                "level": "ERROR",
                "message": "boom",
                "error_type": "ValueError",
                "order_id": 42,
                "duration_ms": 1.5,
                "method": "POST",
            }
        ],
    )
    (log,) = search(store, parse_filters({}, NOW))["logs"]
    assert {
        "id": 1,
        "created_at": "2025-06-15T15:06:40.123456+00:00",
        "level": "ERROR",
        "log_type": "BACKEND",
        "service": "api",
        "environment": "development",
        "service_version": "v0.0.0-dev",
        "trace_id": None,
        "user_id": None,
        "session_id": None,
        "error_type": "ValueError",
        "message": "boom",
        "stack_trace": None,
        "path": None,
        "method": "POST",
        "action_type": None,
        "function_name": None,
        "file_path": None,
        "duration_ms": 1.5,
        "metadata": {"order_id": 42},
        "deleted": False,
    } == {k: v for k, v in log.items() if k not in ("event_id", "received_at")}
    assert isinstance(log["event_id"], str) and len(log["event_id"]) == 36
    assert log["received_at"].endswith("+00:00")
    assert log == get_log(store, 1)


def test_limit_cuts_a_page_and_its_cursor_continues_after_the_last_row(store, seeded):
    expected = newest_first(seeded)
    filters = parse_filters({}, NOW)
    first = search(store, filters, limit=10)
    second = search(store, filters, limit=10, cursor=first["next_cursor"])
    assert expected[:10] == [log["id"] for log in first["logs"]]
    assert expected[10:20] == [log["id"] for log in second["logs"]]


def test_pages_concatenate_to_the_whole_result_while_newer_rows_arrive(db_url, store, seeded):
    """Newer rows (and rows sharing the newest created_at) inserted between page fetches never
    appear in later pages, and no row is skipped or repeated; ties are ordered by id."""
    filters = parse_filters({"min_level": ["INFO"]}, NOW)
    expected = newest_first([r for r in seeded if r["level"] in ("INFO", "WARN", "ERROR", "FATAL")])
    newest_us = max(r["created_at"] for r in seeded)
    seen: list[int] = []
    cursor = None
    for page_number in range(100):
        page = search(store, filters, limit=7, cursor=cursor)
        seen.extend(log["id"] for log in page["logs"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        insert(
            store,
            [
                {"created_at": NOW + page_number, "service": "api", "message": "late"},
                {"created_at": newest_us / 1_000_000, "service": "web", "message": "tie"},
            ],
        )
    assert expected == seen
    assert 2 * (len(expected) // 7) <= len(read_rows(db_url)) - 240


def test_rows_of_equal_created_at_come_highest_id_first(store):
    insert(store, [{"created_at": NOW, "service": "api", "message": str(i)} for i in range(5)])
    pages = [search(store, parse_filters({}, NOW), limit=2)]
    while pages[-1]["next_cursor"] and len(pages) < 10:
        pages.append(
            search(store, parse_filters({}, NOW), limit=2, cursor=pages[-1]["next_cursor"])
        )
    assert [5, 4, 3, 2, 1] == [log["id"] for page in pages for log in page["logs"]]


def test_get_log_of_a_deleted_or_missing_id_is_not_found(store, seeded):
    live = seeded[0]["id"]
    assert live == get_log(store, str(live))["id"]
    with pytest.raises(NotFound):
        get_log(store, 7)  # deleted by the fixture
    with pytest.raises(NotFound):
        get_log(store, 10_000)
    with pytest.raises(BadQuery) as bad:
        get_log(store, "x")
    assert "id" == bad.value.parameter


def test_context_lists_the_same_service_lines_around_a_log_in_time_order(store, seeded):
    line = sorted(seeded, key=lambda r: (r["created_at"], r["id"]))[len(seeded) // 2]
    same = sorted(
        (r for r in seeded if r["service"] == line["service"]),
        key=lambda r: (r["created_at"], r["id"]),
    )
    at = [r["id"] for r in same].index(line["id"])
    answer = context(store, line["id"], before=3, after=4)
    assert [r["id"] for r in same[max(0, at - 3) : at]] == [r["id"] for r in answer["before"]]
    assert line["id"] == answer["line"]["id"]
    assert [r["id"] for r in same[at + 1 : at + 5]] == [r["id"] for r in answer["after"]]
    assert 3 == len(answer["before"]) and 4 == len(answer["after"])
    assert {line["service"]} == {r["service"] for r in answer["before"] + answer["after"]}


def test_context_of_the_newest_line_has_nothing_after_and_zero_asks_for_nothing(store, seeded):
    newest = max(seeded, key=lambda r: (r["created_at"], r["id"]))
    answer = context(store, newest["id"], before=0, after=5)
    assert ([], []) == (answer["before"], answer["after"])
    with pytest.raises(NotFound):
        context(store, 14)


def test_trace_lists_its_logs_oldest_first_with_services_and_duration(store, seeded):
    logs = sorted(
        (r for r in seeded if r["trace_id"] == "t-1"), key=lambda r: (r["created_at"], r["id"])
    )
    answer = trace(store, "t-1")
    assert [r["id"] for r in logs] == [log["id"] for log in answer["logs"]]
    assert list(dict.fromkeys(r["service"] for r in logs)) == answer["services"]
    assert iso(logs[0]["created_at"]) == answer["started_at"]
    assert (logs[-1]["created_at"] - logs[0]["created_at"]) / 1000 == answer["duration_ms"]
    assert answer["trace_id"] == "t-1" and answer["truncated"] is False


def test_a_trace_no_live_log_carries_is_not_found(db_url, store):
    insert(store, [{"service": "api", "message": "m", "trace_id": "gone"}])
    execute(db_url, "UPDATE logs SET deleted = TRUE")
    for trace_id in ("gone", "never", "x" * 500):
        with pytest.raises(NotFound):
            trace(store, trace_id)
