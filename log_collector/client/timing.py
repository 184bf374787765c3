"""Timing a block or a function: ``client.timer(...)`` and ``client.measure(...)``.

Each logs one record with ``duration_ms``; when the block or function raised, the
record is an error with the trace, and the exception goes on.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Protocol


class _Client(Protocol):
    """What timing needs of an ``AsyncLogClient`` (a protocol: no import of the facade)."""

    def log(self, level: Any, message: Any, /, auto_caller: bool = True, **fields: Any) -> None: ...

    def error_with_trace(
        self, message: str, exception: BaseException | None = None, **fields: Any
    ) -> None: ...


def _elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


class Timer(AbstractContextManager["Timer"]):
    """``with client.timer("query"):`` logs ``duration_ms`` (with the trace if it raised)."""

    def __init__(self, client: _Client, message: str, level: str, fields: dict[str, Any]):
        self._client, self._message, self._level, self._fields = client, message, level, fields
        self._start = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration_ms = _elapsed_ms(self._start)
        if exc is not None:
            self._client.error_with_trace(
                self._message, exception=exc, duration_ms=duration_ms, **self._fields
            )
        else:
            self._client.log(self._level, self._message, duration_ms=duration_ms, **self._fields)


def measured(
    client: _Client,
    fn: Callable[..., Any],
    message: str | None,
    level: str,
    fields: dict[str, Any],
) -> Callable[..., Any]:
    """``fn`` wrapped (a coroutine function stays one) to log each call's duration; the
    record names ``fn``'s own code as where it was logged from."""
    name = getattr(fn, "__name__", "function")
    where: dict[str, Any] = {"function_name": name}
    code = getattr(fn, "__code__", None)
    if code is not None:
        where["file_path"] = code.co_filename
        where["line_no"] = code.co_firstlineno

    def done(start: float) -> None:
        client.log(
            level,
            message or f"{name} completed",
            duration_ms=_elapsed_ms(start),
            **where,
            **fields,
        )

    def failed(start: float, exc: BaseException) -> None:
        client.error_with_trace(
            message or f"{name} failed", exception=exc, duration_ms=_elapsed_ms(start), **fields
        )

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                failed(start, exc)
                raise
            done(start)
            return result

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            failed(start, exc)
            raise
        done(start)
        return result

    return wrapper
