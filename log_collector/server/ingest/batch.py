"""From a batch of decoded records to stored rows, one record never failing
its batch.

``normalise_all`` turns the records into rows (``store.base.ROW_COLUMNS``),
the records it coerced and the ones it rejected; ``store_batch`` stores the
rows, and when the store refuses the batch for what a row holds, stores it by
halves so only the refused rows are reported.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..store.base import ROW_COLUMNS, Row, StoreUnavailable
from .columnar import fast_rows
from .decode import Body, count_values
from .encode import encode_finite_metadata, encode_metadata
from .validate import Rejected, coerce

logger = logging.getLogger("log_collector.server")


@dataclass
class Batch:
    rows: list[Row]
    rejected: list[dict[str, Any]]
    coerced: list[dict[str, Any]] = field(default_factory=list)
    # The index in the request of each row's record (None: the same as the row's).
    indexes: list[int] | None = None

    def index_of(self, row: int) -> int:
        return row if self.indexes is None else self.indexes[row]


_METADATA = ROW_COLUMNS.index("metadata")


def normalise_all(body: Body, received_at: float) -> Batch:
    """Split the records into rows to store, ``{"index", "fields", "reason"}``
    for the ones coerced and ``{"index", "reason"}`` for the ones rejected.

    ``validate.coerce`` defines the result. Records whose every value is
    already canonical take ``columnar``; the others, and every record of a
    body whose text needs the deep check, go through ``coerce`` one by one.
    """
    records = body.records
    rows: list[Row | None]
    if body.check_text:
        rows, slow = [None] * len(records), set(range(len(records)))
    else:
        encode = encode_finite_metadata if body.finite_numbers else encode_metadata
        rows, slow = fast_rows(records, received_at, encode)
    rejected: list[dict[str, Any]] = []
    coerced: list[dict[str, Any]] = []
    for index in sorted(slow):
        # Whatever the fast path put here is provisional: replaced or dropped.
        rows[index] = _coerce_one(records, index, received_at, body.check_text, rejected, coerced)
    limit = body.max_values_per_record
    if limit is not None and body.values > limit:
        _reject_large_metadata(rows, limit, rejected)
        rejected.sort(key=lambda r: r["index"])
        coerced = [c for c in coerced if rows[c["index"]] is not None]
    if rejected:
        indexes = [i for i, row in enumerate(rows) if row is not None]
        return Batch([rows[i] for i in indexes], rejected, coerced, indexes)  # type: ignore[misc]
    return Batch(rows, rejected, coerced)  # type: ignore[arg-type]  # no None left


def _coerce_one(
    records: list[Any],
    index: int,
    received_at: float,
    check_text: bool,
    rejected: list[dict[str, Any]],
    coerced: list[dict[str, Any]],
) -> Row | None:
    """``coerce``'s row for ``records[index]``, adding it to ``coerced`` when a
    value was changed; None, added to ``rejected``, when nothing of it can be stored."""
    try:
        row, fields = coerce(records[index], received_at, check_text)
    except Rejected as exc:
        rejected.append({"index": index, "reason": str(exc)})
        return None
    except RecursionError:
        rejected.append({"index": index, "reason": "record is nested too deeply"})
        return None
    except Exception as exc:
        # A value no rule foresaw: that record alone is refused, never its batch.
        logger.exception("record %d of a batch could not be read", index)
        rejected.append({"index": index, "reason": f"record could not be read: {exc!r}"})
        return None
    if fields:
        coerced.append(
            {"index": index, "fields": list(fields), "reason": "; ".join(fields.values())}
        )
    return row


def _reject_large_metadata(
    rows: list[Row | None], limit: int, rejected: list[dict[str, Any]]
) -> None:
    """Drop (set to None) and reject each row whose metadata holds more than ``limit`` values."""
    for index, row in enumerate(rows):
        if row is None or row[_METADATA] is None:
            continue
        if count_values(row[_METADATA], limit) > limit:
            rows[index] = None
            rejected.append(
                {
                    "index": index,
                    "reason": f"metadata holds more than {limit} JSON values, "
                    "the limit for one record",
                }
            )


@dataclass
class Stored:
    """What became of a batch: the answer's counts and lists."""

    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]]
    coerced: list[dict[str, Any]]


