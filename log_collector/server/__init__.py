"""The server: POST /logs into PostgreSQL or an embedded SQLite file, and the
query API (/api/*, /stats) reading them back; ``role`` serves either or both.

Needs the ``server`` extra (FastAPI, uvicorn, psycopg). ``log-collector
serve`` (or ``python -m log_collector.server``, the same command) runs it.

The names below are re-exported lazily (PEP 562), so the CLI can load the
``serve`` command (``command``) without loading FastAPI or uvicorn.
https://peps.python.org/pep-0562/
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module that defines it
_EXPORTS = {
    "DEFAULT_DB_URL": ".store",
    "ConnectionLimits": ".limits",
    "Limits": ".limits",
    "StoreUnavailable": ".store",
    "create_app": ".app",
    "migrate": ".run",
    "open_store": ".store",
    "serve": ".run",
}

__all__ = [
    "DEFAULT_DB_URL",
    "ConnectionLimits",
    "Limits",
    "StoreUnavailable",
    "create_app",
    "migrate",
    "open_store",
    "serve",
]

if TYPE_CHECKING:
    from .app import create_app
    from .limits import ConnectionLimits, Limits
    from .run import migrate, serve
    from .store import DEFAULT_DB_URL, StoreUnavailable, open_store


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
