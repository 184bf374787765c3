"""A parent that keeps logging from a thread while multiprocessing forks children that log
with the inherited client. Run it under ``python -X dev`` so ResourceWarnings show on stderr.

    python -X dev tests/helpers/mp_fork_app.py SERVER_URL SPOOL_DIR OUT_DIR CHILDREN RECORDS

Before forking, a trace callback is set on the parent's SQLite connection (the spool's
only one): it fires in whatever process runs a statement on it, and it writes
OUT_DIR/touched-<pid>.txt when that process is not the parent. A child that used an inherited
connection would leave such a file. Each child logs RECORDS records, flushes, closes its
client, and writes OUT_DIR/child-<n>.json. The parent's thread logs ``parent thread`` records
all along (before, between and after the forks, and while the children run); at the end the
parent flushes and prints one JSON line.

KNOWN BUG (test_multiprocess.py::test_forking_while_threads_log_never_hangs_the_child): a fork
while another thread of the parent is inside SQLite can leave SQLite's allocator mutex locked
in the child, whose first log call then hangs. Until the library guards its own threads around
fork(), this script keeps every library thread out of SQLite at the forks: the logging thread
pauses (fork_guard) and the parent's sender is parked (it sends on flush() only).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

from log_collector import AsyncLogClient

PARENT = os.getpid()


def wait_parked(client: AsyncLogClient, timeout: float) -> bool:
    """Wait until the client's sender thread blocks in its idle wait (``_wake.wait`` in
    ``Sender._run``) with no wake-up pending: from then on it runs no SQL until woken."""
    sender = client._delivery.sender
    deadline = time.monotonic() + timeout
    while sender is not None and time.monotonic() < deadline:
        thread = sender._thread
        frame = sys._current_frames().get(thread.ident) if thread is not None else None
        names = []
        while frame is not None and len(names) < 3:
            names.append(frame.f_code.co_name)
            frame = frame.f_back
        if names == ["wait", "wait", "_run"] and not sender._wake.is_set():
            return True
        time.sleep(0.01)
    return False


def main() -> int:
    server_url, spool_dir, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    children, records = int(sys.argv[4]), int(sys.argv[5])
    # The sender sends when flush() asks (or 10,000 rows wait), so that it is parked, not
    # inside SQLite, when the forks happen (see KNOWN BUG in the module docstring).
    client = AsyncLogClient(
        server_url,
        service="mp-fork-app",
        spool_dir=spool_dir,
        max_backoff=0.2,
        batch_size=10_000,
        flush_interval=3600.0,
    )
    client.info("parent ready", pid=PARENT)
    if not (client.flush(timeout=30.0) and wait_parked(client, 30.0)):
        print("the parent's sender did not settle", file=sys.stderr)
        return 3
    parent_spool = client._spool  # internal: the object whose connections a child must not use
    assert parent_spool is not None

    def touched(sql: str) -> None:
        if os.getpid() != PARENT:
            with open(out / f"touched-{os.getpid()}.txt", "a") as f:
                f.write(sql + "\n")

    with parent_spool.hold() as conn:
        conn.set_trace_callback(touched)

    stop = threading.Event()
    logged = 0
    # Held by the thread around each log call and by the main thread around each fork, so
    # that the thread is never inside SQLite at a fork (KNOWN BUG below).
    fork_guard = threading.Lock()

    def keep_logging() -> None:
        nonlocal logged
        while not stop.is_set():
            with fork_guard:
                client.info("parent thread", seq=logged, pid=PARENT)
            logged += 1
            stop.wait(0.001)  # a busy app, not a flood that starves the children's senders

    def child(number: int) -> None:
        for seq in range(records):
            client.info("forked child record", child=number, seq=seq, pid=os.getpid())
        report = {
            "pid": os.getpid(),
            "spool": str(client.spool_path),
            "parent_spool_closed_here": parent_spool.closed,
            "flushed": client.flush(timeout=30.0),
            "fallback": client.stats()["fallback"],
        }
        client.close()
        (out / f"child-{number}.json").write_text(json.dumps(report))

    thread = threading.Thread(target=keep_logging)
    thread.start()
    try:
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=child, args=(n,)) for n in range(children)]
        for proc in procs:
            with fork_guard:
                proc.start()
        for proc in procs:
            proc.join(30)
            if proc.is_alive():  # hung: reported through its exit code (-9)
                proc.kill()
                proc.join()
        after_join = logged
        while logged < after_join + 200:  # the parent's thread goes on logging after the forks
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join()
    client.info("parent done", pid=PARENT)
    flushed = client.flush(timeout=30.0)
    stats = client.stats()
    report = {
        "pid": PARENT,
        "spool": str(parent_spool.path),
        "logged": logged,
        "flushed": flushed,
        "exitcodes": [proc.exitcode for proc in procs],
        "fallback": stats["fallback"],
        "dropped": stats["dropped"],
    }
    client.close()
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
