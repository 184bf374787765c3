"""The background sender, end to end: a real AsyncLogClient against the scriptable receiver.

Every test checks what arrived at the server (and what is left in the spool) after an outage,
a fault or a refusal: nothing acknowledged is kept, nothing unacknowledged is dropped, and only
records the server refused for good end up in dead_letters.

Waits: the injected ``sleep=`` seam replaces the backoff's real wait (it records the value and
returns at once), and everything else waits for a condition with a deadline. freezegun does not
fit here: the sender thread waits on threading.Event, whose timeouts use the real monotonic
clock that freezegun does not drive, so the flush-interval tests use a short interval instead.
"""

import time

import pytest
from helpers import DEADLINE, NEVER, SleepRecorder

pytestmark = pytest.mark.usefixtures("no_sender_thread_left")


def seqs(receiver) -> set[int]:
    return {record["seq"] for record in receiver.records if "seq" in record}


def warm_up(client) -> None:
    """Start the sender and let it deliver a first record, so later batches are predictable."""
    client.info("warm-up")
    assert client.flush(timeout=DEADLINE)


def dead_letters(client) -> list[tuple[dict, str]]:
    import json

    # Through the client's own spool: it holds the file in exclusive locking mode.
    rows = client._spool.dead_letter_rows(1_000_000)
    return [(json.loads(body), reason) for _, _, reason, body in rows]


# -- server outages ------------------------------------------------------


def log_through_an_outage(client, receiver, seconds: float) -> int:
    """Stop the server, keep logging for `seconds` (the outage), return how many were logged."""
    receiver.stop()
    count = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        client.info("logged during the outage", seq=count)
        count += 1
        time.sleep(0.01)
    return count


def test_records_logged_while_the_server_is_down_all_arrive_once_it_is_back(make_client, receiver):
    client = make_client()

    count = log_through_an_outage(client, receiver, seconds=2.0)
    down_flush = client.flush(timeout=0.2)
    receiver.start()

    assert False is down_flush
    assert True is client.flush(timeout=DEADLINE)
    assert set(range(count)) == seqs(receiver)
    stats = client.stats()
    assert {} == stats["dropped"]
    assert stats["retries"] > 0
    assert 0 == stats["spool_rows"]


@pytest.mark.slow
def test_a_10_second_outage_loses_nothing(make_client, receiver):
    client = make_client(max_backoff=2.0)

    count = log_through_an_outage(client, receiver, seconds=10.0)
    receiver.start()

    assert True is client.flush(timeout=60.0)
    assert set(range(count)) == seqs(receiver)
    assert {} == client.stats()["dropped"]


# -- answers the sender must classify --------------------------------------


@pytest.mark.parametrize("status", [502, 504])
def test_a_burst_of_gateway_errors_is_retried_until_every_record_arrives(
    make_client, receiver, status
):
    client = make_client(sleep=SleepRecorder())
    receiver.fail_next(5, status)

    for i in range(30):
        client.info("retried", seq=i)

    assert True is client.flush(timeout=DEADLINE)
    assert set(range(30)) == seqs(receiver)
    assert 5 == client.stats()["retries"]
    assert {} == client.stats()["dropped"]


@pytest.mark.parametrize("status", [429, 503])
def test_a_throttling_answer_makes_the_sender_wait_the_retry_after_it_gave(
    make_client, receiver, status
):
    sleeps = SleepRecorder()
    client = make_client(sleep=sleeps)
    receiver.fail_next(2, status, retry_after=7)

    for i in range(10):
        client.info("throttled", seq=i)

    assert True is client.flush(timeout=DEADLINE)
    assert [7.0, 7.0] == sleeps.waits
    assert set(range(10)) == seqs(receiver)


def test_a_batch_answered_413_is_split_until_its_parts_are_accepted(make_client, receiver):
    receiver.max_records_per_request = 7
    client = make_client(flush_interval=NEVER)
    warm_up(client)

    for i in range(50):
        client.info("split", seq=i)

    assert True is client.flush(timeout=DEADLINE)
    assert set(range(50)) == seqs(receiver)
    assert 0 == client.stats()["dead_lettered"]
    assert any(413 == request.status for request in receiver.requests)
    assert all(request.n_records <= 7 for request in receiver.requests if request.status == 200)


def test_a_poisoned_record_is_dead_lettered_with_its_reason_and_the_rest_of_its_batch_arrives(
    make_client, receiver
):
    receiver.reject_batch_if = lambda record: record.get("poison") is True
    client = make_client(flush_interval=NEVER)
    warm_up(client)

    for i in range(20):
        client.info("maybe poisoned", seq=i, poison=(i == 11))

    assert True is client.flush(timeout=DEADLINE)
    assert set(range(20)) - {11} == seqs(receiver)
    assert 1 == client.stats()["dead_lettered"]
    [(body, reason)] = dead_letters(client)
    assert 11 == body["seq"]
    assert "400" in reason
    assert "invalid record" in reason  # the server's own explanation is kept


def test_records_the_server_rejects_one_by_one_are_dead_lettered_and_the_rest_arrive(
    make_client, receiver
):
    receiver.reject_record_if = lambda record: "seq is odd" if record.get("odd") else False
    client = make_client(flush_interval=NEVER)
    warm_up(client)

    for i in range(10):
        client.info("maybe rejected", seq=i, odd=(i in (3, 7)))

    assert True is client.flush(timeout=DEADLINE)
    assert set(range(10)) - {3, 7} == seqs(receiver)
    assert 2 == client.stats()["dead_lettered"]
    letters = dead_letters(client)
    assert [3, 7] == [body["seq"] for body, _ in letters]
    assert all("seq is odd" in reason for _, reason in letters)


