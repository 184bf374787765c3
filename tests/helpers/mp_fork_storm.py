"""Fork again and again while threads log flat out; each child makes one log call and leaves.

    python tests/helpers/mp_fork_storm.py SERVER_URL SPOOL_DIR MAX_FORKS MAX_SECONDS

A child's log call opens the child's own spool file (new SQLite connections). If, at the
moment of fork(), one of the parent's threads was inside SQLite holding one of its
process-wide mutexes (the allocator's, with SQLite's default memory statistics), that mutex
stays locked forever in the child, whose first SQLite call then never returns. A child that
has not exited within HANG seconds counts as hung: the run stops there, the child is killed
(after its C stack is saved to SPOOL_DIR/../hung-<pid>.txt when gdb is installed), and one
JSON line reports {"forks", "hung", "seconds"}.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from log_collector import AsyncLogClient

HANG = 10.0
THREADS = 3


def wait_child(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return True
        time.sleep(0.002)
    return False


def main() -> int:
    server_url, spool_dir = sys.argv[1], Path(sys.argv[2])
    max_forks, max_seconds = int(sys.argv[3]), float(sys.argv[4])
    client = AsyncLogClient(server_url, service="fork-storm", spool_dir=spool_dir, max_backoff=0.2)
    stop = threading.Event()

    def keep_logging() -> None:
        while not stop.is_set():
            client.info("parent thread record", payload="x" * 200)

    threads = [threading.Thread(target=keep_logging) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    start = time.monotonic()
    forks = hung = 0
    try:
        while forks < max_forks and time.monotonic() - start < max_seconds:
            pid = os.fork()
            if pid == 0:  # the child: one log call, then leave without running atexit
                client.info("child record")
                os._exit(0)
            forks += 1
            if not wait_child(pid, HANG):
                hung += 1
                if shutil.which("gdb"):
                    stack = subprocess.run(
                        ["gdb", "-p", str(pid), "-batch", "-ex", "bt"],
                        capture_output=True,
                        text=True,
                        timeout=60,
                    ).stdout
                    frames = [line for line in stack.splitlines() if line.startswith("#")]
                    (spool_dir.parent / f"hung-{pid}.txt").write_text("\n".join(frames))
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    seconds = time.monotonic() - start
    client.close(timeout=2.0)
    print(json.dumps({"forks": forks, "hung": hung, "seconds": round(seconds, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
