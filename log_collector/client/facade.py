"""AsyncLogClient: the facade the application calls.

A log call builds one record, appends it to the spool (durable when the call
returns) and returns; the sender thread ships it later. What happens to a
record once built (spool, fallback, adopted spools, sender) is ``_delivery``. The API is that of
the older in-memory client (``log-collector-async``), so code written for it
runs unchanged.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import context as _context
from ._forkgate import GATE as FORK_GATE
from .delivery import Delivery
from .excepthook import install_global_error_handler
from .pending import PendingRecords
from .record import RecordBuilder
from .settings import DEFAULTS, OPTIONS, Settings, load_settings
from .spool import Spool
from .timing import Timer, measured

logger = logging.getLogger("log_collector")

_clients: weakref.WeakSet[AsyncLogClient] = weakref.WeakSet()
_hooks_installed = False
_hooks_lock = threading.Lock()
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
    """Close every client within one deadline, the longest ``close_timeout`` among them
    (not one deadline per client), and wait on none whose server is unreachable."""
    clients = list(_clients)
    deadline = time.monotonic() + max((c.settings.close_timeout for c in clients), default=0.0)
    for client in clients:
        try:
            client._close(max(0.0, deadline - time.monotonic()), wait_while_failing=False)
        except Exception:
            logger.exception("log-collector: error while closing at exit")


def _after_fork_in_child() -> None:
    FORK_GATE.reset()
    for client in list(_clients):
        client._reset_after_fork()


class _Done:
    """What close() returns: nothing to wait for, but ``await client.close()``
    (the older client's close was a coroutine) works too."""

    def __await__(self) -> Iterator[None]:
        return iter(())

    def __repr__(self) -> str:
        return "<closed>"


class AsyncLogClient:
    """Durable, non-blocking log shipping; see docs/architecture.md.

    The signature lists every setting, as the older client's did (and for IDE help);
    the defaults come from ``settings.OPTIONS``, where each setting is defined once. A
    setting read from the environment defaults to ``None``: not given, so that its
    environment variable, then ``.env``, then its default decide.
    """

    def __init__(
        self,
        server_url: str | None = None,
        service: str | None = None,
        environment: str | None = None,
        service_version: str | None = None,
        log_type: str | None = None,
        batch_size: int = DEFAULTS["batch_size"],
        flush_interval: float = DEFAULTS["flush_interval"],
        enable_compression: bool = DEFAULTS["enable_compression"],
        enable_global_error_handler: bool | None = None,
        *,
        spool_dir: str | os.PathLike[str] | None = None,
        durability: str = DEFAULTS["durability"],
        max_spool_bytes: int = DEFAULTS["max_spool_bytes"],
        spool_full_policy: str = DEFAULTS["spool_full_policy"],
        max_record_age: float | None = DEFAULTS["max_record_age"],
        timeout: float = DEFAULTS["timeout"],
        api_key: str | None = None,
        redact_keys: Any = DEFAULTS["redact_keys"],
        min_level: str = DEFAULTS["min_level"],
        gzip_min_records: int = DEFAULTS["gzip_min_records"],
        gzip_min_bytes: int = DEFAULTS["gzip_min_bytes"],
        max_backoff: float = DEFAULTS["max_backoff"],
        close_timeout: float = DEFAULTS["close_timeout"],
        fallback_capacity: int = DEFAULTS["fallback_capacity"],
        wire: str | None = None,
        max_queue_size: int | None = None,
        max_retries: int | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        # Every setting argument, by the names OPTIONS gives them: the one list of settings.
        given = locals()
        # max_queue_size and max_retries belong to the older in-memory client and
        # are accepted so its callers keep working: the spool replaces the queue
        # (bounded by max_spool_bytes) and no retry count ever drops a record.
        del max_queue_size, max_retries
        self.settings: Settings = load_settings({name: given[name] for name in OPTIONS})
        s = self.settings
        # Attributes of the older client, kept readable.
        self.server_url, self.service, self.environment = s.server_url, s.service, s.environment
        self.service_version, self.log_type = s.service_version, s.log_type
        self.batch_size, self.flush_interval = s.batch_size, s.flush_interval
        self.enable_compression = s.enable_compression
        self.enable_global_error_handler = s.enable_global_error_handler

        self._builder = RecordBuilder(s, clock=clock)
        self._delivery = Delivery(s, clock=clock, sleep=sleep, announce=self._announce_drops)
        self.queue = PendingRecords(self._delivery.own_sources)

        _install_process_hooks()
        _clients.add(self)
        self._delivery.start(rehearse=self._rehearsal_call)
        if s.enable_global_error_handler:
            install_global_error_handler(self)

    def _rehearsal_call(self) -> None:
        """A log call for the constructor's rehearsal, which is rolled back: never stored."""
        # Fields of the common types, so that their encoders are warm too.
        self.info("rehearsal", count=1, ratio=0.5, name="rehearsal", flag=True)

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
                self._delivery.append(*built)
                spool = self._delivery.spool
                if spool is not None and spool.drop_notice:
                    self._announce_drops(spool)
        except Exception as exc:
            self._delivery.count_drop("internal_error", 1)
            self._delivery.warn_once(
                f"log-collector: a log call failed inside the library: {exc!r}"
            )
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

    def start_timer(self) -> float:
        return time.perf_counter()

    def end_timer(self, start_time: float, level: str, message: str, **fields: Any) -> None:
        self.log(level, message, duration_ms=(time.perf_counter() - start_time) * 1000, **fields)

    def timer(self, message: str, level: str = "INFO", **fields: Any) -> Timer:
        """``with client.timer("query"):`` logs ``duration_ms`` (with the trace if it raised)."""
        return Timer(self, message, level, fields)

    def measure(
        self, message: str | Callable[..., Any] | None = None, level: str = "INFO", **fields: Any
    ) -> Any:
        """``@client.measure("msg")``, ``@client.measure()`` or ``client.measure(fn)``."""
        if callable(message):
            return measured(self, message, None, level, fields)
        return lambda fn: measured(self, fn, message, level, fields)

    set_request_context = staticmethod(_context.set_request_context)
    clear_request_context = staticmethod(_context.clear_request_context)
    get_request_context = staticmethod(_context.get_request_context)
    set_user_context = staticmethod(_context.set_user_context)
    clear_user_context = staticmethod(_context.clear_user_context)
    get_user_context = staticmethod(_context.get_user_context)
    user_context = staticmethod(_context.user_context)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged so far is acknowledged (or dead-lettered),
        adopted orphans included. False if ``timeout`` passed first."""
        return self._delivery.flush(timeout)

    def close(self, timeout: float | None = None) -> _Done:
        """Send what is pending, stop the sender, close the spool; never waits past a deadline.

        ``close(timeout)`` waits up to ``timeout`` seconds for the server to
        acknowledge what is pending, retrying at once rather than finishing a
        backoff wait. ``close()`` waits up to the ``close_timeout`` setting
        (default 5 s), but not at all once a delivery attempt has failed (server
        unreachable): the records are on disk. The ``atexit`` hook closes every
        client the way ``close()`` does, within one deadline, the largest
        ``close_timeout``; ``close_timeout=0`` makes exit never wait.

        What was not delivered stays in the spool for the next process using
        the same spool directory and server (or ``log-collector replay``); one
        line on stderr says how much and where.
        """
        if timeout is None:
            self._close(self.settings.close_timeout, wait_while_failing=False)
        else:
            self._close(timeout, wait_while_failing=True)
        return _Done()

    def _close(self, timeout: float, *, wait_while_failing: bool) -> None:
        if self._delivery.close(timeout, wait_while_failing=wait_while_failing):
            _clients.discard(self)

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

    def stats(self) -> dict[str, Any]:
        """Counters and the state of the spool, for dashboards and tests."""
        return self._delivery.stats()

    def _append(self, created_at: float, body: str) -> None:
        self._delivery.append(created_at, body)

    def _announce_drops(self, spool: Spool, earlier: bool = False) -> None:
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

    def _reset_after_fork(self) -> None:
        self._delivery.reset_after_fork()

    @property
    def _spool(self) -> Spool | None:
        return self._delivery.spool

    @property
    def spool_path(self) -> Path | None:
        spool = self._delivery.spool
        return spool.path if spool is not None else None