# SQLSTATE classes of an error caused by the data sent: 22 data exception,
# 23 integrity constraint violation, 54 program limit exceeded.
# https://www.postgresql.org/docs/15/errcodes-appendix.html
_DATA_SQLSTATES = ("22", "23", "54")
# SQLite result codes of the same kind: too big, constraint, type mismatch, range.
# https://www.sqlite.org/rescode.html
_DATA_SQLITE_CODES = {
    sqlite3.SQLITE_TOOBIG,
    sqlite3.SQLITE_CONSTRAINT,
    sqlite3.SQLITE_MISMATCH,
    sqlite3.SQLITE_RANGE,
}


def _caused_by_data(exc: BaseException) -> bool:
    """Whether ``exc``, raised storing one row, says the row's values are the cause."""
    if isinstance(exc, ValueError | TypeError | OverflowError):  # binding: UnicodeError too
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(_DATA_SQLSTATES)
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _DATA_SQLITE_CODES


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


Insert = Callable[[Sequence[Row]], tuple[int, int]]


def store_batch(insert: Insert, batch: Batch) -> Stored:
    """Store ``batch.rows`` with ``insert`` (a store's ``insert``) and say what became of each.

    When the store refuses the whole batch (anything but StoreUnavailable,
    which the caller answers with 503), the rows are stored by halves down to
    single rows, so the good ones are stored and each row the store refuses
    alone is rejected with the store's message. When no row at all could be
    stored and the errors do not name the data (a broken schema, a bug), the
    first error is raised: nothing is rejected, the client keeps its records.
    """
    rows = batch.rows
    try:
        accepted, duplicates = insert(rows)
    except StoreUnavailable:
        raise
    except Exception as exc:
        first = exc
    else:
        return Stored(accepted, duplicates, batch.rejected, batch.coerced)
    logger.warning(
        "the store refused a batch of %d rows, storing it by halves: %s",
        len(rows),
        _one_line(first),
    )
    halves = _ByHalves(insert, rows)
    halves.store(0, len(rows), first)
    if halves.totals == [0, 0] and not all(_caused_by_data(exc) for _, exc in halves.failed):
        raise first
    refused = {batch.index_of(row) for row, _ in halves.failed}
    rejected = sorted(
        batch.rejected
        + [
            {"index": batch.index_of(row), "reason": f"the store refused it: {_one_line(exc)}"}
            for row, exc in halves.failed
        ],
        key=lambda r: r["index"],
    )
    coerced = [c for c in batch.coerced if c["index"] not in refused]
    return Stored(halves.totals[0], halves.totals[1], rejected, coerced)


class _ByHalves:
    """Stores ``rows`` part by part, halving each part the store refuses down to
    single rows: ``totals`` (accepted, duplicates) of the parts stored,
    ``failed`` (row index, error) of each row refused alone."""

    def __init__(self, insert: Insert, rows: Sequence[Row]):
        self._insert = insert
        self._rows = rows
        self.totals = [0, 0]
        self.failed: list[tuple[int, BaseException]] = []

    def store(self, start: int, end: int, error: BaseException | None) -> None:
        # ``error``: the part is known to fail already (the whole batch).
        if error is None:
            try:
                accepted, duplicates = self._insert(self._rows[start:end])
            except StoreUnavailable:
                raise
            except Exception as exc:
                error = exc
            else:
                self.totals[0] += accepted
                self.totals[1] += duplicates
                return
        if end - start == 1:
            self.failed.append((start, error))
            return
        middle = (start + end) // 2
        self.store(start, middle, None)
        self.store(middle, end, None)
