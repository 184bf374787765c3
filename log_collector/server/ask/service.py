"""``AskService``: a question in, the interpretation, the SQL, the rows and the answer out.

The builtin interpreter reads every question first (intent, service, time range). Without an
engine, ``sqlgen`` writes the SQL and ``answer`` the text. With one, the engine writes the SQL
from the prompt of ``ask.prompt``; SQL that the guard refuses or that fails goes back to it with
the error, at most ``max_repairs`` times; after that, or on any engine failure, the builtin SQL
answers and the response says why (``"fallback"``). Either way the SQL runs through
``query.sqlrun``, the path of ``POST /api/sql``: the same guard, role, timeout and row limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..query.errors import BadQuery
from ..query.filters import parse_time, to_microseconds
from ..query.sqlexec import SqlQueryError, SqlResult, SqlTimeout
from ..query.sqlguard import SqlRefused
from ..query.sqlrun import Runner, json_value, run_guarded
from . import answer as templates
from .builtin import apply_choice, interpret
from .conversations import AnswerCache, Conversations, cache_key
from .engines.base import Engine, EngineError
from .interpretation import Clarification, Interpretation
from .known import KnownCache
from .prompt import schema_text, withhold_log_text
from .settings import AskSettings
from .sqlgen import build_sql, zero_filled

# Rows an answer returns at most.
ASK_LIMIT = 1000
MAX_QUESTION_CHARS = 2000
MAX_SERVICE_CHARS = 100
BODY_FIELDS = ("question", "conversation_id", "service", "since", "until", "choice")

Step = tuple[str, dict[str, Any]]


class BadAsk(Exception):
    """A field of the body is not acceptable; the route answers 400 naming ``field``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class AskRequest:
    question: str | None = None
    conversation_id: str | None = None
    service: str | None = None
    since: str | None = None
    until: str | None = None
    choice: dict[str, Any] | None = None


def parse_request(document: Any) -> AskRequest:
    """The body as an ``AskRequest``; BadAsk naming the field at fault."""
    if not isinstance(document, dict):
        raise BadAsk("body", 'must be a JSON object: {"question": "..."}')
    unknown = sorted(set(document) - set(BODY_FIELDS))
    if unknown:
        raise BadAsk(str(unknown[0])[:100], "unknown field")
    values: dict[str, Any] = {}
    for name in ("question", "conversation_id", "service", "since", "until"):
        value = document.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise BadAsk(name, "must be a string")
            if not _text_ok(value):
                raise BadAsk(name, "must be printable Unicode text")
            values[name] = value
    question = values.get("question")
    choice = document.get("choice")
    if choice is not None and not isinstance(choice, dict):
        raise BadAsk("choice", "must be the object of a clarification option's value")
    if choice is None and (question is None or not question.strip()):
        raise BadAsk("question", "is required: the question to answer")
    if question is not None and len(question) > MAX_QUESTION_CHARS:
        raise BadAsk("question", f"is longer than {MAX_QUESTION_CHARS} characters")
    service = values.get("service")
    if service is not None and not 1 <= len(service) <= MAX_SERVICE_CHARS:
        raise BadAsk("service", f"must be 1 to {MAX_SERVICE_CHARS} characters")
    if len(values.get("conversation_id") or "") > 100:
        raise BadAsk("conversation_id", "is not a conversation id")
    return AskRequest(choice=choice, **values)


