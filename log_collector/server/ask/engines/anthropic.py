"""The ``anthropic`` engine: Claude through the Messages API.

``POST {base_url}/v1/messages`` with the headers ``x-api-key`` and ``anthropic-version:
2023-06-01`` and the body ``{model, max_tokens, system, messages: [{role, content}]}``; the
reply's text is its ``content`` blocks of type ``text``
(https://docs.anthropic.com/en/api/messages, errors: https://docs.anthropic.com/en/api/errors).
Retries, the time limit and the error texts are ``_http``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import chat
from ._http import DEFAULT_RETRY, REAL_SEAMS, RetryPolicy, Seams
from .base import EngineError
from .chat import ChatEngine, HttpChatApi, require

NAME = "anthropic"
DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MODEL = "claude-sonnet-4-5"
API_VERSION = "2023-06-01"
DEFAULT_TIMEOUT_S = 20.0


class AnthropicMessages(HttpChatApi):
    """A :class:`~.chat.ChatApi` over the Messages API."""

    name = NAME

    def __init__(
        self,
        api_key: str,
        model: str = DEFAULT_MODEL,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy = DEFAULT_RETRY,
        seams: Seams = REAL_SEAMS,
    ) -> None:
        self._api_key = require(api_key, "LOG_COLLECTOR_ASK_API_KEY (or ANTHROPIC_API_KEY)", NAME)
        super().__init__(model, base_url, "/v1/messages", timeout_s, retry, seams)

    def complete(self, system: str, messages: Sequence[dict[str, str]], max_tokens: int) -> str:
        body = {
            "model": self.model,
            "max_tokens": max_tokens,
            "system": system,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "temperature": 0,
        }
        headers = {"x-api-key": self._api_key, "anthropic-version": API_VERSION}
        return reply_text(self._post(headers, body, secrets=(self._api_key,)))


def reply_text(reply: Any) -> str:
    """The text of a Messages API reply: its ``text`` blocks joined; EngineError otherwise."""
    content = reply.get("content") if isinstance(reply, dict) else None
    if not isinstance(content, list):
        raise EngineError(f"{NAME}: the reply has no content list")
    texts = [
        block["text"]
        for block in content
        if isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    ]
    if not texts:
        raise EngineError(f"{NAME}: the reply holds no text block")
    return "".join(texts)


def engine_from_settings(settings: Any, seams: Seams = REAL_SEAMS) -> ChatEngine:
    """The engine ``AskSettings`` describe; unset values take this module's defaults."""
    return chat.engine_from_settings(
        AnthropicMessages, settings, seams, model=DEFAULT_MODEL, base_url=DEFAULT_BASE_URL
    )
