"""log-collector: durable log shipping through a local SQLite spool."""

__version__ = "0.1.0"

from .client import AsyncLogClient  # noqa: E402
from .config import ConfigError  # noqa: E402
from .context import (  # noqa: E402
    clear_request_context,
    clear_user_context,
    get_request_context,
    get_user_context,
    set_request_context,
    set_user_context,
    user_context,
)
from .handler import LogCollectorHandler  # noqa: E402
from .hooks import asyncio_exception_handler  # noqa: E402
from .record import DEFAULT_REDACT_KEYS, LEVELS  # noqa: E402

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
