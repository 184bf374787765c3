"""Building one record: level, caller, contexts, common fields, event_id, redaction, JSON.

This runs on the application's thread for every log call, so it does one
pass over the fields and one JSON encoding, and it never raises: a value
that JSON cannot hold gets a sensible string form instead.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import json
import math
import os
import random
import re
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import PurePath
from types import FrameType
from typing import Any

import orjson

from .context import _request_context, _user_context
from .settings import LEVEL_RANK, Settings, normalise_level

REDACTED = "[REDACTED]"
MAX_DEPTH = 32  # redaction looks this deep; deeper values are left as they are
MAX_INT_BITS = 10_000  # ints beyond this become hex text (int-to-decimal is capped)
_SCALARS = (str, int, float, bool, type(None))

_LIB_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_SURROGATES = re.compile("[\ud800-\udfff]")


class _ForkSafeRandom:
    """Random bits for event ids, reseeded from the OS in every new process.

    A forked child inherits the parent's generator state; without a reseed two
    workers would draw the same bits, and the server would drop one worker's
    records as duplicates of the other's. ``os.register_at_fork`` reseeds every
    child. One ``os.urandom`` call per id would also do, at several times the cost.
    """

    def __init__(self) -> None:
        self._rng = random.Random()
        self.reseed()

    def reseed(self) -> None:
        self._rng.seed(os.urandom(32))

    def bits(self, n: int) -> int:
        return self._rng.getrandbits(n)


_random = _ForkSafeRandom()
# Registered at import, not with the first client: a process that imports the
# library, forks (gunicorn --preload), and only then makes its client must
# still give each child its own bits. This is the one thing done at import.
os.register_at_fork(after_in_child=_random.reseed)


def uuid7(unix_ms: int | None = None) -> str:
    """A time-ordered UUID (RFC 9562 version 7): 48-bit ms timestamp, then 74 random bits."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = _random.bits(74)
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 62) << 64
        | 0b10 << 62
        | rand & 0x3FFF_FFFF_FFFF_FFFF
    )
    return _UUID_FORMAT % (
        value >> 96,
        (value >> 80) & 0xFFFF,
        (value >> 64) & 0xFFFF,
        (value >> 48) & 0xFFFF,
        value & 0xFFFF_FFFF_FFFF,
    )


_UUID_FORMAT = "%08x-%04x-%04x-%04x-%012x"


def find_caller(frame: FrameType | None) -> FrameType | None:
    """The first frame, walking outwards, whose code is not in this package."""
    while frame is not None and frame.f_code.co_filename.startswith(_LIB_DIR):
        frame = frame.f_back
    return frame


def _json_default(value: Any) -> Any:
    """The string (or list) form of a value JSON has no type for."""
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal | uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, BaseException):
        try:
            return f"{type(value).__name__}: {value}"
        except Exception:
            return f"{type(value).__name__}: {_safe_repr(value)}"
    return _safe_repr(value)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default
)


def _sanitise(value: Any, depth: int = 0, seen: frozenset[int] = frozenset()) -> Any:
    """A JSON-safe copy: string keys, finite floats, no cycles, bounded depth.

    Only used when orjson refused the record, so it can afford to be thorough.
    It writes what orjson writes where both can (NaN and infinities as null),
    so a value encodes the same whichever path its record took.
    """
    if depth > 64:
        return "<too deep>"
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        return hex(value)  # past Python's int-to-decimal limit; hex has none
    if isinstance(value, str | int) or value is None:
        return value
    if id(value) in seen:
        return "<circular>"
    inner = seen | {id(value)}
    if isinstance(value, Mapping):
        return {_json_key(k): _sanitise(v, depth + 1, inner) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_sanitise(v, depth + 1, inner) for v in value]
    converted = _json_default(value)
    if isinstance(converted, list):
        return [_sanitise(v, depth + 1, inner) for v in converted]
    return _sanitise(converted, depth + 1, inner)


