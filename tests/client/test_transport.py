"""One POST of one batch and what its answer means (log_collector/transport.py).

Responses come from real requests against the fault-injecting receiver (tests/receiver.py);
only odd 2xx bodies and an HTTP-date Retry-After are built as plain requests.Response objects.
"""

import email.utils
import gzip
import json
import socket

import pytest
import requests
from freezegun import freeze_time

from log_collector.client.transport import (
    MAX_RETRY_AFTER,
    HttpTransport,
    Kind,
    classify,
    encode_batch,
    parse_retry_after,
    short_reason,
)

DEAD_URL = "http://127.0.0.1:9/logs"
NOW = 1_700_000_000.0


def post(receiver, logs, path="/logs", **kwargs):
    return requests.post(f"{receiver.url}{path}", json={"logs": logs}, timeout=5, **kwargs)


def records(n, **extra):
    return [{"event_id": f"e{i}", "message": f"m{i}", **extra} for i in range(n)]


def response(status, body=b"", headers=None):
    built = requests.Response()
    built.status_code = status
    built._content = body
    built.headers.update(headers or {})
    return built


# classify(): 2xx.


def test_a_2xx_without_rejections_acknowledges_the_whole_batch(receiver):
    outcome = classify(post(receiver, records(3)), count=3)

    assert (Kind.ACKED, 200, (), 0) == (
        outcome.kind,
        outcome.status,
        outcome.rejected,
        outcome.duplicates,
    )


def test_a_2xx_names_the_records_the_server_rejected_one_by_one(receiver):
    receiver.reject_record_if = lambda record: "bad level" if record.get("bad") else False
    logs = [{"event_id": "a"}, {"event_id": "b", "bad": 1}, {"event_id": "c", "bad": 1}]

    outcome = classify(post(receiver, logs), count=3)

    assert (Kind.ACKED, ((1, "bad level"), (2, "bad level"))) == (
        outcome.kind,
        outcome.rejected,
    )


def test_a_rejected_index_outside_the_batch_is_ignored(receiver):
    receiver.reject_record_if = lambda record: "bad" if record.get("bad") else False
    logs = [{"event_id": "a", "bad": 1}, {"event_id": "b"}, {"event_id": "c", "bad": 1}]

    outcome = classify(post(receiver, logs), count=2)  # index 2 is not one of ours

    assert ((0, "bad"),) == outcome.rejected


def test_a_2xx_counts_the_duplicates_the_server_reports(receiver):
    post(receiver, records(3))

    outcome = classify(post(receiver, records(3)), count=3)

    assert (Kind.ACKED, 3) == (outcome.kind, outcome.duplicates)


def test_the_original_servers_plain_ok_is_an_ack(receiver):
    receiver.legacy_ack = True

    answer = post(receiver, records(2))
    outcome = classify(answer, count=2)

    assert {"status": "ok", "count": 2} == answer.json()
    assert (Kind.ACKED, (), 0) == (outcome.kind, outcome.rejected, outcome.duplicates)


@pytest.mark.parametrize(
    "body",
    [
        b"OK",
        b"",
        b"[1, 2]",
        b'{"count": 2}',
        b'{"status": "error", "count": 2}',
        b"<html><body><form action=/login>Sign in</form></body></html>",
    ],
)
def test_a_2xx_that_is_not_the_acknowledgement_json_is_not_an_ack(body):
    """Only {"status": "ok", ...} acknowledges: a proxy's empty 200 or a login page stored
    nothing, so the rows must stay."""
    outcome = classify(response(200, body), count=2)

    assert Kind.MISDIRECTED == outcome.kind
    assert outcome.describe().startswith("HTTP 200: not a log-collector server")


@pytest.mark.parametrize(
    "body", [b'{"status": "ok", "rejected": "all"}', b'{"status": "ok", "rejected": [7, {}]}']
)
def test_an_ack_with_a_malformed_rejected_list_acknowledges_every_record(body):
    outcome = classify(response(200, body), count=2)

    assert (Kind.ACKED, ()) == (outcome.kind, outcome.rejected)


def test_a_login_page_behind_a_redirect_is_not_followed_and_not_an_ack(receiver):
    """An http -> https redirect in front of a login page: nothing is followed, the
    Location is named, and the only request the server saw is the POST."""
    login = f"https://127.0.0.1:{receiver.port}/login"
    receiver.answer_next(status=302, headers={"Location": login})
    transport = HttpTransport(f"{receiver.url}/logs", timeout=5)

    outcome = transport.send(b'{"logs":[{"event_id":"a"}]}', gzipped=False, count=1)

    assert (Kind.MISDIRECTED, 302) == (outcome.kind, outcome.status)
    assert f"redirected to {login}" in outcome.detail
    assert [("POST", "/logs")] == [(r.method, r.path) for r in receiver.requests]
    assert 0 == receiver.count()


