"""Decoding a POST /logs body and turning records into rows (ingest: decode, validate, columnar)."""

from __future__ import annotations

import gzip
import json
import math
import time
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from log_collector.server.ingest import Limits, normalise_all
from log_collector.server.ingest.columnar import fast_rows
from log_collector.server.ingest.decode import (
    Body,
    IngestError,
    decode_body,
    gunzip,
    parse_content_encoding,
)
from log_collector.server.ingest.validate import Rejected, coerce, normalise
from log_collector.server.store.base import ROW_COLUMNS

NOW = 1_700_000_000.5
EVENT_ID = "0190f3c4-5b6a-7c8d-9e0f-1a2b3c4d5e6f"


def row_of(record: dict) -> dict:
    return dict(zip(ROW_COLUMNS, normalise(record, NOW), strict=True))


def coerced_row(record: dict) -> tuple[dict, dict]:
    """The row (metadata decoded) and the ``{field: reason}`` of what was coerced."""
    row, fields = coerce(record, NOW)
    named = dict(zip(ROW_COLUMNS, row, strict=True))
    named["metadata"] = json.loads(named["metadata"]) if named["metadata"] else None
    return named, fields


def rejection(record: object) -> str:
    with pytest.raises(Rejected) as caught:
        normalise(record, NOW)
    return str(caught.value)


# Content-Encoding


@pytest.mark.parametrize("header", [None, "", "identity", " Identity "])
def test_no_encoding_means_a_plain_body(header):
    assert parse_content_encoding(header) is False


@pytest.mark.parametrize("header", ["gzip", "GZIP", "x-gzip", "gzip, identity"])
def test_gzip_encodings_are_recognised(header):
    assert parse_content_encoding(header) is True


@pytest.mark.parametrize("header", ["br", "deflate", "gzip, br", "zstd"])
def test_other_encodings_are_refused_with_415(header):
    with pytest.raises(IngestError) as caught:
        parse_content_encoding(header)
    assert 415 == caught.value.status
    assert f"Content-Encoding '{header}' is not supported" in caught.value.message


# gzip


def test_gunzip_returns_the_original_bytes():
    data = json.dumps({"logs": [{"message": "x" * 1000}]}).encode()
    assert data == gunzip(gzip.compress(data), limit=10_000)


def test_gunzip_reads_every_member_of_a_multi_member_stream():
    assert b"helloworld" == gunzip(gzip.compress(b"hello") + gzip.compress(b"world"), 100)


def test_gunzip_refuses_output_past_the_limit_without_inflating_the_rest():
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))
    with pytest.raises(IngestError) as caught:
        gunzip(bomb, limit=1024 * 1024)
    assert 413 == caught.value.status
    assert "decompressed body is over the limit of 1048576 bytes" == caught.value.message


def test_gunzip_accepts_output_exactly_at_the_limit():
    assert 1000 == len(gunzip(gzip.compress(b"a" * 1000), limit=1000))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not gzip at all", "body is not valid gzip: Error -3"),
        (gzip.compress(b"x" * 1000)[:-20], "body is not valid gzip: the stream is truncated"),
        (zlib.compress(b"zlib, not gzip"), "body is not valid gzip: Error -3"),
    ],
)
def test_broken_gzip_is_a_400(data, message):
    with pytest.raises(IngestError) as caught:
        gunzip(data, limit=10_000)
    assert 400 == caught.value.status
    assert caught.value.message.startswith(message)


# the body


def test_a_body_is_an_object_holding_a_logs_array():
    body = decode_body(b'{"logs": [{"message": "a"}, 7]}', gzipped=False, limits=Limits())
    assert [{"message": "a"}, 7] == body.records


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "body is not valid JSON: Expecting property name"),
        (b"\xff\xfe\x00", "body is not UTF-8 JSON"),
        (b"[]", 'body must be a JSON object {"logs": [record, ...]}'),
        (b'{"records": []}', 'body must be a JSON object {"logs": [record, ...]}'),
        (b'{"logs": {"message": "a"}}', 'body must be a JSON object {"logs": [record, ...]}'),
        (b"[" * 100_000, "body is not valid JSON: nested too deeply"),
    ],
)
def test_a_body_that_is_not_that_is_a_400_saying_what(raw, message):
    with pytest.raises(IngestError) as caught:
        decode_body(raw, gzipped=False, limits=Limits())
    assert 400 == caught.value.status
    assert caught.value.message.startswith(message)


