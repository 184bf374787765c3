"""The builtin interpreter: a question in English or Korean as an ``Interpretation``, with no
network and no model, deterministic.

It reads the question for the values it knows (services, paths and error types the store holds,
a user the store has logs of, a trace id), the time range (resolved against ``now_us``), the
bucket width, a count (top N) and the level, then picks the intent from keywords. A question
without an intent of its own that follows another ("only payment-api", "and yesterday?",
"그 서비스의 에러만") starts from the previous interpretation. When what matters is ambiguous (a
word that names two services in part, "that service" with none before) it asks back with a
``Clarification`` rather than guess.
"""

from __future__ import annotations

import re
from typing import Any

from ..query.filters import iso, parse_time
from ..store.base import ERROR_LEVELS
from .interpretation import Clarification, Interpretation
from .known import Known
from .phrases import (
    DAY_US,
    HOUR_US,
    KEYWORDS,
    SPAN,
    TODAY,
    TOPICS,
    YESTERDAY,
    B,
    E,
    midnight_us,
    read_bucket,
    read_comparison,
    read_top_n,
    read_window,
)

# The window of an intent that needs one when the question gives none.
DEFAULT_WINDOW_US = {
    "errors_in_window": DAY_US,
    "counts_over_time": DAY_US,
    "latency_over_time": DAY_US,
    "error_rate": DAY_US,
}
DEFAULT_TOP_N = 10
MAX_TOP_N = 100
DEFAULT_LATENCY_BUCKET_S = 3600
# Services offered as options of a clarification at most.
MAX_OPTIONS = 10
# Candidate user ids looked up in the store per question at most.
MAX_USER_LOOKUPS = 5

_PATH = re.compile(rf"{B}(/[A-Za-z0-9_./{{}}:-]*)")
_SAFE_PATH = re.compile(r"/[A-Za-z0-9_./-]{0,499}")
_ERROR_TYPE = re.compile(rf"{B}([A-Z][A-Za-z0-9_]*(?:Error|Exception|Timeout)){E}")
_TRACE = re.compile(r"(?:\btrace|트레이스|추적)\s*(?:id\s*)?[:#]?\s*([A-Za-z0-9-]{6,100})")
_USER_CANDIDATE = re.compile(r"(?<![A-Za-z0-9_.@:-])([A-Za-z0-9][A-Za-z0-9_.@:-]{1,254})")
_WORD = re.compile(r"[a-z0-9][a-z0-9_.-]{2,}")

