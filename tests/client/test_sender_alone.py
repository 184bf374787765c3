"""The Sender alone (log_collector/client/sender.py, server_errors.py): driven with an
in-memory transport that answers from a script and an in-memory source of rows, so each
rule of docs/architecture.md's answer table is checked without HTTP or SQLite."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from log_collector.client.sender import Sender, within_post_bytes
from log_collector.client.server_errors import SPLIT_AFTER_500
from log_collector.client.transport import Kind, Outcome

Row = tuple[int, str]
ACK = Outcome(Kind.ACKED, 200)


class ScriptedTransport:
    """A Transport whose answer to each POST is ``answer(records in the batch)``."""

    url = "memory://logs"

    def __init__(self, answer: Callable[[list[dict]], Outcome]) -> None:
        self._answer = answer
        self.batches: list[list[int]] = []

    def send(self, body: bytes, *, gzipped: bool, count: int) -> Outcome:
        records = json.loads(body)["logs"]
        self.batches.append([record["n"] for record in records])
        return self._answer(records)

    def reset(self) -> None:
        pass


class ListSource:
    """A Source over a list of rows: what the spool offers the sender, in memory."""

    path = None

    def __init__(self, count: int) -> None:
        self.rows: list[Row] = [(i, json.dumps({"n": i})) for i in range(1, count + 1)]
        self.acked: list[int] = []
        self.dead: list[tuple[int, str]] = []

    def read_batch(self, limit: int) -> list[Row]:
        return self.rows[:limit]

    def ack(self, rows: list[Row]) -> None:
        done = {row_id for row_id, _ in rows}
        self.acked += sorted(done)
        self.rows = [row for row in self.rows if row[0] not in done]

    def dead_letter(self, rows: list[tuple[Row, str]]) -> None:
        self.dead += [(row[0], reason) for row, reason in rows]
        gone = {row[0] for row, _ in rows}
        self.rows = [row for row in self.rows if row[0] not in gone]

    def pending(self) -> int:
        return len(self.rows)

    def checkpoint(self, *, when_due: bool = False) -> None:
        pass


def run(
    source: ListSource,
    answer: Callable[[list[dict]], Outcome],
    *,
    batch_size: int = 100,
    seconds: float = 5.0,
) -> tuple[Sender, ScriptedTransport, list[float]]:
    """Start a sender on ``source``, let it send everything there is, then stop it
    (at the latest after ``seconds``). Waits are recorded, not slept."""
    transport = ScriptedTransport(answer)
    waits: list[float] = []

    def sleep(seconds_: float) -> None:
        waits.append(seconds_)
        time.sleep(0.001)  # yields to stop(); a scripted outage would otherwise spin

    sender = Sender(
        sources=lambda: [source],
        transport=transport,
        batch_size=batch_size,
        flush_interval=0.05,
        compress=False,
        gzip_min_records=1000,
        max_backoff=1.0,
        sleep=sleep,
    )
    sender.start()
    assert sender.stop(time.monotonic() + seconds)
    return sender, transport, waits


def test_an_acknowledged_batch_leaves_the_source_in_one_request():
    source = ListSource(3)

    sender, transport, waits = run(source, lambda records: ACK)

    assert ([], [1, 2, 3], [[1, 2, 3]], []) == (source.rows, source.acked, transport.batches, waits)
    assert (3, 1) == (sender.stats.acknowledged, sender.stats.requests)


def test_rejected_indexes_of_an_ack_are_dead_lettered_and_the_rest_acknowledged():
    source = ListSource(3)
    answer = Outcome(Kind.ACKED, 200, rejected=((1, "level 'LOUD' is not a level"),))

    sender, _, _ = run(source, lambda records: answer)

    assert [(2, "rejected by the server: level 'LOUD' is not a level")] == source.dead
    assert ([], 2, 1) == (source.rows, sender.stats.acknowledged, sender.stats.dead_lettered)


def test_a_400_batch_is_bisected_until_the_poisoned_record_stands_alone():
    source = ListSource(8)

    def answer(records: list[dict]) -> Outcome:
        if any(record["n"] == 6 for record in records):
            return Outcome(Kind.REJECTED, 400, detail="bad record")
        return ACK

    sender, transport, waits = run(source, answer)

    assert [(6, "HTTP 400: bad record")] == source.dead
    assert ([1, 2, 3, 4, 5, 7, 8], []) == (sorted(source.acked), source.rows)
    assert [[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4], [5, 6, 7, 8], [5, 6], [5], [6], [7, 8]] == (
        transport.batches
    )
    assert [] == waits


def test_a_413_batch_is_split_until_its_parts_fit():
    source = ListSource(4)

    def answer(records: list[dict]) -> Outcome:
        return Outcome(Kind.TOO_LARGE, 413) if len(records) > 2 else ACK

    sender, transport, _ = run(source, answer)

    assert [[1, 2, 3, 4], [1, 2], [3, 4]] == transport.batches
    assert ([], [], 4) == (source.rows, source.dead, sender.stats.acknowledged)


def test_a_record_answered_500_alone_while_others_are_stored_is_dead_lettered():
    source = ListSource(4)

    def answer(records: list[dict]) -> Outcome:
        if any(record["n"] == 3 for record in records):
            return Outcome(Kind.SERVER_ERROR, 500, detail="boom")
        return ACK

    sender, transport, _ = run(source, answer)

    assert [3] == [row_id for row_id, _ in source.dead]
    assert f"answered 500 {SPLIT_AFTER_500} times in a row" in source.dead[0][1]
    assert ([], 3) == (source.rows, sender.stats.acknowledged)
    assert SPLIT_AFTER_500 == transport.batches.count([3])


def test_while_the_server_answers_everything_500_nothing_is_dead_lettered():
    source = ListSource(4)

    sender, transport, waits = run(
        source, lambda records: Outcome(Kind.SERVER_ERROR, 500), seconds=0.5
    )

    assert ([], 4, 0) == (source.dead, source.pending(), sender.stats.dead_lettered)
    assert [1, 2, 3, 4] == transport.batches[0] and len(transport.batches) > SPLIT_AFTER_500
    assert waits and sender.failing


def test_a_retryable_answer_is_retried_after_the_injected_wait_until_acknowledged():
    source = ListSource(2)
    answers = [Outcome(Kind.RETRY, 502), Outcome(Kind.RETRY, detail="connection refused"), ACK]

    sender, transport, waits = run(source, lambda records: answers.pop(0))

    assert ([], [1, 2], 3) == (source.rows, source.acked, len(transport.batches))
    assert (2, 2, False) == (len(waits), sender.stats.retries, sender.failing)


def test_a_batch_past_max_post_bytes_goes_in_several_posts_and_none_is_lost(monkeypatch):
    """batch_size allows 10 rows; 2 rows of 38 characters fit under the cap of 100."""
    monkeypatch.setattr("log_collector.client.sender.MAX_POST_BYTES", 100)
    source = ListSource(10)
    source.rows = [(i, json.dumps({"n": i, "pad": "x" * 20})) for i in range(1, 11)]

    sender, transport, _ = run(source, lambda records: ACK, batch_size=10)

    assert ([], list(range(1, 11))) == (source.rows, source.acked)
    assert [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]] == transport.batches


def test_a_record_larger_than_max_post_bytes_is_sent_alone(monkeypatch):
    monkeypatch.setattr("log_collector.client.sender.MAX_POST_BYTES", 100)
    source = ListSource(3)
    source.rows[1] = (2, json.dumps({"n": 2, "pad": "x" * 500}))

    _, transport, _ = run(source, lambda records: ACK, batch_size=10)

    assert ([], [[1], [2], [3]]) == (source.rows, transport.batches)


def test_within_post_bytes_keeps_the_rows_that_fit_in_order():
    rows = [(1, "a" * 40), (2, "b" * 40), (3, "c" * 40)]

    assert rows == within_post_bytes(rows, 120)
    assert rows[:2] == within_post_bytes(rows, 119)
    assert rows[:1] == within_post_bytes(rows, 10)  # the first row goes, whatever its size