@pytest.mark.parametrize(
    "raw",
    [
        # orjson would read these integers as floats; json keeps every digit.
        b'{"logs": [{"message": "m", "user_id": 123456789012345678901234567890}]}',
        b'{"logs": [{"message": "m", "n": -9223372036854775809}]}',
        b'{"logs": [{"message": "m", "n":18446744073709551616}]}',
        # orjson refuses these; json reads them (the records are judged one by one).
        b'{"logs": [{"message": "m", "n": NaN}, {"message": "m", "big": 1e400}]}',
        b'{"logs": [{"message": "\\ud800"}]}',
        # Long runs of digits inside strings do not need json.
        b'{"logs": [{"message": "m", "trace_id": "a0123456789012345678901234567890"}]}',
        b'{"logs": [{"message": "m", "n": 1234567890123456789}]}',
    ],
)
def test_a_body_decodes_exactly_as_json_loads_decodes_it(raw):
    body = decode_body(raw, gzipped=False, limits=Limits())
    expected = json.loads(raw)["logs"]
    assert repr(expected) == repr(body.records)
    assert [type(v) for r in expected for v in r.values()] == [
        type(v) for r in body.records for v in r.values()
    ]


def test_an_integer_past_64_bits_is_stored_with_every_digit():
    raw = b'{"logs": [{"message": "m", "user_id": 123456789012345678901234567890, "n": -1e2}]}'
    batch = normalise_all(decode_body(raw, gzipped=False, limits=Limits()), NOW)
    row = dict(zip(ROW_COLUMNS, batch.rows[0], strict=True))
    assert "123456789012345678901234567890" == row["user_id"]
    assert {"n": -100.0} == json.loads(row["metadata"])


def test_nan_in_a_body_is_kept_as_text_and_its_record_reported_as_coerced():
    raw = b'{"logs": [{"message": "a", "x": NaN}, {"message": "b", "y": null, "z": 1.5}]}'
    batch = normalise_all(decode_body(raw, gzipped=False, limits=Limits()), NOW)
    assert [] == batch.rejected
    assert [{"index": 0, "fields": ["x"], "reason": "x: NaN or Infinity, kept as text"}] == (
        batch.coerced
    )
    metadata = [json.loads(row[ROW_COLUMNS.index("metadata")]) for row in batch.rows]
    assert [{"x": "NaN"}, {"y": None, "z": 1.5}] == metadata


def test_more_records_than_the_limit_is_a_413():
    raw = json.dumps({"logs": [{"message": "m"}] * 11}).encode()
    with pytest.raises(IngestError) as caught:
        decode_body(raw, gzipped=False, limits=Limits(max_records=10))
    assert 413 == caught.value.status
    assert "11 records in one request, over the limit of 10: split the batch" == (
        caught.value.message
    )


def test_a_plain_body_over_the_decompressed_limit_is_a_413():
    with pytest.raises(IngestError) as caught:
        decode_body(b'{"logs": []}     ', gzipped=False, limits=Limits(max_decompressed_bytes=12))
    assert 413 == caught.value.status


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="Limits.max_records must be at least 1"):
        Limits(max_records=0)


# one record: columns and metadata


def test_known_keys_go_to_columns_and_the_others_to_metadata():
    row = row_of(
        {
            "message": "paid",
            "level": "INFO",
            "service": "billing",
            "order_id": 42,
            "metadata": {"cart": [1, 2]},
        }
    )
    assert "paid" == row["message"]
    assert "billing" == row["service"]
    assert {"cart": [1, 2], "order_id": 42} == json.loads(row["metadata"])


def test_a_top_level_field_wins_over_the_same_key_in_metadata():
    row = row_of({"message": "m", "metadata": {"k": "inner", "j": 1}, "k": "outer"})
    assert {"k": "outer", "j": 1} == json.loads(row["metadata"])


def test_server_owned_columns_sent_by_a_client_are_kept_in_metadata():
    row = row_of({"message": "m", "id": 5, "deleted": True, "received_at": 1.0})
    assert {"id": 5, "deleted": True, "received_at": 1.0} == json.loads(row["metadata"])
    assert NOW == row["received_at"]