@pytest.mark.parametrize("status", [301, 303, 307, 308])
def test_every_redirect_is_misdirected(receiver, status):
    receiver.answer_next(status=status, headers={"Location": "/elsewhere"})

    outcome = HttpTransport(f"{receiver.url}/logs", timeout=5).send(
        b'{"logs":[]}', gzipped=False, count=0
    )

    assert (Kind.MISDIRECTED, status) == (outcome.kind, outcome.status)
    assert 1 == len(receiver.requests)


def test_a_200_html_page_from_the_server_address_is_not_an_ack(receiver):
    receiver.answer_next(
        status=200, body="<html>Welcome</html>", headers={"Content-Type": "text/html"}
    )

    outcome = HttpTransport(f"{receiver.url}/logs", timeout=5).send(
        b'{"logs":[{"event_id":"a"}]}', gzipped=False, count=1
    )

    assert Kind.MISDIRECTED == outcome.kind
    assert "text/html" in outcome.detail
    assert "Welcome" in outcome.detail


def test_a_rejection_without_a_reason_gets_one():
    body = json.dumps({"status": "ok", "rejected": [{"index": 0}]}).encode()

    assert ((0, "rejected by the server"),) == classify(response(200, body), count=1).rejected


# classify(): errors.


def test_413_means_split_the_batch(receiver):
    receiver.max_records_per_request = 2

    outcome = classify(post(receiver, records(3)), count=3)

    assert (Kind.TOO_LARGE, 413) == (outcome.kind, outcome.status)
    assert "too many records" in outcome.detail


def test_400_for_a_whole_batch_means_find_the_poisoned_record(receiver):
    receiver.reject_batch_if = lambda record: record.get("poison")

    outcome = classify(post(receiver, [{"event_id": "a"}, {"poison": 1}]), count=2)

    assert (Kind.REJECTED, 400) == (outcome.kind, outcome.status)
    assert 0 == receiver.count()


def test_422_is_a_whole_batch_rejection_too(receiver):
    receiver.fail_next(status=422, body="unprocessable")

    outcome = classify(post(receiver, records(1)), count=1)

    assert (Kind.REJECTED, 422) == (outcome.kind, outcome.status)
    assert "unprocessable" in outcome.detail


def test_401_without_the_right_key_means_unauthorized(receiver):
    receiver.require_api_key = "right"

    outcome = classify(
        post(receiver, records(1), headers={"Authorization": "Bearer wrong"}), count=1
    )

    assert (Kind.UNAUTHORIZED, 401) == (outcome.kind, outcome.status)


def test_403_means_unauthorized(receiver):
    receiver.fail_next(status=403)

    assert Kind.UNAUTHORIZED == classify(post(receiver, records(1)), count=1).kind


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_mean_throttled_for_retry_after_seconds(receiver, status):
    receiver.fail_next(status=status, retry_after=7)

    outcome = classify(post(receiver, records(1)), count=1)

    assert (Kind.THROTTLED, status, 7.0) == (outcome.kind, outcome.status, outcome.retry_after)


@pytest.mark.parametrize("status", [429, 503])
def test_throttled_without_retry_after_leaves_the_wait_to_the_backoff(receiver, status):
    receiver.fail_next(status=status)

    outcome = classify(post(receiver, records(1)), count=1)

    assert (Kind.THROTTLED, None) == (outcome.kind, outcome.retry_after)


def test_retry_after_as_an_http_date_is_counted_from_the_injected_now():
    when = email.utils.formatdate(NOW + 42, usegmt=True)

    outcome = classify(response(503, headers={"Retry-After": when}), count=1, now=lambda: NOW)

    assert (Kind.THROTTLED, 42.0) == (outcome.kind, outcome.retry_after)


def test_500_is_a_server_error_the_sender_may_narrow_down(receiver):
    receiver.crash_batch_if = lambda record: record.get("crash")

    outcome = classify(post(receiver, [{"event_id": "a"}, {"crash": 1}]), count=2)

    assert (Kind.SERVER_ERROR, 500) == (outcome.kind, outcome.status)
    assert 0 == receiver.count()


@pytest.mark.parametrize("status", [502, 504, 408, 409, 418])
def test_other_statuses_keep_the_rows_and_retry(receiver, status):
    receiver.fail_next(status=status)

    outcome = classify(post(receiver, records(1)), count=1)

    assert (Kind.RETRY, status) == (outcome.kind, outcome.status)
    assert 0 == receiver.count()


def test_a_404_from_a_wrong_path_is_retried_not_dropped(receiver):
    outcome = classify(post(receiver, records(1), path="/wrong"), count=1)

    assert (Kind.RETRY, 404) == (outcome.kind, outcome.status)


