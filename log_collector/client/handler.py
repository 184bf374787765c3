"""The ``logging`` bridge: records of the standard library's loggers become log-collector records.

    import logging
    from log_collector import AsyncLogClient, LogCollectorHandler

    logging.getLogger().addHandler(LogCollectorHandler(client))
    logging.getLogger("app").info("paid", extra={"order_id": 42})

or with ``logging.config.dictConfig``, the handler making its own client::

    "handlers": {"collector": {
        "()": "log_collector.LogCollectorHandler",  # or "class": ... with the same keys
        "server_url": "http://logs:8000", "service": "payments",
        # or "client": "ext://myapp.logs.client" to share an existing client
    }}

Each ``LogRecord`` becomes one record: the level mapped onto log-collector's
levels, ``record.getMessage()`` as the message (a formatter set on the handler
is not used), the record's own caller (``funcName``, ``pathname``, ``lineno``),
the logger's name as ``logger``, every ``extra`` field, and ``exc_info`` as
``stack_trace`` and ``error_type``. The request and user contexts are those of
the thread that emits, so behind a ``QueueHandler`` they are the listener's.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any

from .sender import THREAD_NAME

if TYPE_CHECKING:
    from .facade import AsyncLogClient

__all__ = ["LogCollectorHandler"]

_logger = logging.getLogger("log_collector")

# The sender thread's name (log_collector/sender.py). What is logged on that
# thread (urllib3's connection messages, say) must not become records: each
# would be sent by the same thread, which would log again, and so on forever.
_SENDER_THREAD = THREAD_NAME

# Every attribute a LogRecord has by itself, plus what Formatter.format adds;
# whatever else is in record.__dict__ came from ``extra``.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",  # Python 3.12+
}
# Extra keys that would collide with log()'s own parameters get this prefix.
_RESERVED = frozenset({"level", "message", "auto_caller"})

_guard = threading.local()


def level_name(levelno: int) -> str:
    """``logging``'s numeric level as a log-collector level; custom levels round down."""
    if levelno >= logging.CRITICAL:
        return "FATAL"
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARN"
    if levelno >= logging.INFO:
        return "INFO"
    if levelno >= logging.DEBUG:
        return "DEBUG"
    return "TRACE"


def _is_own(record: logging.LogRecord) -> bool:
    name = record.name
    if name == "log_collector" or name.startswith("log_collector."):
        return True
    return record.threadName == _SENDER_THREAD or threading.current_thread().name == _SENDER_THREAD


class LogCollectorHandler(logging.Handler):
    """``LogCollectorHandler(client)`` or ``LogCollectorHandler(**client_settings)``.

    Given settings (``server_url``, ``service``, ...), the handler makes an
    ``AsyncLogClient`` of its own and closes it in ``close()``; a client
    passed in is left for its owner to close.
    """

    def __init__(
        self,
        client: AsyncLogClient | None = None,
        level: int | str = logging.NOTSET,
        **client_settings: Any,
    ) -> None:
        super().__init__(level)
        if client is None:
            from .facade import AsyncLogClient

            client = AsyncLogClient(**client_settings)
            self._owns_client = True
        elif client_settings:
            raise TypeError(
                "LogCollectorHandler takes a client or client settings, not both: "
                f"got client and {', '.join(sorted(client_settings))}"
            )
        else:
            self._owns_client = False
        self.client = client
        self.errors = 0  # records that could not be emitted (see handleError)
        self._warned = False

    def handle(self, record: logging.LogRecord) -> Any:
        # Unlike Handler.handle, no handler lock around emit(): the client is
        # thread-safe, and the lock would make every thread's spool write wait
        # for the previous one, defeating the spool's group commit.
        kept = self.filter(record)
        if isinstance(kept, logging.LogRecord):  # Python 3.12+: a filter may return a new record
            record = kept
        if kept:
            self.emit(record)
        return kept

    def emit(self, record: logging.LogRecord) -> None:
        if _is_own(record) or getattr(_guard, "active", False):
            return
        _guard.active = True
        try:
            message, fields = self._fields(record)
            self.client.log(level_name(record.levelno), message, False, **fields)
        except Exception:
            self.handleError(record)
        finally:
            _guard.active = False

    def _fields(self, record: logging.LogRecord) -> tuple[str, dict[str, Any]]:
        fields: dict[str, Any] = {"created_at": record.created, "logger": record.name}
        try:
            message = record.getMessage()
        except Exception as exc:
            # A bad format string or arguments: keep the record as it was logged.
            message = str(record.msg)
            fields["format_error"] = f"{type(exc).__name__}: {exc}"
            fields["log_args"] = repr(record.args)
        if record.funcName:
            fields["function_name"] = record.funcName
        if record.pathname:
            fields["file_path"] = record.pathname
        if record.lineno:
            fields["line_no"] = record.lineno
        exc_info = record.exc_info
        if exc_info and exc_info[0] is not None:
            fields["error_type"] = exc_info[0].__name__
            fields["stack_trace"] = "".join(traceback.format_exception(*exc_info))
        if record.stack_info:
            trace = fields.get("stack_trace")
            fields["stack_trace"] = f"{trace}\n{record.stack_info}" if trace else record.stack_info
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS:
                fields[f"extra_{key}" if key in _RESERVED else key] = value
        return message, fields

    def handleError(self, record: logging.LogRecord) -> None:
        """Count the failure and say so once on the ``log_collector`` logger, never raise.

        ``logging.Handler.handleError`` prints a traceback per failure; a handler
        failing on every record would flood stderr.
        """
        self.errors += 1
        if self._warned:
            return
        self._warned = True
        _logger.warning(
            "log-collector: LogCollectorHandler could not emit a record of logger %r (%r); "
            "further failures are only counted (handler.errors)",
            record.name,
            sys.exc_info()[1],
        )

    def flush(self) -> None:
        """Nothing to do: a record is in the spool when ``emit`` returns.

        Waiting for delivery here (``client.flush()``) would block
        ``logging.shutdown`` for as long as the server is down.
        """

    def close(self) -> None:
        try:
            if self._owns_client:
                self.client.close()
        finally:
            super().close()
