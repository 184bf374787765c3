"""Keeping the library's threads out of SQLite at the moment of fork().

SQLite built with memory statistics (Debian's libsqlite3 is) takes one
process-wide mutex on every allocation. If fork() happens while another
thread is inside SQLite, the child inherits that mutex locked and hangs on
its first SQLite call, forever. Every SQLite call this library makes runs
inside the gate (shared: any number at once); a ``before`` fork hook closes
the gate and waits until no library thread is inside, and the hooks after
fork open it again (parent) or start afresh (child). SQLite used elsewhere
in the application is not covered: that is the application's own fork hazard.
https://www.sqlite.org/threadsafe.html, https://www.sqlite.org/howtocorrupt.html#fork
"""

from __future__ import annotations

import threading
import time
from typing import Any

# How long a fork waits for library threads to leave SQLite. Calls are short
# (busy_timeout bounds a lock wait at 5 s); past this the fork goes ahead.
FORK_WAIT = 5.0


class ForkGate:
    def __init__(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self._inside = 0
        self._closed = False
        self._depth = threading.local()

    def __enter__(self) -> None:
        depth = getattr(self._depth, "n", 0)
        if depth == 0:  # re-entry by a thread already inside never waits
            with self._cv:
                while self._closed:
                    self._cv.wait()
                self._inside += 1
        self._depth.n = depth + 1

    def __exit__(self, *exc: Any) -> None:
        self._depth.n -= 1
        if self._depth.n == 0:
            with self._cv:
                self._inside -= 1
                if self._closed and self._inside == 0:
                    self._cv.notify_all()

    def close(self) -> None:
        """``before`` fork: no new entries; wait for the threads inside to leave."""
        self._cv.acquire()
        self._closed = True
        deadline = time.monotonic() + FORK_WAIT
        # The forking thread itself may be inside (a fork from a log handler):
        # it cannot leave while it waits here.
        own = getattr(self._depth, "n", 0)
        while self._inside > own and time.monotonic() < deadline:
            self._cv.wait(deadline - time.monotonic())
        self._cv.release()

    def open(self) -> None:
        """``after_in_parent``."""
        with self._cv:
            self._closed = False
            self._cv.notify_all()

    def reset(self) -> None:
        """``after_in_child``: only the forking thread exists; its depth carries over."""
        own = getattr(self._depth, "n", 0)
        self._cv = threading.Condition(threading.Lock())
        self._closed = False
        self._inside = 1 if own else 0


GATE = ForkGate()