def test_no_answer_at_all_means_retry_and_says_why():
    try:
        requests.post(DEAD_URL, data=b"{}", timeout=5)
    except requests.ConnectionError as exc:
        error = exc
    else:
        pytest.fail("nothing should listen on the discard port")

    outcome = classify(None, error, count=1)

    assert (Kind.RETRY, None) == (outcome.kind, outcome.status)
    assert "connection refused" == outcome.describe()


def test_https_to_a_plain_http_server_is_a_tls_error(receiver):
    outcome = HttpTransport(f"https://127.0.0.1:{receiver.port}/logs", timeout=5).send(
        b'{"logs":[]}', gzipped=False, count=0
    )

    assert (Kind.RETRY, "TLS error") == (outcome.kind, outcome.describe())


def test_a_connection_dropped_without_an_answer_is_reported_in_a_few_words(receiver):
    """The kernel may report the close as a reset or as an end of stream; either is named."""
    receiver.drop_after_store_next()

    outcome = HttpTransport(f"{receiver.url}/logs", timeout=5).send(
        b'{"logs":[]}', gzipped=False, count=0
    )

    assert outcome.describe() in {"connection reset", "connection closed without an answer"}


def test_an_unresolvable_name_is_named_not_quoted():
    """requests wraps socket.gaierror three levels deep; only the reason is reported."""
    error = requests.ConnectionError(socket.gaierror(socket.EAI_NONAME, "Name not known"))

    assert "name not resolved" == short_reason(error)


def test_a_reset_connection_is_named():
    error = requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))

    assert "connection reset" == short_reason(error)


def test_an_error_detail_is_capped():
    outcome = classify(response(500, b"x" * 10_000), count=1)

    assert "HTTP 500: " + "x" * 500 == outcome.describe()


# parse_retry_after().


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("86400", MAX_RETRY_AFTER),
        ("inf", MAX_RETRY_AFTER),
        ("-inf", 0.0),
        ("nan", None),
        ("soon", None),
        ("Wed, 99 Foo 2015 07:28:00 GMT", None),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
        (email.utils.formatdate(NOW + 10_000, usegmt=True), MAX_RETRY_AFTER),
    ],
)
def test_parse_retry_after(header, expected):
    assert expected == parse_retry_after(header, now=lambda: NOW)


# encode_batch().


def test_encode_batch_joins_the_stored_json_texts_verbatim():
    bodies = ['{"a": 1,   "b":[1, 2]}', '{"message":"café"}']

    assert '{"logs":[{"a": 1,   "b":[1, 2]},{"message":"café"}]}'.encode() == encode_batch(
        bodies, compress=False
    )


def test_encode_batch_of_nothing_is_an_empty_list():
    assert b'{"logs":[]}' == encode_batch([], compress=False)


def test_encode_batch_gzips_the_same_bytes():
    bodies = [json.dumps({"n": i, "message": "x" * 50}) for i in range(200)]

    compressed = encode_batch(bodies, compress=True)

    assert encode_batch(bodies, compress=False) == gzip.decompress(compressed)
    assert len(compressed) < len(gzip.decompress(compressed))


@pytest.mark.parametrize("n", [0, 1, 127, 128, 129, 256, 1000])
def test_encode_batch_gzips_every_record_across_its_chunks(n):
    """Records are compressed in chunks; the stream is one gzip member holding them all."""
    bodies = [json.dumps({"n": i, "message": "é" * (i % 7)}) for i in range(n)]

    decoded = json.loads(gzip.decompress(encode_batch(bodies, compress=True)))

    assert [json.loads(b) for b in bodies] == decoded["logs"]


def test_encode_batch_is_deterministic():
    bodies = ['{"n":1}'] * 10

    assert encode_batch(bodies, compress=True) == encode_batch(bodies, compress=True)


# HttpTransport: the real POST.


def test_send_posts_json_with_the_bearer_key_and_a_user_agent(receiver):
    receiver.require_api_key = "k1"
    transport = HttpTransport(f"{receiver.url}/logs", timeout=5, api_key="k1")

    outcome = transport.send(encode_batch(['{"event_id":"a"}'], compress=False), gzipped=False,
                             count=1)  # fmt: skip

    request = receiver.requests[-1]
    assert (Kind.ACKED, [{"event_id": "a"}]) == (outcome.kind, receiver.records)
    assert "Bearer k1" == request.header("Authorization")
    assert "application/json" == request.header("Content-Type")
    assert request.header("User-Agent").startswith("log-collector-durable/")
    assert None is request.header("Content-Encoding")