def test_a_record_without_extra_fields_has_no_metadata():
    assert row_of({"message": "m", "metadata": {}})["metadata"] is None


def test_missing_fields_get_the_schema_defaults():
    row = row_of({"message": "m"})
    assert {
        "created_at": NOW,
        "level": "INFO",
        "log_type": "BACKEND",
        "service": "unknown",
        "environment": "development",
        "service_version": "v0.0.0-dev",
        "event_id": None,
        "method": None,
        "duration_ms": None,
        "received_at": NOW,
    } == {k: row[k] for k in (
        "created_at", "level", "log_type", "service", "environment", "service_version",
        "event_id", "method", "duration_ms", "received_at",
    )}  # fmt: skip


def test_null_is_the_same_as_missing():
    assert row_of({"message": "m"}) == row_of({"message": "m", "level": None, "user_id": None})


# one record: normalisation


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("INFO", "INFO"),
        ("info", "INFO"),
        (" Warn ", "WARN"),
        ("WARNING", "WARN"),
        ("warning", "WARN"),
        ("CRITICAL", "FATAL"),
        ("fatal", "FATAL"),
    ],
)
def test_level_aliases_are_normalised(given, stored):
    assert stored == row_of({"message": "m", "level": given})["level"]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("prod", "production"),
        ("PRODUCTION", "production"),
        ("stage", "staging"),
        ("stg", "staging"),
        ("dev", "development"),
        ("testing", "test"),
        ("local", "local"),
    ],
)
def test_environment_aliases_are_normalised(given, stored):
    assert stored == row_of({"message": "m", "environment": given})["environment"]


def test_http_method_and_log_type_are_upper_cased():
    row = row_of({"message": "m", "method": "post", "log_type": "frontend"})
    assert ("POST", "FRONTEND") == (row["method"], row["log_type"])


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (1_700_000_000.25, 1_700_000_000.25),
        (1_700_000_000, 1_700_000_000.0),
        (1_700_000_000_250, 1_700_000_000.25),  # milliseconds, as JavaScript sends
        ("1700000000.25", 1_700_000_000.25),
        ("2023-11-14T22:13:20.250000Z", 1_700_000_000.25),
        ("2023-11-14T22:13:20.25+00:00", 1_700_000_000.25),
        ("2023-11-15T07:13:20.25+09:00", 1_700_000_000.25),
        ("2023-11-14 22:13:20.25", 1_700_000_000.25),  # no offset: UTC
    ],
)
def test_created_at_is_unix_seconds_or_iso_8601(given, seconds):
    assert seconds == pytest.approx(row_of({"message": "m", "created_at": given})["created_at"])


def test_numeric_text_fields_are_stored_as_text():
    row = row_of({"message": 42, "user_id": 1001, "trace_id": 7.5})
    assert ("42", "1001", "7.5") == (row["message"], row["user_id"], row["trace_id"])


def test_event_ids_are_stored_in_canonical_form():
    upper = "0190F3C4-5B6A-7C8D-9E0F-1A2B3C4D5E6F"
    assert EVENT_ID == row_of({"message": "m", "event_id": upper})["event_id"]
    assert EVENT_ID == row_of({"message": "m", "event_id": EVENT_ID.replace("-", "")})["event_id"]


# one record: coercion, and the only rejection

ENUM_NOTE = "is not one of"
NOT_FINITE = "duration_ms: expected a finite number"
TIME_RANGE = "is outside 1970-01-01 to 2200-01-01"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ("text", "a record must be a JSON object, got a string"),
        ([1, 2], "a record must be a JSON object, got an array"),
        (None, "a record must be a JSON object, got null"),
    ],
)
def test_only_a_record_that_is_not_an_object_is_rejected(record, reason):
    assert reason == rejection(record)


