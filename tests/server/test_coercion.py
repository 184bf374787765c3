"""What the ingest server makes of records that do not fit: each unfit value is
coerced and kept under ``metadata._invalid``, a record is refused only when
nothing of it can be stored, a store error on a batch is narrowed down to the
row that caused it, and a body whose JSON would cost too much memory to
decode is refused before decoding."""

from __future__ import annotations

import gzip
import json
import sqlite3
import threading
import time
import uuid

import pytest
import requests
from server_helpers import record, stored_rows

from log_collector.server import Limits, create_app, open_store
from log_collector.server.ingest import Batch, decode_body, store_batch
from log_collector.server.ingest.decode import count_values
from log_collector.server.ingest.validate import normalise
from log_collector.server.store.base import ROW_COLUMNS

JSON = {"Content-Type": "application/json"}
GZIP = {"Content-Type": "application/json", "Content-Encoding": "gzip"}


def post(url: str, data: bytes, headers: dict[str, str] = JSON) -> requests.Response:
    return requests.post(f"{url}/logs", data=data, headers=headers, timeout=60)


# coercion over HTTP, on both stores


def test_unknown_enum_values_and_an_over_long_service_are_stored_with_the_originals(
    server_url, db_url
):
    service = "s" * 100_000
    odd = record("odd", environment="qa", log_type=7, method="FETCH", service=service, k=1)
    data = json.dumps({"logs": [record("before"), odd, record("after")]}).encode()
    response = post(server_url, data)
    assert 200 == response.status_code
    answer = response.json()
    assert (3, [], [1]) == (
        answer["accepted"],
        answer["rejected"],
        [c["index"] for c in answer["coerced"]],
    )
    assert ["environment", "log_type", "method", "service"] == answer["coerced"][0]["fields"]
    assert "service: 100000 characters, over the limit of 100" in answer["coerced"][0]["reason"]
    rows = stored_rows(db_url)
    assert ["before", "odd", "after"] == [row["message"] for row in rows]
    stored = rows[1]
    assert ("development", "BACKEND", None, "s" * 100) == (
        stored["environment"],
        stored["log_type"],
        stored["method"],
        stored["service"],
    )
    assert {
        "k": 1,
        "_invalid": {"environment": "qa", "log_type": 7, "method": "FETCH", "service": service},
    } == stored["metadata"]


def test_a_401_digit_integer_is_kept_in_metadata_and_its_neighbours_are_stored(server_url, db_url):
    huge = "1" + "0" * 400  # 10**400: past float, past every database number type
    data = (
        ('{"logs": [{"message": "a"}, {"message": "p", "duration_ms": HUGE}, {"message": "b"}]}')
        .replace("HUGE", huge)
        .encode()
    )
    response = post(server_url, data)
    assert 200 == response.status_code
    answer = response.json()
    assert ([], [{"index": 1, "fields": ["duration_ms"]}]) == (
        answer["rejected"],
        [{k: c[k] for k in ("index", "fields")} for c in answer["coerced"]],
    )
    rows = stored_rows(db_url)
    assert ["a", "p", "b"] == [row["message"] for row in rows]
    assert None is rows[1]["duration_ms"]
    assert {"_invalid": {"duration_ms": 10**400}} == rows[1]["metadata"]


def test_year_9999_is_stored_at_received_at_with_the_original_not_as_1978(server_url, db_url):
    data = json.dumps(
        {
            "logs": [
                record("far", created_at="9999-12-31T23:59:59Z"),
                record("ms", created_at=1.7e12),
            ]
        }
    ).encode()
    before = time.time()
    answer = post(server_url, data).json()
    after = time.time()
    assert [0] == [c["index"] for c in answer["coerced"]]
    far, ms = stored_rows(db_url)
    # Before, the milliseconds rule divided the parsed time by 1000: 1978-01-11.
    assert far["created_at"] == pytest.approx(far["received_at"], abs=1e-6)
    assert before - 1 <= far["created_at"] <= after + 1
    assert {"_invalid": {"created_at": "9999-12-31T23:59:59Z"}} == far["metadata"]
    assert 1.7e9 == pytest.approx(ms["created_at"])  # a number past 1e11 is milliseconds


# memory: JSON values counted before decoding


def _empty_objects(count: int) -> bytes:
    return b'{"logs": [{"message": "a", "m": [' + b"{}," * (count - 1) + b"{}]}]}"


def test_a_small_gzip_body_of_millions_of_empty_objects_is_refused_413_before_decoding(
    sqlite_url, serve
):
    url = serve(create_app(sqlite_url))
    bomb = gzip.compress(_empty_objects(2_000_000), compresslevel=9)  # 6 MB inflated
    response = post(url, bomb, GZIP)
    assert 413 == response.status_code
    assert (
        "body holds more than 1000000 JSON values (counted as its commas and opening "
        "brackets outside strings): split the batch"
    ) == response.json()["detail"]
    # The whole request is refused: no record of it is stored; the client
    # splits the batch, and a lone record still over the limit is dead-lettered.
    assert [] == stored_rows(sqlite_url)
    assert 200 == post(url, json.dumps({"logs": [record("next")]}).encode()).status_code
    assert ["next"] == [row["message"] for row in stored_rows(sqlite_url)]


