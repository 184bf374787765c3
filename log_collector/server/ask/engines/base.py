"""The interface every language-model engine of `/api/ask` implements.

An engine turns a question (already interpreted by the builtin interpreter, so it knows the
service and the absolute time range) into one SQL SELECT, and rows into answer text. It never
sees a log line unless the operator enabled `include_log_lines`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from log_collector.server.ask.interpretation import Interpretation


class EngineError(Exception):
    """Any failure of an engine (network, timeout, HTTP status, unusable reply).

    The ask service catches it and falls back to the builtin SQL, naming `reason` in the
    response's `fallback`.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class Engine(Protocol):
    name: str

    def sql_for(
        self,
        question: str,
        interp: Interpretation,
        schema: str,
        dialect: str,
        error: str | None,
        previous_sql: str | None,
    ) -> str:
        """One SQL SELECT answering `question`; `error` and `previous_sql` are set on a repair.

        Raises EngineError on any failure.
        """
        ...

    def answer_text(
        self,
        question: str,
        interp: Interpretation,
        columns: list[str],
        rows: list[list],
        truncated: bool,
    ) -> str:
        """The answer in the question's language, from the rows. Raises EngineError."""
        ...
