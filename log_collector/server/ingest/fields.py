"""What each column accepts: one converter per key that names a column.

A converter returns the value the column stores, or raises ``Unfit`` with
the reason and what the column gets instead. ``FIELDS`` maps each column's
key to its converter; ``DEFAULTS`` holds the schema's defaults.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ...common.vocabulary import (
    ENVIRONMENT_ALIASES,
    ENVIRONMENTS,
    LEVEL_ALIASES,
    LEVELS,
    LOG_TYPES,
    METHODS,
    TEXT_LIMITS,
)


class Unfit(Exception):
    """One value does not fit its column: the message says why, ``fallback`` is
    what the column gets instead (None: the column's default or NULL)."""

    def __init__(self, reason: str, fallback: Any = None):
        super().__init__(reason)
        self.fallback = fallback


def json_type(value: Any) -> str:
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


def shown(value: Any) -> str:
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
            raise Unfit(f"{name}: expected a string, got {json_type(value)}")
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
            raise Unfit(f"{name}: expected one of {expected}, got {json_type(value)}")
        found = lookup.get(value) or lookup.get(value.strip().lower())
        if found is None:
            raise Unfit(f"{name}: {shown(value)} is not one of {expected}")
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
            f"created_at: expected Unix seconds or an ISO 8601 string, got {json_type(value)}"
        )
    if not MIN_SECONDS <= seconds < MAX_SECONDS:  # also false for NaN
        raise Unfit(f"created_at: {shown(value)} is outside 1970-01-01 to 2200-01-01")
    return seconds


def _number_seconds(value: float) -> float:
    try:
        seconds = float(value)
    except OverflowError:  # an int past 2**1024
        raise Unfit(f"created_at: {shown(value)} is outside 1970-01-01 to 2200-01-01") from None
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
        raise Unfit(f"created_at: {shown(text)} is not an ISO 8601 time") from None


def _duration(value: Any) -> float:
    kind = type(value)
    if kind is float or kind is int:
        try:
            number = float(value)
        except OverflowError:  # an int past 2**1024
            number = math.inf
        if math.isfinite(number):
            return number
    raise Unfit(f"duration_ms: expected a finite number, got {json_type(value)}")


def stand_in_time(event_id: str | None, received_at: float) -> float:
    """The created_at of a record that has none it can use: the time of its event_id when that
    is a UUID v7 (its first 48 bits are Unix milliseconds, RFC 9562 section 5.7), else
    ``received_at``. A retried record then gets the created_at it had the first time, and the
    PostgreSQL store's unique key (event_id, created_at) still finds the repeat; a record with
    neither gets a new time on each retry."""
    if event_id is not None and event_id[14] == "7":
        seconds = int(event_id[:8] + event_id[9:13], 16) / 1000
        if MIN_SECONDS <= seconds < MAX_SECONDS:
            return seconds
    return received_at


def _event_id(value: Any) -> str:
    if type(value) is str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise Unfit(f"event_id: expected a UUID string, got {json_type(value)}")


def _metadata(value: Any) -> dict[str, Any]:
    if type(value) is dict:
        return value
    raise Unfit(f"metadata: expected an object, got {json_type(value)}")


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
