"""The rules for one record: which key goes to which column, what each column
accepts, what is normalised, and what happens to a value that does not fit
(DESIGN.md section 6).

``coerce`` turns one decoded record into a row (``store.base.ROW_COLUMNS``
order) and the fields it had to coerce. A value that does not fit its column
(an unknown enum value, a wrong type, an over-long string, a bad event_id, a
non-object metadata, a time outside 1970-2200, a number too large for a
float) leaves the column its safe default or NULL, and the original value is
kept in the row's metadata under ``_invalid``::

    {"message": "m", "environment": "qa", "log_type": 7}
    -> environment "development", log_type "BACKEND",
       metadata {"_invalid": {"environment": "qa", "log_type": 7}}

The choices where a value has more than one safe form:

- an over-long string keeps its first characters (up to the column's length)
  in the column, and the whole string under ``_invalid``;
- a missing, null or non-text ``message`` is stored as "" (the column is
  NOT NULL); a non-text one is kept under ``_invalid``;
- ``created_at`` outside 1970-01-01 to 2200-01-01 becomes ``received_at``;
  the milliseconds rule (a number past 1e11 is milliseconds, as JavaScript's
  ``Date.now()`` sends) applies to numbers and numeric strings, never to an
  ISO 8601 time;
- a bad ``event_id`` becomes NULL (a made-up id could merge two records);
- NaN or Infinity inside metadata is kept as its text ("NaN", "Infinity");
- text no store can hold (NUL, an unpaired UTF-16 surrogate) has each such
  character replaced by U+FFFD; a surrogate pair sent as two raw halves
  becomes its character. Only when ``check_text`` is asked.

A user's own ``_invalid`` key, when the server also needs one, is kept inside
the server's as ``_invalid._invalid``. ``Rejected`` is raised only when
nothing of a record can be stored: it is not a JSON object, or its metadata is
nested too deeply to encode. ``fastpath`` only speeds up the records
``coerce`` would leave unchanged.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from ..common.vocabulary import (
    ENVIRONMENT_ALIASES,
    ENVIRONMENTS,
    LEVEL_ALIASES,
    LEVELS,
    LOG_TYPES,
    METHODS,
    TEXT_LIMITS,
)
from .store.base import Row

INVALID_KEY = "_invalid"


class Rejected(Exception):
    """One record cannot be stored at all; the message is the reason sent back to the client."""


class Unfit(Exception):
    """One value does not fit its column: the message says why, ``fallback`` is
    what the column gets instead (None: the column's default or NULL)."""

    def __init__(self, reason: str, fallback: Any = None):
        super().__init__(reason)
        self.fallback = fallback


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    """``value`` for a reason: its repr, cut to 40 characters."""
    try:
        text = repr(value)
    except ValueError:  # an int past sys.get_int_max_str_digits()
        return "a number too long to show"
    return text if len(text) <= 40 else text[:40] + "..."


def _text(name: str, max_chars: int | None) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        kind = type(value)
        if kind is str:
            text = value
        elif kind is int or kind is float:
            # A numeric user id or trace id is still that id: store its digits.
            try:
                text = str(value)
            except ValueError:  # past sys.get_int_max_str_digits()
                raise Unfit(f"{name}: a number too long to write as text") from None
        else:
            raise Unfit(f"{name}: expected a string, got {_json_type(value)}")
        if max_chars is not None and len(text) > max_chars:
            raise Unfit(
                f"{name}: {len(text)} characters, over the limit of {max_chars}",
                fallback=text[:max_chars],
            )
        return text

    return convert


def _enum(name: str, values: tuple[str, ...], aliases: dict[str, str]) -> Callable[[Any], str]:
    # Exact canonical values hit the first lookup; anything else is stripped
    # and lower-cased once and looked up again (INFO, info, " Info " -> INFO).
    lookup = {v: v for v in values}
    lookup.update({v.lower(): v for v in values})
    lookup.update(aliases)
    expected = ", ".join(values)

    def convert(value: Any) -> str:
        if type(value) is not str:
            raise Unfit(f"{name}: expected one of {expected}, got {_json_type(value)}")
        found = lookup.get(value) or lookup.get(value.strip().lower())
        if found is None:
            raise Unfit(f"{name}: {_shown(value)} is not one of {expected}")
        return found

    return convert


# The times a log may carry: from the Unix epoch to 2200-01-01T00:00:00Z.
# Anything else is a clock or unit error; both databases could hold more.
MIN_SECONDS = 0.0
MAX_SECONDS = 7_258_118_400.0
# Numbers past this are milliseconds (JavaScript's Date.now()): as seconds it
# would be the year 5138.
MILLISECONDS_FROM = 1e11


def _timestamp(value: Any) -> float:
    kind = type(value)
    if kind is float or kind is int:
        seconds = _number_seconds(value)
    elif kind is str:
        seconds = _parse_time_text(value)
    else:
        raise Unfit(
            f"created_at: expected Unix seconds or an ISO 8601 string, got {_json_type(value)}"
        )
    if not MIN_SECONDS <= seconds < MAX_SECONDS:  # also false for NaN
        raise Unfit(f"created_at: {_shown(value)} is outside 1970-01-01 to 2200-01-01")
    return seconds


def _number_seconds(value: float) -> float:
    try:
        seconds = float(value)
    except OverflowError:  # an int past 2**1024
        raise Unfit(f"created_at: {_shown(value)} is outside 1970-01-01 to 2200-01-01") from None
    return seconds / 1000.0 if seconds >= MILLISECONDS_FROM else seconds


def _parse_time_text(text: str) -> float:
    try:
        return _number_seconds(float(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
        if moment.tzinfo is None:
            # A time without an offset is taken as UTC, as the original server
            # did with TIMESTAMP columns.
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise Unfit(f"created_at: {_shown(text)} is not an ISO 8601 time") from None


def _duration(value: Any) -> float:
    kind = type(value)
    if kind is float or kind is int:
        try:
            number = float(value)
        except OverflowError:  # an int past 2**1024
            number = math.inf
        if math.isfinite(number):
            return number
    raise Unfit(f"duration_ms: expected a finite number, got {_json_type(value)}")


def _event_id(value: Any) -> str:
    if type(value) is str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise Unfit(f"event_id: expected a UUID string, got {_json_type(value)}")


def _metadata(value: Any) -> dict[str, Any]:
    if type(value) is dict:
        return value
    raise Unfit(f"metadata: expected an object, got {_json_type(value)}")


# Keys that name a column, each with its converter. id, deleted and
# received_at are the server's: a record carrying them keeps them in metadata.
FIELDS: dict[str, Callable[[Any], Any]] = {
    "created_at": _timestamp,
    "level": _enum("level", LEVELS, LEVEL_ALIASES),
    "log_type": _enum("log_type", LOG_TYPES, {}),
    "environment": _enum("environment", ENVIRONMENTS, ENVIRONMENT_ALIASES),
    "method": _enum("method", METHODS, {}),
    **{name: _text(name, limit) for name, limit in TEXT_LIMITS.items()},
    "duration_ms": _duration,
    "metadata": _metadata,
    "event_id": _event_id,
}

# The schema's defaults (migrations/*/0001_logs.sql), applied here so both
# stores see complete rows. service is NOT NULL in the original schema but the
# older client may send none: "unknown" keeps the record.
DEFAULTS: dict[str, Any] = {
    "level": "INFO",
    "log_type": "BACKEND",
    "service": "unknown",
    "environment": "development",
    "service_version": "v0.0.0-dev",
}
MISSING_MESSAGE = "message: required; stored as an empty string"


def _json_encoder() -> Callable[[dict[str, Any]], str]:
    # The C encoder called directly costs half of JSONEncoder.encode for the
    # small objects metadata holds (JSONEncoder builds it anew on every call).
    # Compact separators, non-ASCII kept, NaN refused.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
    encode = make(None, None, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    return lambda value: "".join(encode(value, 0))


_json_encode = _json_encoder()
_orjson_dumps = orjson.dumps
_OrjsonEncodeError = orjson.JSONEncodeError


def encode_metadata(value: dict[str, Any]) -> str:
    """``value`` as compact JSON text; ValueError for NaN or Infinity, RecursionError
    when nested too deeply for Python."""
    # orjson is several times faster but writes NaN and Infinity as null and
    # refuses integers past 64 bits and nesting past 255 levels: json decides
    # those (a null in the output may have been a NaN).
    try:
        text = _orjson_dumps(value)
    except _OrjsonEncodeError:
        return _json_encode(value)
    if b"null" in text:
        return _json_encode(value)
    return text.decode()


def encode_finite_metadata(value: dict[str, Any]) -> str:
    """``encode_metadata`` for values known to hold no NaN, no Infinity and no
    integer past 64 bits, as orjson decodes them: no check for a null."""
    try:
        return _orjson_dumps(value).decode()
    except _OrjsonEncodeError:
        return _json_encode(value)


def coerce(record: Any, received_at: float, check_text: bool = False) -> tuple[Row, dict[str, str]]:
    """One record as a row in ``ROW_COLUMNS`` order, and ``{field: reason}`` for
    each field that did not fit (empty when none); Rejected when nothing of it
    can be stored.

    ``received_at`` also stands in for a missing or unusable ``created_at``.
    ``check_text`` walks every string for NUL and unpaired surrogates, which
    no store can hold (``ingest`` asks for it when the body may contain one).
    """
    if type(record) is not dict:
        raise Rejected(f"a record must be a JSON object, got {_json_type(record)}")
    coerced: dict[str, str] = {}
    if check_text:
        record = _clean_record(record, coerced)
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    invalid: dict[str, Any] = {}
    for key, value in record.items():
        convert = FIELDS.get(key)
        if convert is None:
            extra[key] = value
        elif value is not None:
            try:
                values[key] = convert(value)
            except Unfit as exc:
                invalid[key] = value
                coerced[key] = str(exc)
                if exc.fallback is not None:
                    values[key] = exc.fallback
    get = values.get
    message = get("message")
    if message is None:
        message = ""
        coerced.setdefault("message", MISSING_MESSAGE)
    metadata = get("metadata")
    if extra:
        # Top-level fields win over the same key in an explicit metadata
        # object: they are what the caller passed to the log call itself.
        metadata = {**metadata, **extra} if metadata else extra
    if invalid:
        metadata = dict(metadata) if metadata else {}
        if INVALID_KEY in metadata:
            invalid[INVALID_KEY] = metadata[INVALID_KEY]
        metadata[INVALID_KEY] = invalid
    metadata_json = _encode_row_metadata(metadata, coerced) if metadata else None
    return (
        get("created_at", received_at),
        get("level", DEFAULTS["level"]),
        get("log_type", DEFAULTS["log_type"]),
        get("service", DEFAULTS["service"]),
        get("environment", DEFAULTS["environment"]),
        get("service_version", DEFAULTS["service_version"]),
        get("trace_id"),
        get("user_id"),
        get("session_id"),
        get("error_type"),
        message,
        get("stack_trace"),
        get("path"),
        get("method"),
        get("action_type"),
        get("function_name"),
        get("file_path"),
        get("duration_ms"),
        metadata_json,
        get("event_id"),
        received_at,
    ), coerced


def normalise(record: Any, received_at: float, check_text: bool = False) -> Row:
    """``coerce``'s row alone."""
    return coerce(record, received_at, check_text)[0]


def _encode_row_metadata(metadata: dict[str, Any], coerced: dict[str, str]) -> str:
    try:
        try:
            return encode_metadata(metadata)
        except ValueError:
            pass
        # NaN or Infinity somewhere: JSON has no such numbers, so each is kept
        # as its text, and the top-level keys holding one are reported.
        finite = {key: _finite(value) for key, value in metadata.items()}
        for key, value in finite.items():
            if value is not metadata[key] and key != INVALID_KEY:
                coerced.setdefault(key, f"{key}: NaN or Infinity, kept as text")
        return encode_metadata(finite)
    except RecursionError:
        raise Rejected("metadata: nested too deeply to store") from None


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity replaced by its text; ``value``
    itself when it holds none."""
    return _rebuild(value, _finite_number)


def _finite_number(value: Any) -> Any:
    if type(value) is not float or math.isfinite(value):
        return value
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


class _Frame:
    """One container being rebuilt by ``_rebuild``."""

    __slots__ = ("changed", "child", "is_dict", "items", "key", "out", "source")

    def __init__(self, source: dict[Any, Any] | list[Any]):
        self.source = source
        self.is_dict = type(source) is dict
        self.items: Any = iter(source.items()) if self.is_dict else iter(source)  # type: ignore[union-attr]
        self.out: list[Any] = []
        self.changed = False
        self.key: Any = None
        self.child: Any = None


def _rebuild(root: Any, fix: Callable[[Any], Any]) -> Any:
    """``root`` with ``fix`` applied to every key and every value that is not a
    container; ``root`` itself, and each container itself, when ``fix``
    changed nothing in it. A loop, not recursion: a value may be nested as
    deep as the decoder allows."""
    if type(root) is not dict and type(root) is not list:
        return fix(root)
    stack = [_Frame(root)]
    while True:
        frame = stack[-1]
        for item in frame.items:
            if frame.is_dict:
                key, value = item
                new_key = fix(key)
                if new_key is not key:
                    frame.changed = True
            else:
                new_key, value = None, item
            if type(value) is dict or type(value) is list:
                frame.key, frame.child = new_key, value
                stack.append(_Frame(value))
                break
            new_value = fix(value)
            if new_value is not value:
                frame.changed = True
            frame.out.append((new_key, new_value) if frame.is_dict else new_value)
        else:
            stack.pop()
            built: Any = frame.source
            if frame.changed:
                built = dict(frame.out) if frame.is_dict else frame.out
            if not stack:
                return built
            parent = stack[-1]
            if built is not parent.child:
                parent.changed = True
            parent.out.append((parent.key, built) if parent.is_dict else built)


def _clean_record(record: dict[str, Any], coerced: dict[str, str]) -> dict[str, Any]:
    """``record`` with text no store can hold replaced, each top-level key
    holding some reported in ``coerced``; ``record`` itself when it holds none."""
    cleaned: dict[str, Any] = {}
    changed = False
    for key, value in record.items():
        new_key, new_value = _clean(key), _clean(value)
        if new_key is not key or new_value is not value:
            changed = True
            coerced.setdefault(
                new_key, f"{new_key}: NUL or an unpaired surrogate replaced by U+FFFD"
            )
        cleaned[new_key] = new_value
    return cleaned if changed else record


def _clean(value: Any) -> Any:
    return _rebuild(value, _clean_text)


def _clean_text(text: Any) -> Any:
    if type(text) is not str:
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A pair of surrogates becomes its character; a lone one, U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text