def test_a_401_keeps_the_records_warns_once_and_a_client_with_the_key_delivers_them(
    make_client, receiver, tmp_path, caplog
):
    from log_collector.client.spool import inspect

    receiver.require_api_key = "s3cret"
    keyless = make_client()
    for i in range(5):
        keyless.info("needs a key", seq=i)
    path = keyless.spool_path

    # Each flush() cuts the long 401 backoff short and tries again.
    attempts = [keyless.flush(timeout=0.3) for _ in range(3)]
    keyless.close(timeout=0.5)

    assert [False, False, False] == attempts
    assert set() == seqs(receiver)
    assert 5 == inspect(path)["rows"]
    assert sum(1 for r in receiver.requests if r.status == 401) >= 3
    assert 1 == sum("401" in r.getMessage() for r in caplog.records if r.name == "log_collector")

    # Same spool directory: the new client adopts what keyless left, without being asked.
    # (Not flush(): see test_flush_never_raises_while_the_sender_closes_adopted_spools.)
    make_client(api_key="s3cret")
    assert receiver.wait_for(5, timeout=DEADLINE)
    assert set(range(5)) == seqs(receiver)
    accepted = [r for r in receiver.requests if r.status == 200]
    assert {"Bearer s3cret"} == {r.header("Authorization") for r in accepted}


def test_the_original_servers_plain_ack_acknowledges_the_whole_batch(make_client, receiver):
    receiver.legacy_ack = True
    client = make_client()

    for i in range(10):
        client.info("legacy", seq=i)

    assert True is client.flush(timeout=DEADLINE)
    assert set(range(10)) == seqs(receiver)
    assert 0 == client.stats()["spool_rows"]
    assert 0 == client.stats()["dead_lettered"]


def test_an_ack_lost_on_the_wire_resends_the_batch_with_the_same_event_ids(make_client, receiver):
    client = make_client(flush_interval=NEVER, sleep=SleepRecorder())
    warm_up(client)
    receiver.drop_after_store_next(1)

    for i in range(10):
        client.info("ack lost", seq=i)

    assert True is client.flush(timeout=DEADLINE)
    assert set(range(10)) == seqs(receiver)
    [lost] = [request for request in receiver.requests if request.dropped]
    redelivered = {event_id for event_id, n in receiver.event_ids.items() if n > 1}
    assert lost.n_records == len(redelivered)
    assert {2} == {receiver.event_ids[event_id] for event_id in redelivered}
    assert len(redelivered) == receiver.duplicates
    assert len(redelivered) == client.stats()["duplicates"]
    assert 11 == receiver.count()  # stored once each, warm-up included


# -- the backoff schedule --------------------------------------------------


def test_backoff_waits_are_exponential_with_full_jitter_under_the_cap(make_client, receiver):
    sleeps = SleepRecorder()
    client = make_client(max_backoff=5.0, sleep=sleeps)
    receiver.fail_next(6, 502)

    client.info("backed off")

    assert True is client.flush(timeout=DEADLINE)
    assert 1 == receiver.count()
    caps = [min(5.0, 0.5 * 2 ** (n - 1)) for n in range(1, 7)]  # 0.5 1 2 4 5 5
    assert 6 == len(sleeps.waits)
    for wait, cap in zip(sleeps.waits, caps, strict=True):
        assert 0 <= wait <= cap, (wait, cap)


def test_backoff_jitter_spreads_over_the_whole_window(make_client, receiver):
    """Full jitter draws from [0, cap], not [cap/2, cap]: 30 waits at the cap must reach below
    half of it (chance of a false failure: 2**-30)."""
    sleeps = SleepRecorder()
    client = make_client(max_backoff=1.0, sleep=sleeps)
    receiver.fail_next(32, 502)

    client.info("backed off")

    assert True is client.flush(timeout=DEADLINE)
    capped = sleeps.waits[2:]  # from the third attempt on, 0.5 * 2**(n-1) >= 1.0
    assert 30 == len(capped)
    assert all(0 <= wait <= 1.0 for wait in capped)
    assert min(capped) < 0.5


# -- batching and waking ---------------------------------------------------


def test_batches_of_100_small_records_or_more_are_gzipped_and_smaller_ones_are_not(
    make_client, receiver
):
    """Five records are under both thresholds (gzip_min_records, 16 KiB); 150 pass the first."""
    client = make_client(flush_interval=NEVER)

    for i in range(5):
        client.info("small batch", seq=i)
    assert client.flush(timeout=DEADLINE)
    for i in range(5, 155):
        client.info("large batch", seq=i)
    assert client.flush(timeout=DEADLINE)

    assert set(range(155)) == seqs(receiver)
    assert [r.n_records >= 100 for r in receiver.requests] == [r.gzip for r in receiver.requests]
    assert {True, False} == {r.gzip for r in receiver.requests}


def test_the_sender_wakes_every_flush_interval_without_a_flush(make_client, receiver):
    client = make_client(flush_interval=0.1)

    client.info("first")  # starts the sender, which sends what is there at once
    assert receiver.wait_for(1, timeout=DEADLINE)
    client.info("second")  # nothing but the interval can send this one

    assert receiver.wait_for(2, timeout=DEADLINE)


def test_the_sender_wakes_when_batch_size_records_are_pending(make_client, receiver):
    client = make_client(flush_interval=NEVER, batch_size=5)

    client.info("first")
    assert receiver.wait_for(1, timeout=DEADLINE)
    for i in range(5):
        client.info("fills a batch", seq=i)

    assert receiver.wait_for(6, timeout=DEADLINE)
    assert set(range(5)) == seqs(receiver)