def _text_ok(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(ord(c) < 32 and c not in "\t\n\r" for c in value)


class AskService:
    def __init__(
        self,
        state: Runner,
        settings: AskSettings,
        *,
        engine: Engine | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.settings = settings
        if engine is None and settings.engine != "builtin":
            from .engines import load_engine

            engine = load_engine(settings)
        self.engine = engine
        self.conversations = Conversations(clock=clock)
        self.answers = AnswerCache(clock=clock)
        self.known = KnownCache(state.store, clock=clock)

    def ask(self, body: dict[str, Any] | AskRequest, now: float) -> dict[str, Any]:
        """The whole answer (see the issue's response shape) for ``body`` at ``now`` (Unix s)."""
        result: dict[str, Any] = {}
        for _, data in self.ask_steps(body, now):
            result.update(data)
        return result

    def ask_steps(self, body: dict[str, Any] | AskRequest, now: float) -> Iterator[Step]:
        """``(event, data)`` as each part is ready: ``interpretation``, then ``clarification``
        or ``sql``, ``rows`` and ``answer``; merged, the data is ``ask``'s answer. Raises
        BadAsk before the first step for a bad body; SqlTimeout, SqlStoreUnavailable or
        StoreUnavailable when the store fails."""
        started = time.perf_counter()
        request = body if isinstance(body, AskRequest) else parse_request(body)
        now_us = to_microseconds(now)
        overrides = _overrides(request, now_us)
        known = self.known.get(now)
        conversation = self.conversations.get(request.conversation_id)
        previous = conversation.last
        question = request.question or ""
        if request.choice is not None:
            if conversation.pending is None:
                raise BadAsk("choice", "no clarification waits for a choice in this conversation")
            try:
                parsed: Interpretation | Clarification = apply_choice(
                    conversation.pending, request.choice, known
                )
            except ValueError as exc:
                raise BadAsk("choice", str(exc)) from None
            question = conversation.pending_question or question
        else:
            parsed = interpret(question, known, previous, now_us)
        if isinstance(parsed, Interpretation) and overrides:
            parsed = parsed.replace(**overrides)

        base = {
            "conversation_id": conversation.id,
            "sql": None,
            "columns": [],
            "rows": [],
            "truncated": False,
            "engine": "builtin",
            "cached": False,
        }
        if isinstance(parsed, Clarification):
            self.conversations.save(conversation, pending=parsed.pending, question=question)
            pending = parsed.pending.to_json() if parsed.pending is not None else None
            yield "interpretation", {**base, "interpretation": pending}
            yield (
                "clarification",
                {
                    "clarification": parsed.to_json(),
                    "answer": parsed.question,
                    "elapsed_ms": _ms(started),
                },
            )
            return
        interp = parsed
        yield "interpretation", {**base, "interpretation": interp.to_json()}
        if interp.intent == "unknown" and self.engine is None:
            self.conversations.save(conversation)
            yield (
                "answer",
                {
                    "answer": templates.unknown_answer(interp.language),
                    "elapsed_ms": _ms(started),
                },
            )
            return

        engine_name = self.engine.name if self.engine is not None else "builtin"
        key = cache_key(engine_name, question, previous, interp)
        cached = self.answers.get(key)
        if cached is not None:
            self.conversations.save(conversation, last=interp, question=question)
            yield "sql", {"sql": cached["sql"], "engine": cached["engine"], "cached": True}
            yield "rows", {k: cached[k] for k in ("columns", "rows", "truncated")}
            yield "answer", {**_answer_part(cached), "elapsed_ms": _ms(started)}
            return

        deadline = started + self.settings.deadline_s
        sql, result, produced_by, fallback, chart = self._sql_and_rows(
            question, interp, known, deadline
        )
        if sql is None:
            # The engine failed on a question the builtin interpreter cannot map.
            self.conversations.save(conversation)
            yield "sql", {"sql": None, "engine": "builtin", "fallback": fallback}
            yield (
                "answer",
                {
                    "answer": templates.unknown_answer(interp.language),
                    "elapsed_ms": _ms(started),
                },
            )
            return
        assert result is not None
        sql_part: dict[str, Any] = {"sql": sql, "engine": produced_by}
        if fallback is not None:
            sql_part["fallback"] = fallback
        yield "sql", sql_part
        rows = [[json_value(value) for value in row] for row in result.rows]
        if produced_by == "builtin" and not result.truncated:
            rows = zero_filled(interp, rows, ASK_LIMIT)
        yield "rows", {"columns": result.columns, "rows": rows, "truncated": result.truncated}
        text = self._answer_text(
            question, interp, sql, result.columns, rows, result.truncated, deadline
        )
        done: dict[str, Any] = {"answer": text}
        if chart is not None:
            done["chart"] = chart
        self.answers.put(
            key,
            {
                **sql_part,
                **done,
                "columns": result.columns,
                "rows": rows,
                "truncated": result.truncated,
            },
        )
        self.conversations.save(conversation, last=interp, question=question)
        yield "answer", {**done, "elapsed_ms": _ms(started)}

    def _sql_and_rows(
        self, question: str, interp: Interpretation, known: Any, deadline: float
    ) -> tuple[str | None, SqlResult | None, str, str | None, dict | None]:
        """``(sql, result, engine, fallback, chart)``; ``deadline`` on ``time.perf_counter``."""
        dialect = self.state.sql_dialect
        fallback = None
        if self.engine is not None:
            done, fallback = self._from_engine(question, interp, known, dialect, deadline)
            if done is not None:
                sql, result = done
                return sql, result, self.engine.name, None, _engine_chart(interp, result)
            if interp.intent == "unknown":
                return None, None, "builtin", fallback, None
        sql, chart = build_sql(interp, dialect)
        return sql, run_guarded(self.state, sql, ASK_LIMIT), "builtin", fallback, chart

    def _from_engine(
        self, question: str, interp: Interpretation, known: Any, dialect: str, deadline: float
    ) -> tuple[tuple[str, SqlResult] | None, str]:
        """The engine's SQL and its rows, or None and why it failed."""
        assert self.engine is not None
        schema = schema_text(
            dialect,
            known.services,
            interp,
            ASK_LIMIT,
            include_log_lines=self.settings.include_log_lines,
        )
        error: str | None = None
        sql: str | None = None
        for _ in range(1 + self.settings.max_repairs):
            if not self._time_for_a_call(deadline):
                limit = self.settings.deadline_s
                why = f"no time left for another call within the question's {limit:g} s"
                return None, f"{self.engine.name}: {why}" + (f" (last: {error})" if error else "")
            try:
                sql = self.engine.sql_for(question, interp, schema, dialect, error, sql)
            except EngineError as exc:
                return None, f"{self.engine.name} failed: {exc.reason}"
            try:
                return (sql, run_guarded(self.state, sql, ASK_LIMIT)), ""
            except SqlRefused as exc:
                error = f"refused by the guard: {exc.reason}"
            except SqlQueryError as exc:
                error = f"the query failed: {exc.reason}"
            except SqlTimeout as exc:
                error = f"the query ran past its timeout: {exc.reason}"
        repairs = self.settings.max_repairs
        return None, f"{self.engine.name}'s SQL still failed after {repairs} repairs: {error}"

    def _time_for_a_call(self, deadline: float) -> bool:
        """Whether an engine call that takes its whole ``timeout_s`` would still end by
        ``deadline``."""
        return time.perf_counter() + self.settings.timeout_s <= deadline

    def _answer_text(
        self,
        question: str,
        interp: Interpretation,
        sql: str,
        columns: list[str],
        rows: list[list[Any]],
        truncated: bool,
        deadline: float,
    ) -> str:
        if self.engine is not None and self._time_for_a_call(deadline):
            shown = rows
            if not self.settings.include_log_lines:
                # A log line's text never reaches the engine, whatever the column is called.
                shown = withhold_log_text(sql, self.state.sql_dialect, columns, rows)
            try:
                return self.engine.answer_text(question, interp, columns, shown, truncated)
            except EngineError:
                pass
        if interp.intent == "unknown":
            return f"{len(rows)} row(s)."
        try:
            return templates.answer_text(interp, columns, rows, truncated)
        except (KeyError, TypeError, ValueError):
            # The engine's SQL returned other columns than the builtin's template reads.
            return f"{len(rows)} row(s)."


def _overrides(request: AskRequest, now_us: int) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if request.service is not None:
        changes["service"] = request.service
    for name in ("since", "until"):
        value = getattr(request, name)
        if value is not None:
            try:
                changes[f"{name}_us"] = parse_time(name, value, now_us)
            except BadQuery as exc:
                raise BadAsk(name, exc.message) from None
    since, until = changes.get("since_us"), changes.get("until_us")
    if since is not None and until is not None and since >= until:
        raise BadAsk("since", "must be earlier than until")
    return changes


def _answer_part(cached: dict[str, Any]) -> dict[str, Any]:
    part = {"answer": cached["answer"]}
    if "chart" in cached:
        part["chart"] = cached["chart"]
    return part


def _engine_chart(interp: Interpretation, result: SqlResult) -> dict[str, str] | None:
    """A time series chart when the engine's rows have the builtin's columns for it."""
    if interp.intent in ("counts_over_time", "latency_over_time") and len(result.columns) >= 2:
        return {"kind": "timeseries", "x": result.columns[0], "y": result.columns[-1]}
    return None


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
