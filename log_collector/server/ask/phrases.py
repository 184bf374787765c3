"""The words of a question, in English and Korean: keywords, time ranges, bucket widths and
counts, each read into a value the interpreter places in an ``Interpretation``.

Patterns run over the lower-cased question. Python's ``\\b`` counts Hangul as a word character,
so English words are bounded with ``\\b`` and identifiers beside Korean particles with
``B``/``E`` ("DatabaseConnectionError가" has no ``\\b`` after the error type).
"""

from __future__ import annotations

import re

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000

B = r"(?<![A-Za-z0-9_])"
E = r"(?![A-Za-z0-9_])"

UNIT_US = {"minute": 60_000_000, "hour": HOUR_US, "day": DAY_US, "week": 7 * DAY_US}
_EN_UNITS = {
    "m": "minute", "min": "minute", "mins": "minute", "minute": "minute", "minutes": "minute",
    "h": "hour", "hr": "hour", "hrs": "hour", "hour": "hour", "hours": "hour",
    "d": "day", "day": "day", "days": "day", "w": "week", "week": "week", "weeks": "week",
}  # fmt: skip
_KO_UNITS = {"분": "minute", "시간": "hour", "일": "day", "주": "week", "주일": "week"}
# "일주일" is one (일) week (주일).
_KO_NUMBERS = {"한": 1, "두": 2, "세": 3, "네": 4, "다섯": 5, "열": 10, "일": 1}

_EN_UNIT = r"(m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?)"

_RELATIVE_EN = re.compile(rf"\b(?:last|past|previous|recent)\s+(\d{{1,4}}\s*)?{_EN_UNIT}{E}")
_RELATIVE_KO = re.compile(
    r"(?:지난|최근|직전)\s*(\d{1,4}|한|두|세|네|다섯|열|일)?\s*(분|시간|주일|일|주)"
)
_BUCKET_EN = re.compile(rf"\b(?:every|per|each|by)\s+(\d{{1,4}}\s*)?{_EN_UNIT}{E}")
_BUCKET_EN_ADJ = re.compile(rf"\b(\d{{1,4}})[- ]?{_EN_UNIT}\s+(?:buckets?|intervals?|bins?)\b")
_BUCKET_KO = re.compile(r"(\d{1,4})\s*(분|시간|일)\s*(?:단위|마다|간격|별)")
_BUCKET_WORDS = (
    (re.compile(r"\bhourly\b|시간별|시간당|시간 단위"), 3600),
    (re.compile(r"\bdaily\b|일별|일 단위"), 86400),
    (re.compile(r"\bminutely\b|분별|분당|분 단위"), 60),
)
_TOP_N = re.compile(
    r"\btop\s*(\d{1,3})\b|\b(\d{1,3})\s+(?:slowest|most|top)\b|\bslowest\s+(\d{1,3})\b"
    r"|상위\s*(\d{1,3})|(\d{1,3})\s*개|(\d{1,3})\s*위"
)
TODAY = re.compile(r"\btoday\b|오늘")
YESTERDAY = re.compile(r"\byesterday\b|어제")
SPAN = re.compile(r"\d+[smhdw]")
KEYWORDS = {
    "compare": re.compile(r"\bvs\.?(?!\w)|\bversus\b|\bcompar|대비|비교"),
    "error_rate": re.compile(
        r"\berror\s*rate|\berror\s*ratio|\bfailure\s*rate|에러\s*율|에러율|에러\s*비율|오류\s*율"
        r"|오류율|오류\s*비율|에러률|실패율"
    ),
    "latency": re.compile(r"latenc|response\s*time|\bduration|지연|응답\s*시간|레이턴시"),
    "slowest": re.compile(r"\bslowest\b|\bslow\s+(?:endpoints?|paths?|routes?)|가장\s*느린|느린"),
    "users": re.compile(r"\busers?\b|사용자|유저|고객"),
    "affected": re.compile(r"\baffected\b|\bimpacted\b|\bhow\s+many\b|영향|몇\s*명|\s수\b|수$"),
    "error_types": re.compile(
        r"\berror\s*types?\b|\bexception\s*types?\b|\btypes\s+of\s+errors\b"
        r"|\bkinds\s+of\s+errors\b|(?:에러|오류|예외)\s*(?:타입|유형|종류)"
    ),
    "services": re.compile(r"\bservices?\b|서비스"),
    "story": re.compile(
        r"what\s+happened|\bhappen|\bstory\b|\blast\b|\blatest\b|무슨\s*일|마지막|최근|어떻게"
    ),
    "errors": re.compile(
        r"\berrors?\b|\bexceptions?\b|\bfailures?\b|\bfailed\b|에러|오류|예외|실패"
    ),
    "warnings": re.compile(r"\bwarn(?:ing)?s?\b|경고"),
    "all_levels": re.compile(r"\ball\s+(?:levels|logs)\b|모든\s*(?:레벨|로그)|전체\s*로그"),
    "that_service": re.compile(
        r"\b(?:that|this|same)\s+service\b|그\s*서비스|이\s*서비스|해당\s*서비스"
    ),
    "follow_up": re.compile(
        r"^\s*(?:and|what\s+about|how\s+about|only|just|now|then)\b|\bonly\b|\binstead\b"
        r"|만(?=\s|$|[?.!])|[은는]\s*[?？]?\s*$|^\s*그럼|그\s*서비스"
    ),
}
TOPICS = {
    "payment": ("payment", "결제"),
    "login": ("login", "sign in", "로그인"),
    "order": ("order", "주문"),
    "signup": ("signup", "sign up", "register", "회원가입", "가입"),
    "checkout": ("checkout", "체크아웃"),
}


