"""Closing with the server down (log_collector/client.py, _delivery.py): ``close()`` and the
exit hook do not wait for a server whose last delivery attempt failed; the records stay in the
spool, one stderr line says where, and the next process in that directory delivers them."""

import subprocess
import sys
import time

from helpers import DEADLINE

LOG_AND_EXIT = """
import sys
from log_collector import AsyncLogClient
client = AsyncLogClient(sys.argv[1], service="exiting", spool_dir=sys.argv[2])
for i in range(20):
    client.info("logged just before exit", seq=i)
"""

# The exit hook used to wait out close_timeout (5 s) for a server that was down.
GENEROUS_EXIT_BOUND = 3.0


def test_a_process_exits_at_once_with_the_server_down_and_the_next_one_delivers_its_records(
    receiver, tmp_path, make_client
):
    receiver.stop()
    spool_dir = tmp_path / "spool"

    started = time.monotonic()
    exited = subprocess.run(
        [sys.executable, "-c", LOG_AND_EXIT, receiver.url, str(spool_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started

    assert 0 == exited.returncode, exited.stderr
    assert took < GENEROUS_EXIT_BOUND, exited.stderr
    said = [line for line in exited.stderr.splitlines() if "kept in" in line]
    assert [
        f"log-collector: 20 record(s) for {receiver.url} kept in {spool_dir}; "
        f"they are sent by the next start or by: log-collector replay {spool_dir}"
    ] == said

    receiver.start()
    heir = make_client(service="exiting", spool_dir=spool_dir)
    assert heir.flush(timeout=DEADLINE)
    assert list(range(20)) == sorted(r["seq"] for r in receiver.records)


def test_close_without_a_timeout_does_not_wait_out_close_timeout_for_a_server_that_is_down(
    make_client, receiver
):
    client = make_client(close_timeout=60.0)
    receiver.stop()
    for i in range(5):
        client.info("kept", seq=i)
    path = client.spool_path

    started = time.monotonic()
    client.close()
    took = time.monotonic() - started

    assert took < 10.0  # a liveness bound: waiting out close_timeout would take 60 s
    receiver.start()
    heir = make_client()
    assert heir.flush(timeout=DEADLINE)
    heir.close()
    assert list(range(5)) == sorted(r["seq"] for r in receiver.records)
    assert not path.exists()  # emptied by the process that adopted it


def test_close_without_a_timeout_still_delivers_to_a_server_that_answers(make_client, receiver):
    client = make_client(close_timeout=DEADLINE)
    for i in range(5):
        client.info("sent at close", seq=i)

    client.close()

    assert list(range(5)) == sorted(r["seq"] for r in receiver.records)


def test_close_timeout_zero_makes_close_leave_everything_in_the_spool(make_client, receiver):
    client = make_client(close_timeout=0, flush_interval=3600)
    receiver.stop()
    client.info("kept", seq=0)
    path = client.spool_path

    client.close()

    assert path.exists()
