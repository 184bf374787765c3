"""From a POST /logs body to stored rows: decode, check the limits, coerce
each record, store the rows.

``decode_body`` turns the request body into the list of records, or raises
``IngestError`` carrying the HTTP status and a message for the whole request
(400 bad gzip/JSON/shape, 413 over a limit, 415 unknown encoding).
``normalise_all`` turns the records into rows (``store.base.ROW_COLUMNS``),
the records it coerced and the ones it rejected; ``store_batch`` stores the
rows, and when the store refuses the batch for what a row holds, stores it by
halves so only the refused rows are reported. One record never fails its batch
(DESIGN.md sections 5, 6).

The answer of POST /logs reports each record that was stored only after a
value was changed, beside the ones rejected::

    "rejected": [{"index": 2, "reason": "a record must be a JSON object, got a string"}],
    "coerced":  [{"index": 0, "fields": ["environment", "log_type"],
                  "reason": "environment: 'qa' is not one of ...; log_type: ..."}]

``fields`` names the record's keys that were coerced, in the record's order
(``message`` when it was missing); their original values are in the stored
row's ``metadata._invalid`` (see ``validate``). ``coerced`` is left out when
no record was coerced, so a clean batch gets the answer it always got.

Memory: decoding a JSON value costs Python about 30-200 bytes whatever its
size on the wire (``{}`` is 2 bytes and a 64-byte dict), so a small body can
cost gigabytes. Before decoding, the body's values are counted at C speed and
a body over ``Limits.max_values_per_request`` is refused with 413.

Records are plain decoded JSON validated by hand (``validate``,
``fastpath``): a model object per record would cost more than the insert.
``json.loads`` defines the decoding; orjson, several times faster, decodes
every body it would decode the same way.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .fastpath import fast_rows
from .store.base import ROW_COLUMNS, Row, StoreUnavailable
from .validate import Rejected, coerce, encode_finite_metadata, encode_metadata

logger = logging.getLogger("log_collector.server")

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 10 * MiB
    max_decompressed_bytes: int = 64 * MiB
    max_records: int = 10_000
    # JSON values in one body, counted as the commas and opening brackets
    # outside strings (about one per value), checked before decoding: each
    # costs Python 30-200 bytes once decoded, so this bounds a request's
    # decoded objects to about 100 MB whatever its bytes. A batch of 10,000
    # records of 50 fields each holds about 500,000.
    max_values_per_request: int = 1_000_000
    # The same count in one record's metadata: a record over it is rejected
    # alone (the client keeps it in its dead letters).
    max_values_per_record: int = 100_000
    # Seconds a client has to send the whole body once its headers are in;
    # then 408. uvicorn bounds only the wait between requests, so without
    # this a client trickling a byte at a time holds its connection forever.
    body_timeout: float = 30.0
    # Bytes of request bodies one server process holds at once, counted from
    # Content-Length before a byte is read (or as a chunked body streams in);
    # past it, 503 with Retry-After. At least max_body_bytes, so every body
    # under the limit gets in once others are done.
    max_inflight_bytes: int = 64 * MiB

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_decompressed_bytes",
            "max_records",
            "max_values_per_request",
            "max_values_per_record",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1")
        if self.max_inflight_bytes < self.max_body_bytes:
            raise ValueError("Limits.max_inflight_bytes must be at least Limits.max_body_bytes")
        if not self.body_timeout > 0:  # also refuses NaN
            raise ValueError("Limits.body_timeout must be positive")


class IngestError(Exception):
    """The whole request is refused with ``status``; ``message`` says why."""

    def __init__(self, status: int, message: str, *, close: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        # Answer with "Connection: close": the rest of the request is not wanted.
        self.close = close


def parse_content_encoding(header: str | None) -> bool:
    """True when the body is gzip, False when it is plain; IngestError(415) otherwise."""
    codings = [c.strip().lower() for c in (header or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return False
    if codings in (["gzip"], ["x-gzip"]):
        return True
    raise IngestError(
        415, f"Content-Encoding '{header}' is not supported: send gzip or no encoding"
    )


# Bytes of compressed input fed to zlib, and most bytes of output asked of it,
# per call: asked for the whole limit at once, zlib builds its output in
# blocks and then copies them into one bytes object, which ``out`` copied
# again; in small steps a bomb costs the limit once instead of twice.
_GUNZIP_STEP = 256 * 1024


def gunzip(data: bytes, limit: int) -> bytearray:
    """Decompress gzip ``data`` (one or more members), refusing output past ``limit`` bytes.

    ``max_length`` makes zlib stop after ``limit + 1`` bytes whatever the
    input holds, so a small body that inflates to gigabytes (a gzip bomb)
    costs at most ``limit`` bytes of memory before it is refused.
    https://docs.python.org/3/library/zlib.html#zlib.Decompress.decompress
    """
    out = bytearray()
    view = memoryview(data)
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        end = 0  # input fed to this member's inflater
        try:
            while end < len(view) and not inflater.eof:
                pending: bytes | memoryview = view[end : end + _GUNZIP_STEP]
                end += len(pending)
                while pending and not inflater.eof:
                    out += inflater.decompress(pending, min(_GUNZIP_STEP, limit - len(out) + 1))
                    if len(out) > limit:
                        raise IngestError(
                            413, f"decompressed body is over the limit of {limit} bytes"
                        )
                    pending = inflater.unconsumed_tail
        except zlib.error as exc:
            raise IngestError(400, f"body is not valid gzip: {exc}") from None
        if not inflater.eof:
            raise IngestError(400, "body is not valid gzip: the stream is truncated")
        # RFC 1952 allows several members one after the other; some writers also
        # pad with zero bytes, which is not a member.
        view = view[end - len(inflater.unused_data) :]
        if not view.tobytes().strip(b"\x00"):
            return out


# A JSON escape for a NUL or a UTF-16 surrogate, or a surrogate encoded raw.
# PostgreSQL refuses NUL in text and jsonb, and no database takes an unpaired
# surrogate; only bodies holding one pay for the deep per-record check.
_SUSPECT_TEXT = re.compile(rb"\\u0000|\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


# orjson reads an integer past 64 bits as a float (digits lost) where json
# keeps a Python int, so a body holding a number of 19 digits or more (the
# first that can leave the 64-bit range) is decoded by json. Digits become
# "0" and whatever may precede a JSON number (",", ":", "[", "-",
# whitespace) becomes "x"; long runs of digits inside strings, such as hex
# trace ids, are preceded by a letter or a quote and do not match.
_NUMBER_STARTS = b",:[- \t\n\r"
_DIGIT_MAP = bytes(
    ord("0") if chr(c).isdigit() and c < 128 else ord("x") if c in _NUMBER_STARTS else ord(" ")
    for c in range(256)
)
_LONG_NUMBER = b"x" + b"0" * 19


def _loads(data: bytes | bytearray) -> tuple[Any, bool]:
    """``json.loads(data)``, by orjson when the result is sure to be the same;
    and whether orjson decoded it (then it holds no NaN, no Infinity and no
    integer past 64 bits)."""
    # orjson refuses everything json accepts beyond RFC 8259 (NaN, Infinity,
    # 1e400, lone surrogates, UTF-16 bodies) and nesting past 1,024 levels:
    # json then decides, with its own result or error.
    if _LONG_NUMBER not in data.translate(_DIGIT_MAP):
        try:
            return orjson.loads(data), True
        except orjson.JSONDecodeError:
            pass
    return json.loads(data), False


# A JSON string literal; the commas and brackets inside one are not structure.
_STRING_BYTES = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_STRING_TEXT = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def count_values(data: bytes | bytearray | str, limit: int) -> int:
    """The JSON values of ``data``, counted as its commas and opening brackets
    outside strings (about one per value), or as those bytes anywhere (an
    upper bound) when that is within ``limit`` or ``data`` is not UTF-8.
    Over ``limit``, the count may stop at the first figure past it.

    Each ``count`` runs at memchr speed and copies nothing. Only a bound over
    ``limit`` pays for the walk from string to string, whose count grows by
    about one for every two strings, so it stops within about 2 * ``limit``
    strings.
    """
    if isinstance(data, str):
        bound = data.count(",") + data.count("{") + data.count("[")
        if bound <= limit or '"' not in data:
            return bound
        return _count_outside_strings(data, _STRING_TEXT, (",", "{", "["), limit)
    bound = data.count(b",") + data.count(b"{") + data.count(b"[")
    if bound <= limit or b'"' not in data or not json.detect_encoding(data).startswith("utf-8"):
        return bound
    return _count_outside_strings(data, _STRING_BYTES, (b",", b"{", b"["), limit)


def _count_outside_strings(data: Any, strings: re.Pattern[Any], marks: Any, limit: int) -> int:
    comma, brace, bracket = marks
    count = data.count
    total = 0
    start = 0
    for match in strings.finditer(data):
        end = match.start()
        total += count(comma, start, end) + count(brace, start, end) + count(bracket, start, end)
        if total > limit:
            return total
        start = match.end()
    return total + count(comma, start) + count(brace, start) + count(bracket, start)


@dataclass(frozen=True)
class Body:
    records: list[Any]
    check_text: bool
    # Decoded by orjson: every number is finite and fits 64 bits.
    finite_numbers: bool = False
    # count_values of the body (an upper bound), and the most one record's
    # metadata may hold (None: no check).
    values: int = 0
    max_values_per_record: int | None = None


def decode_body(body: bytes, gzipped: bool, limits: Limits) -> Body:
    """Parse a request body into its list of records (not yet validated)."""
    if gzipped:
        data: bytes | bytearray = gunzip(body, limits.max_decompressed_bytes)
    else:
        data = body
    if len(data) > limits.max_decompressed_bytes:
        raise IngestError(413, f"body is over the limit of {limits.max_decompressed_bytes} bytes")
    values = count_values(data, limits.max_values_per_request)
    if values > limits.max_values_per_request:
        raise IngestError(
            413,
            f"body holds more than {limits.max_values_per_request} JSON values (counted as "
            "its commas and opening brackets outside strings): split the batch",
        )
    try:
        document, finite = _loads(data)
    except UnicodeDecodeError:
        raise IngestError(400, "body is not UTF-8 JSON") from None
    except ValueError as exc:
        # JSONDecodeError, or an integer past sys.get_int_max_str_digits()
        # (4,300 digits), which int() refuses to parse.
        # https://docs.python.org/3/library/stdtypes.html#int-max-str-digits
        raise IngestError(400, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise IngestError(400, "body is not valid JSON: nested too deeply") from None
    if type(document) is not dict or type(document.get("logs")) is not list:
        raise IngestError(400, 'body must be a JSON object {"logs": [record, ...]}')
    records = document["logs"]
    if len(records) > limits.max_records:
        raise IngestError(
            413,
            f"{len(records)} records in one request, over the limit of "
            f"{limits.max_records}: split the batch",
        )
    return Body(records, _suspect_text(data), finite, values, limits.max_values_per_record)


def _suspect_text(data: bytes | bytearray) -> bool:
    # json.loads also reads UTF-16 and UTF-32 bodies, where an escape is not
    # the bytes the scan looks for: those are always checked.
    if not json.detect_encoding(data).startswith("utf-8"):
        return True
    # Substring scans of one byte (memchr speed) spare most bodies the regex;
    # a search for the two bytes of an escape is ten times slower, "u" being common.
    if (b"\\" not in data or b"\\u" not in data) and b"\xed" not in data:
        return False
    return _SUSPECT_TEXT.search(data) is not None


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
    already canonical take ``fastpath``; the others, and every record of a
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
        rows[index] = None
        try:
            rows[index], fields = coerce(records[index], received_at, body.check_text)
        except Rejected as exc:
            rejected.append({"index": index, "reason": str(exc)})
            continue
        except RecursionError:
            rejected.append({"index": index, "reason": "record is nested too deeply"})
            continue
        except Exception as exc:
            # A value no rule foresaw: that record alone is refused, never its batch.
            logger.exception("record %d of a batch could not be read", index)
            rejected.append({"index": index, "reason": f"record could not be read: {exc!r}"})
            continue
        if fields:
            coerced.append(
                {"index": index, "fields": list(fields), "reason": "; ".join(fields.values())}
            )
    limit = body.max_values_per_record
    if limit is not None and body.values > limit:
        for index, row in enumerate(rows):
            if row is None or row[_METADATA] is None:
                continue
            values = count_values(row[_METADATA], limit)
            if values > limit:
                rows[index] = None
                rejected.append(
                    {
                        "index": index,
                        "reason": f"metadata holds more than {limit} JSON values, "
                        "the limit for one record",
                    }
                )
        rejected.sort(key=lambda r: r["index"])
        coerced = [c for c in coerced if rows[c["index"]] is not None]
    if rejected:
        indexes = [i for i, row in enumerate(rows) if row is not None]
        return Batch([rows[i] for i in indexes], rejected, coerced, indexes)  # type: ignore[misc]
    return Batch(rows, rejected, coerced)  # type: ignore[arg-type]  # no None left


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


def store_batch(insert: Callable[[Sequence[Row]], tuple[int, int]], batch: Batch) -> Stored:
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
    failed: list[tuple[int, BaseException]] = []
    totals = [0, 0]

    def store_part(start: int, end: int, error: BaseException | None) -> None:
        # ``error``: the part is known to fail already (the whole batch).
        if error is None:
            try:
                part = insert(rows[start:end])
            except StoreUnavailable:
                raise
            except Exception as exc:
                error = exc
            else:
                totals[0] += part[0]
                totals[1] += part[1]
                return
        if end - start == 1:
            failed.append((start, error))
            return
        middle = (start + end) // 2
        store_part(start, middle, None)
        store_part(middle, end, None)

    store_part(0, len(rows), first)
    if totals == [0, 0] and not all(_caused_by_data(exc) for _, exc in failed):
        raise first
    refused = {batch.index_of(row) for row, _ in failed}
    rejected = sorted(
        batch.rejected
        + [
            {"index": batch.index_of(row), "reason": f"the store refused it: {_one_line(exc)}"}
            for row, exc in failed
        ],
        key=lambda r: r["index"],
    )
    coerced = [c for c in batch.coerced if c["index"] not in refused]
    return Stored(totals[0], totals[1], rejected, coerced)
