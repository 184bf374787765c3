"""The bounded in-memory fallback, for when the spool itself cannot be written.

A full disk, a read-only or vanished spool directory, or a corrupt file must
not make a log call raise or block. Records go here instead; the sender ships
them like spool rows. They do not survive the process (that is the price of a
broken disk), and overflow is counted as ``fallback_full``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

Row = tuple[int, str]


class MemoryQueue:
    """A spool-shaped FIFO in memory: read_batch / ack / dead_letter by sequence number."""

    path = None

    def __init__(self, capacity: int, on_drop: Callable[[str, int], None]) -> None:
        self._capacity = capacity
        self._on_drop = on_drop
        self._rows: deque[Row] = deque()
        self._seq = 0
        self._lock = threading.Lock()
        self.appended = 0

    def put(self, bodies: list[str]) -> None:
        overflow = 0
        with self._lock:
            for body in bodies:
                if len(self._rows) >= self._capacity:
                    self._rows.popleft()
                    overflow += 1
                self._seq += 1
                self._rows.append((self._seq, body))
            self.appended += len(bodies)
        if overflow:
            self._on_drop("fallback_full", overflow)

    def read_batch(self, limit: int) -> list[Row]:
        with self._lock:
            return [self._rows[i] for i in range(min(limit, len(self._rows)))]

    def ack(self, rows: list[Row]) -> None:
        done = {seq for seq, _ in rows}
        with self._lock:
            self._rows = deque(row for row in self._rows if row[0] not in done)

    def dead_letter(self, rows: list[tuple[Row, str]]) -> None:
        # Nothing durable to move them to: the sender counts them and says so once.
        self.ack([row for row, _ in rows])

    def pending(self) -> int:
        return len(self._rows)

    def high_water(self) -> int:
        return self._seq

    def oldest_id(self) -> int | None:
        with self._lock:
            return self._rows[0][0] if self._rows else None

    def checkpoint(self, *, when_due: bool = False) -> None:
        pass
