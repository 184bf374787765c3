"""What every middleware shares (log_collector/integrations/_common.py): trace ids from W3C
traceparent or x-trace-id, the client address behind a trusted proxy, options, and the request
context being set for one request and restored after it."""

import re

import pytest
from helpers import TRACE_ID as TRACE

from log_collector import get_request_context, set_request_context
from log_collector.integrations._common import (
    Options,
    RequestLog,
    client_ip,
    header_getter,
    pick_trace_id,
    trace_id_from_traceparent,
)

pytestmark = pytest.mark.usefixtures("no_context")


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TRACE}-00f067aa0ba902b7-01",
        f" 00-{TRACE}-00f067aa0ba902b7-00 ",
        f"01-{TRACE}-00f067aa0ba902b7-01-future-field",
    ],
)
def test_a_valid_traceparent_gives_its_trace_id(value):
    assert TRACE == trace_id_from_traceparent(value)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        f"ff-{TRACE}-00f067aa0ba902b7-01",  # version ff is invalid
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE.upper()}-00f067aa0ba902b7-01",  # upper-case hex
        f"00-{TRACE}-00f067aa0ba902b7-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE[:-1]}-00f067aa0ba902b7-01",
        "garbage",
    ],
)
def test_an_invalid_traceparent_gives_none(value):
    assert trace_id_from_traceparent(value) is None


@pytest.mark.parametrize(
    ("traceparent", "x_trace_id", "expected"),
    [
        (f"00-{TRACE}-00f067aa0ba902b7-01", "other", TRACE),
        ("invalid", "order-flow-42", "order-flow-42"),
        (None, " padded ", "padded"),
    ],
)
def test_the_trace_id_is_traceparents_else_x_trace_ids(traceparent, x_trace_id, expected):
    assert expected == pick_trace_id(traceparent, x_trace_id)


@pytest.mark.parametrize("x_trace_id", [None, "", "has space", "x" * 101, "line\nbreak", "é"])
def test_without_a_usable_trace_id_a_new_32_hex_one_is_made(x_trace_id):
    made = pick_trace_id(None, x_trace_id)

    assert re.fullmatch("[0-9a-f]{32}", made)
    assert made != pick_trace_id(None, x_trace_id)


@pytest.mark.parametrize(
    ("header_name", "value", "expected"),
    [
        ("x-forwarded-for", "203.0.113.7, 10.0.0.1", "203.0.113.7"),
        ("x-real-ip", "203.0.113.8", "203.0.113.8"),
        ("forwarded", 'for="[2001:db8::1]:4711";proto=https, for=10.0.0.1', "2001:db8::1"),
        ("forwarded", "proto=https;for=192.0.2.60:8080", "192.0.2.60"),
        ("x-forwarded-for", None, "10.1.1.1"),  # header missing: the peer
        ("x-forwarded-for", " ", "10.1.1.1"),
        (None, "203.0.113.7", "10.1.1.1"),  # no trusted header: the peer, whatever was sent
    ],
)
def test_the_ip_comes_from_the_trusted_proxy_header_else_the_peer(header_name, value, expected):
    assert expected == client_ip("10.1.1.1", value, header_name)


def test_unknown_options_are_refused_with_their_name():
    with pytest.raises(TypeError, match="exclude_path"):
        Options.build({"exclude_path": "/healthz"})


def test_options_accept_any_iterable_of_paths_and_any_header_case():
    options = Options.build({"exclude_paths": ["/healthz", "/readyz"], "trace_header": "X-Req"})

    assert (True, False, "x-req") == (
        options.excluded("/readyz"),
        options.excluded("/healthz/deep"),
        options.trace_header,
    )


def request_log(client, *, method="GET", path="/a", headers=(), peer="10.0.0.1", **options):
    return RequestLog(
        client,
        Options.build(options),
        method=method,
        path=path,
        header=header_getter(headers),
        peer=peer,
    )


def test_the_context_is_set_for_the_request_and_the_previous_one_restored(client, receiver):
    set_request_context(path="/outer")
    log = request_log(client, headers=[("X-User-Id", "u-1"), ("x-trace-id", "t-1")])

    log.start()
    during = get_request_context()
    log.finish(201)
    log.finish(500)  # a second finish does nothing

    expected = {
        "path": "/a",
        "method": "GET",
        "ip": "10.0.0.1",
        "trace_id": "t-1",
        "user_id": "u-1",
    }
    assert expected == during
    assert {"path": "/outer"} == get_request_context()
    assert client.flush(timeout=10)
    assert [("Request received", None), ("Request completed", 201)] == [
        (r["message"], r.get("status_code")) for r in receiver.records
    ]
    assert [expected] * 2 == [{key: r[key] for key in expected} for r in receiver.records]


def test_values_the_store_would_refuse_are_kept_storable(client):
    log = request_log(
        client, method="propfind", path="/" + "p" * 600, headers=[("x-user-id", "u" * 300)]
    )

    log.start()
    context = get_request_context()
    log.finish(207)

    assert (500, "PROPFIND", None, 255) == (
        len(context["path"]),
        context["http_method"],
        context.get("method"),
        len(context["user_id"]),
    )
