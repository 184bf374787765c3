"""The filters every read endpoint shares, parsed once from the query string into ``Filters``.

``parse_filters`` takes the query string as ``{name: [value, ...]}`` (what
``urllib.parse.parse_qs`` and Starlette's ``multi_items`` give) and a clock, and raises
``BadQuery`` naming the parameter for anything it does not accept. Every value it keeps is
later bound as an SQL parameter; column names come only from the allowlists here.

The choices where the issue is silent:

- ``service`` and ``level`` may repeat (any of them matches); every other filter takes one
  value, and giving it twice is an error;
- ``level`` and ``min_level`` together keep the levels both admit;
- an empty value (``?service=``, as an empty form field sends) is the same as leaving the
  parameter out;
- ``since`` is inclusive and ``until`` exclusive, so adjacent windows never count a row twice;
  an ISO 8601 time without a zone is UTC; ``15m``, ``1h``, ``7d`` (also ``s`` and ``w``)
  mean that long before ``now``;
- ``q`` matches a substring of the message, case-insensitively (ASCII letters only on SQLite,
  whose ``lower()`` and ``LIKE`` fold ASCII alone: https://www.sqlite.org/lang_corefunc.html#lower);
- ``meta.KEY=VALUE`` compares a top-level metadata key's value as text: a string as itself,
  a number as its JSON text (``meta.order_id=42``), ``true``/``false``;
- ``not.FIELD=VALUE`` (repeatable) leaves out the rows whose FIELD (``service``, ``level`` or a
  column of EQUALITY_FILTERS) is VALUE, and keeps those where it is NULL: the dashboard's
  "exclude" on a facet value. Excluded levels are taken out of the admitted ones.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ...common.vocabulary import (
    ENVIRONMENT_ALIASES,
    ENVIRONMENTS,
    LEVEL_ALIASES,
    LEVELS,
    METHODS,
    canonical,
)
from .errors import BadQuery

# Filters compared for equality with a column of the same name.
EQUALITY_FILTERS = (
    "environment",
    "trace_id",
    "user_id",
    "session_id",
    "path",
    "method",
    "error_type",
    "function_name",
)
REPEATABLE_FILTERS = ("service", "level")
FILTER_NAMES = frozenset(
    (*REPEATABLE_FILTERS, *EQUALITY_FILTERS, "min_level", "since", "until", "q")
)
META_PREFIX = "meta."
NOT_PREFIX = "not."
# The fields ``not.FIELD`` may name.
EXCLUDABLE_FILTERS = (*REPEATABLE_FILTERS, *EQUALITY_FILTERS)

# Bounds on what one request may ask, so a query string cannot make an unbounded statement.
MAX_VALUE_CHARS = 1000
MAX_REPEATS = 100
MAX_META_FILTERS = 20
MAX_META_KEY_CHARS = 200

_RELATIVE = re.compile(r"(\d{1,9})([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Times the stores can hold and Python's datetime can print: years 1970 to 9999.
_MAX_US = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Filters:
    """What a request selects, every value validated. Times are whole microseconds since the
    Unix epoch (UTC); ``levels`` is None when every level is admitted; ``equals`` pairs a column
    of ``EQUALITY_FILTERS`` with its value; ``meta`` pairs a metadata key with its value."""

    now_us: int
    services: tuple[str, ...] = ()
    levels: tuple[str, ...] | None = None
    since_us: int | None = None
    until_us: int | None = None
    q: str | None = None
    equals: tuple[tuple[str, str], ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    # (column, value) pairs of EQUALITY_FILTERS a row must not have; excluded services are in
    # ``excluded_services`` (log_counts can answer them) and excluded levels left out of
    # ``levels``.
    excludes: tuple[tuple[str, str], ...] = ()
    excluded_services: tuple[str, ...] = ()


def to_microseconds(seconds: float) -> int:
    return round(seconds * 1_000_000)


def parse_filters(
    params: Mapping[str, Sequence[str]], now: float, extra: Collection[str] = ()
) -> Filters:
    """``params`` as ``Filters``, with ``now`` (Unix seconds) the reference of relative times.
    ``extra`` names the endpoint's own parameters (``limit``, ``cursor``, ...), which are left
    for it to read; any other unknown name is a BadQuery."""
    now_us = to_microseconds(now)
    single: dict[str, str] = {}
    repeated: dict[str, list[str]] = {name: [] for name in REPEATABLE_FILTERS}
    meta: list[tuple[str, str]] = []
    excluded: dict[str, list[str]] = {name: [] for name in EXCLUDABLE_FILTERS}
    for name, values in params.items():
        if name in extra:
            continue
        if isinstance(values, str):
            values = [values]
        kept = [_checked_value(name, value) for value in values]
        kept = [value for value in kept if value != ""]
        if name.startswith(NOT_PREFIX):
            field = name[len(NOT_PREFIX) :]
            if field not in excluded:
                raise BadQuery(
                    printable(name), f"not. takes one of {', '.join(EXCLUDABLE_FILTERS)}"
                )
            if len(kept) > MAX_REPEATS:
                raise BadQuery(name, f"at most {MAX_REPEATS} values")
            excluded[field].extend(kept)
        elif name in REPEATABLE_FILTERS:
            if len(kept) > MAX_REPEATS:
                raise BadQuery(name, f"at most {MAX_REPEATS} values")
            repeated[name].extend(kept)
        elif name in FILTER_NAMES or name.startswith(META_PREFIX):
            if len(kept) > 1:
                raise BadQuery(name, "give this filter once")
            if not kept:
                continue
            if name in FILTER_NAMES:
                single[name] = kept[0]
            else:
                meta.append((_meta_key(name), kept[0]))
        else:
            raise BadQuery(printable(name), "unknown parameter")
    if len(meta) > MAX_META_FILTERS:
        raise BadQuery("meta", f"at most {MAX_META_FILTERS} metadata filters")

    since_us = _time(single, "since", now_us)
    until_us = _time(single, "until", now_us)
    if since_us is not None and until_us is not None and since_us >= until_us:
        raise BadQuery("since", "since must be earlier than until")
    equals = []
    excludes = []
    for column in EQUALITY_FILTERS:
        value = single.get(column)
        if value is not None:
            equals.append((column, _column_value(column, value)))
        for value in dict.fromkeys(excluded[column]):
            excludes.append((column, _column_value(f"{NOT_PREFIX}{column}", value, column)))
    levels = _levels(repeated["level"], single.get("min_level"))
    if excluded["level"]:
        out = {_enum(f"{NOT_PREFIX}level", v, LEVELS, LEVEL_ALIASES) for v in excluded["level"]}
        levels = tuple(level for level in (levels or LEVELS) if level not in out)
    return Filters(
        now_us=now_us,
        services=tuple(dict.fromkeys(repeated["service"])),
        levels=levels,
        since_us=since_us,
        until_us=until_us,
        q=single.get("q"),
        equals=tuple(equals),
        meta=tuple(meta),
        excludes=tuple(excludes),
        excluded_services=tuple(dict.fromkeys(excluded["service"])),
    )


def _column_value(name: str, value: str, column: str | None = None) -> str:
    """``value`` of an EQUALITY_FILTERS column (``column``, else ``name``), enums in their
    canonical spelling."""
    column = column or name
    if column == "environment":
        return _enum(name, value, ENVIRONMENTS, ENVIRONMENT_ALIASES)
    if column == "method":
        return _enum(name, value, METHODS, {})
    return value


def int_param(
    params: Mapping[str, Sequence[str]], name: str, default: int, low: int, high: int
) -> int:
    """The integer parameter ``name`` (``default`` when absent), within ``low``..``high``."""
    value = one_param(params, name)
    if value is None:
        return default
    return checked_int(name, value, low, high)


def checked_int(name: str, value: object, low: int, high: int) -> int:
    """``value`` (an int or its decimal text) as an int within ``low``..``high``."""
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[+-]?\d{1,19}", text):
            raise BadQuery(name, "must be a whole number")
        number = int(text)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise BadQuery(name, "must be a whole number")
    if not low <= number <= high:
        raise BadQuery(name, f"must be from {low} to {high}")
    return number


def one_param(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    """The single value of ``name``, None when absent or empty; BadQuery when given twice."""
    values = params.get(name)
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    kept = [value for value in (_checked_value(name, v) for v in values) if value != ""]
    if len(kept) > 1:
        raise BadQuery(name, "give this parameter once")
    return kept[0] if kept else None


def parse_time(name: str, value: str, now_us: int) -> int:
    """``value``, an ISO 8601 time or a span before now (``15m``, ``1h``, ``7d``), as
    microseconds since the epoch."""
    text = value.strip()
    relative = _RELATIVE.fullmatch(text)
    if relative:
        us = now_us - int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)] * 1_000_000
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise BadQuery(
                name, "expected an ISO 8601 time or a span such as 15m, 1h, 7d"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            us = (moment - _EPOCH) // timedelta(microseconds=1)
        except OverflowError:
            us = -1
    if not 0 <= us <= _MAX_US:
        raise BadQuery(name, "outside the years 1970 to 9999")
    return us


def iso(us: int) -> str:
    """Microseconds since the epoch as ISO 8601 UTC text with microseconds and ``+00:00``, the
    form of the SQLite view ``logs_iso``."""
    return (_EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds")


def _time(single: dict[str, str], name: str, now_us: int) -> int | None:
    value = single.get(name)
    return None if value is None else parse_time(name, value, now_us)


def _levels(levels: list[str], min_level: str | None) -> tuple[str, ...] | None:
    admitted: set[str] | None = None
    if levels:
        admitted = {_enum("level", value, LEVELS, LEVEL_ALIASES) for value in levels}
    if min_level is not None:
        lowest = _enum("min_level", min_level, LEVELS, LEVEL_ALIASES)
        above = set(LEVELS[LEVELS.index(lowest) :])
        admitted = above if admitted is None else admitted & above
    if admitted is None:
        return None
    return tuple(level for level in LEVELS if level in admitted)


def _enum(name: str, value: str, values: tuple[str, ...], aliases: dict[str, str]) -> str:
    found = canonical(value, values, aliases)
    if found is None:
        raise BadQuery(name, f"must be one of {', '.join(values)}")
    return found


def _meta_key(name: str) -> str:
    key = name[len(META_PREFIX) :]
    if not key:
        raise BadQuery(name, "name a metadata key: meta.KEY=VALUE")
    if len(key) > MAX_META_KEY_CHARS:
        raise BadQuery(printable(name), f"a metadata key has at most {MAX_META_KEY_CHARS} chars")
    return key


def _checked_value(name: str, value: object) -> str:
    """``value`` when it is text both stores can bind: no NUL (PostgreSQL text cannot hold
    one), no unpaired surrogate (not encodable as UTF-8), at most MAX_VALUE_CHARS."""
    if not isinstance(value, str):
        raise BadQuery(printable(name), "must be text")
    if len(value) > MAX_VALUE_CHARS:
        raise BadQuery(printable(name), f"at most {MAX_VALUE_CHARS} characters")
    if "\x00" in value or not encodable(value):
        raise BadQuery(printable(name), "contains a NUL or an unpaired surrogate")
    if not encodable(name) or "\x00" in name:
        raise BadQuery(printable(name), "contains a NUL or an unpaired surrogate")
    return value


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(name: object) -> str:
    """A parameter name safe to echo in an error: bounded, every odd character escaped."""
    text = name if isinstance(name, str) else repr(name)
    text = text[:100]
    if text.isprintable() and encodable(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
