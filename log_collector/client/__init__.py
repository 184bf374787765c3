"""The durable client: the log call, the spool, the sender.

The data path, one module each: ``facade`` (``AsyncLogClient``) -> ``record`` (build
and encode one record) -> ``delivery`` (spool, in-memory fallback, adopted spools) ->
``spool/`` (the SQLite file) -> ``sender`` (the background thread) -> ``transport``
(one POST, its outcome). Beside them: ``settings``, ``context``, ``handler``
(``logging``), ``excepthook``, ``memory`` (the fallback queue), ``replay``.
This package never imports ``log_collector.server``.
"""

from .context import (
    clear_request_context,
    clear_user_context,
    get_request_context,
    get_user_context,
    set_request_context,
    set_user_context,
    user_context,
)
from .facade import AsyncLogClient
from .handler import LogCollectorHandler
from .settings import ConfigError

__all__ = [
    "AsyncLogClient",
    "ConfigError",
    "LogCollectorHandler",
    "clear_request_context",
    "clear_user_context",
    "get_request_context",
    "get_user_context",
    "set_request_context",
    "set_user_context",
    "user_context",
]
