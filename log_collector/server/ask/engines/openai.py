"""The ``openai`` engine: any server speaking OpenAI's Chat Completions API.

``POST {base_url}/chat/completions`` with ``Authorization: Bearer <key>`` (left out when no key
is set, as a local server needs none) and the body ``{model, messages: [{role: "system"},
{role: "user"}, ...], temperature: 0}``; the reply's text is ``choices[0].message.content``
(https://platform.openai.com/docs/api-reference/chat/create). The base URL defaults to
OpenAI's; a local model server speaks the same API under its own: Ollama
``http://127.0.0.1:11434/v1``, vLLM ``http://127.0.0.1:8000/v1``, llama.cpp's llama-server
``http://127.0.0.1:8080/v1``. Retries, the time limit and the error texts are ``_http``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import chat
from ._http import DEFAULT_RETRY, REAL_SEAMS, RetryPolicy, Seams
from .base import EngineError
from .chat import ChatEngine, HttpChatApi, check_base_url, require

NAME = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT_S = 20.0
_PATH = "/chat/completions"


class OpenAIChat(HttpChatApi):
    """A :class:`~.chat.ChatApi` over Chat Completions."""

    name = NAME

    def __init__(
        self,
        api_key: str | None = None,
        model: str = DEFAULT_MODEL,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy = DEFAULT_RETRY,
        seams: Seams = REAL_SEAMS,
    ) -> None:
        if (check_base_url(base_url) + _PATH).startswith(DEFAULT_BASE_URL):
            require(api_key, "LOG_COLLECTOR_ASK_API_KEY (or OPENAI_API_KEY)", NAME)
        self._api_key = api_key or None
        super().__init__(model, base_url, _PATH, timeout_s, retry, seams)

    def complete(self, system: str, messages: Sequence[dict[str, str]], max_tokens: int) -> str:
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}]
            + [{"role": m["role"], "content": m["content"]} for m in messages],
            "temperature": 0,
        }
        # No max_tokens: OpenAI's reasoning models refuse it (they take max_completion_tokens,
        # which local servers do not know), and the prompts ask for a statement or a few
        # sentences.
        headers = {"authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        secrets = (self._api_key,) if self._api_key else ()
        return reply_text(self._post(headers, body, secrets))


def reply_text(reply: Any) -> str:
    """``choices[0].message.content`` of a Chat Completions reply; EngineError otherwise (a
    refusal included)."""
    choices = reply.get("choices") if isinstance(reply, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise EngineError(f"{NAME}: the reply has no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise EngineError(f"{NAME}: the reply's first choice has no message")
    content = message.get("content")
    if isinstance(content, str) and content.strip():
        return content
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        raise EngineError(f"{NAME}: the model refused: {refusal[:200]}")
    raise EngineError(f"{NAME}: the reply's message holds no text")


def engine_from_settings(settings: Any, seams: Seams = REAL_SEAMS) -> ChatEngine:
    """The engine ``AskSettings`` describe; unset values take this module's defaults."""
    return chat.engine_from_settings(
        OpenAIChat, settings, seams, model=DEFAULT_MODEL, base_url=DEFAULT_BASE_URL
    )
