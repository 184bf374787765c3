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
    "AsyncLogClient": ".client",
    "ConfigError": ".config",
    "clear_request_context": ".context",
    "clear_user_context": ".context",
    "get_request_context": ".context",
    "get_user_context": ".context",
    "set_request_context": ".context",
    "set_user_context": ".context",
    "user_context": ".context",
    "LogCollectorHandler": ".handler",
    "asyncio_exception_handler": ".hooks",
    "DEFAULT_REDACT_KEYS": ".record",
    "LEVELS": ".record",
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
    from .client import AsyncLogClient
    from .config import ConfigError
    from .context import (
        clear_request_context,
        clear_user_context,
        get_request_context,
        get_user_context,
        set_request_context,
        set_user_context,
        user_context,
    )
    from .handler import LogCollectorHandler
    from .hooks import asyncio_exception_handler
    from .record import DEFAULT_REDACT_KEYS, LEVELS


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        # A submodule reached as an attribute (``log_collector.handler``), as it was
        # when the package imported the client eagerly.
        if name.startswith("__") or importlib.util.find_spec(f"{__name__}.{name}") is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return importlib.import_module(f".{name}", __name__)
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