def test_the_bearer_key_wins_over_credentials_in_netrc(receiver, tmp_path, monkeypatch):
    """requests replaces an Authorization header with ~/.netrc credentials for the
    host, and a netrc ``default`` entry matches every host: the key must still go."""
    netrc = tmp_path / "netrc"
    netrc.write_text("default login someone password elsewhere\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    receiver.require_api_key = "k1"
    transport = HttpTransport(f"{receiver.url}/logs", timeout=5, api_key="k1")

    outcome = transport.send(b'{"logs":[{"event_id":"a"}]}', gzipped=False, count=1)

    assert "Bearer k1" == receiver.requests[-1].header("Authorization")
    assert (Kind.ACKED, [{"event_id": "a"}]) == (outcome.kind, receiver.records)


def test_without_a_key_netrc_credentials_are_sent(receiver, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password pw\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    transport = HttpTransport(f"{receiver.url}/logs", timeout=5)

    transport.send(b'{"logs":[]}', gzipped=False, count=0)

    assert "Basic c29tZW9uZTpwdw==" == receiver.requests[-1].header("Authorization")


def test_a_proxy_from_the_environment_carries_the_post(receiver, monkeypatch):
    """The receiver stands in for the proxy: it gets the request in absolute form."""
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", receiver.url)
    transport = HttpTransport("http://logs.example.invalid/logs", timeout=5)

    outcome = transport.send(b'{"logs":[{"event_id":"a"}]}', gzipped=False, count=1)

    assert (Kind.ACKED, [{"event_id": "a"}]) == (outcome.kind, receiver.records)
    assert "http://logs.example.invalid/logs" == receiver.requests[-1].path


def test_no_proxy_sends_straight_to_the_server(receiver, monkeypatch):
    for name in ("NO_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", DEAD_URL.removesuffix("/logs"))
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    transport = HttpTransport(f"{receiver.url}/logs", timeout=5)

    outcome = transport.send(b'{"logs":[{"event_id":"a"}]}', gzipped=False, count=1)

    assert (Kind.ACKED, "/logs") == (outcome.kind, receiver.requests[-1].path)


def test_a_ca_bundle_from_the_environment_is_used(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))

    transport = HttpTransport("https://logs.example.invalid/logs", timeout=5)

    assert str(bundle) == transport.environment()["verify"]


def test_send_marks_a_gzipped_body_so_the_server_gunzips_it(receiver):
    transport = HttpTransport(f"{receiver.url}/logs", timeout=5)
    bodies = [json.dumps({"event_id": str(i)}) for i in range(150)]

    outcome = transport.send(encode_batch(bodies, compress=True), gzipped=True, count=150)

    assert (Kind.ACKED, 150) == (outcome.kind, receiver.count())
    assert "gzip" == receiver.requests[-1].header("Content-Encoding")


def test_send_without_a_key_sends_no_authorization(receiver):
    HttpTransport(f"{receiver.url}/logs", timeout=5).send(b'{"logs":[]}', gzipped=False, count=0)

    assert None is receiver.requests[-1].header("Authorization")


def test_send_reuses_one_connection_for_consecutive_batches(receiver):
    transport = HttpTransport(f"{receiver.url}/logs", timeout=5)

    for _ in range(3):
        transport.send(b'{"logs":[]}', gzipped=False, count=0)

    assert 1 == transport._route.pool.num_connections


def test_send_to_a_server_that_is_down_is_a_retry_not_an_exception():
    outcome = HttpTransport(DEAD_URL, timeout=1).send(b'{"logs":[]}', gzipped=False, count=1)

    assert (Kind.RETRY, None) == (outcome.kind, outcome.status)


def test_an_answer_lost_on_the_wire_is_a_retry(receiver):
    receiver.drop_after_store_next()
    transport = HttpTransport(f"{receiver.url}/logs", timeout=5)

    outcome = transport.send(b'{"logs":[{"event_id":"a"}]}', gzipped=False, count=1)

    assert (Kind.RETRY, 1) == (outcome.kind, receiver.count())


def test_a_server_slower_than_the_timeout_is_a_retry(receiver):
    receiver.delay_next(5.0)
    transport = HttpTransport(f"{receiver.url}/logs", timeout=0.2)

    outcome = transport.send(b'{"logs":[]}', gzipped=False, count=0)

    assert (Kind.RETRY, "timed out") == (outcome.kind, outcome.describe())


def test_a_retry_after_date_is_read_against_the_wall_clock():
    """freezegun drives the wall clock the default ``now`` reads."""
    with freeze_time("2026-11-24 12:00:00"):
        assert 90.0 == parse_retry_after("Tue, 24 Nov 2026 12:01:30 GMT")
        assert 0.0 == parse_retry_after("Tue, 24 Nov 2026 11:00:00 GMT")
