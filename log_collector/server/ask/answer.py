"""Template answers, in the question's language, that state the figures of the rows: the total,
the top items, the change against the previous window. Used by the builtin engine, and by a
language-model engine when its answer call fails."""

from __future__ import annotations

from typing import Any

from ..query.filters import iso
from .interpretation import Interpretation
from .sqlgen import previous_window

# Items named in an answer at most.
TOP_ITEMS = 3

EXAMPLES = {
    "en": [
        "errors in the last hour",
        "top 5 error types today",
        "payment-api errors every 5 minutes in the last hour",
    ],
    "ko": [
        "지난 1시간 에러",
        "오늘 에러 타입 상위 5개",
        "지난 1시간 payment-api 에러 5분 단위",
    ],
}


def unknown_answer(language: str) -> str:
    examples = EXAMPLES.get(language, EXAMPLES["en"])
    if language == "ko":
        return "이 질문은 이해하지 못했습니다. 이런 질문에 답할 수 있습니다: " + " / ".join(
            f"“{e}”" for e in examples
        )
    return "I could not map this question to a query. Questions I can answer: " + "; ".join(
        f"“{e}”" for e in examples
    )


def answer_text(
    interp: Interpretation, columns: list[str], rows: list[list[Any]], truncated: bool
) -> str:
    ko = interp.language == "ko"
    table = [dict(zip(columns, row, strict=False)) for row in rows]
    text = _ANSWERS[interp.intent](interp, table, ko)
    if truncated:
        text += " (결과가 잘렸습니다)" if ko else " (the rows were cut at the limit)"
    return text


def _span(interp: Interpretation, ko: bool) -> str:
    if interp.since_us is None and interp.until_us is None:
        return "전체 기간" if ko else "over all time"
    since = iso(interp.since_us)[:16].replace("T", " ") if interp.since_us is not None else "…"
    until = iso(interp.until_us)[:16].replace("T", " ") if interp.until_us is not None else "…"
    return f"{since}–{until} UTC"


def _where(interp: Interpretation, ko: bool) -> str:
    parts = [p for p in (interp.service, interp.error_type, interp.path) if p]
    if not parts:
        return ""
    return (" (" + ", ".join(parts) + ")") if ko else (" for " + ", ".join(parts))


def _top(table: list[dict[str, Any]], key: str, value: str) -> str:
    return ", ".join(f"{row[key]} ({_n(row[value])})" for row in table[:TOP_ITEMS])


