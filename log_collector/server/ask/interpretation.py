"""What a question asks, as data: the intent and every value the SQL needs, times absolute.

An ``Interpretation`` is what the builtin interpreter makes of a question, what a follow-up
starts from, what a language-model engine is told, and part of the answer cache's key. Times are
microseconds since the Unix epoch, already resolved against the request's now, so a cached
answer never holds "the last hour" of another moment.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..query.filters import iso, parse_time

INTENTS = (
    "errors_in_window",
    "top_error_types",
    "services_with_error",
    "users_affected",
    "counts_over_time",
    "slowest_endpoints",
    "latency_over_time",
    "user_story",
    "trace_story",
    "error_rate",
    "compare_windows",
    "unknown",
)
LANGUAGES = ("en", "ko")
COMPARISONS = ("previous_window", "yesterday")


@dataclass(frozen=True)
class Interpretation:
    intent: str
    language: str = "en"
    service: str | None = None
    level: tuple[str, ...] | None = None
    since_us: int | None = None
    until_us: int | None = None
    error_type: str | None = None
    path: str | None = None
    user_id: str | None = None
    trace_id: str | None = None
    bucket_s: int | None = None
    top_n: int | None = None
    compare: str | None = None

    def __post_init__(self) -> None:
        if self.intent not in INTENTS:
            raise ValueError(f"intent: unknown intent {self.intent!r}")
        if self.language not in LANGUAGES:
            raise ValueError(f"language: expected one of {LANGUAGES}, got {self.language!r}")
        if self.compare is not None and self.compare not in COMPARISONS:
            raise ValueError(f"compare: expected one of {COMPARISONS}, got {self.compare!r}")

    def replace(self, **changes: Any) -> Interpretation:
        return dataclasses.replace(self, **changes)

    def focus(self) -> tuple[Any, ...]:
        """What a follow-up inherits: the intent and the values it narrows (no times)."""
        return (
            self.intent,
            self.service,
            self.level,
            self.error_type,
            self.path,
            self.user_id,
            self.trace_id,
            self.bucket_s,
            self.top_n,
            self.compare,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form: times as ISO 8601 UTC (``since``, ``until``), the level as a list."""
        return {
            "intent": self.intent,
            "language": self.language,
            "service": self.service,
            "level": list(self.level) if self.level is not None else None,
            "since": iso(self.since_us) if self.since_us is not None else None,
            "until": iso(self.until_us) if self.until_us is not None else None,
            "error_type": self.error_type,
            "path": self.path,
            "user_id": self.user_id,
            "trace_id": self.trace_id,
            "bucket_s": self.bucket_s,
            "top_n": self.top_n,
            "compare": self.compare,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Interpretation:
        """The inverse of ``to_json``; ValueError naming the field for a value it cannot take."""
        values: dict[str, Any] = {}
        for name in ("intent", "language", "service", "error_type", "path", "user_id"):
            values[name] = _text(document, name)
        values["trace_id"] = _text(document, "trace_id")
        level = document.get("level")
        if level is not None:
            if not isinstance(level, list) or not all(isinstance(v, str) for v in level):
                raise ValueError("level: expected a list of level names")
            values["level"] = tuple(level)
        for name in ("since", "until"):
            value = document.get(name)
            if value is not None:
                if not isinstance(value, str):
                    raise ValueError(f"{name}: expected an ISO 8601 time")
                try:
                    values[f"{name}_us"] = parse_time(name, value, 0)
                except Exception as exc:  # BadQuery: the message names the field
                    raise ValueError(f"{name}: {exc}") from None
        for name in ("bucket_s", "top_n"):
            value = document.get(name)
            if value is not None:
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError(f"{name}: expected an integer")
                values[name] = value
        values["compare"] = _text(document, "compare")
        if values["intent"] is None:
            raise ValueError("intent: missing")
        if values["language"] is None:
            values.pop("language")
        return cls(**values)


def _text(document: dict[str, Any], name: str) -> str | None:
    value = document.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name}: expected text")
    return value


@dataclass(frozen=True)
class Clarification:
    """A question back to the asker: ``options`` are ``{"label", "value": {field: value}}``, and
    the client sends the chosen ``value`` back as ``"choice"`` in the same conversation."""

    question: str
    options: list[dict[str, Any]] = field(default_factory=list)
    # The interpretation so far, which the chosen value completes.
    pending: Interpretation | None = None

    def to_json(self) -> dict[str, Any]:
        return {"question": self.question, "options": self.options}