# Words that never name a service in part, though a service's name may contain them.
_STOPWORD_TEXT = (
    "api apis app server service services worker web the and for with from last past hour "
    "hours minute minutes day days week today yesterday error errors rate types type users "
    "user which what how many affected top slowest endpoints endpoint latency average "
    "hourly daily every per only just logs log trace happened attempt story compare versus "
    "this that count counts"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def interpret(
    question: str, known: Known, previous: Interpretation | None, now_us: int
) -> Interpretation | Clarification:
    """What ``question`` asks, with times resolved against ``now_us`` (microseconds)."""
    text = question.strip()
    lower = text.lower()
    language = "ko" if re.search("[\uac00-\ud7a3]", text) else "en"
    found: dict[str, Any] = {}
    rest = lower

    path, rest = _path(text, rest, known)
    if path is not None:
        found["path"] = path
    trace = _TRACE.search(text)
    if trace is not None and any(c.isdigit() for c in trace.group(1)):
        found["trace_id"] = trace.group(1)
    error_type = _error_type(text, known)
    if error_type is not None:
        found["error_type"] = error_type
        # The words that named the error type name nothing else, even when a service has
        # the same name.
        rest = _without(rest, error_type.lower())
    service, ambiguous = _service(rest, known)
    if service is not None:
        found["service"] = service
    user = _user(_PATH.sub(" ", text), known, found)
    if user is not None:
        found["user_id"] = user
    window = read_window(rest, now_us)
    bucket = read_bucket(rest)
    if bucket is not None:
        found["bucket_s"] = bucket
    top = read_top_n(rest)
    if top is not None:
        found["top_n"] = min(MAX_TOP_N, max(1, top))
    # "error types" and "error rate" name a column or a ratio, not the level.
    levels_text = KEYWORDS["error_rate"].sub(" ", KEYWORDS["error_types"].sub(" ", rest))
    if KEYWORDS["errors"].search(levels_text):
        found["level"] = ERROR_LEVELS
    elif KEYWORDS["warnings"].search(rest):
        found["level"] = ("WARN",)
    if KEYWORDS["all_levels"].search(rest):
        found["level"] = None

    intent, strong = _intent(rest, found)
    if intent == "compare_windows":
        window = read_comparison(rest, now_us) or window
    follow_up = previous is not None and (
        intent is None or bool(KEYWORDS["follow_up"].search(lower))
    )

    if follow_up:
        assert previous is not None
        base = previous.replace(language=language)
        if strong and intent is not None:
            base = base.replace(intent=intent)
        changes = dict(found)
        if window is not None:
            changes["since_us"], changes["until_us"], compare = window
            if compare is not None:
                changes["compare"] = compare
        interp = base.replace(**changes)
        if KEYWORDS["that_service"].search(lower) and interp.service is None:
            return _ask_service(interp, known.services, language)
    else:
        if intent is None:
            return Interpretation("unknown", language)
        compare = None
        if window is not None:
            since_us, until_us, compare = window
        else:
            since_us, until_us = _default_window(intent, now_us)
        if intent == "compare_windows" and compare is None:
            if window is None:
                return _ask_comparison(Interpretation(intent, language, **found), now_us)
            compare = "previous_window"
        if intent == "latency_over_time" and "bucket_s" not in found:
            found["bucket_s"] = DEFAULT_LATENCY_BUCKET_S
        if intent in ("top_error_types", "slowest_endpoints"):
            found.setdefault("top_n", DEFAULT_TOP_N)
        if intent == "user_story" and "path" not in found:
            topic = topic_path(lower, known)
            if topic is not None:
                found["path"] = topic
        interp = Interpretation(
            intent, language, since_us=since_us, until_us=until_us, compare=compare, **found
        )
        if KEYWORDS["that_service"].search(lower) and interp.service is None:
            return _ask_service(interp, known.services, language)
    if ambiguous and "service" not in found and interp.intent not in ("user_story", "trace_story"):
        return _ask_service(interp, ambiguous, language)
    return interp


def apply_choice(pending: Interpretation, choice: dict[str, Any], known: Known) -> Interpretation:
    """``pending`` completed by a clarification's chosen ``value``; ValueError naming the key
    of a value it cannot take (a service the store does not hold, a malformed time)."""
    changes: dict[str, Any] = {}
    for key, value in choice.items():
        if key == "service":
            if not isinstance(value, str) or value not in known.services:
                raise ValueError("service: not a service the store holds")
            changes["service"] = value
        elif key in ("since", "until"):
            if not isinstance(value, str):
                raise ValueError(f"{key}: expected an ISO 8601 time")
            try:
                changes[f"{key}_us"] = parse_time(key, value, 0)
            except Exception:
                raise ValueError(f"{key}: expected an ISO 8601 time") from None
        elif key == "compare":
            if value not in ("previous_window", "yesterday"):
                raise ValueError("compare: expected previous_window or yesterday")
            changes["compare"] = value
        else:
            raise ValueError(f"{key}: not a field a choice sets")
    chosen = pending.replace(**changes)
    since, until = chosen.since_us, chosen.until_us
    if since is not None and until is not None and since >= until:
        raise ValueError("since: must be earlier than until")
    return chosen


def _path(text: str, rest: str, known: Known) -> tuple[str | None, str]:
    for match in _PATH.finditer(text):
        candidate = match.group(1).rstrip(".:")
        if len(candidate) < 2:
            continue
        if candidate in known.paths or _SAFE_PATH.fullmatch(candidate):
            # Removed from what the keywords are read from: "/api/v1/errors" is no error.
            return candidate, rest.replace(candidate.lower(), " ")
    return None, rest


def _error_type(text: str, known: Known) -> str | None:
    lower = text.lower()
    best = None
    for name in known.error_types:
        at = _find(lower, name.lower())
        if at >= 0 and (best is None or len(name) > len(best)):
            best = name
    if best is not None:
        return best
    match = _ERROR_TYPE.search(text)
    return match.group(1) if match else None


def _service(lower: str, known: Known) -> tuple[str | None, list[str]]:
    """The service ``lower`` names in full (the longest), else the services one of its words
    names in part: ``(None, [...])``, ambiguous when more than one."""
    exact = [name for name in known.services if _find(lower, name.lower()) >= 0]
    if exact:
        return max(exact, key=len), []
    partial: list[str] = []
    for word in dict.fromkeys(_WORD.findall(lower)):
        if word in _STOPWORDS or word.isdigit():
            continue
        for name in known.services:
            parts = re.split(r"[-_.]", name.lower())
            named = word in parts or (len(word) >= 4 and name.lower().startswith(word))
            if named and name not in partial:
                partial.append(name)
    if len(partial) == 1:
        return partial[0], []
    return None, partial


def _without(lower: str, name: str) -> str:
    """``lower`` with each whole-word occurrence of ``name`` blanked out."""
    while (at := _find(lower, name)) >= 0:
        lower = lower[:at] + " " * len(name) + lower[at + len(name) :]
    return lower


def _find(haystack: str, needle: str) -> int:
    start = 0
    while True:
        at = haystack.find(needle, start)
        if at < 0:
            return -1
        before = haystack[at - 1] if at > 0 else " "
        end = at + len(needle)
        after = haystack[end] if end < len(haystack) else " "
        if not _ident(before) and not _ident(after):
            return at
        start = at + 1


def _ident(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char in "_-.")


def _user(text: str, known: Known, found: dict[str, Any]) -> str | None:
    taken = {str(v).lower() for v in found.values() if isinstance(v, str)}
    looked = 0
    for match in _USER_CANDIDATE.finditer(text):
        candidate = match.group(1)
        if candidate.endswith("'s"):
            candidate = candidate[:-2]
        candidate = candidate.rstrip(".:-")
        if candidate.lower() in taken or candidate.lower() in known.services:
            continue
        if not any(c.isdigit() for c in candidate) and "_" not in candidate:
            continue
        if candidate.isdigit() or SPAN.fullmatch(candidate.lower()):
            continue
        if looked >= MAX_USER_LOOKUPS:
            break
        looked += 1
        if known.user_exists(candidate):
            return candidate
    return None


def _intent(rest: str, found: dict[str, Any]) -> tuple[str | None, bool]:
    """The intent and whether it is strong (a follow-up takes it over the previous one's)."""
    kw = {name: pattern.search(rest) is not None for name, pattern in KEYWORDS.items()}
    if "trace_id" in found:
        return "trace_story", True
    if kw["compare"] or (TODAY.search(rest) and YESTERDAY.search(rest)):
        return "compare_windows", True
    if kw["error_rate"]:
        return "error_rate", True
    if kw["slowest"]:
        return "slowest_endpoints", True
    if kw["latency"]:
        return "latency_over_time", True
    if kw["users"] and kw["affected"] and "user_id" not in found:
        return "users_affected", True
    if kw["error_types"]:
        return "top_error_types", True
    by_service = kw["services"] or "service" not in found
    if "error_type" in found and by_service and "bucket_s" not in found:
        return "services_with_error", True
    if "user_id" in found and (kw["story"] or not kw["errors"]):
        return "user_story", True
    if "bucket_s" in found:
        return "counts_over_time", True
    if kw["errors"] or kw["warnings"] or "error_type" in found:
        return "errors_in_window", False
    return None, False


def _default_window(intent: str, now_us: int) -> tuple[int | None, int | None]:
    width = DEFAULT_WINDOW_US.get(intent)
    if width is None:
        return None, None
    return now_us - width, now_us


def _ask_service(interp: Interpretation, services: Any, language: str) -> Clarification:
    names = list(services)[:MAX_OPTIONS]
    question = "어느 서비스를 말씀하시나요?" if language == "ko" else "Which service do you mean?"
    return Clarification(
        question,
        [{"label": name, "value": {"service": name}} for name in names],
        pending=interp,
    )


def _ask_comparison(interp: Interpretation, now_us: int) -> Clarification:
    midnight = midnight_us(now_us)
    ko = interp.language == "ko"
    options = [
        {
            "label": "오늘과 어제" if ko else "today vs yesterday",
            "value": {"since": iso(midnight), "until": iso(now_us), "compare": "yesterday"},
        },
        {
            "label": "최근 1시간과 그 전 1시간" if ko else "this hour vs the last",
            "value": {
                "since": iso(now_us - HOUR_US),
                "until": iso(now_us),
                "compare": "previous_window",
            },
        },
    ]
    question = "어느 두 기간을 비교할까요?" if ko else "Which two windows should I compare?"
    return Clarification(question, options, pending=interp)


def topic_path(question: str, known: Known) -> str | None:
    """The most frequent known path about the topic the question names ("payment", "결제")."""
    lower = question.lower()
    for topic, words in TOPICS.items():
        if any(word in lower for word in words):
            for path in known.paths:
                if topic in path.lower():
                    return path
    return None