def test_a_batch_of_10000_records_with_rich_metadata_is_well_within_the_value_limit():
    rich = {
        "user": {"id": 1, "roles": ["a", "b", "c"], "plan": "pro"},
        "items": [{"sku": f"s{i}", "qty": i, "price": 9.5} for i in range(5)],
        **{f"field_{i}": i for i in range(15)},
    }
    logs = [record(f"m {i}", service="api", trace_id="t", path="/p", **rich) for i in range(10_000)]
    data = json.dumps({"logs": logs}).encode()
    body = decode_body(data, gzipped=False, limits=Limits())
    assert 10_000 == len(body.records)
    # About 50 per record: half the limit.
    assert (500_001, 1_000_000) == (body.values, Limits().max_values_per_request)


def test_commas_and_brackets_inside_strings_are_not_counted_as_values():
    text = json.dumps({"logs": [{"message": ",[{" * 700_000 + '\\" ,'}]}).encode()
    assert 3 == count_values(text, limit=1_000_000)  # { [ { of {"logs": [{
    assert count_values(text, limit=10_000_000) > 2_000_000  # under the limit: the cheap bound
    assert 1 == len(decode_body(text, gzipped=False, limits=Limits()).records)


def test_a_record_over_the_per_record_value_limit_is_rejected_alone(sqlite_url, serve):
    url = serve(create_app(sqlite_url, limits=Limits(max_values_per_record=1000)))
    # {"tags": [0, 1, ...]}: one { and one [, and a comma between two numbers.
    logs = [record("small", tags=list(range(999))), record("big", tags=list(range(1000)))]
    answer = post(url, json.dumps({"logs": logs}).encode()).json()
    assert [
        {
            "index": 1,
            "reason": "metadata holds more than 1000 JSON values, the limit for one record",
        }
    ] == answer["rejected"]
    assert ["small"] == [row["message"] for row in stored_rows(sqlite_url)]


def test_limits_on_values_must_be_positive():
    with pytest.raises(ValueError, match="Limits.max_values_per_request must be at least 1"):
        Limits(max_values_per_request=0)


# a store error on a batch


def test_a_row_the_store_refuses_is_rejected_alone_and_the_others_are_stored(db_url):
    now = time.time()
    rows = [
        normalise({"message": f"good {i}", "event_id": str(uuid.uuid4())}, now) for i in range(7)
    ]
    # A row no validation produced: the store's own checks refuse it (SQLite's
    # CHECK constraint, PostgreSQL's enum type).
    bad = list(rows[3])
    bad[ROW_COLUMNS.index("level")] = "LOUD"
    rows[3] = tuple(bad)
    # Row 3 came from the request's record 4 (record 2 was rejected before).
    batch = Batch(rows, [{"index": 2, "reason": "not an object"}], indexes=[0, 1, 3, 4, 5, 6, 7])
    store = open_store(db_url)
    try:
        stored = store_batch(store.insert, batch)
    finally:
        store.close()
    assert (6, 0) == (stored.accepted, stored.duplicates)
    assert [2, 4] == [r["index"] for r in stored.rejected]
    assert stored.rejected[1]["reason"].startswith("the store refused it: ")
    assert [f"good {i}" for i in (0, 1, 2, 4, 5, 6)] == [r["message"] for r in stored_rows(db_url)]


def test_a_store_error_no_row_escapes_is_raised_and_no_record_is_blamed(tmp_path):
    # A database without the logs table: every row fails, and not for its data.
    store = open_store(f"sqlite:///{tmp_path}/empty.db")
    now = time.time()
    rows = [normalise({"message": f"m {i}"}, now) for i in range(4)]
    try:
        with pytest.raises(sqlite3.OperationalError, match="no such table: logs"):
            store_batch(store.insert, Batch(rows, []))
    finally:
        store.close()


# the long form: a real server process, its memory read from /proc


@pytest.mark.slow
def test_four_22_million_empty_object_bodies_at_once_hold_the_server_under_256_mb(tmp_path):
    """The issue's body: 64 KB gzip'd, 66 MB inflated, 22 million ``{}``. The
    server refuses each with 413; four at once raise its peak RSS by less
    than 256 MB (the decompressed bytes of the two being decoded at a time)."""
    from test_hostile import server_process

    bomb = gzip.compress(_empty_objects(22_000_000), compresslevel=9)
    assert len(bomb) < 100_000
    with server_process(f"sqlite:///{tmp_path}/logs.db", tmp_path / "server.log") as server:
        post(server.url, json.dumps({"logs": [record("warm up")]}).encode())
        before = server.memory_kib()
        statuses: list[int] = []

        def send() -> None:
            statuses.append(post(server.url, bomb, GZIP).status_code)

        threads = [threading.Thread(target=send) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        growth_mb = (server.memory_kib("VmHWM") - before) / 1024
        print(f"peak RSS growth for four at once: {growth_mb:.0f} MB")
        assert [413] * 4 == statuses
        assert growth_mb < 256
        server.assert_healthy()