def _json_key(key: Any) -> str:
    """A key as JSON (and orjson's OPT_NON_STR_KEYS) spells it."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    if isinstance(key, int):
        return str(key) if key.bit_length() <= MAX_INT_BITS else hex(key)
    if isinstance(key, float):
        return repr(key) if math.isfinite(key) else "null"
    return str(_json_default(key))


def encode(record: dict[str, Any]) -> str:
    """JSON text of ``record``; never raises, always valid UTF-8.

    orjson on the hot path (about ten times faster than the json module
    here); what it refuses (tuple keys, cycles, huge ints, lone surrogates)
    is made JSON-safe and encoded by the json module instead.
    """
    try:
        return orjson.dumps(record, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        text = _ENCODER.encode(_sanitise(record))
    except (TypeError, ValueError, RecursionError) as exc:
        text = _ENCODER.encode({"message": f"<record could not be encoded: {exc!r}>"})
    if not text.isascii() and _SURROGATES.search(text):
        # A lone surrogate (e.g. an undecodable file name) cannot be stored as
        # UTF-8; U+FFFD keeps the rest of the text.
        text = _SURROGATES.sub("\ufffd", text)
    return text


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:
        return _safe_repr(value)


class RecordBuilder:
    """Turns one log call into ``(created_at, json_text)``.

    Precedence, as in the older client: the call's own fields, then the
    request context, then the user context, then the client's common fields.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        frame_getter: Callable[[int], FrameType] = sys._getframe,
    ) -> None:
        self._clock = clock
        self._frame_getter = frame_getter
        self._common = [
            (key, value)
            for key in ("service", "environment", "service_version", "log_type")
            if (value := getattr(settings, key)) is not None
        ]
        self._redact = settings.redact_keys
        self._min_rank = LEVEL_RANK[settings.min_level]
        self._key_cache: dict[str, bool] = {}

    def build(
        self,
        level: Any,
        message: Any,
        fields: dict[str, Any],
        *,
        auto_caller: bool = True,
    ) -> tuple[float, str] | None:
        """The record's creation time and JSON text; ``None`` when below ``min_level``."""
        try:
            rank = LEVEL_RANK.get(level)
        except TypeError:  # an unhashable "level"
            rank = None
        if rank is None:
            name = normalise_level(level)
            if name is None:
                # An unknown level never raises: the record is kept as INFO and
                # says what it was called with.
                fields = {**fields, "level_name": _to_text(level)}
                name = "INFO"
            level, rank = name, LEVEL_RANK[name]
        if rank < self._min_rank:
            return None
        now = self._clock()
        record: dict[str, Any] = {
            "level": level,
            "message": message if type(message) is str else _to_text(message),
            "created_at": now,
        }
        if fields:
            record.update(fields)
        if auto_caller:
            frame = find_caller(self._frame_getter(1))
            if frame is not None:
                code = frame.f_code
                record.setdefault("function_name", code.co_name)
                record.setdefault("file_path", code.co_filename)
                record.setdefault("line_no", frame.f_lineno)
        request, user = _request_context.get(), _user_context.get()
        if request:
            for key, value in request.items():
                record.setdefault(key, value)
        if user:
            for key, value in user.items():
                record.setdefault(key, value)
        for key, value in self._common:
            record.setdefault(key, value)
        created_at = record["created_at"]
        if type(created_at) is not float or not math.isfinite(created_at):
            created_at = now
        record["event_id"] = uuid7(int(created_at * 1000))
        if self._redact:
            # Only the caller's fields and the contexts can hold secrets; the
            # keys this builder adds itself never need the check.
            for source in (fields, request, user):
                if source:
                    self._redact_in(record, source)
        return created_at, encode(record)

    def _is_sensitive(self, key: Any) -> bool:
        hit = self._key_cache.get(key)
        if hit is None:
            hit = isinstance(key, str) and key.lower().replace("-", "_") in self._redact
            if len(self._key_cache) < 10_000:  # bounded: keys may be generated
                self._key_cache[key] = hit
        return hit

    def _redact_in(self, record: dict[str, Any], keys: dict[str, Any]) -> None:
        """Replace sensitive values of ``keys`` in ``record``, at any depth.
        ``record`` is our own dict; nested containers belong to the caller and
        are copied before a change."""
        cache = self._key_cache
        for key in keys:
            hit = cache.get(key)
            if hit is None:
                hit = self._is_sensitive(key)
            value = record[key]
            if hit:
                record[key] = REDACTED
            elif type(value) not in _SCALARS and self._needs_redaction(value, 1):
                record[key] = self._redacted_copy(value, 1)

    def _needs_redaction(self, value: Any, depth: int) -> bool:
        if depth > MAX_DEPTH:
            return False
        if isinstance(value, Mapping):
            return any(
                self._is_sensitive(k) or self._needs_redaction(v, depth + 1)
                for k, v in value.items()
            )
        if isinstance(value, list | tuple):
            return any(self._needs_redaction(v, depth + 1) for v in value)
        return False

    def _redacted_copy(self, value: Any, depth: int) -> Any:
        """A dict (or list) copy with sensitive values replaced; OrderedDict,
        CaseInsensitiveDict, tuples and the like become plain dicts and lists."""
        if depth > MAX_DEPTH:
            return value
        if isinstance(value, Mapping):
            return {
                k: REDACTED if self._is_sensitive(k) else self._redacted_copy(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._redacted_copy(v, depth + 1) for v in value]
        return value
