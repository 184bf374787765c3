"""Processes die; their records do not. Real processes, real SIGKILL, real spool files.

A child logs in a loop and prints the index of each record whose log call returned; the test
kills it at a random (seeded) moment, then starts a new process on the same spool directory
that calls flush(). Every record whose log call returned must reach the server. A record may
arrive twice only as a redelivery of the same event_id (the receiver stores it once), so the
checks compare distinct records, and also check that no record was stored twice under two ids.
"""

import random
import shutil
import threading
import time

import pytest
from helpers import DEADLINE, LoggingChild, drain, eventually, spool_files
from receiver import Receiver

from log_collector.client.spool import inspect

pytestmark = pytest.mark.usefixtures("no_sender_thread_left")


def seqs_of_run(receiver, run: str) -> list[int]:
    return [record["seq"] for record in receiver.records if record.get("run") == run]


def kill_at_a_random_moment(receiver, tmp_path, seed: int, *, server_down: bool) -> None:
    rng = random.Random(seed)
    run = f"seed-{seed}"
    spool_dir = tmp_path / "spool"
    if server_down:
        receiver.stop()

    child = LoggingChild(
        receiver.url, str(spool_dir), "--run", run, stderr_path=tmp_path / "child.err"
    )
    assert child.wait_first_line(), (tmp_path / "child.err").read_text()
    time.sleep(rng.uniform(0.0, 0.5))  # the random moment; the child logs flat out meanwhile
    child.kill()
    returned = child.returned()

    if server_down:
        assert [] == seqs_of_run(receiver, run)  # nothing could have left with the first process
        receiver.start()
    after = drain(receiver.url, spool_dir)

    assert True is after["flushed"], after
    arrived = seqs_of_run(receiver, run)
    assert len(arrived) == len(set(arrived)), "a record was stored twice under two event_ids"
    assert returned, "the child was killed before any log call returned"
    assert set() == returned - set(arrived)  # none lost
    # The call in progress at the kill may have committed without returning; nothing else
    # may appear from nowhere.
    assert set(arrived) - returned <= {max(returned) + 1}
    assert [] == spool_files(spool_dir)  # the adopted spool was drained and removed


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_record_whose_log_call_returned_survives_sigkill(receiver, tmp_path, seed):
    kill_at_a_random_moment(receiver, tmp_path, seed, server_down=False)


def test_records_of_a_process_killed_while_the_server_was_down_all_arrive(receiver, tmp_path):
    kill_at_a_random_moment(receiver, tmp_path, seed=4, server_down=True)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 150))
def test_sigkill_at_random_moments_loses_nothing(receiver, tmp_path, seed):
    kill_at_a_random_moment(receiver, tmp_path, seed, server_down=seed % 5 == 0)


# -- adoption of orphaned spool files ---------------------------------------------


def leave_a_spool(server_url: str, spool_dir, tmp_path, run: str, count: int):
    """A process that logs `count` records and dies without closing its client."""
    child = LoggingChild(
        server_url, str(spool_dir), "--run", run, "--count", str(count), "--then", "os_exit",
        stderr_path=tmp_path / f"{run}.err",
    )  # fmt: skip
    assert 0 == child.wait()
    assert set(range(count)) == child.returned()
    [path] = [p for p in spool_files(spool_dir) if inspect(p).get("rows") == count]
    return path


def test_a_new_client_drains_a_dead_processes_spool_without_logging_anything(
    make_client, receiver, tmp_path
):
    spool_dir = tmp_path / "spool"
    receiver.stop()
    orphan = leave_a_spool(receiver.url, spool_dir, tmp_path, "dead", 20)
    receiver.start()

    client = make_client()  # logs nothing, is never flushed

    assert receiver.wait_for(20, timeout=DEADLINE)
    assert set(range(20)) == set(seqs_of_run(receiver, "dead"))
    client.close()
    assert not orphan.exists()
    assert [] == spool_files(spool_dir)


def test_a_spool_written_for_another_server_is_left_alone(make_client, receiver, tmp_path):
    spool_dir = tmp_path / "spool"
    elsewhere = Receiver()  # never started: its records must wait for it, not go to ours
    theirs = leave_a_spool(elsewhere.url, spool_dir, tmp_path, "theirs", 5)

    client = make_client()
    client.info("ours")

    assert True is client.flush(timeout=DEADLINE)
    assert [] == seqs_of_run(receiver, "theirs")
    client.close()
    info = inspect(theirs)
    assert (5, elsewhere.url) == (info["rows"], info["target_url"])
    assert [theirs] == spool_files(spool_dir)


@pytest.mark.slow  # about 3 s; the race it guards against showed in some runs only
def test_flush_never_raises_while_the_sender_closes_adopted_spools(
    make_client, receiver, tmp_path, capsys
):
    spool_dir = tmp_path / "spool"
    receiver.stop()
    orphan = make_client()
    orphan.info("orphaned")
    path = orphan.spool_path
    orphan.close(timeout=0.01)  # the server is down: the row stays, the file is unlocked
    for i in range(40):
        shutil.copy(path, spool_dir / f"{i}-copy.spool")
    receiver.start()

    client = make_client()
    errors: list[str] = []
    stop = threading.Event()

    def keep_flushing() -> None:
        while not stop.is_set():
            try:
                client.flush(timeout=0.05)
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=keep_flushing) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        drained = eventually(lambda: [client.spool_path] == spool_files(spool_dir))
    finally:
        stop.set()
        for thread in threads:
            thread.join(DEADLINE)

    assert drained
    assert [] == errors
