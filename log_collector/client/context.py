"""Request and user context on ``contextvars``.

Each thread and each asyncio task sees its own values: a web middleware sets
the request context for the duration of one request and no other request
sees it. The record builder merges them into every record.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_request_context: ContextVar[dict[str, Any] | None] = ContextVar(
    "log_collector_request_context", default=None
)
_user_context: ContextVar[dict[str, Any] | None] = ContextVar(
    "log_collector_user_context", default=None
)


def set_request_context(**context: Any) -> None:
    """Replace the request context (path, method, ip, trace_id, ...)."""
    _request_context.set(context)


def clear_request_context() -> None:
    _request_context.set(None)


def get_request_context() -> dict[str, Any] | None:
    return _request_context.get()


def set_user_context(**context: Any) -> None:
    """Replace the user context (user_id, session_id, tenant, ...)."""
    _user_context.set(context)


def clear_user_context() -> None:
    _user_context.set(None)


def get_user_context() -> dict[str, Any] | None:
    return _user_context.get()


@contextmanager
def user_context(**context: Any) -> Iterator[None]:
    """Add to the user context inside the block; nested blocks merge; restored on exit."""
    current = _user_context.get()
    token = _user_context.set({**current, **context} if current else context)
    try:
        yield
    finally:
        _user_context.reset(token)
