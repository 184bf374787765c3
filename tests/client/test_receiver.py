"""The stand-in ingest server (tests/receiver.py) does what client tests rely on."""

# The tests write `assert expected == actual`, which ruff's SIM300 calls a Yoda condition.

import gzip
import http.client
import json
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from receiver import Receiver

TIMEOUT = 5.0


def post(receiver: Receiver, logs: list, **kwargs) -> requests.Response:
    return requests.post(f"{receiver.url}/logs", json={"logs": logs}, timeout=TIMEOUT, **kwargs)


def test_root_names_the_service(receiver):
    response = requests.get(receiver.url, timeout=TIMEOUT)

    assert 200 == response.status_code
    assert {"status": "ok", "service": "log-server"} == response.json()


def test_a_batch_is_stored_in_order_and_answered_with_counts(receiver):
    logs = [{"event_id": "a", "message": "one"}, {"event_id": "b", "message": "two"}]

    response = post(receiver, logs)

    assert 200 == response.status_code
    expected = {"status": "ok", "count": 2, "accepted": 2, "duplicates": 0, "rejected": []}
    assert expected == response.json()
    assert logs == receiver.records
    assert 2 == receiver.count()


def test_a_repeated_event_id_is_counted_but_not_stored_again(receiver):
    logs = [{"event_id": "a"}, {"message": "no id"}]

    post(receiver, logs)
    response = post(receiver, logs)

    assert {"accepted": 1, "duplicates": 1} == {
        k: response.json()[k] for k in ("accepted", "duplicates")
    }
    assert [{"event_id": "a"}, {"message": "no id"}, {"message": "no id"}] == receiver.records
    assert 2 == receiver.event_ids["a"]
    assert 1 == receiver.duplicates


def test_gzip_bodies_are_gunzipped(receiver):
    body = gzip.compress(json.dumps({"logs": [{"event_id": "z"}]}).encode())
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}

    response = requests.post(f"{receiver.url}/logs", data=body, headers=headers, timeout=TIMEOUT)

    assert 200 == response.status_code
    assert [{"event_id": "z"}] == receiver.records
    assert receiver.requests[-1].gzip


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (b"\x1f\x8bnot really gzip", "gzip"),
        (b"{not json", None),
        (b'{"records": []}', None),
        (b'{"logs": [1, 2]}', None),
    ],
    ids=["bad-gzip", "bad-json", "no-logs-key", "non-object-record"],
)
def test_a_malformed_body_is_answered_400_and_nothing_is_stored(receiver, body, encoding):
    headers = {"Content-Encoding": encoding} if encoding else {}

    response = requests.post(f"{receiver.url}/logs", data=body, headers=headers, timeout=TIMEOUT)

    assert 400 == response.status_code
    assert response.json()["detail"]
    assert [] == receiver.records


def test_an_unknown_content_encoding_is_answered_415(receiver):
    headers = {"Content-Encoding": "br"}

    response = requests.post(f"{receiver.url}/logs", data=b"{}", headers=headers, timeout=TIMEOUT)

    assert 415 == response.status_code


def test_every_request_is_recorded_with_its_headers_and_answer(receiver):
    post(receiver, [{"n": 1}, {"n": 2}], headers={"X-Test": "yes"})

    [info] = receiver.requests
    assert ("POST", "/logs", 2, False, 200, False) == (
        info.method,
        info.path,
        info.n_records,
        info.gzip,
        info.status,
        info.dropped,
    )
    assert "yes" == info.header("x-test")


def test_fail_next_answers_the_status_with_retry_after_then_serves_normally(receiver):
    receiver.fail_next(2, status=429, retry_after=3)

    first, second, third = (post(receiver, [{"event_id": str(i)}]) for i in range(3))

    assert [429, 429, 200] == [r.status_code for r in (first, second, third)]
    assert ["3", "3"] == [first.headers["Retry-After"], second.headers["Retry-After"]]
    assert [{"event_id": "2"}] == receiver.records
    assert 0 == receiver.faults_pending


def test_fail_next_without_retry_after_sends_no_such_header(receiver):
    receiver.fail_next(status=503)

    response = post(receiver, [{}])

    assert 503 == response.status_code
    assert "Retry-After" not in response.headers


def test_drop_after_store_stores_the_batch_but_never_answers(receiver):
    receiver.drop_after_store_next()

    with pytest.raises(requests.ConnectionError):
        post(receiver, [{"event_id": "a"}])

    assert [{"event_id": "a"}] == receiver.records
    assert (None, True) == (receiver.requests[-1].status, receiver.requests[-1].dropped)
    assert 200 == post(receiver, [{"event_id": "a"}]).status_code
    assert 1 == receiver.duplicates


def test_delay_next_outlasts_the_client_timeout_and_still_stores(receiver):
    receiver.delay_next(1.0)

    with pytest.raises(requests.Timeout):
        requests.post(f"{receiver.url}/logs", json={"logs": [{"event_id": "slow"}]}, timeout=0.1)

    assert receiver.wait_for(1)
    assert [{"event_id": "slow"}] == receiver.records


