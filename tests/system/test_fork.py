"""Pre-fork servers (gunicorn, uwsgi): a parent creates the client, then forks workers.

Each worker must open a spool file of its own (never the parent's SQLite handle or sender
thread), and every record must arrive, including those of a worker killed with SIGKILL, whose
spool a process started afterwards adopts and drains.

The workers are real os.fork() children of the test process; each one leaves with os._exit so
it never runs pytest's code, and the test waits for them with a deadline.
"""

import json
import os
import random
import signal
import time
import traceback

import pytest
from helpers import DEADLINE, drain, eventually, kill_quietly, spool_files

pytestmark = [
    pytest.mark.usefixtures("no_sender_thread_left"),
    # Python 3.12+ warns about fork() in a process with threads (the receiver's, the parent
    # client's sender): that is exactly the gunicorn situation this file tests.
    pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),
]

WORKERS = 4
RECORDS_PER_WORKER = 500


def fork(work) -> int:
    """Run work() in a forked child that always leaves through os._exit."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 70
        try:
            code = work()
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def wait_all(pids: list[int], timeout: float = DEADLINE) -> dict[int, int]:
    """Exit codes by pid; children still running at the deadline are killed (code -9)."""
    codes: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while len(codes) < len(pids) and time.monotonic() < deadline:
        for pid in pids:
            if pid not in codes:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    for pid in set(pids) - set(codes):
        kill_quietly(pid)
        codes[pid] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return codes


def test_forked_workers_each_write_their_own_spool_and_every_record_arrives(
    make_client, receiver, tmp_path
):
    parent = make_client()
    parent.info("master ready")  # the parent's spool and sender thread exist before the fork
    parent_spool = parent.spool_path

    # Workers stay alive until every one has flushed, as in a real server: a worker that
    # finds a finished worker's (empty, unlocked) spool would adopt it, which is not tested here.
    release_read, release_write = os.pipe()

    def worker(number: int):
        def work() -> int:
            os.close(release_write)
            for i in range(RECORDS_PER_WORKER):
                parent.info("worker record", worker=number, seq=i)
            flushed = parent.flush(timeout=DEADLINE)
            report = {"pid": os.getpid(), "spool": str(parent.spool_path), "flushed": flushed}
            (tmp_path / f"worker-{number}.json").write_text(json.dumps(report))
            os.read(release_read, 1)  # returns at EOF: the parent let go
            return 0 if flushed else 1

        return work

    pids = [fork(worker(number)) for number in range(WORKERS)]
    os.close(release_read)
    try:
        all_reported = eventually(
            lambda: all((tmp_path / f"worker-{n}.json").exists() for n in range(WORKERS))
        )
    finally:
        os.close(release_write)
        codes = wait_all(pids)
    total = WORKERS * RECORDS_PER_WORKER + 1
    # Not parent.flush(): it would adopt the workers' spool files, now orphans (see
    # test_crash.py, test_flush_never_raises_while_the_sender_closes_adopted_spools).
    assert receiver.wait_for(total, timeout=DEADLINE)

    assert all_reported
    assert {pid: 0 for pid in pids} == codes
    reports = [json.loads((tmp_path / f"worker-{n}.json").read_text()) for n in range(WORKERS)]
    assert [True] * WORKERS == [report["flushed"] for report in reports]
    spools = [report["spool"] for report in reports]
    assert WORKERS == len(set(spools))  # one spool file per worker...
    assert str(parent_spool) not in spools  # ...none of them the parent's
    for report in reports:  # ...named after the worker that owns it
        assert os.path.basename(report["spool"]).startswith(f"{report['pid']}-")
    assert parent_spool == parent.spool_path
    arrived = sorted((r["worker"], r["seq"]) for r in receiver.records if "worker" in r)
    expected = [(n, i) for n in range(WORKERS) for i in range(RECORDS_PER_WORKER)]
    assert expected == arrived
    assert ["master ready"] == [r["message"] for r in receiver.records if "worker" not in r]


@pytest.mark.parametrize("seed", [7])
def test_a_worker_killed_mid_logging_has_its_spool_drained_by_a_later_process(
    make_client, receiver, tmp_path, seed
):
    spool_dir = tmp_path / "spool"
    parent = make_client()
    parent.info("master ready")
    assert parent.flush(timeout=DEADLINE)
    receiver.stop()  # the worker's own sender can deliver nothing: the later process must
    read_end, write_end = os.pipe()

    def doomed() -> int:
        os.close(read_end)
        i = 0
        while True:
            parent.info("doomed worker record", seq=i)
            os.write(write_end, b"%d\n" % i)  # this log call returned
            i += 1

    pid = fork(doomed)
    os.close(write_end)
    kill_after = random.Random(seed).randint(50, 1500)
    data = b""
    try:
        while data.count(b"\n") < kill_after:
            chunk = os.read(read_end, 65536)
            assert chunk, "the worker died by itself"
            data += chunk
        os.kill(pid, signal.SIGKILL)
        assert {pid: -signal.SIGKILL} == wait_all([pid])
        while chunk := os.read(read_end, 65536):
            data += chunk
    finally:
        os.close(read_end)
        kill_quietly(pid)
    returned = {int(line) for line in data.split(b"\n")[:-1]}
    worker_spools = [p for p in spool_files(spool_dir) if p.name.startswith(f"{pid}-")]
    assert 1 == len(worker_spools)

    receiver.start()
    after = drain(receiver.url, spool_dir)

    assert True is after["flushed"], after
    arrived = [r["seq"] for r in receiver.records if "seq" in r]
    assert len(arrived) == len(set(arrived))
    assert set() == returned - set(arrived)
    assert set(arrived) - returned <= {max(returned) + 1}
    assert not worker_spools[0].exists()
    assert parent.spool_path.exists()  # the live parent's spool was not taken
