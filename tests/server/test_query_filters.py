"""Parsing the query string into ``Filters``, and every bad input raising ``BadQuery`` that names
its parameter, never another error (both stores, through ``db_url``)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_query_search import NOW, NOW_US, insert

from log_collector.server.query import (
    BadQuery,
    context,
    facets,
    get_log,
    histogram,
    parse_filters,
    search,
)
from log_collector.server.query.filters import FILTER_NAMES, int_param
from log_collector.server.query.pagination import decode_cursor, encode_cursor

# A store on each kind of database (the fixture of the search tests).


def test_relative_and_iso_times_become_microseconds_since_the_epoch():
    filters = parse_filters({"since": ["15m"], "until": ["2025-06-15T15:00:00"]}, NOW)
    assert NOW_US - 15 * 60 * 1_000_000 == filters.since_us
    # No zone given: UTC.
    assert 1_749_999_600_000_000 == filters.until_us
    assert NOW_US - 7 * 86400 * 1_000_000 == parse_filters({"since": ["7d"]}, NOW).since_us


def test_levels_and_min_level_admit_the_levels_both_allow():
    assert ("ERROR", "FATAL") == parse_filters({"min_level": ["error"]}, NOW).levels
    assert ("WARN",) == parse_filters(
        {"level": ["warning", "DEBUG"], "min_level": ["INFO"]}, NOW
    ).levels
    assert parse_filters({}, NOW).levels is None


def test_empty_values_are_the_same_as_leaving_the_parameter_out():
    assert parse_filters({}, NOW) == parse_filters(
        {"service": [""], "trace_id": [""], "since": [""], "meta.x": [""]}, NOW
    )


def test_endpoint_parameters_named_as_extra_are_left_alone_and_unknown_otherwise():
    assert parse_filters({}, NOW) == parse_filters({"limit": ["5"]}, NOW, extra={"limit"})
    with pytest.raises(BadQuery) as bad:
        parse_filters({"limit": ["5"]}, NOW)
    assert "limit" == bad.value.parameter
    assert 5 == int_param({"limit": ["5"]}, "limit", 50, 1, 1000)
    assert 50 == int_param({}, "limit", 50, 1, 1000)


def test_a_cursor_round_trips_and_anything_else_is_refused():
    assert (NOW_US, 12) == decode_cursor(encode_cursor(NOW_US, 12))
    forged = [
        "garbage!",
        "",
        "x" * 300,
        base64.urlsafe_b64encode(b'["c0", 1, 2]').decode(),
        base64.urlsafe_b64encode(b'["c1", -1, 2]').decode(),
        base64.urlsafe_b64encode(b'["c1", 1.5, 2]').decode(),
        base64.urlsafe_b64encode(b'["c1", 1, true]').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(b'{"c1": 1}').decode(),
    ]
    for cursor in forged:
        with pytest.raises(BadQuery) as bad:
            decode_cursor(cursor)
        assert "cursor" == bad.value.parameter, cursor


BAD_FILTERS = [
    ({"colour": ["red"]}, "colour"),
    ({"level": ["LOUD"]}, "level"),
    ({"min_level": ["x"]}, "min_level"),
    ({"environment": ["qa"]}, "environment"),
    ({"method": ["FETCH"]}, "method"),
    ({"since": ["yesterday"]}, "since"),
    ({"until": ["2024-13-01"]}, "until"),
    ({"since": ["1h"], "until": ["2h"]}, "since"),
    ({"since": ["1900-01-01"]}, "since"),
    ({"since": ["999999999w"]}, "since"),
    ({"trace_id": ["a", "b"]}, "trace_id"),
    ({"meta.": ["1"]}, "meta."),
    ({"meta.k": ["1", "2"]}, "meta.k"),
    ({"q": ["a\x00b"]}, "q"),
    ({"user_id": ["\ud800"]}, "user_id"),
    ({"path": ["/" * 1001]}, "path"),
    ({"service": ["s"] * 101}, "service"),
    ({"not.message": ["x"]}, "not.message"),
    ({"not.": ["x"]}, "not."),
    ({"not.level": ["LOUD"]}, "not.level"),
    ({"not.method": ["FETCH"]}, "not.method"),
    ({"not.path": ["p"] * 101}, "not.path"),
]


@pytest.mark.parametrize(("params", "parameter"), BAD_FILTERS, ids=lambda c: str(c)[:40])
def test_a_bad_filter_raises_bad_query_naming_it(params, parameter):
    with pytest.raises(BadQuery) as bad:
        parse_filters(params, NOW)
    assert parameter == bad.value.parameter


def test_bad_endpoint_arguments_raise_bad_query_naming_them(store):
    insert(store, [{"service": "api", "message": "m", "trace_id": "t"}])
    filters = parse_filters({}, NOW)
    calls = [
        ("limit", lambda: search(store, filters, limit=0)),
        ("limit", lambda: search(store, filters, limit=1001)),
        ("limit", lambda: search(store, filters, limit="ten")),
        ("cursor", lambda: search(store, filters, cursor="not-ours")),
        ("buckets", lambda: histogram(store, filters, buckets=0)),
        ("buckets", lambda: histogram(store, filters, buckets="1e3")),
        ("since", lambda: histogram(store, parse_filters({"since": ["2030-01-01"]}, NOW))),
        ("fields", lambda: facets(store, filters, "service,nope")),
        ("top", lambda: facets(store, filters, "service", top=101)),
        ("before", lambda: context(store, 1, before=-1)),
        ("after", lambda: context(store, 1, after=501)),
        ("id", lambda: get_log(store, "1; DROP TABLE logs")),
        ("id", lambda: get_log(store, 0)),
    ]
    for parameter, call in calls:
        with pytest.raises(BadQuery) as bad:
            call()
        assert parameter == bad.value.parameter
    assert 1 == len(search(store, filters)["logs"])


KNOWN_NAMES = st.sampled_from(
    sorted(FILTER_NAMES) + ["meta.region", "meta.order_id", "limit", "cursor"]
)
# Mostly names the parser knows, so most examples reach the database.
NAMES = st.one_of(
    KNOWN_NAMES,
    KNOWN_NAMES,
    KNOWN_NAMES,
    st.text(max_size=12),
    st.text(max_size=8).map(lambda key: "meta." + key),
)
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=()), max_size=20)
VALUES = st.one_of(
    st.sampled_from(
        [
            "1h",
            "15m",
            "7d",
            "0s",
            "2025-06-15T00:00:00Z",
            "2025-06-15",
            "ERROR",
            "warning",
            "prod",
            "GET",
            "api",
            "eu",
            "42",
            "%",
            "_",
            "\\",
            "",
            "-1",
            "1001",
            "50",
            encode_cursor(NOW_US, 3),
        ]
    ),
    # Text no store can bind: a NUL (PostgreSQL text), an unpaired surrogate (UTF-8).
    st.sampled_from(["a\x00b", "\ud800", "x\udfff"]),
    ANY_TEXT,
)
QUERY_STRINGS = st.dictionaries(NAMES, st.lists(VALUES, min_size=1, max_size=2), max_size=4)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(params=QUERY_STRINGS)
def test_any_query_string_gives_an_answer_or_bad_query_and_nothing_else(store, params):
    """Whatever a client puts in the query string, parsing it and running the search and the
    histogram either answers or raises BadQuery naming a parameter of the request."""
    insert(store, [{"service": "api", "message": "m", "region": "eu", "order_id": 42}])
    try:
        filters = parse_filters(params, NOW, extra={"limit", "cursor"})
        limit = int_param(params, "limit", 50, 1, 1000)
        cursor_values = [v for v in params.get("cursor", []) if v]
        page = search(store, filters, limit, cursor_values[0] if cursor_values else None)
        histogram(store, filters, buckets=5)
    except BadQuery as bad:
        assert isinstance(bad.parameter, str) and bad.message
        return
    assert len(page["logs"]) <= limit
