"""log-collector: durable log shipping through a local SQLite spool.

The public client API is re-exported lazily (PEP 562): ``import log_collector`` loads
nothing else, so ``log_collector.server`` and ``log_collector.common`` can be imported
without the client's dependencies (requests, tenacity).
https://peps.python.org/pep-0562/
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from ._version import __version__

# name -> the module that defines it
_EXPORTS = {
    "AsyncLogClient": ".client.facade",
    "ConfigError": ".client.settings",
    "clear_request_context": ".client.context",
    "clear_user_context": ".client.context",
    "get_request_context": ".client.context",
    "get_user_context": ".client.context",
    "set_request_context": ".client.context",
    "set_user_context": ".client.context",
    "user_context": ".client.context",
    "LogCollectorHandler": ".client.handler",
    "asyncio_exception_handler": ".client.excepthook",
    "DEFAULT_REDACT_KEYS": ".client.settings",
    "LEVELS": ".client.settings",
}

__all__ = [
    "DEFAULT_REDACT_KEYS",
    "LEVELS",
    "AsyncLogClient",
    "ConfigError",
    "LogCollectorHandler",
    "__version__",
    "asyncio_exception_handler",
    "clear_request_context",
    "clear_user_context",
    "get_request_context",
    "get_user_context",
    "set_request_context",
    "set_user_context",
    "user_context",
]

if TYPE_CHECKING:
    from .client.context import (
        clear_request_context,
        clear_user_context,
        get_request_context,
        get_user_context,
        set_request_context,
        set_user_context,
        user_context,
    )
    from .client.excepthook import asyncio_exception_handler
    from .client.facade import AsyncLogClient
    from .client.handler import LogCollectorHandler
    from .client.settings import DEFAULT_REDACT_KEYS, LEVELS, ConfigError


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        # A submodule reached as an attribute (``log_collector.client``), as after
        # ``import log_collector.client``.
        if name.startswith("__") or importlib.util.find_spec(f"{__name__}.{name}") is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return importlib.import_module(f".{name}", __name__)
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
