"""Helpers shared by the client's tests: what the receiver got, test doubles for the client's
seams, child processes and condition waits.

The scripts next to this file run as real processes (``python tests/helpers/<name>.py``):
``log_child.py`` logs and reports which log calls returned, ``drain.py`` is the "process started
afterwards" that flushes a spool directory, ``full_disk_child.py`` logs under RLIMIT_FSIZE.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parent
PYTHON = sys.executable
# Generous: a deadline for a condition, never a measured duration (the machine is shared).
DEADLINE = 30.0
# Nothing listens on the discard port: a client there keeps every record in its spool.
DEAD_URL = "http://127.0.0.1:9"
CONSOLE_SCRIPT = Path(PYTHON).parent / "log-collector"
# A flush interval long enough that the sender only wakes on flush(), batch_size or close():
# the records logged between two flush() calls then go out as one batch.
NEVER = 3600.0

# A W3C traceparent (https://www.w3.org/TR/trace-context/#traceparent-header) and its trace id.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
# (headers, expected trace id) for every middleware: traceparent first, else x-trace-id.
INCOMING_TRACE_IDS = [
    pytest.param({"traceparent": TRACEPARENT}, TRACE_ID, id="traceparent"),
    pytest.param({"x-trace-id": "order-flow-42"}, "order-flow-42", id="x-trace-id"),
    pytest.param(
        {"traceparent": TRACEPARENT, "x-trace-id": "ignored"}, TRACE_ID, id="traceparent-first"
    ),
]


def delivered(client, receiver) -> list[dict]:
    """Every record the receiver holds once `client` has flushed (the flush must succeed)."""
    assert client.flush(timeout=10)
    return list(receiver.records)


def one_line(text: str) -> str:
    """The one non-blank line of `text` (the CLI's answers and errors are one line)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert 1 == len(lines), text
    return lines[0]


class SleepRecorder:
    """The sender's ``sleep=`` seam: remembers each backoff wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class Collected(logging.Handler):
    """A logging handler that keeps every record it is given, for asserting what was logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def eventually(predicate: Callable[[], bool], timeout: float = DEADLINE) -> bool:
    """Poll `predicate` until it holds or `timeout` passes (for state with no event to wait on,
    such as files on disk)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def script(name: str) -> str:
    return str(HELPERS / name)


class LoggingChild:
    """``log_child.py`` in its own process; stdout (one index per returned log call) is read
    by a thread so the child never blocks on a full pipe."""

    def __init__(self, *args: str, stderr_path: Path) -> None:
        self._stderr = open(stderr_path, "w")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [PYTHON, script("log_child.py"), *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: list[str] = []
        self._first = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            self._first.set()
        self._first.set()

    def wait_first_line(self, timeout: float = DEADLINE) -> bool:
        return self._first.wait(timeout) and bool(self.lines)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.wait()

    def wait(self, timeout: float = DEADLINE) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(timeout)
        self._stderr.close()
        return code

    def returned(self) -> set[int]:
        """Indexes of the log calls that returned (complete lines only: a line cut by the
        kill proves nothing)."""
        return {int(line) for line in self.lines if line.endswith("\n") and line[:-1].isdigit()}


def drain(server_url: str, spool_dir: Path, *extra: str, timeout: float = DEADLINE) -> dict:
    """Run ``drain.py``: a new process with a client on `spool_dir` that only calls flush()."""
    done = subprocess.run(
        [PYTHON, script("drain.py"), server_url, str(spool_dir), "--timeout", str(timeout), *extra],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
    )
    assert done.stdout, f"drain.py printed nothing; stderr: {done.stderr[-2000:]}"
    return json.loads(done.stdout.splitlines()[-1])


def spool_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.spool")) if directory.is_dir() else []


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def crash_spool(spool) -> None:
    """What a kill leaves of a spool, as far as one process can: its connection and
    lock are let go without any of ``close()``'s work. (Abandoning them instead, as a
    forked child does, would keep SQLite here counting the exclusive lock.)"""
    spool.closed = True
    with spool.hold() as conn:
        conn.close()
    os.close(spool.lock_fd)
