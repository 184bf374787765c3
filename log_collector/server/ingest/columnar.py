"""Validating a whole batch a column at a time.

Checking each value with a Python function call costs more than storing it.
Here each column is checked at once with builtins that loop in C (``set``,
``map``, ``min``/``max``, one regex over the joined event ids); only a column
that fails the batch-wide check is searched value by value. The fast path
accepts a record only when every value is one ``validate.coerce`` would
store unchanged and report nothing for; every other record is left to
``coerce``, so both paths give the same rows (tests/server/test_ingest.py
checks it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from itertools import repeat
from typing import Any

from ...common.vocabulary import ENVIRONMENTS, LEVELS, LOG_TYPES, METHODS, TEXT_LIMITS
from ..store.base import ROW_COLUMNS, Row
from .encode import encode_metadata
from .fields import DEFAULTS, FIELDS, MAX_SECONDS, MIN_SECONDS

# fast_rows fills the columns before these three in a loop, then these.
assert ROW_COLUMNS[-3:] == ("metadata", "event_id", "received_at")

_KNOWN_KEYS = frozenset(FIELDS)
_NONE = type(None)
_CANONICAL = {
    "level": frozenset(LEVELS),
    "log_type": frozenset(LOG_TYPES),
    "environment": frozenset(ENVIRONMENTS),
    "method": frozenset(METHODS),
}
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ONE_UUID = re.compile(_UUID)
_UUIDS = re.compile(f"(?:{_UUID})*")
_EMPTY: dict[str, Any] = {}


def fast_rows(
    records: list[Any],
    received_at: float,
    encode: Callable[[dict[str, Any]], str] = encode_metadata,
) -> tuple[list[Row | None], set[int]]:
    """Rows for the records taken as they are, and the indexes of the others,
    whose places in the list hold rows that must be replaced by ``coerce``'s.
    ``encode`` writes the metadata JSON (``encode.encode_finite_metadata``
    when the records are known to hold only finite numbers).
    """
    slow = {i for i, r in enumerate(records) if type(r) is not dict}
    dicts = [r if type(r) is dict else _EMPTY for r in records] if slow else records
    columns: list[list[Any]] = []
    for name in ROW_COLUMNS[:-3]:  # then metadata, event_id, received_at
        # map over the unbound dict.get loops in C: no Python frame per record.
        values = list(map(dict.get, dicts, repeat(name)))
        slow.update(_unusual(name, values))
        if name == "created_at" and None in values:
            # coerce gives a record without a time the time of its event_id.
            slow.update(i for i, v in enumerate(values) if v is None)
        default = received_at if name == "created_at" else DEFAULTS.get(name)
        if default is not None and None in values:
            values = [default if v is None else v for v in values]
        columns.append(values)
    columns.append(_metadata(dicts, slow, encode))
    event_ids = list(map(dict.get, dicts, repeat("event_id")))
    slow.update(_unusual_event_ids(event_ids))
    columns.append(event_ids)
    columns.append([received_at] * len(records))
    return list(zip(*columns, strict=True)), slow


def _unusual(name: str, values: list[Any]) -> list[int] | range:
    """Indexes of the values of column ``name`` the fast path cannot store as they are."""
    present = [v for v in values if v is not None]
    if not present:
        # A record without a message is coerced (stored as "", reported).
        return [] if name != "message" else range(len(values))
    types = set(map(type, present))
    if name in _CANONICAL:
        if types == {str} and set(present) <= _CANONICAL[name]:
            return []
        canonical = _CANONICAL[name]
        return [
            i
            for i, v in enumerate(values)
            if v is not None and (type(v) is not str or v not in canonical)
        ]
    if name == "created_at" or name == "duration_ms":
        # Times past MAX_SECONDS are out of range or milliseconds: coerce decides.
        high = MAX_SECONDS if name == "created_at" else math.inf
        low = MIN_SECONDS if name == "created_at" else -math.inf
        # A NaN or an infinity makes the sum NaN or infinite.
        if (
            types == {float}
            and math.isfinite(sum(present))
            and low <= min(present)
            and max(present) < high
        ):
            return []
        return [
            i
            for i, v in enumerate(values)
            if v is not None and not (type(v) is float and math.isfinite(v) and low <= v < high)
        ]
    if name == "message":
        if len(present) == len(values) and types == {str}:
            return []
        return [i for i, v in enumerate(values) if type(v) is not str]
    limit = TEXT_LIMITS[name]
    if types == {str} and (limit is None or max(map(len, present)) <= limit):
        return []
    return [
        i
        for i, v in enumerate(values)
        if v is not None and (type(v) is not str or (limit is not None and len(v) > limit))
    ]


def _unusual_event_ids(values: list[Any]) -> list[int]:
    present = [v for v in values if v is not None]
    if not present:
        return []
    # When every id is 36 characters, one match over the joined ids checks each.
    if (
        set(map(type, present)) == {str}
        and set(map(len, present)) == {36}
        and _UUIDS.fullmatch("".join(present))
    ):
        return []
    match = _ONE_UUID.fullmatch
    return [
        i
        for i, v in enumerate(values)
        if v is not None and (type(v) is not str or match(v) is None)
    ]


def _metadata(
    dicts: list[dict[str, Any]], slow: set[int], encode: Callable[[dict[str, Any]], str]
) -> list[str | None]:
    """The metadata JSON of each record: its ``metadata`` object and every key
    that names no column, top-level keys winning."""
    # Records from one client mostly share their keys, in the same order: the
    # key tuple finds the extra keys without a set operation per record.
    extra_keys: dict[tuple[str, ...], tuple[str, ...]] = {}
    out: list[str | None] = []
    for index, record in enumerate(dicts):
        keys = tuple(record)
        extra = extra_keys.get(keys)
        if extra is None:
            extra = extra_keys[keys] = tuple(k for k in keys if k not in _KNOWN_KEYS)
        explicit = record.get("metadata")
        if not extra and explicit is None:
            out.append(None)
            continue
        if explicit is not None and type(explicit) is not dict:
            slow.add(index)
            out.append(None)
            continue
        merged = (
            {**explicit, **{k: record[k] for k in extra}}
            if explicit
            else {k: record[k] for k in extra}
        )
        try:
            out.append(encode(merged) if merged else None)
        except (ValueError, RecursionError):
            slow.add(index)
            out.append(None)
    return out
