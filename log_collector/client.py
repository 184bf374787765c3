"""AsyncLogClient: the facade the application calls.

A log call builds one record, appends it to the spool (durable when the call
returns) and returns; the sender thread ships it later. The API is that of
the older in-memory client (``log-collector-async``), so code written for it
runs unchanged.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import json
import logging
import os
import sqlite3
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, overload

from . import context as _context
from ._forkgate import GATE as FORK_GATE
from .config import MiB, Settings, load_settings
from .fallback import MemoryQueue
from .record import DEFAULT_REDACT_KEYS, RecordBuilder, reseed_after_fork
from .sender import Sender, Source
from .spool import (
    NotAdoptable,
    Spool,
    SpoolError,
    candidates,
    is_corruption,
    move_aside,
    owner_alive,
    salvage,
)
from .transport import HttpTransport

logger = logging.getLogger("log_collector")

ADOPT_INTERVAL = 30.0  # seconds between scans of the spool directory for orphans

_clients: weakref.WeakSet[AsyncLogClient] = weakref.WeakSet()
_hooks_installed = False
_hooks_lock = threading.Lock()
# SQLite handles inherited through fork(): kept referenced forever so that the
# child never finalises (closes) the parent's connections. See Spool.abandon.
_INHERITED: list[Any] = []
_reentry = threading.local()
_MISSING: Any = object()  # "not passed": level/message may also arrive as keywords


def _install_process_hooks() -> None:
    """One atexit hook and one fork hook for every client, installed with the first one."""
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        atexit.register(_close_all_at_exit)
        os.register_at_fork(
            before=FORK_GATE.close,
            after_in_parent=FORK_GATE.open,
            after_in_child=_after_fork_in_child,
        )
        _hooks_installed = True


def _close_all_at_exit() -> None:
    for client in list(_clients):
        try:
            client.close()
        except Exception:
            logger.exception("log-collector: error while closing at exit")


def _after_fork_in_child() -> None:
    FORK_GATE.reset()
    reseed_after_fork()
    for client in list(_clients):
        client._reset_after_fork()


class _Done:
    """What close() returns: nothing to wait for, but ``await client.close()``
    (the older client's close was a coroutine) works too."""

    def __await__(self) -> Iterator[None]:
        return iter(())

    def __repr__(self) -> str:
        return "<closed>"


class PendingRecords(Sequence[dict[str, Any]]):
    """Read-only view of the records not yet acknowledged (``client.queue``)."""

    def __init__(self, client: AsyncLogClient) -> None:
        self._client = client

    def _sources(self) -> list[Any]:
        spool = self._client._spool
        return ([spool] if spool is not None and not spool.closed else []) + [self._client._memory]

    def __len__(self) -> int:
        return sum(source.pending() for source in self._sources())

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += len(self)
        if index < 0:
            raise IndexError("queue index out of range")
        for source in self._sources():
            if isinstance(source, Spool):
                body = source.body_at(index)
                if body is not None:
                    return json.loads(body)
                index -= source.pending()
            else:
                rows = source.read_batch(index + 1)
                if index < len(rows):
                    return json.loads(rows[index][1])
        raise IndexError("queue index out of range")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for source in self._sources():
            if isinstance(source, Spool):
                for body in source.iter_bodies():
                    yield json.loads(body)
            else:
                for _, body in source.read_batch(source.pending()):
                    yield json.loads(body)


class _Timer(AbstractContextManager["_Timer"]):
    def __init__(self, client: AsyncLogClient, message: str, level: str, fields: dict[str, Any]):
        self._client, self._message, self._level, self._fields = client, message, level, fields
        self._start = 0.0

    def __enter__(self) -> _Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration_ms = (time.perf_counter() - self._start) * 1000
        if exc is not None:
            self._client.error_with_trace(
                self._message, exception=exc, duration_ms=duration_ms, **self._fields
            )
        else:
            self._client.log(self._level, self._message, duration_ms=duration_ms, **self._fields)


class AsyncLogClient:
    """Durable, non-blocking log shipping; see DESIGN.md section 4."""

    def __init__(
        self,
        server_url: str | None = None,
        service: str | None = None,
        environment: str | None = None,
        service_version: str | None = None,
        log_type: str | None = None,
        batch_size: int = 1000,
        flush_interval: float = 1.0,
        enable_compression: bool = True,
        enable_global_error_handler: bool | None = None,
        *,
        spool_dir: str | os.PathLike[str] | None = None,
        durability: str = "normal",
        max_spool_bytes: int = 256 * MiB,
        spool_full_policy: str = "drop_oldest",
        max_record_age: float | None = None,
        timeout: float = 5.0,
        api_key: str | None = None,
        redact_keys: Any = DEFAULT_REDACT_KEYS,
        min_level: str = "TRACE",
        gzip_min_records: int = 100,
        max_backoff: float = 30.0,
        close_timeout: float = 5.0,
        fallback_capacity: int = 10_000,
        max_queue_size: int | None = None,
        max_retries: int | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        # max_queue_size and max_retries belong to the older in-memory client and
        # are accepted so its callers keep working: the spool replaces the queue
        # (bounded by max_spool_bytes) and no retry count ever drops a record.
        del max_queue_size, max_retries
        self.settings: Settings = load_settings(
            {
                "server_url": server_url,
                "service": service,
                "environment": environment,
                "service_version": service_version,
                "log_type": log_type,
                "batch_size": batch_size,
                "flush_interval": flush_interval,
                "enable_compression": enable_compression,
                "enable_global_error_handler": enable_global_error_handler,
                "spool_dir": spool_dir,
                "durability": durability,
                "max_spool_bytes": max_spool_bytes,
                "spool_full_policy": spool_full_policy,
                "max_record_age": max_record_age,
                "timeout": timeout,
                "api_key": api_key,
                "redact_keys": redact_keys,
                "min_level": min_level,
                "gzip_min_records": gzip_min_records,
                "max_backoff": max_backoff,
                "close_timeout": close_timeout,
                "fallback_capacity": fallback_capacity,
            }
        )
        s = self.settings
        # Attributes of the older client, kept readable.
        self.server_url, self.service, self.environment = s.server_url, s.service, s.environment
        self.service_version, self.log_type = s.service_version, s.log_type
        self.batch_size, self.flush_interval = s.batch_size, s.flush_interval
        self.enable_compression = s.enable_compression
        self.enable_global_error_handler = s.enable_global_error_handler

        self._clock = clock
        self._sleep = sleep
        self._builder = RecordBuilder(s, clock=clock)
        self._lock = threading.RLock()
        self._adopt_lock = threading.Lock()
        self._closed = False
        self._pid = os.getpid()
        self._spool: Spool | None = None
        self._adopted: list[Spool] = []
        self._next_scan = 0.0
        self._sender: Sender | None = None
        self._since_wake = 0
        self._dropped: dict[str, int] = {}
        self._fallback_count = 0
        self._warned_fallback = False
        self._new_memory()
        self.queue = PendingRecords(self)

        _install_process_hooks()
        _clients.add(self)
        self._open_spool()
        if self._orphans_waiting():
            self._ensure_sender()
        if s.enable_global_error_handler:
            from .hooks import install_global_error_handler

            install_global_error_handler(self)

    # -- logging ---------------------------------------------------------

    def log(
        self,
        level: Any = _MISSING,
        message: Any = _MISSING,
        /,
        auto_caller: bool = True,
        **fields: Any,
    ) -> None:
        """Append one record to the spool and return; never raises.

        ``level`` and ``message`` are positional, so a field may be called
        ``level`` or ``message`` (it is kept as ``extra_level``/``extra_message``);
        ``log(level="INFO", message="m")``, as the older client allowed, still works.
        """
        if level is _MISSING:
            level = fields.pop("level", "INFO")
        elif "level" in fields:
            fields["extra_level"] = fields.pop("level")
        if message is _MISSING:
            message = fields.pop("message", "")
        elif "message" in fields:
            fields["extra_message"] = fields.pop("message")
        if getattr(_reentry, "active", False):
            return  # a log call made while logging (e.g. from our own warnings): ignore
        _reentry.active = True
        try:
            built = self._builder.build(level, message, fields, auto_caller=auto_caller)
            if built is not None:
                self._append(*built)
                spool = self._spool
                if spool is not None and spool.drop_notice:
                    self._announce_drops(spool)
        except Exception as exc:
            self._count_drop("internal_error", 1)
            self._warn_once(f"log-collector: a log call failed inside the library: {exc!r}")
        finally:
            _reentry.active = False

    def trace(self, message: Any = _MISSING, /, auto_caller: bool = True, **fields: Any) -> None:
        self.log("TRACE", message, auto_caller, **fields)

    def debug(self, message: Any = _MISSING, /, auto_caller: bool = True, **fields: Any) -> None:
        self.log("DEBUG", message, auto_caller, **fields)

    def info(self, message: Any = _MISSING, /, auto_caller: bool = True, **fields: Any) -> None:
        self.log("INFO", message, auto_caller, **fields)

    def warn(self, message: Any = _MISSING, /, auto_caller: bool = True, **fields: Any) -> None:
        self.log("WARN", message, auto_caller, **fields)

    warning = warn

    def error(self, message: Any = _MISSING, /, auto_caller: bool = True, **fields: Any) -> None:
        self.log("ERROR", message, auto_caller, **fields)

    def fatal(self, message: Any = _MISSING, /, auto_caller: bool = True, **fields: Any) -> None:
        self.log("FATAL", message, auto_caller, **fields)

    critical = fatal

    def error_with_trace(
        self, message: str, exception: BaseException | None = None, **fields: Any
    ) -> None:
        """An ERROR record with ``stack_trace`` and ``error_type``.

        Without ``exception``, the exception being handled is used; outside an
        ``except`` block, the current stack. As in the older client,
        ``function_name``/``file_path`` name where the exception was raised.
        """
        level = fields.pop("level", "ERROR")
        auto_caller = fields.pop("auto_caller", True)
        try:
            if exception is None:
                exception = sys.exc_info()[1]
            if exception is not None:
                fields.setdefault(
                    "stack_trace",
                    "".join(
                        traceback.format_exception(
                            type(exception), exception, exception.__traceback__
                        )
                    ),
                )
                fields.setdefault("error_type", type(exception).__name__)
                tb = exception.__traceback__
                while tb is not None and tb.tb_next is not None:
                    tb = tb.tb_next
                if tb is not None:
                    fields.setdefault("function_name", tb.tb_frame.f_code.co_name)
                    fields.setdefault("file_path", tb.tb_frame.f_code.co_filename)
                    fields.setdefault("line_no", tb.tb_lineno)
            else:
                fields.setdefault("stack_trace", "".join(traceback.format_stack()[:-1]))
        except Exception:
            fields.setdefault("stack_trace", "<unavailable>")
        self.log(level, message, auto_caller, **fields)

    # -- timers ----------------------------------------------------------

    def start_timer(self) -> float:
        return time.perf_counter()

    def end_timer(self, start_time: float, level: str, message: str, **fields: Any) -> None:
        self.log(level, message, duration_ms=(time.perf_counter() - start_time) * 1000, **fields)

    def timer(self, message: str, level: str = "INFO", **fields: Any) -> _Timer:
        """``with client.timer("query"):`` logs ``duration_ms`` (with the trace if it raised)."""
        return _Timer(self, message, level, fields)

    def measure(
        self, message: str | Callable[..., Any] | None = None, level: str = "INFO", **fields: Any
    ) -> Any:
        """``@client.measure("msg")``, ``@client.measure()`` or ``client.measure(fn)``."""
        if callable(message):
            return self._measured(message, None, level, fields)
        return lambda fn: self._measured(fn, message, level, fields)

    def _measured(
        self, fn: Callable[..., Any], message: str | None, level: str, fields: dict[str, Any]
    ) -> Callable[..., Any]:
        name = getattr(fn, "__name__", "function")
        where: dict[str, Any] = {"function_name": name}
        code = getattr(fn, "__code__", None)
        if code is not None:
            where["file_path"] = code.co_filename
            where["line_no"] = code.co_firstlineno

        def done(start: float) -> None:
            duration_ms = (time.perf_counter() - start) * 1000
            self.log(
                level, message or f"{name} completed", duration_ms=duration_ms, **where, **fields
            )

        def failed(start: float, exc: BaseException) -> None:
            duration_ms = (time.perf_counter() - start) * 1000
            self.error_with_trace(
                message or f"{name} failed", exception=exc, duration_ms=duration_ms, **fields
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

    # -- contexts (static, as in the older client) -----------------------

    set_request_context = staticmethod(_context.set_request_context)
    clear_request_context = staticmethod(_context.clear_request_context)
    get_request_context = staticmethod(_context.get_request_context)
    set_user_context = staticmethod(_context.set_user_context)
    clear_user_context = staticmethod(_context.clear_user_context)
    get_user_context = staticmethod(_context.get_user_context)
    user_context = staticmethod(_context.user_context)

    # -- delivery --------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged before this call is acknowledged (or
        dead-lettered), adopted orphans included. False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._closed:
                return self._pending_total() == 0
            self._adopt_orphans(force=True)
            sender = self._ensure_sender()
            # Per spool, the last id handed out at the call. A spool that
            # replaces a corrupt one (salvaged rows inside) is marked when first
            # seen, so the records moved into it are waited for too.
            marks: dict[int, int] = {}
            if self._spool is not None:
                marks[id(self._spool)] = self._spool.high_water()
            memory, memory_mark = self._memory, self._memory.high_water()
            adopted = list(self._adopted)

        def spool_delivered() -> bool:
            spool = self._spool
            if spool is None or spool.closed:
                return True
            mark = marks.setdefault(id(spool), spool.high_water())
            try:
                oldest = spool.oldest_id()
            except sqlite3.Error as exc:
                self._source_failed(spool, exc)  # corrupt: set aside and salvaged
                return False
            return oldest is None or oldest > mark

        def delivered() -> bool:
            if not spool_delivered():
                return False
            oldest = memory.oldest_id()
            if oldest is not None and oldest <= memory_mark:
                return False
            try:
                return all(a.closed or a.pending() == 0 for a in adopted)
            except sqlite3.Error:
                return False  # the sender sets a broken adopted spool aside

        sender.wake(retry_now=True)
        with sender.progress:
            while not delivered():
                if not sender.alive:
                    return delivered()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                # Re-check at least every 0.5 s: progress is notified per batch,
                # but a row can also leave by another path (dead-letter, expiry).
                sender.progress.wait(0.5 if remaining is None else min(remaining, 0.5))
        return True

    def close(self, timeout: float | None = None) -> _Done:
        """Flush until ``timeout`` (default ``close_timeout``), stop the sender, close the spool.

        What was not delivered stays in the spool for the next process using
        the same spool directory (or ``log-collector replay``); one line on
        stderr says how much and where.
        """
        with self._lock:
            if self._closed:
                return _Done()
            self._closed = True
            wait = self.settings.close_timeout if timeout is None else timeout
            if self._sender is not None and self._sender.alive:
                self._sender.stop(time.monotonic() + wait)
            self._sender = None
            spool, self._spool = self._spool, None
            left = spool.close() if spool is not None else 0
            for adopted in self._adopted:
                left += adopted.close()
            self._adopted = []
            in_memory = self._memory.pending()
        if left:
            where = spool.path.parent if spool is not None else self.settings.spool_dir
            print(
                f"log-collector: {left} record(s) not yet delivered to {self.settings.server_url} "
                f"are kept in {where}; the next process logging there sends them "
                f"(or run: log-collector replay {where})",
                file=sys.stderr,
            )
        if in_memory:
            print(
                f"log-collector: {in_memory} record(s) held in memory because the spool was "
                "unwritable could not be delivered and are lost",
                file=sys.stderr,
            )
        _clients.discard(self)
        return _Done()

    def __reduce__(self) -> Any:
        # A client owns a spool file, a lock and a thread in this process; a
        # copy in another process could only corrupt that. Say what to do.
        raise TypeError(
            "AsyncLogClient cannot be pickled: create one in each process "
            "(for multiprocessing, in the Pool initializer or the target function)"
        )

    def __enter__(self) -> AsyncLogClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- stats -----------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters and the state of the spool, for dashboards and tests."""
        spool = self._spool
        sender = self._sender
        dropped = dict(self._dropped)
        appended = self._memory.appended
        spool_rows = spool_bytes = 0
        oldest = None
        dead_lettered = 0
        if spool is not None and not spool.closed:
            for reason, n in spool.counters.dropped.items():
                dropped[reason] = dropped.get(reason, 0) + n
            appended += spool.counters.appended
            spool_rows, spool_bytes = spool.pending(), spool.nbytes()
            oldest = spool.oldest_created_at()
        sender_stats = sender.stats if sender is not None else None
        if sender_stats is not None:
            dead_lettered = sender_stats.dead_lettered
        return {
            "appended": appended,
            "sent": sender_stats.sent if sender_stats else 0,
            "acknowledged": sender_stats.acknowledged if sender_stats else 0,
            "duplicates": sender_stats.duplicates if sender_stats else 0,
            "dead_lettered": dead_lettered,
            "dropped": dropped,
            "retries": sender_stats.retries if sender_stats else 0,
            "requests": sender_stats.requests if sender_stats else 0,
            "fallback": self._fallback_count,
            "fallback_pending": self._memory.pending(),
            "spool_path": str(spool.path) if spool is not None else None,
            "spool_rows": spool_rows,
            "spool_bytes": spool_bytes,
            "oldest_pending_age": None if oldest is None else max(0.0, self._clock() - oldest),
            "adopted_spools": len(self._adopted),
            "last_error": sender_stats.last_error if sender_stats else None,
        }

    # -- internals -------------------------------------------------------

    def _append(self, created_at: float, body: str) -> None:
        # No getpid() here: the after-fork hook has already reset a forked child.
        spool = self._spool
        if spool is None:
            spool = self._open_spool()
        if spool is not None:
            spool.append(created_at, body)
        else:
            self._to_memory([(created_at, body)], None)
        if self._closed:
            return
        sender = self._sender
        if sender is None:
            self._ensure_sender()
            return
        self._since_wake += 1
        if self._since_wake >= self.settings.batch_size:
            self._since_wake = 0
            sender.wake()

    def _open_spool(self) -> Spool | None:
        with self._lock:
            if self._spool is not None:
                return self._spool
            s = self.settings
            try:
                self._spool = Spool.create(
                    s.spool_dir,
                    target_url=s.server_url,
                    service=s.service,
                    durability=s.durability,
                    max_bytes=s.max_spool_bytes,
                    full_policy=s.spool_full_policy,
                    max_record_age=s.max_record_age,
                    fallback=self._to_memory,
                    clock=self._clock,
                )
            except (OSError, sqlite3.Error, SpoolError) as exc:
                self._warn_once(
                    f"log-collector: cannot open a spool in {s.spool_dir} ({exc}); "
                    "records are kept in memory until it can"
                )
                return None
            return self._spool

    def _to_memory(self, rows: list[tuple[float, str]], exc: BaseException | None) -> None:
        """The spool could not take these rows: keep them in the bounded memory queue."""
        self._fallback_count += len(rows)
        self._memory.put([body for _, body in rows])
        if exc is not None:
            self._warn_once(
                f"log-collector: cannot write the spool ({exc!r}); "
                "records are kept in memory (bounded) until it can"
            )
            if is_corruption(exc):
                # The next append opens a fresh file; this one is set aside
                # and what can still be read from it is copied over.
                self._retire_spool(str(exc))

    def _announce_drops(self, spool: Spool, *, earlier: bool = False) -> None:
        """One WARN record saying how many records a limit dropped, and why.

        ``earlier``: the drops were counted by a process that died before it
        could say so; this one adopted its spool and says it instead.
        """
        dropped, spool.drop_notice = spool.drop_notice or {}, None
        total = sum(dropped.values())
        reasons = ", ".join(f"{n} by {reason}" for reason, n in sorted(dropped.items()))
        who = "an earlier process " if earlier else ""
        built = self._builder.build(
            "WARN",
            f"log-collector: {who}dropped {total} record(s) before they were sent: {reasons}",
            {"dropped": dropped, "spool_path": str(spool.path)},
            auto_caller=False,
        )
        if built is not None:
            self._append(*built)
            spool.mark_announced(dropped)

    def _retire_spool(self, why: str, spool: Spool | None = None) -> None:
        """Our own spool is corrupt: set it aside, salvage it into a fresh one."""
        spool = spool or self._spool
        if spool is None or spool is not self._spool or not self._lock.acquire(blocking=False):
            return
        try:
            self._spool = None
            # Abandoned, not closed: closing a corrupt file can fail half-way.
            _INHERITED.extend(spool.abandon())
        finally:
            self._lock.release()
        self._quarantine(spool.path, why)

    def _quarantine(self, path: Path, why: str) -> None:
        """Move a bad spool file aside and copy what SQLite can still read from
        it into our own spool; the event ids stay, so nothing is stored twice."""
        moved = move_aside(path, why)
        rows = salvage(moved)
        if not rows:
            return
        target = self._spool or self._open_spool()
        if target is not None:
            target.append_rows(rows)
        else:
            self._to_memory(rows, None)
        logger.error("log-collector: salvaged %d record(s) from %s", len(rows), moved)

    def _source_failed(self, source: Source, exc: BaseException) -> None:
        """The sender could not read or update a source; corruption retires it."""
        if not is_corruption(exc):
            return
        if source is self._spool:
            self._retire_spool(str(exc), source)  # type: ignore[arg-type]
        elif source in self._adopted:
            with self._adopt_lock:
                self._adopted.remove(source)  # type: ignore[arg-type]
            _INHERITED.extend(source.abandon())  # type: ignore[attr-defined]
            self._quarantine(source.path, str(exc))

    def _new_memory(self) -> None:
        self._memory = MemoryQueue(self.settings.fallback_capacity, self._count_drop)

    def _count_drop(self, reason: str, n: int) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + n

    def _warn_once(self, message: str) -> None:
        if not self._warned_fallback:
            self._warned_fallback = True
            logger.warning(message)

    def _pending_total(self) -> int:
        spool = self._spool
        return (
            spool.pending() if spool is not None and not spool.closed else 0
        ) + self._memory.pending()

    def _sources(self) -> list[Source]:
        spool = self._spool
        own: list[Source] = [spool] if spool is not None and not spool.closed else []
        return own + [self._memory] + list(self._adopted)

    def _ensure_sender(self) -> Sender:
        with self._lock:
            if self._sender is not None and self._sender.alive:
                return self._sender
            s = self.settings
            self._sender = Sender(
                sources=self._sources,
                transport=HttpTransport(s.logs_url, timeout=s.timeout, api_key=s.api_key),
                batch_size=s.batch_size,
                flush_interval=s.flush_interval,
                compress=s.enable_compression,
                gzip_min_records=s.gzip_min_records,
                max_backoff=s.max_backoff,
                on_drained=self._drained,
                on_idle=self._adopt_orphans,
                on_error=self._source_failed,
                sleep=self._sleep,
            )
            if not self._closed:
                self._sender.start()
            return self._sender

    def _drained(self, source: Source) -> None:
        if source in self._adopted:
            with self._adopt_lock:
                self._adopted.remove(source)  # type: ignore[arg-type]
            source.close()  # type: ignore[attr-defined]

    def _orphans_waiting(self) -> bool:
        own = {self._spool.path} if self._spool is not None else set()
        return any(
            not owner_alive(path) for path in candidates(self.settings.spool_dir, exclude=own)
        )

    def _adopt_orphans(self, force: bool = False) -> None:
        """Take over spool files in our directory whose process is gone and that
        ship to our server; the sender drains them after our own."""
        now = time.monotonic()
        if not force and now < self._next_scan:
            return
        with self._adopt_lock:
            self._next_scan = now + ADOPT_INTERVAL
            s = self.settings
            own = {sp.path for sp in [self._spool, *self._adopted] if sp is not None}
            for path in candidates(s.spool_dir, exclude=own):
                try:
                    adopted = Spool.adopt(
                        path, target_url=s.server_url, durability=s.durability, clock=self._clock
                    )
                    self._adopted.append(adopted)
                    if adopted.drop_notice:
                        self._announce_drops(adopted, earlier=True)
                except NotAdoptable:
                    continue
                except SpoolError as exc:
                    self._quarantine(path, str(exc))
                except sqlite3.DatabaseError as exc:
                    if is_corruption(exc):
                        self._quarantine(path, str(exc))
                except OSError as exc:
                    logger.debug("log-collector: cannot adopt %s: %s", path, exc)

    def _reset_after_fork(self) -> None:
        """In a forked child: forget the parent's spool, lock and thread.

        Threads do not survive fork() and locks may have been held by one of
        them; the parent still owns its spool and keeps sending it. The child
        opens a spool file of its own on its first log call.
        """
        self._lock = threading.RLock()
        self._adopt_lock = threading.Lock()
        self._pid = os.getpid()
        for spool in [self._spool, *self._adopted]:
            if spool is not None:
                _INHERITED.extend(spool.abandon())
        self._spool = None
        self._adopted = []
        self._sender = None
        self._next_scan = time.monotonic() + ADOPT_INTERVAL
        self._new_memory()

    @property
    def spool_path(self) -> Path | None:
        return self._spool.path if self._spool is not None else None
