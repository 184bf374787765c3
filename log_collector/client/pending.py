"""``client.queue``: a read-only view of the records not yet acknowledged.

It reads the client's own sources in the order the sender drains them (the spool,
then the in-memory fallback), so ``queue[0]`` is the next record to be sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from .sender import Source
from .spool import Spool


class PendingRecords(Sequence[dict[str, Any]]):
    """Read-only view of the records not yet acknowledged (``client.queue``)."""

    def __init__(self, sources: Callable[[], list[Source]]) -> None:
        self._sources = sources

    def __len__(self) -> int:
        return sum(source.pending() for source in self._sources())

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += len(self)
        if index < 0:
            raise IndexError("queue index out of range")
        for source in self._sources():
            if isinstance(source, Spool):
                body = source.body_at(index)
                if body is not None:
                    return json.loads(body)
                index -= source.pending()
            else:
                rows = source.read_batch(index + 1)
                if index < len(rows):
                    return json.loads(rows[index][1])
        raise IndexError("queue index out of range")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for source in self._sources():
            if isinstance(source, Spool):
                for body in source.iter_bodies():
                    yield json.loads(body)
            else:
                for _, body in source.read_batch(source.pending()):
                    yield json.loads(body)
