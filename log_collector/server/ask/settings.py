"""How ``/api/ask`` answers: the engine and its connection, from ``create_app``'s ``ask``
argument or the environment, validated once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

ENGINES = ("builtin", "anthropic", "openai")
ENGINE_ENV = "LOG_COLLECTOR_ASK_ENGINE"
MODEL_ENV = "LOG_COLLECTOR_ASK_MODEL"
BASE_URL_ENV = "LOG_COLLECTOR_ASK_BASE_URL"
API_KEY_ENV = "LOG_COLLECTOR_ASK_API_KEY"
# The vendors' own variables, read when LOG_COLLECTOR_ASK_API_KEY is not set.
VENDOR_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


@dataclass(frozen=True)
class AskSettings:
    """``engine``: ``builtin`` (no network), ``anthropic`` (Messages API) or ``openai`` (Chat
    Completions, any server speaking it at ``base_url``: Ollama, vLLM, llama.cpp).
    ``timeout_s``: seconds per engine call; ``max_repairs``: SQL the guard refused or that failed
    sent back to the engine at most this many times; ``include_log_lines``: let log text into
    prompts (off: the engine sees the schema and the store's service names only)."""

    engine: str = "builtin"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = 20.0
    max_repairs: int = 2
    include_log_lines: bool = False

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"ask engine {self.engine!r}: use one of {', '.join(ENGINES)}")
        if not self.timeout_s > 0:
            raise ValueError(f"ask timeout_s must be a positive number, got {self.timeout_s}")
        if not 0 <= self.max_repairs <= 5:
            raise ValueError(f"ask max_repairs must be from 0 to 5, got {self.max_repairs}")

    def __repr__(self) -> str:
        # The key never reaches a log line or a traceback.
        key = "set" if self.api_key else None
        return (
            f"AskSettings(engine={self.engine!r}, model={self.model!r}, "
            f"base_url={self.base_url!r}, api_key={key!r}, timeout_s={self.timeout_s}, "
            f"max_repairs={self.max_repairs}, include_log_lines={self.include_log_lines})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AskSettings:
        env = os.environ if environ is None else environ
        engine = env.get(ENGINE_ENV, "").strip() or "builtin"
        if engine not in ENGINES:
            raise ValueError(f"{ENGINE_ENV}={engine!r}: use one of {', '.join(ENGINES)}")
        key = env.get(API_KEY_ENV) or env.get(VENDOR_KEY_ENV.get(engine, ""), "") or None
        return cls(
            engine=engine,
            model=env.get(MODEL_ENV) or None,
            base_url=env.get(BASE_URL_ENV) or None,
            api_key=key,
        )
