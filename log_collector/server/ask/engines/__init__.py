"""Language-model engines for `/api/ask`, looked up by name with `load_engine`.

Each engine lives in its own module (`anthropic`, `openai`), imported only when configured, so a
server with the builtin engine never imports an HTTP client for a language model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from log_collector.server.ask.engines.base import Engine, EngineError

if TYPE_CHECKING:
    from log_collector.server.ask.settings import AskSettings

ENGINE_NAMES = ("anthropic", "openai")

__all__ = ["ENGINE_NAMES", "Engine", "EngineError", "load_engine"]


def load_engine(settings: AskSettings) -> Engine:
    """The engine `settings.engine` names; ValueError naming the setting if it cannot be built.

    An engine module offers `engine_from_settings(settings) -> Engine` (or `create_engine`).
    """
    if settings.engine not in ENGINE_NAMES:
        raise ValueError(f"ask engine: unknown engine {settings.engine!r}")
    try:
        module = importlib.import_module(f"{__name__}.{settings.engine}")
    except ImportError as exc:
        raise ValueError(f"ask engine {settings.engine!r} is not available: {exc}") from exc
    factory = getattr(module, "engine_from_settings", None) or getattr(
        module, "create_engine", None
    )
    if factory is None:
        raise ValueError(f"ask engine {settings.engine!r} offers no engine_from_settings")
    engine: Engine = factory(settings)
    return engine