def test_scripted_faults_are_consumed_in_order(receiver):
    receiver.fail_next(status=503)
    receiver.drop_after_store_next()

    assert 503 == post(receiver, [{"n": 1}]).status_code
    with pytest.raises(requests.ConnectionError):
        post(receiver, [{"n": 2}])
    assert 200 == post(receiver, [{"n": 3}]).status_code
    assert [{"n": 2}, {"n": 3}] == receiver.records


def test_a_batch_over_max_records_per_request_is_answered_413(receiver):
    receiver.max_records_per_request = 2

    response = post(receiver, [{}, {}, {}])

    assert 413 == response.status_code
    assert "too many records" in response.json()["detail"]
    assert [] == receiver.records


def test_reject_batch_if_refuses_the_whole_batch_with_400(receiver):
    receiver.reject_batch_if = lambda record: record.get("poison") is True

    refused = post(receiver, [{"n": 1}, {"n": 2, "poison": True}])
    accepted = post(receiver, [{"n": 1}])

    assert (400, 200) == (refused.status_code, accepted.status_code)
    assert "index 1" in refused.json()["detail"]
    assert [{"n": 1}] == receiver.records


def test_reject_record_if_reports_the_indexes_and_stores_the_rest(receiver):
    receiver.reject_record_if = lambda record: record.get("level") == "BOGUS"

    response = post(receiver, [{"level": "INFO"}, {"level": "BOGUS"}, {"level": "WARN"}])

    assert 200 == response.status_code
    assert [{"index": 1, "reason": "rejected by reject_record_if"}] == response.json()["rejected"]
    assert 2 == response.json()["accepted"]
    assert [{"level": "INFO"}, {"level": "WARN"}] == receiver.records
    assert [{"level": "BOGUS"}] == receiver.rejected_records


def test_reject_record_if_may_return_the_reason(receiver):
    receiver.reject_record_if = lambda record: "bad level" if "level" in record else False

    response = post(receiver, [{"level": "X"}])

    assert [{"index": 0, "reason": "bad level"}] == response.json()["rejected"]


def test_require_api_key_answers_401_unless_the_bearer_key_matches(receiver):
    receiver.require_api_key = "s3cret"

    missing = post(receiver, [{"n": 1}])
    wrong = post(receiver, [{"n": 2}], headers={"Authorization": "Bearer nope"})
    right = post(receiver, [{"n": 3}], headers={"Authorization": "Bearer s3cret"})

    assert [401, 401, 200] == [r.status_code for r in (missing, wrong, right)]
    assert [{"n": 3}] == receiver.records


def test_legacy_ack_answers_like_the_original_server(receiver):
    receiver.legacy_ack = True

    response = post(receiver, [{"n": 1}, {"n": 2}])

    assert {"status": "ok", "count": 2} == response.json()


def test_stop_refuses_connections_and_start_serves_again_on_the_same_port(receiver):
    url = receiver.url

    receiver.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=TIMEOUT)
    receiver.start()

    assert url == receiver.url
    assert 200 == requests.get(url, timeout=TIMEOUT).status_code


def test_stop_cuts_kept_alive_connections(receiver):
    with socket.create_connection((receiver.host, receiver.port), timeout=TIMEOUT) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = http.client.HTTPResponse(conn)
        response.begin()
        response.read()
        assert (200, False) == (response.status, response.will_close)

        receiver.stop()

        assert b"" == conn.recv(1)


def test_a_delayed_request_cut_by_stop_is_dropped_and_stores_nothing(receiver):
    receiver.delay_next(60)
    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(post, receiver, [{"n": 1}])
        assert receiver.wait_until(lambda r: r.faults_pending == 0)

        receiver.stop()

        with pytest.raises(requests.ConnectionError):
            sent.result(TIMEOUT)
    assert [] == receiver.records
    assert receiver.requests[-1].dropped


def test_wait_until_waits_for_any_condition_on_the_receiver(receiver):
    post(receiver, [{"n": 1}])

    assert receiver.wait_until(lambda r: r.count() == 1 and len(r.requests) == 1)


def test_wait_for_returns_false_when_too_few_records_arrive(receiver):
    post(receiver, [{"n": 1}])

    assert receiver.wait_for(1, timeout=0.01)
    assert not receiver.wait_for(2, timeout=0.01)


def test_standalone_process_prints_its_url_serves_and_exits_on_sigterm():
    script = Path(__file__).resolve().parents[1] / "receiver.py"
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        url = process.stdout.readline().strip()
        response = requests.post(f"{url}/logs", json={"logs": [{"n": 1}]}, timeout=TIMEOUT)
        stats = requests.get(f"{url}/stats", timeout=TIMEOUT).json()
        process.send_signal(signal.SIGTERM)
        summary, _ = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()

    assert 200 == response.status_code
    assert 1 == stats["total_logs"]
    assert 0 == process.returncode
    assert 1 == json.loads(summary)["total_logs"]
