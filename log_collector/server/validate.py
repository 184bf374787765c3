"""The rules for one record: which key goes to which column, what each column
accepts, what is normalised (DESIGN.md section 6).

``normalise`` turns one decoded record into a row (``store.base.ROW_COLUMNS``
order) or raises ``Rejected`` with the reason sent back to the client, so one
bad record never fails its batch. It is the definition; ``fastpath`` only
speeds up the records it would leave unchanged.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from .store.base import Row


class Rejected(Exception):
    """One record cannot be stored; the message is the reason sent back to the client."""


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


def _text(name: str, max_chars: int | None) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        kind = type(value)
        if kind is str:
            text = value
        elif kind is int or kind is float:
            # A numeric user id or trace id is still that id: store its digits.
            text = str(value)
        else:
            raise Rejected(f"{name}: expected a string, got {_json_type(value)}")
        if max_chars is not None and len(text) > max_chars:
            raise Rejected(f"{name}: {len(text)} characters, over the limit of {max_chars}")
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
            raise Rejected(f"{name}: expected one of {expected}, got {_json_type(value)}")
        found = lookup.get(value) or lookup.get(value.strip().lower())
        if found is None:
            shown = value if len(value) <= 40 else value[:40] + "..."
            raise Rejected(f"{name}: {shown!r} is not one of {expected}")
        return found

    return convert


LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
LOG_TYPES = ("BACKEND", "FRONTEND", "MOBILE", "IOT", "WORKER")
ENVIRONMENTS = ("production", "staging", "development", "test", "local")
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")

_LEVEL_ALIASES = {"warning": "WARN", "critical": "FATAL"}
_ENVIRONMENT_ALIASES = {
    "prod": "production",
    "prd": "production",
    "stage": "staging",
    "stg": "staging",
    "dev": "development",
    "develop": "development",
    "testing": "test",
}

# Year 10000 does not fit either database's timestamp; before 1970 is not a log.
_MAX_TIMESTAMP = 253402300800.0
# Seconds past this are milliseconds (JavaScript's Date.now()): as seconds it
# would be the year 5138.
MILLISECONDS_FROM = 1e11


def _timestamp(value: Any) -> float:
    kind = type(value)
    if kind is float or kind is int:
        seconds = float(value)
    elif kind is str:
        seconds = _parse_time_text(value)
    else:
        raise Rejected(
            f"created_at: expected Unix seconds or an ISO 8601 string, got {_json_type(value)}"
        )
    if seconds >= MILLISECONDS_FROM:
        seconds /= 1000.0
    if not 0.0 <= seconds < _MAX_TIMESTAMP:  # also false for NaN
        raise Rejected(f"created_at: {value!r} is out of range")
    return seconds


def _parse_time_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise Rejected(f"created_at: {shown!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        # A time without an offset is taken as UTC, as the original server did
        # with TIMESTAMP columns.
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _duration(value: Any) -> float:
    kind = type(value)
    if (kind is float or kind is int) and math.isfinite(value):
        return float(value)
    raise Rejected(f"duration_ms: expected a finite number, got {_json_type(value)}")


def _event_id(value: Any) -> str:
    if type(value) is str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise Rejected(f"event_id: expected a UUID string, got {_json_type(value)}")


def _metadata(value: Any) -> dict[str, Any]:
    if type(value) is dict:
        return value
    raise Rejected(f"metadata: expected an object, got {_json_type(value)}")


# The text columns and their lengths (None: TEXT) in migrations/postgres/0001_logs.sql.
TEXT_LIMITS: dict[str, int | None] = {
    "service": 100,
    "service_version": 50,
    "trace_id": 100,
    "user_id": 255,
    "session_id": 100,
    "error_type": 200,
    "message": None,
    "stack_trace": None,
    "path": 500,
    "action_type": 50,
    "function_name": 300,
    "file_path": 1000,
}

# Keys that name a column, each with its converter. id, deleted and
# received_at are the server's: a record carrying them keeps them in metadata.
FIELDS: dict[str, Callable[[Any], Any]] = {
    "created_at": _timestamp,
    "level": _enum("level", LEVELS, _LEVEL_ALIASES),
    "log_type": _enum("log_type", LOG_TYPES, {}),
    "environment": _enum("environment", ENVIRONMENTS, _ENVIRONMENT_ALIASES),
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


def normalise(record: Any, received_at: float, check_text: bool = False) -> Row:
    """One record as a row in ``ROW_COLUMNS`` order; Rejected when it cannot be stored.

    ``received_at`` also stands in for a missing ``created_at``.
    ``check_text`` walks every string for NUL and unpaired surrogates, which
    no store can hold (``ingest`` asks for it when the body may contain one).
    """
    if type(record) is not dict:
        raise Rejected(f"a record must be a JSON object, got {_json_type(record)}")
    if check_text:
        _check_text(record)
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in record.items():
        convert = FIELDS.get(key)
        if convert is None:
            extra[key] = value
        elif value is not None:
            values[key] = convert(value)
    get = values.get
    message = get("message")
    if message is None:
        raise Rejected("message: required")
    metadata = get("metadata")
    if extra:
        # Top-level fields win over the same key in an explicit metadata
        # object: they are what the caller passed to the log call itself.
        metadata = {**metadata, **extra} if metadata else extra
    try:
        metadata_json = encode_metadata(metadata) if metadata else None
    except ValueError:
        raise Rejected("metadata: NaN and Infinity are not JSON") from None
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
    )


def _check_text(value: Any) -> None:
    if type(value) is str:
        if "\x00" in value:
            raise Rejected("text contains a NUL character, which the store cannot hold")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Rejected("text contains an unpaired UTF-16 surrogate") from None
    elif type(value) is dict:
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif type(value) is list:
        for item in value:
            _check_text(item)
