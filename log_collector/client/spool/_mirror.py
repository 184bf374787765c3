"""The mirror: the rows of a small ``records`` table, kept in memory too.

While the table is small, the sender's reads come from here and do not take
the spool's one connection from the appenders (docs/performance.md has the
figures). The spool changes it only while holding that connection.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Sequence

from ._base import Row


class Mirror:
    """Exactly the rows of ``records``, in id order, while ``active``.

    It follows appends and acks of the oldest rows. Past ``max_bytes``, or
    after any other change to the table, it stops (``stop()``) and reads go
    to SQLite until the table is empty again (``restart()``).
    """

    def __init__(self, max_bytes: int, *, active: bool) -> None:
        self.active = active
        self._rows: collections.deque[Row] = collections.deque()
        self._bytes = 0
        self._max_bytes = max_bytes

    def add(self, rows: Sequence[Row], nbytes: int) -> None:
        """Rows just committed to the table, ``nbytes`` of bodies in all."""
        if not self.active:
            return
        if self._bytes + nbytes > self._max_bytes:
            self.stop()  # a backlog: reads go to SQLite until it drains
            return
        self._rows.extend(rows)
        self._bytes += nbytes

    def head(self, limit: int) -> list[Row]:
        """The oldest ``limit`` rows (call only while ``active``)."""
        return list(itertools.islice(self._rows, limit))

    def remove_oldest(self, lo: int, hi: int, count: int, nbytes: int) -> None:
        """The table's rows ``lo``..``hi`` (``count`` of them, ``nbytes``) were
        deleted; anything but the oldest rows stops the mirror."""
        if not self.active:
            return
        rows = self._rows
        if len(rows) >= count and rows[0][0] == lo and rows[count - 1][0] == hi:
            for _ in range(count):
                rows.popleft()
            self._bytes -= nbytes
        else:
            self.stop()

    def stop(self) -> None:
        """The table changed in a way the mirror does not follow."""
        self.active = False
        self._rows.clear()
        self._bytes = 0

    def restart(self) -> None:
        """The table is empty: mirrored again, trivially."""
        self.stop()
        self.active = True
