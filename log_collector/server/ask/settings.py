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
DEADLINE_ENV = "LOG_COLLECTOR_ASK_DEADLINE_S"
# The vendors' own variables, read when LOG_COLLECTOR_ASK_API_KEY is not set.
VENDOR_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


@dataclass(frozen=True)
class AskSettings:
    """``engine``: ``builtin`` (no network), ``anthropic`` (Messages API) or ``openai`` (Chat
    Completions, any server speaking it at ``base_url``: Ollama, vLLM, llama.cpp).
    ``timeout_s``: seconds per engine call; ``max_repairs``: SQL the guard refused or that failed
    sent back to the engine at most this many times; ``deadline_s``: seconds a question may wait
    for the engine in all (no call starts that could end later: the builtin SQL or answer text
    stands in); ``include_log_lines``: let log text into prompts (off: the engine sees the
    schema and the store's service names only)."""

    engine: str = "builtin"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = 20.0
    max_repairs: int = 2
    deadline_s: float = 30.0
    include_log_lines: bool = False

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"ask engine {self.engine!r}: use one of {', '.join(ENGINES)}")
        if not self.timeout_s > 0:
            raise ValueError(f"ask timeout_s must be a positive number, got {self.timeout_s}")
        if not 0 <= self.max_repairs <= 5:
            raise ValueError(f"ask max_repairs must be from 0 to 5, got {self.max_repairs}")
        if not self.deadline_s >= self.timeout_s:
            raise ValueError(
                f"ask deadline_s must be at least timeout_s ({self.timeout_s:g}), "
                f"got {self.deadline_s}"
            )

    def __repr__(self) -> str:
        # The key never reaches a log line or a traceback.
        key = "set" if self.api_key else None
        return (
            f"AskSettings(engine={self.engine!r}, model={self.model!r}, "
            f"base_url={self.base_url!r}, api_key={key!r}, timeout_s={self.timeout_s}, "
            f"max_repairs={self.max_repairs}, deadline_s={self.deadline_s}, "
            f"include_log_lines={self.include_log_lines})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AskSettings:
        env = os.environ if environ is None else environ
        engine = env.get(ENGINE_ENV, "").strip() or "builtin"
        if engine not in ENGINES:
            raise ValueError(f"{ENGINE_ENV}={engine!r}: use one of {', '.join(ENGINES)}")
        key = env.get(API_KEY_ENV) or env.get(VENDOR_KEY_ENV.get(engine, ""), "") or None
        deadline = env.get(DEADLINE_ENV, "").strip()
        try:
            extra = {"deadline_s": float(deadline)} if deadline else {}
        except ValueError:
            raise ValueError(f"{DEADLINE_ENV}={deadline!r}: a number of seconds") from None
        return cls(
            engine=engine,
            model=env.get(MODEL_ENV) or None,
            base_url=env.get(BASE_URL_ENV) or None,
            api_key=key,
            **extra,
        )
