"""From a request body's bytes to its list of records, within the limits.

``decode_body`` gunzips the body (refusing output past the limit as it
inflates), counts its JSON values, decodes it and checks its shape, or
raises ``IngestError`` carrying the HTTP status and a message for the whole
request (400 bad gzip/JSON/shape, 413 over a limit, 415 unknown encoding).

Memory: decoding a JSON value costs Python about 30-200 bytes whatever its
size on the wire (``{}`` is 2 bytes and a 64-byte dict), so a small body can
cost gigabytes. Before decoding, the body's values are counted at C speed and
a body over ``Limits.max_values_per_request`` is refused with 413.

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

from ..limits import Limits


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


def inflated(body: bytes, gzipped: bool, limits: Limits) -> bytes | bytearray:
    """The body, gunzipped when ``gzipped``; IngestError(413) past the decompressed limit."""
    data = gunzip(body, limits.max_decompressed_bytes) if gzipped else body
    if len(data) > limits.max_decompressed_bytes:
        raise IngestError(413, f"body is over the limit of {limits.max_decompressed_bytes} bytes")
    return data


def json_values(data: bytes | bytearray, limits: Limits) -> int:
    """``count_values`` of a JSON body; IngestError(413) past ``max_values_per_request``."""
    values = count_values(data, limits.max_values_per_request)
    if values > limits.max_values_per_request:
        raise IngestError(
            413,
            f"body holds more than {limits.max_values_per_request} JSON values (counted as "
            "its commas and opening brackets outside strings): split the batch",
        )
    return values


def decode_body(body: bytes, gzipped: bool, limits: Limits) -> Body:
    """Parse a request body into its list of records (not yet validated)."""
    data = inflated(body, gzipped, limits)
    values = json_values(data, limits)
    document, finite = decode_json(data)
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


def decode_json(data: bytes | bytearray) -> tuple[Any, bool]:
    """The JSON document in ``data``, and whether orjson decoded it (every number finite and
    within 64 bits); IngestError(400) when it is not JSON."""
    try:
        return _loads(data)
    except UnicodeDecodeError:
        raise IngestError(400, "body is not UTF-8 JSON") from None
    except ValueError as exc:
        # JSONDecodeError, or an integer past sys.get_int_max_str_digits()
        # (4,300 digits), which int() refuses to parse.
        # https://docs.python.org/3/library/stdtypes.html#int-max-str-digits
        raise IngestError(400, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise IngestError(400, "body is not valid JSON: nested too deeply") from None


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
