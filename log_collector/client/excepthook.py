"""Uncaught exceptions: log them as FATAL with their trace before the process dies.

``install_global_error_handler(client)`` (what ``enable_global_error_handler=True``
does) puts one hook in ``sys.excepthook`` and one in ``threading.excepthook``
for the whole process, whichever number of clients asked: each uncaught
exception is logged once per registered client, and the hooks that were there
before still run (so the usual traceback is still printed). The record is in
the spool before the hook returns; a short flush then tries to deliver it,
and if the server is down the next process using the spool directory sends it.
``asyncio_exception_handler(client)`` is a handler for ``loop.set_exception_handler``.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Protocol

__all__ = [
    "asyncio_exception_handler",
    "install_global_error_handler",
    "uninstall_global_error_handler",
]


class _Client(Protocol):
    """What the hooks need of an ``AsyncLogClient``; a protocol, so that the facade can
    import this module without this one importing the facade."""

    def error_with_trace(
        self, message: str, exception: BaseException | None = None, **fields: Any
    ) -> None: ...

    def flush(self, timeout: float | None = None) -> bool: ...


FLUSH_ON_CRASH = 2.0  # seconds, for all clients together: a dying process should not hang

_lock = threading.Lock()
# Strong references: a script that enabled the handler and dropped its client
# still wants its crash logged.
_clients: list[_Client] = []
_previous_sys: Any = None
_previous_thread: Any = None
# Whether our hook is in each chain. It stays there (passing through) when
# another hook was put on top of it, and must then not be chained in again.
_in_sys_chain = False
_in_thread_chain = False


def _registered() -> list[_Client]:
    with _lock:
        return list(_clients)


def _report(exc: BaseException | None, message: str, **fields: Any) -> None:
    """Log ``exc`` as FATAL on every registered client, then flush them within one deadline."""
    if exc is None or isinstance(exc, KeyboardInterrupt | SystemExit):
        return
    clients = _registered()
    for client in clients:
        client.error_with_trace(message, exception=exc, level="FATAL", **fields)
    deadline = time.monotonic() + FLUSH_ON_CRASH
    for client in clients:
        client.flush(timeout=max(0.0, deadline - time.monotonic()))


def _sys_hook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    try:
        _report(exc, "Uncaught exception")
    except Exception:
        pass  # the previous hook must run whatever happened here
    finally:
        (_previous_sys or sys.__excepthook__)(exc_type, exc, tb)


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    try:
        name = args.thread.name if args.thread is not None else None
        _report(args.exc_value, "Uncaught exception in thread", thread_name=name)
    except Exception:
        pass
    finally:
        (_previous_thread or threading.__excepthook__)(args)


def install_global_error_handler(client: _Client) -> None:
    """Log uncaught exceptions through ``client``; a second call for it does nothing."""
    global _previous_sys, _previous_thread, _in_sys_chain, _in_thread_chain
    with _lock:
        if any(known is client for known in _clients):
            return
        _clients.append(client)
        if not _in_sys_chain:
            _previous_sys, sys.excepthook = sys.excepthook, _sys_hook
            _in_sys_chain = True
        if not _in_thread_chain:
            _previous_thread, threading.excepthook = threading.excepthook, _thread_hook
            _in_thread_chain = True


def uninstall_global_error_handler(client: _Client | None = None) -> None:
    """Stop logging uncaught exceptions through ``client`` (``None``: every client).

    When no client is left the previous hooks are put back, unless another
    hook was installed on top of ours since; ours then only passes through.
    """
    global _in_sys_chain, _in_thread_chain
    with _lock:
        if client is None:
            _clients.clear()
        else:
            _clients[:] = [known for known in _clients if known is not client]
        if _clients:
            return
        if sys.excepthook is _sys_hook:
            sys.excepthook = _previous_sys
            _in_sys_chain = False
        if threading.excepthook is _thread_hook:
            threading.excepthook = _previous_thread
            _in_thread_chain = False


def asyncio_exception_handler(client: _Client) -> Any:
    """A handler for ``loop.set_exception_handler``: logs the exception, then defers to
    the loop's default handler (which prints it)."""

    def handler(loop: Any, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        try:
            if exc is not None:
                client.error_with_trace(
                    context.get("message") or "Unhandled exception in event loop",
                    exception=exc,
                    level="FATAL",
                )
        finally:
            loop.default_exception_handler(context)

    return handler
