"""Uncaught exceptions: log them as FATAL with their trace before the process dies.

``sys.excepthook`` and ``threading.excepthook`` are chained (the previous hook
still runs, so the usual traceback is still printed), and
``asyncio_exception_handler`` can be set on a loop. The record is in the spool
before the hook returns; a short flush then tries to deliver it, and if the
server is down the next process sends it.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import AsyncLogClient

FLUSH_ON_CRASH = 2.0  # seconds: a dying process should not hang on a dead server


def _report(client: AsyncLogClient, exc: BaseException | None, message: str, **fields: Any) -> None:
    if exc is None or isinstance(exc, KeyboardInterrupt | SystemExit):
        return
    client.error_with_trace(message, exception=exc, level="FATAL", **fields)
    client.flush(timeout=FLUSH_ON_CRASH)


def install_global_error_handler(client: AsyncLogClient) -> None:
    previous_sys = sys.excepthook
    previous_thread = threading.excepthook

    def sys_hook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        try:
            _report(client, exc, "Uncaught exception")
        finally:
            previous_sys(exc_type, exc, tb)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        try:
            name = args.thread.name if args.thread is not None else None
            _report(client, args.exc_value, "Uncaught exception in thread", thread_name=name)
        finally:
            previous_thread(args)

    sys.excepthook = sys_hook
    threading.excepthook = thread_hook


def asyncio_exception_handler(client: AsyncLogClient) -> Any:
    """A handler for ``loop.set_exception_handler``: logs, then defers to the default."""

    def handler(loop: Any, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if exc is not None:
            client.error_with_trace(
                context.get("message") or "Unhandled exception in event loop",
                exception=exc,
                level="FATAL",
            )
        loop.default_exception_handler(context)

    return handler