def read_top_n(rest: str) -> int | None:
    match = _TOP_N.search(rest)
    if match is None:
        return None
    return int(next(group for group in match.groups() if group))


def read_window(rest: str, now_us: int) -> tuple[int, int, str | None] | None:
    """``(since_us, until_us, compare)`` of the time the question names, or None."""
    compared = read_comparison(rest, now_us) if KEYWORDS["compare"].search(rest) else None
    if compared is not None:
        return compared
    midnight = midnight_us(now_us)
    relative = _RELATIVE_EN.search(rest)
    if relative is not None:
        count = int(relative.group(1)) if relative.group(1) else 1
        unit = _EN_UNITS[relative.group(2)]
        return now_us - count * UNIT_US[unit], now_us, None
    relative = _RELATIVE_KO.search(rest)
    if relative is not None and not _BUCKET_KO.match(rest, relative.start(1) or relative.start()):
        amount = relative.group(1)
        count = 1 if amount is None else _KO_NUMBERS.get(amount) or int(amount)
        return now_us - count * UNIT_US[_KO_UNITS[relative.group(2)]], now_us, None
    if YESTERDAY.search(rest):
        return midnight - DAY_US, midnight, None
    if TODAY.search(rest):
        return midnight, now_us, None
    if re.search(r"\bthis\s+hour\b|이번\s*시간", rest):
        return now_us - now_us % HOUR_US, now_us, None
    if re.search(r"\bthis\s+week\b|이번\s*주", rest):
        return now_us - 7 * DAY_US, now_us, None
    return None


def read_comparison(rest: str, now_us: int) -> tuple[int, int, str] | None:
    """Today against yesterday (the same hours of it), or the last hour against the one before."""
    if TODAY.search(rest) and YESTERDAY.search(rest):
        return midnight_us(now_us), now_us, "yesterday"
    if re.search(r"\bhour\b|시간", rest):
        return now_us - HOUR_US, now_us, "previous_window"
    if re.search(r"\bday\b|하루|일간", rest):
        return now_us - DAY_US, now_us, "previous_window"
    return None


def midnight_us(now_us: int) -> int:
    return now_us - now_us % DAY_US


def read_bucket(rest: str) -> int | None:
    for pattern in (_BUCKET_EN, _BUCKET_EN_ADJ):
        match = pattern.search(rest)
        if match is not None:
            count = int(match.group(1)) if match.group(1) else 1
            return count * UNIT_US[_EN_UNITS[match.group(2)]] // 1_000_000
    match = _BUCKET_KO.search(rest)
    if match is not None:
        return int(match.group(1)) * UNIT_US[_KO_UNITS[match.group(2)]] // 1_000_000
    for pattern, seconds in _BUCKET_WORDS:
        if pattern.search(rest):
            return seconds
    return None
