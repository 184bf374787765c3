"""The rules for one record: which key goes to which column, what each column
accepts, what is normalised, and what happens to a value that does not fit
(docs/architecture.md, "The server").

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
- a missing ``created_at``, or one outside 1970-01-01 to 2200-01-01, becomes the
  time of the record's event_id when that is a UUID v7, else ``received_at``
  (``fields.stand_in_time``);
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
nested too deeply to encode. ``columnar`` only speeds up the records
``coerce`` would leave unchanged. What each column accepts is in ``fields``.
"""

from __future__ import annotations

from typing import Any

from ..store.base import Row
from .encode import clean, encode_metadata, finite
from .fields import DEFAULTS, FIELDS, MISSING_MESSAGE, Unfit, json_type, stand_in_time

INVALID_KEY = "_invalid"


class Rejected(Exception):
    """One record cannot be stored at all; the message is the reason sent back to the client."""


def coerce(record: Any, received_at: float, check_text: bool = False) -> tuple[Row, dict[str, str]]:
    """One record as a row in ``ROW_COLUMNS`` order, and ``{field: reason}`` for
    each field that did not fit (empty when none); Rejected when nothing of it
    can be stored.

    ``received_at`` also stands in for a missing or unusable ``created_at`` of a record
    whose event_id holds no time.
    ``check_text`` walks every string for NUL and unpaired surrogates, which
    no store can hold (``ingest`` asks for it when the body may contain one).
    """
    if type(record) is not dict:
        raise Rejected(f"a record must be a JSON object, got {json_type(record)}")
    coerced: dict[str, str] = {}
    if check_text:
        record = _clean_record(record, coerced)
    values, extra, invalid = _convert(record, coerced)
    message = values.get("message")
    if message is None:
        message = ""
        coerced.setdefault("message", MISSING_MESSAGE)
    metadata = _merged_metadata(values.get("metadata"), extra, invalid)
    metadata_json = _encode_row_metadata(metadata, coerced) if metadata else None
    return _row(values, message, metadata_json, received_at), coerced


def normalise(record: Any, received_at: float, check_text: bool = False) -> Row:
    """``coerce``'s row alone."""
    return coerce(record, received_at, check_text)[0]


def _convert(
    record: dict[str, Any], coerced: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The record's column values, its other keys, and the original of each
    value that did not fit (its reason added to ``coerced``)."""
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
    return values, extra, invalid


def _merged_metadata(
    metadata: dict[str, Any] | None, extra: dict[str, Any], invalid: dict[str, Any]
) -> dict[str, Any] | None:
    if extra:
        # Top-level fields win over the same key in an explicit metadata
        # object: they are what the caller passed to the log call itself.
        metadata = {**metadata, **extra} if metadata else extra
    if invalid:
        metadata = dict(metadata) if metadata else {}
        if INVALID_KEY in metadata:
            invalid[INVALID_KEY] = metadata[INVALID_KEY]
        metadata[INVALID_KEY] = invalid
    return metadata


def _row(
    values: dict[str, Any], message: str, metadata_json: str | None, received_at: float
) -> Row:
    get = values.get
    created_at = get("created_at")
    if created_at is None:
        created_at = stand_in_time(get("event_id"), received_at)
    return (
        created_at,
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


def _encode_row_metadata(metadata: dict[str, Any], coerced: dict[str, str]) -> str:
    try:
        try:
            return encode_metadata(metadata)
        except ValueError:
            pass
        # NaN or Infinity somewhere: JSON has no such numbers, so each is kept
        # as its text, and the top-level keys holding one are reported.
        kept = {key: finite(value) for key, value in metadata.items()}
        for key, value in kept.items():
            if value is not metadata[key] and key != INVALID_KEY:
                coerced.setdefault(key, f"{key}: NaN or Infinity, kept as text")
        return encode_metadata(kept)
    except RecursionError:
        raise Rejected("metadata: nested too deeply to store") from None


def _clean_record(record: dict[str, Any], coerced: dict[str, str]) -> dict[str, Any]:
    """``record`` with text no store can hold replaced, each top-level key
    holding some reported in ``coerced``; ``record`` itself when it holds none."""
    cleaned: dict[str, Any] = {}
    changed = False
    for key, value in record.items():
        new_key, new_value = clean(key), clean(value)
        if new_key is not key or new_value is not value:
            changed = True
            coerced.setdefault(
                new_key, f"{new_key}: NUL or an unpaired surrogate replaced by U+FFFD"
            )
        cleaned[new_key] = new_value
    return cleaned if changed else record