def _n(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _errors_in_window(interp: Interpretation, table: list[dict], ko: bool) -> str:
    total = sum(int(row["errors"]) for row in table)
    span = _span(interp, ko)
    warnings = interp.level == ("WARN",)
    if ko:
        text = f"{span}에 {'경고' if warnings else '에러'} {total:,}건{_where(interp, ko)}"
        return text + (f". 서비스별: {_top(table, 'service', 'errors')}" if table else ".")
    text = f"{total:,} {'warnings' if warnings else 'errors'}{_where(interp, ko)} in {span}"
    return text + (f"; by service: {_top(table, 'service', 'errors')}." if table else ".")


def _top_error_types(interp: Interpretation, table: list[dict], ko: bool) -> str:
    span = _span(interp, ko)
    if not table:
        return f"{span}에 에러 타입이 없습니다." if ko else f"No error types in {span}."
    if ko:
        return f"{span} 상위 에러 타입: {_top(table, 'error_type', 'n')}."
    return f"Top error types in {span}: {_top(table, 'error_type', 'n')}."


def _services_with_error(interp: Interpretation, table: list[dict], ko: bool) -> str:
    name = interp.error_type or ""
    if not table:
        return f"{name}가 발생한 서비스가 없습니다." if ko else f"No service logged {name}."
    services = len(table)
    if ko:
        return f"{name}가 {services}개 서비스에서 발생했습니다: {_top(table, 'service', 'n')}."
    return f"{name} was logged by {services} service(s): {_top(table, 'service', 'n')}."


def _users_affected(interp: Interpretation, table: list[dict], ko: bool) -> str:
    users = int(table[0]["users"]) if table else 0
    lines = int(table[0]["n"]) if table else 0
    name = interp.error_type or ("에러" if ko else "the errors")
    if ko:
        return f"{name}의 영향을 받은 사용자는 {users:,}명입니다 ({lines:,}건)."
    return f"{users:,} user(s) were affected by {name} ({lines:,} lines)."


def _counts_over_time(interp: Interpretation, table: list[dict], ko: bool) -> str:
    total = sum(int(row["n"]) for row in table)
    span = _span(interp, ko)
    if not table:
        return f"{span}에 해당하는 로그가 없습니다." if ko else f"Nothing matched in {span}."
    peak = max(table, key=lambda row: int(row["n"]))
    width = interp.bucket_s or 0
    if ko:
        return (
            f"{span}에 {total:,}건{_where(interp, ko)}, {width // 60}분 단위 {len(table)}개 구간; "
            f"최대 {int(peak['n']):,}건 ({peak['t']})."
        )
    return (
        f"{total:,} lines{_where(interp, ko)} in {span} over {len(table)} buckets of "
        f"{width // 60} min; the busiest had {int(peak['n']):,} ({peak['t']})."
    )


def _slowest_endpoints(interp: Interpretation, table: list[dict], ko: bool) -> str:
    if not table:
        return (
            "소요 시간이 기록된 엔드포인트가 없습니다." if ko else "No endpoint logged a duration."
        )
    items = ", ".join(
        f"{row['path']} ({float(row['avg_ms']):,.1f} ms)" for row in table[:TOP_ITEMS]
    )
    if ko:
        return f"평균 소요 시간이 가장 긴 엔드포인트: {items}."
    return f"Slowest endpoints by average duration: {items}."


def _latency_over_time(interp: Interpretation, table: list[dict], ko: bool) -> str:
    where = _where(interp, ko)
    if not table:
        return (
            f"{_span(interp, ko)}에 지연 기록이 없습니다." if ko else "No durations in the window."
        )
    worst = max(table, key=lambda row: float(row["avg_ms"]))
    requests = sum(int(row["requests"]) for row in table)
    average = sum(float(row["avg_ms"]) * int(row["requests"]) for row in table) / requests
    if ko:
        return (
            f"평균 지연{where}: {average:,.1f} ms ({requests:,}건); "
            f"가장 느린 구간 {worst['t']} 평균 {float(worst['avg_ms']):,.1f} ms."
        )
    return (
        f"Average latency{where}: {average:,.1f} ms over {requests:,} requests; the slowest "
        f"bucket {worst['t']} averaged {float(worst['avg_ms']):,.1f} ms."
    )


def _story(interp: Interpretation, table: list[dict], ko: bool) -> str:
    who = interp.user_id or f"trace {interp.trace_id}"
    if not table:
        return f"{who}의 로그가 없습니다." if ko else f"No lines found for {who}."
    errors = [row for row in table if row.get("level") in ("ERROR", "FATAL")]
    services = list(dict.fromkeys(str(row["service"]) for row in table))
    last = table[-1]
    if ko:
        text = f"{who}: {len(table)}줄, 서비스 {', '.join(services)}"
        if errors:
            text += f"; 에러 {len(errors)}건, 처음은 {errors[0].get('error_type') or 'ERROR'}"
        return text + f"; 마지막 {last['created_at']} {last['level']}."
    text = f"{who}: {len(table)} lines across {', '.join(services)}"
    if errors:
        text += f"; {len(errors)} error(s), first {errors[0].get('error_type') or 'ERROR'}"
    return text + f"; last at {last['created_at']} ({last['level']})."


def _error_rate(interp: Interpretation, table: list[dict], ko: bool) -> str:
    span = _span(interp, ko)
    if not table:
        return f"{span}에 로그가 없습니다." if ko else f"No logs in {span}."
    items = ", ".join(
        f"{row['service']} {float(row['error_rate_pct']):.2f}% "
        f"({int(row['errors']):,}/{int(row['total']):,})"
        for row in table[:TOP_ITEMS]
    )
    return f"{span} 에러율: {items}." if ko else f"Error rate in {span}: {items}."


def _compare_windows(interp: Interpretation, table: list[dict], ko: bool) -> str:
    current = int(table[0]["current_count"]) if table else 0
    before = int(table[0]["previous_count"]) if table else 0
    since, until = previous_window(interp)
    was = f"{iso(since)[:16]}–{iso(until)[:16]}"
    if before:
        change = f"{(current - before) / before * 100:+.1f}%"
    else:
        change = "0에서 증가" if ko and current else ("up from zero" if current else "no change")
    what = (
        "에러"
        if ko and interp.level
        else ("errors" if interp.level else ("로그" if ko else "lines"))
    )
    if ko:
        return (
            f"{what}{_where(interp, ko)}: 현재 {current:,}건, 이전({was}) {before:,}건, {change}."
        )
    return f"{current:,} {what}{_where(interp, ko)} now against {before:,} in {was}: {change}."


_ANSWERS = {
    "errors_in_window": _errors_in_window,
    "top_error_types": _top_error_types,
    "services_with_error": _services_with_error,
    "users_affected": _users_affected,
    "counts_over_time": _counts_over_time,
    "slowest_endpoints": _slowest_endpoints,
    "latency_over_time": _latency_over_time,
    "user_story": _story,
    "trace_story": _story,
    "error_rate": _error_rate,
    "compare_windows": _compare_windows,
}