@pytest.mark.parametrize(
    ("field", "value", "column", "stored", "reason"),
    [
        ("level", "VERBOSE", "level", "INFO",
         "level: 'VERBOSE' is not one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL"),
        ("environment", "qa", "environment", "development",
         "environment: 'qa' is not one of production, staging, development, test, local"),
        ("method", "BREW", "method", None,
         "method: 'BREW' is not one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS"),
        ("log_type", 3, "log_type", "BACKEND",
         "log_type: expected one of BACKEND, FRONTEND, MOBILE, IOT, WORKER, got a number"),
        ("service", "s" * 101, "service", "s" * 100,
         "service: 101 characters, over the limit of 100"),
        ("user_id", {"id": 1}, "user_id", None, "user_id: expected a string, got an object"),
        ("message", True, "message", "", "message: expected a string, got a boolean"),
        ("duration_ms", "9", "duration_ms", None, f"{NOT_FINITE}, got a string"),
        ("duration_ms", 10**400, "duration_ms", None, f"{NOT_FINITE}, got a number"),
        ("event_id", "42", "event_id", None, "event_id: expected a UUID string, got a string"),
        ("metadata", [1], "metadata", None, "metadata: expected an object, got an array"),
        ("created_at", "today", "created_at", NOW,
         "created_at: 'today' is not an ISO 8601 time"),
        ("created_at", -5, "created_at", NOW, f"created_at: -5 {TIME_RANGE}"),
        ("created_at", 10**400, "created_at", NOW, f"created_at: {10**400!r:.40}... {TIME_RANGE}"),
        ("created_at", [1], "created_at", NOW,
         "created_at: expected Unix seconds or an ISO 8601 string, got an array"),
        ("created_at", "9999-12-31T23:59:59Z", "created_at", NOW,
         f"created_at: '9999-12-31T23:59:59Z' {TIME_RANGE}"),
        ("created_at", "2200-01-01T00:00:00Z", "created_at", NOW,
         f"created_at: '2200-01-01T00:00:00Z' {TIME_RANGE}"),
        ("created_at", 8e9, "created_at", NOW, f"created_at: 8000000000.0 {TIME_RANGE}"),
    ],
)  # fmt: skip
def test_a_value_that_does_not_fit_is_coerced_and_kept_under_invalid(
    field, value, column, stored, reason
):
    row, fields = coerced_row({"message": "m", field: value, "k": 1})
    assert {field: reason} == fields
    expected_metadata = {"k": 1, "_invalid": {field: value}}
    assert (stored, expected_metadata) == (
        row[column] if column != "metadata" else None,
        row["metadata"],
    )


def test_nan_or_infinity_under_a_column_is_kept_as_text_under_invalid():
    row, fields = coerced_row({"message": "m", "created_at": math.nan, "duration_ms": -math.inf})
    assert ["created_at", "duration_ms"] == list(fields)
    assert (NOW, None) == (row["created_at"], row["duration_ms"])
    assert {"_invalid": {"created_at": "NaN", "duration_ms": "-Infinity"}} == row["metadata"]


def test_a_missing_message_is_stored_as_empty_text_and_reported():
    row, fields = coerced_row({"level": "ERROR", "order_id": 7})
    assert {"message": "message: required; stored as an empty string"} == fields
    assert ("", "ERROR", {"order_id": 7}) == (row["message"], row["level"], row["metadata"])
    assert {"message": "message: required; stored as an empty string"} == (
        coerced_row({"message": None})[1]
    )


def test_several_unfit_values_are_all_kept_and_the_users_own_invalid_key_too():
    row, fields = coerced_row(
        {"message": "m", "environment": "qa", "log_type": 7, "_invalid": "mine", "method": "GET"}
    )
    assert ["environment", "log_type"] == list(fields)
    assert ("development", "BACKEND", "GET") == (
        row["environment"],
        row["log_type"],
        row["method"],
    )
    assert {"_invalid": {"environment": "qa", "log_type": 7, "_invalid": "mine"}} == (
        row["metadata"]
    )


def test_a_users_invalid_key_is_left_alone_when_nothing_is_coerced():
    row, fields = coerced_row({"message": "m", "_invalid": {"a": 1}})
    assert ({}, {"_invalid": {"a": 1}}) == (fields, row["metadata"])


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("2199-12-31T23:59:59Z", 7_258_118_399.0),
        ("1970-01-01T00:00:00Z", 0.0),
        (7_258_118_399_000, 7_258_118_399.0),  # milliseconds, just before 2200
        ("1700000000250", 1_700_000_000.25),  # a numeric string is a number: milliseconds
    ],
)
def test_times_from_1970_to_2200_are_kept_and_milliseconds_are_numbers_only(given, seconds):
    row, fields = coerced_row({"message": "m", "created_at": given})
    assert ({}, seconds) == (fields, pytest.approx(row["created_at"]))


