"""`make demo`: the whole promise in one run, on the embedded SQLite store.

1. starts the ingest server (`python -m log_collector.server`) on a fresh SQLite file;
2. runs an app that logs 20,000 records from 4 threads (each an order's request, with
   method, path and duration_ms), and SIGKILLs it part-way;
3. starts the app again on the same spool directory: it adopts the killed
   process's spool, logs the rest, and flushes;
4. reads the store and prints what arrived: logged, stored, lost, duplicated.

Exits 0 only when nothing was lost or duplicated, and leaves nothing running.
The store stays in .demo/logs.db for you to query, and `make ui` serves it with the
dashboard at http://127.0.0.1:8000/ui/.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".demo"
THREADS, PER_THREAD = 4, 5_000
KILL_AFTER = 8_000  # records returned before the SIGKILL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"demo: the server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("demo: the server did not become ready")


def run_app(
    url: str, spool: Path, starts: list[int], kill_after: int | None
) -> set[tuple[int, int]]:
    """Run the app; return the (thread, seq) of every record whose log call returned."""
    app = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "demo_app.py"), url, str(spool),
         ",".join(map(str, starts)), str(PER_THREAD)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert app.stdout is not None
    returned: set[tuple[int, int]] = set()
    killed = False
    # Read to the end even after the SIGKILL: the lines the app wrote before it
    # died are still in the pipe, and each one is a promise the store must keep.
    for line in app.stdout:
        if line.startswith(b"flushed"):
            print(f"  app: {line.decode().strip()}")
            continue
        thread, seq = map(int, line.split())
        returned.add((thread, seq))
        if not killed and kill_after is not None and len(returned) >= kill_after:
            app.send_signal(signal.SIGKILL)
            killed = True
    app.stdout.close()
    app.wait()
    if killed:
        print(f"  SIGKILL after {len(returned)} log calls had returned")
    return returned


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    db, spool = WORK / "logs.db", WORK / "spool"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "log_collector.server", "--db", f"sqlite:///{db}",
         "--port", str(port), "--no-access-log", "--log-level", "warning"],
        cwd=ROOT,
    )  # fmt: skip
    try:
        wait_healthy(url, server)
        print(f"server on {url}, store {db}")
        print(f"run 1: {THREADS} threads x {PER_THREAD} records")
        first = run_app(url, spool, [0] * THREADS, KILL_AFTER)
        # Each thread logs in order, so what it had not returned starts after its last returned seq.
        starts = [
            max((s for t, s in first if t == thread), default=-1) + 1 for thread in range(THREADS)
        ]
        print(f"run 2: the same spool directory, logging from seq {starts}")
        second = run_app(url, spool, starts, None)
        with urllib.request.urlopen(url + "/stats", timeout=5) as response:
            server_stats = json.load(response)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    returned = first | second
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT json_extract(metadata, '$.thread'), json_extract(metadata, '$.seq'), event_id "
        "FROM logs WHERE service = 'demo-app'"
    ).fetchall()
    levels = conn.execute(
        "SELECT level, count(*) FROM logs WHERE service = 'demo-app' GROUP BY level ORDER BY 2 DESC"
    ).fetchall()
    conn.close()
    stored_keys = [(t, s) for t, s, _ in rows]
    lost = returned - set(stored_keys)
    duplicated = len(rows) - len({e for _, _, e in rows})
    # A call cut off by the SIGKILL never returned, so run 2 logged that record
    # again; if the first copy had reached the disk, both arrive (two events).
    relogged = len(stored_keys) - len(set(stored_keys)) - duplicated

    print()
    print(f"records logged (log call returned): {len(returned):>6}")
    print(f"records stored:                     {len(rows):>6}")
    print(f"lost:                               {len(lost):>6}")
    print(f"duplicated (same event twice):      {duplicated:>6}")
    if relogged:
        print(
            f"re-logged by run 2 after the kill:  {relogged:>6}  (calls in flight at the SIGKILL)"
        )
    print("by level:  " + ", ".join(f"{level} {n}" for level, n in levels))
    print(f"server /stats total_logs:           {server_stats['total_logs']:>6}")
    print(f'query it:  sqlite3 {db} "SELECT level, count(*) FROM logs GROUP BY level"')
    ok = not lost and duplicated == 0 and len(returned) == THREADS * PER_THREAD
    print("OK: nothing lost, nothing duplicated" if ok else "FAILED")
    print()
    print("see it in the dashboard:  make ui   (then open http://127.0.0.1:8000/ui/)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
