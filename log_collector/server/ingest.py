"""From a POST /logs body to rows: decode, check the limits, validate each record.

``decode_body`` turns the request body into the list of records, or raises
``IngestError`` carrying the HTTP status and a message for the whole request
(400 bad gzip/JSON/shape, 413 over a limit, 415 unknown encoding).
``normalise_all`` turns the records into rows (``store.base.ROW_COLUMNS``)
and the rejections of the records that cannot be stored, with their index
and reason, so one bad record never fails its batch (DESIGN.md sections 5, 6).

Records are plain decoded JSON validated by hand (``validate``,
``fastpath``): a model object per record would cost more than the insert.
``json.loads`` defines the decoding; orjson, several times faster, decodes
every body it would decode the same way.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from .fastpath import fast_rows
from .store.base import Row
from .validate import Rejected, encode_finite_metadata, encode_metadata, normalise

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 10 * MiB
    max_decompressed_bytes: int = 64 * MiB
    max_records: int = 10_000
    # Seconds a client has to send the whole body once its headers are in;
    # then 408. uvicorn bounds only the wait between requests, so without
    # this a client trickling a byte at a time holds its connection forever.
    body_timeout: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_decompressed_bytes", "max_records"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1")
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


@dataclass(frozen=True)
class Body:
    records: list[Any]
    check_text: bool
    # Decoded by orjson: every number is finite and fits 64 bits.
    finite_numbers: bool = False


def decode_body(body: bytes, gzipped: bool, limits: Limits) -> Body:
    """Parse a request body into its list of records (not yet validated)."""
    if gzipped:
        data: bytes | bytearray = gunzip(body, limits.max_decompressed_bytes)
    else:
        data = body
    if len(data) > limits.max_decompressed_bytes:
        raise IngestError(413, f"body is over the limit of {limits.max_decompressed_bytes} bytes")
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
    return Body(records, _suspect_text(data), finite)


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


def normalise_all(body: Body, received_at: float) -> Batch:
    """Split the records into rows to store and ``{"index", "reason"}`` rejections.

    ``validate.normalise`` defines the result. Records whose every value is
    already canonical take ``fastpath``; the others, and every record of a
    body whose text needs the deep check, go through ``normalise`` one by one.
    """
    records = body.records
    rows: list[Row | None]
    if body.check_text:
        rows, slow = [None] * len(records), set(range(len(records)))
    else:
        encode = encode_finite_metadata if body.finite_numbers else encode_metadata
        rows, slow = fast_rows(records, received_at, encode)
    rejected: list[dict[str, Any]] = []
    for index in sorted(slow):
        # Whatever the fast path put here is provisional: replaced or dropped.
        rows[index] = None
        try:
            rows[index] = normalise(records[index], received_at, body.check_text)
        except Rejected as exc:
            rejected.append({"index": index, "reason": str(exc)})
        except RecursionError:
            rejected.append({"index": index, "reason": "record is nested too deeply"})
    if rejected:
        return Batch([row for row in rows if row is not None], rejected)
    return Batch(rows, rejected)  # type: ignore[arg-type]  # no None left