def test_text_a_store_cannot_hold_is_replaced_when_the_body_may_contain_it():
    raw = json.dumps(
        {
            "logs": [
                {"message": "nul \u0000 here"},
                {"message": "ok"},
                {"message": "m", "k\u0000": ["\ud800"]},
            ]
        }
    ).encode()
    body = decode_body(raw, gzipped=False, limits=Limits())
    batch = normalise_all(body, NOW)
    replaced = "NUL or an unpaired surrogate replaced by U+FFFD"
    assert [] == batch.rejected
    assert [
        {"index": 0, "fields": ["message"], "reason": f"message: {replaced}"},
        {"index": 2, "fields": ["k\ufffd"], "reason": f"k\ufffd: {replaced}"},
    ] == batch.coerced
    assert ["nul \ufffd here", "ok", "m"] == [
        row[ROW_COLUMNS.index("message")] for row in batch.rows
    ]
    assert '{"k\ufffd":["\ufffd"]}' == batch.rows[2][ROW_COLUMNS.index("metadata")]


def test_a_surrogate_pair_sent_as_two_raw_halves_becomes_its_character():
    raw = '{"logs": [{"message": "\ud83d\ude00"}]}'.encode("utf-8", "surrogatepass")
    batch = normalise_all(decode_body(raw, gzipped=False, limits=Limits()), NOW)
    assert "\U0001f600" == batch.rows[0][ROW_COLUMNS.index("message")]


def test_an_escaped_surrogate_pair_is_ordinary_text():
    raw = json.dumps({"logs": [{"message": "emoji \U0001f600"}]}).encode()
    batch = normalise_all(decode_body(raw, gzipped=False, limits=Limits()), NOW)
    assert [] == batch.rejected
    assert "emoji \U0001f600" == batch.rows[0][ROW_COLUMNS.index("message")]


def test_one_bad_record_never_fails_its_batch():
    records = [{"message": "a"}, {"level": "nope", "message": "b"}, 5, {"message": "c"}]
    batch = normalise_all(Body(records, check_text=False), NOW)
    assert ["a", "b", "c"] == [row[ROW_COLUMNS.index("message")] for row in batch.rows]
    assert [0, 1, 3] == [batch.index_of(i) for i in range(len(batch.rows))]
    assert [2] == [r["index"] for r in batch.rejected]
    assert [1] == [c["index"] for c in batch.coerced]


# the fast path gives the same rows as normalise

_text = st.text(max_size=12)
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**41),
    st.floats(allow_nan=True, allow_infinity=True),
    _text,
    st.sampled_from(["INFO", "info", "WARNING", "prod", "production", "GET", "post", "BACKEND"]),
    st.just(EVENT_ID),
    st.just(EVENT_ID.upper()),
    st.just("s" * 120),
    # Times at the edges of 1970-2200 and of the milliseconds rule, and values
    # past every numeric type: coerced on the slow path, never on the fast one.
    st.sampled_from([7_258_118_399.5, 7_258_118_400.0, 8e9, 1e11, -0.5, 10**400]),
    st.sampled_from(["9999-12-31T23:59:59Z", "1700000000250", "nan"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(_text, st.integers(), max_size=2),
)
_keys = st.sampled_from([*ROW_COLUMNS, "metadata", "order_id", "id", "_invalid"])
_records = st.one_of(
    st.dictionaries(_keys, _values, max_size=8),
    st.fixed_dictionaries(
        {"message": _text, "created_at": st.floats(0, 2e9), "event_id": st.uuids().map(str)},
        optional={"level": st.sampled_from(["INFO", "ERROR"]), "user_id": _text},
    ),
    st.integers(),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_records, max_size=6))
def test_the_fast_path_takes_only_records_coerce_stores_unchanged(records):
    fast, slow = fast_rows(records, NOW)
    for index, record in enumerate(records):
        if index in slow:
            continue
        assert (fast[index], {}) == coerce(record, NOW)


def test_canonical_records_all_take_the_fast_path():
    records = [
        {"event_id": EVENT_ID, "created_at": time.time(), "level": "INFO", "message": "m", "k": 1}
    ]
    assert set() == fast_rows(records, NOW)[1]
