"""An :class:`~log_collector.server.ask.engines.base.Engine` over any chat API.

:class:`ChatEngine` builds the prompts (``ask.prompt``), sends them through a :class:`ChatApi`
(``anthropic.AnthropicMessages``, ``openai.OpenAIChat``) and reads the reply: the SQL out of a
fenced block or surrounding prose (:func:`extract_sql`), the answer as plain text. It does not
check the SQL: the ask service runs it through the same guard as ``POST /api/sql`` and sends a
refusal back here as ``error`` for a repair.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ..interpretation import Interpretation
from ..prompt import SQL_SYSTEM, answer_messages, sql_messages
from ._http import RetryPolicy, Seams, post_json
from .base import EngineError

# Output budgets, in tokens: a query of a few dozen lines, an answer of a few sentences.
SQL_MAX_TOKENS = 1024
ANSWER_MAX_TOKENS = 512
# An answer longer than this is cut: the page shows a few sentences.
MAX_ANSWER_CHARS = 2000


class ChatApi(Protocol):
    """One chat completion: ``system`` and the ``messages`` (role "user" | "assistant",
    content text) in, the reply's text out; EngineError on any failure. ``max_tokens`` bounds
    the reply where the API takes it (the Messages API requires it; Chat Completions is sent
    none, see ``openai``)."""

    name: str

    def complete(self, system: str, messages: Sequence[dict[str, str]], max_tokens: int) -> str: ...


class HttpChatApi:
    """What the chat APIs over HTTP (``anthropic``, ``openai``) share: the model, the endpoint,
    the time limit, the retry policy and the seams, checked once, and the one JSON POST of a
    completion (``_http.post_json``)."""

    name: str

    def __init__(
        self,
        model: str,
        base_url: str,
        path: str,
        timeout_s: float,
        retry: RetryPolicy,
        seams: Seams,
    ) -> None:
        self.model = require(model, "LOG_COLLECTOR_ASK_MODEL", self.name)
        self.url = check_base_url(base_url) + path
        if not timeout_s > 0:
            raise ValueError("the ask engine's timeout_s must be positive")
        self.timeout_s = timeout_s
        self.retry = retry
        self.seams = seams

    def __repr__(self) -> str:
        # Never the key.
        return f"{type(self).__name__}(model={self.model!r}, url={self.url!r})"

    def _post(
        self, headers: Mapping[str, str], body: Mapping[str, Any], secrets: Sequence[str]
    ) -> Any:
        return post_json(
            self.url,
            headers,
            body,
            api=self.name,
            timeout_s=self.timeout_s,
            retry=self.retry,
            secrets=secrets,
            seams=self.seams,
        )


def engine_from_settings(
    api: Callable[..., ChatApi], settings: Any, seams: Seams, *, model: str, base_url: str
) -> ChatEngine:
    """The engine over ``api`` that ``AskSettings`` describe (``model``, ``base_url``,
    ``api_key``, ``timeout_s``, ``include_log_lines``); an unset model or base URL is ``model``
    or ``base_url``."""
    chat_api = api(
        api_key=settings.api_key,
        model=settings.model or model,
        base_url=settings.base_url or base_url,
        timeout_s=settings.timeout_s,
        seams=seams,
    )
    return ChatEngine(chat_api, include_log_lines=settings.include_log_lines)


class ChatEngine:
    """The Engine protocol over ``api``. ``include_log_lines`` lets log text into the answer
    prompt (see ``ask.prompt``); off by default."""

    def __init__(self, api: ChatApi, *, include_log_lines: bool = False) -> None:
        self.api = api
        self.name = api.name
        self.include_log_lines = include_log_lines

    def __repr__(self) -> str:
        return f"ChatEngine({self.api!r}, include_log_lines={self.include_log_lines})"

    def sql_for(
        self,
        question: str,
        interp: Interpretation,
        schema: str,
        dialect: str,
        error: str | None,
        previous_sql: str | None,
    ) -> str:
        system = f"{SQL_SYSTEM}\n\n{schema}"
        messages = sql_messages(question, interp, error, previous_sql)
        reply = self.api.complete(system, messages, SQL_MAX_TOKENS)
        return extract_sql(reply, self.name)

    def answer_text(
        self,
        question: str,
        interp: Interpretation,
        columns: list[str],
        rows: list[list],
        truncated: bool,
    ) -> str:
        system, messages = answer_messages(
            question, interp, columns, rows, truncated, include_log_lines=self.include_log_lines
        )
        reply = self.api.complete(system, messages, ANSWER_MAX_TOKENS).strip()
        if not reply:
            raise EngineError(f"{self.name}: the reply holds no answer text")
        return reply[:MAX_ANSWER_CHARS]


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_SQL_LABELS = ("sql", "sqlite", "postgres", "postgresql", "pgsql")
# Where the statement starts: the first line beginning with SELECT or a CTE (any case) or another
# statement keyword in upper case (a model that answers "DELETE FROM logs" must see the guard
# refuse it and be told why); else SELECT or WITH in upper case inside a line ("Here it is:
# SELECT ..."). Never the word "select" or "with" of a sentence.
_START_OF_LINE = re.compile(
    r"^[ \t]*((?i:SELECT\b|WITH\s+(?:RECURSIVE\s+)?\w+\s+AS\s*\()|"
    r"(?:WITH|VALUES|INSERT|UPDATE|DELETE|DROP|CREATE|ALTER|PRAGMA|ATTACH|DETACH|SET|COPY|"
    r"GRANT|REVOKE|TRUNCATE|VACUUM|REINDEX|BEGIN|COMMIT|ROLLBACK|CALL|DO|EXPLAIN|LOAD)\b)",
    re.MULTILINE,
)
_START_IN_TEXT = re.compile(r"(?<![\w.])(WITH|SELECT)\b")
# Words that continue a query on a new paragraph; any other paragraph after the SQL is prose.
_CONTINUES = re.compile(
    r"(SELECT|FROM|WHERE|GROUP|ORDER|HAVING|LIMIT|OFFSET|UNION|INTERSECT|EXCEPT|JOIN|LEFT|RIGHT|"
    r"INNER|FULL|CROSS|ON|AND|OR|WINDOW|AS|WITH|CASE|WHEN|THEN|ELSE|END|[(),]|--)\b",
    re.IGNORECASE,
)
# What may follow a statement's ";" as a second statement (kept for the guard to refuse).
_STATEMENT = re.compile(
    r"(SELECT|WITH|VALUES|INSERT|UPDATE|DELETE|DROP|CREATE|ALTER|PRAGMA|ATTACH|DETACH|SET|COPY|"
    r"GRANT|REVOKE|TRUNCATE|VACUUM|REINDEX|BEGIN|COMMIT|ROLLBACK|CALL|DO|EXPLAIN|LOAD)\b",
    re.IGNORECASE,
)


def extract_sql(reply: str, api: str = "engine") -> str:
    """The SQL statement of a model's reply: the first ```sql block (else the first fenced
    block), else the text from the first line that starts a statement, with prose after it
    dropped.

    Whatever statement it is, it is returned for the guard to judge, and a second statement
    after a ``;`` is kept, so the guard refuses the reply ("exactly one statement") and the
    model is told, instead of a silent cut hiding what it wrote. EngineError when the reply
    holds no SQL at all (the model declined, or wrote only prose).
    """
    text = reply.strip()
    fenced = _FENCE.findall(text)
    if fenced:
        labelled = [body for label, body in fenced if label.lower() in _SQL_LABELS]
        text = (labelled or [body for _, body in fenced])[0].strip()
    start = _START_OF_LINE.search(text) or _START_IN_TEXT.search(text)
    if start is None:
        raise EngineError(f"{api}: the reply holds no SQL: {_gist(text)}")
    statement = text[start.start(1) :]
    if not fenced:
        statement = _drop_trailing_prose(statement)
    return _one_statement(statement)


def _drop_trailing_prose(text: str) -> str:
    paragraphs = re.split(r"\n[ \t]*\n", text)
    kept = [paragraphs[0]]
    for paragraph in paragraphs[1:]:
        if not _CONTINUES.match(paragraph.lstrip()):
            break
        kept.append(paragraph)
    return "\n\n".join(kept)


def _one_statement(text: str) -> str:
    """``text`` up to its first ``;`` outside quotes and comments, unless another statement
    follows (kept for the guard to refuse); prose after the ``;`` is dropped."""
    end = _statement_end(text)
    if end is None:
        return text.strip()
    rest = text[end + 1 :].strip()
    if rest and _STATEMENT.match(rest):
        return text.strip()
    return text[:end].strip()


def _statement_end(text: str) -> int | None:
    """Index of the first ``;`` outside string literals, quoted names and comments."""
    i = 0
    while i < len(text):
        char = text[i]
        if char in "'\"":
            close = text.find(char, i + 1)
            # A doubled quote inside a literal ('it''s') closes and reopens: the scan goes on.
            i = len(text) if close < 0 else close + 1
            continue
        if text.startswith("--", i):
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline + 1
            continue
        if text.startswith("/*", i):
            close = text.find("*/", i + 2)
            i = len(text) if close < 0 else close + 2
            continue
        if char == ";":
            return i
        i += 1
    return None


def _gist(text: str) -> str:
    words = " ".join(text.split())
    return repr(words[:80] + ("..." if len(words) > 80 else ""))


def require(value: str | None, setting: str, engine: str) -> str:
    """``value``, or the ValueError naming the setting an engine needs."""
    if not value:
        raise ValueError(f"{setting} must be set for the {engine} engine")
    return value


def check_base_url(base_url: str, setting: str = "LOG_COLLECTOR_ASK_BASE_URL") -> str:
    """``base_url`` without a trailing slash; ValueError unless it is an http(s) URL."""
    if not re.match(r"https?://[^/\s]+", base_url or ""):
        raise ValueError(f"{setting} must be an http:// or https:// URL, got {base_url!r}")
    return base_url.rstrip("/")
