"""Group commit: many threads share one write connection without waiting on
SQLite's locks, and every caller still returns only once its row is committed.

Callers queue rows; whoever finds no commit in progress becomes the leader and
writes every queued row in one transaction; the others wait for the commit
that carries their row. The sender takes the connection through ``exclusive``
between commits.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

Pending = tuple[float, str]  # (created_at, body)


class GroupCommit:
    """Turns concurrent ``submit`` calls into few calls of ``write``, one at a time."""

    def __init__(self, write: Callable[[list[Pending]], None]) -> None:
        self._write = write
        self._cv = threading.Condition(threading.Lock())
        self._queue: list[Pending] = []
        self._next_batch = 1
        self._committed = 0
        self._leader = False  # a thread holds the connection: a leader or ``exclusive``
        self._waiting = 0
        self._exclusive_wanted = 0  # threads waiting in exclusive(); they go first

    def submit(self, row: Pending) -> None:
        """Return once a ``write`` that carried ``row`` has returned."""
        cv = self._cv
        with cv:
            self._queue.append(row)
            ticket = self._next_batch
            while self._committed < ticket:
                if self._leader or self._exclusive_wanted:
                    self._waiting += 1
                    cv.wait()
                    self._waiting -= 1
                    continue
                self._leader = True
                try:
                    self._commit_queued()
                finally:
                    self._leader = False
                    if self._waiting:  # notify_all has a cost even with no waiter
                        cv.notify_all()

    def _commit_queued(self) -> None:
        """Write every queued row in one call. Called holding ``_cv`` and the
        connection (``_leader``); ``_cv`` is let go while SQLite works."""
        rows, self._queue = self._queue, []
        batch = self._next_batch
        self._next_batch += 1
        self._cv.release()
        try:
            self._write(rows)
        finally:
            self._cv.acquire()
            self._committed = batch

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the connection, with no group commit or other holder in progress."""
        with self._cv:
            # Wanted first: appenders arriving now queue their rows and wait, so
            # a steady stream of log calls cannot starve the sender's ack (each
            # appender would otherwise take the connection again at once).
            self._exclusive_wanted += 1
            while self._leader:
                self._waiting += 1
                self._cv.wait()
                self._waiting -= 1
            self._exclusive_wanted -= 1
            self._leader = True
        try:
            yield
        finally:
            with self._cv:
                # Rows queued meanwhile are committed before the connection is
                # let go: a thread taking it again at once (the sender reading,
                # acking, reading) can never starve the appenders either.
                try:
                    if self._queue:
                        self._commit_queued()
                finally:
                    self._leader = False
                self._cv.notify_all()
