"""Bounded connections for the ingest server: a header timeout, a cap on open
connections, and rate-limited logging of connection errors.

uvicorn's h11 protocol arms its keep-alive timer only once a response is
complete, and any byte received cancels it, so a connection that never sends
a byte, or trickles its headers, stays open for ever; ``limit_concurrency``
answers 503 to requests but still accepts every connection, so silent
sockets use up the process's file descriptors until ``accept()`` fails with
EMFILE for everyone, /healthz included (uvicorn 0.55,
``uvicorn/protocols/http/h11_impl.py``: ``on_response_complete``,
``data_received``, ``handle_events``).

``BoundedH11Protocol`` adds what is missing, in the protocol uvicorn runs:

- a deadline, armed when a connection opens and whenever a response is
  complete, and disarmed once the next request's headers are in: a
  connection that does not deliver a request's headers within
  ``header_timeout`` seconds is closed (the silent ones, the trickling ones,
  and those still sending a body the server already answered);
- a cap on open connections: past ``max_connections``, the connection that
  has waited longest for its headers is closed to make room (a connection in
  the middle of a request is never closed for this), and when none is
  waiting the new connection is closed at once. Like nginx dropping idle
  keep-alive connections when ``worker_connections`` run out, so a flood of
  silent sockets cannot lock out a client with something to send.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .limits import ConnectionLimits

__all__ = [
    "ACCEPT_BATCH",
    "RESERVED_FDS",
    "BoundedH11Protocol",
    "ConnectionLimits",
    "RateLimitedFilter",
    "bounded_protocol",
    "configure_process",
    "connection_cap",
    "rate_limit_server_logs",
]

# Connections asyncio may accept in one pass of its accept loop (uvicorn's
# ``backlog``, also the listen queue): the cap is enforced as each
# connection is made, so up to this many can be open past it for a moment.
ACCEPT_BATCH = 128
# Descriptors kept free beside the connections: the listening socket, the
# store's files and connections, logging, and two accept passes in flight.
RESERVED_FDS = 64 + 2 * ACCEPT_BATCH


def connection_cap(configured: int, reserve: int = RESERVED_FDS) -> int:
    """``configured``, lowered so that open connections stay under the
    process's soft RLIMIT_NOFILE with ``reserve`` descriptors to spare."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - reserve))


# Per uvicorn server (its ServerState): the connections waiting for request
# headers, longest-waiting first. Several servers may run in one process
# (tests), each on its own event loop.
_waiting_by_server: weakref.WeakKeyDictionary[Any, OrderedDict[BoundedH11Protocol, None]] = (
    weakref.WeakKeyDictionary()
)


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header timeout and a connection cap.
    ``serve()`` sets the two class attributes for its process;
    ``bounded_protocol()`` makes a subclass with its own."""

    header_timeout: float = ConnectionLimits.header_timeout
    max_connections: int = connection_cap(ConnectionLimits.max_connections)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._started_cycle: object = None
        waiting = _waiting_by_server.get(self.server_state)
        if waiting is None:
            waiting = _waiting_by_server[self.server_state] = OrderedDict()
        self._waiting = waiting
        self._arm()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._disarm_if_request_started()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            self._disarm()
            return
        self._arm()
        # A pipelined request may have started inside the call above.
        self._disarm_if_request_started()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._close_waiting)
        self._waiting[self] = None

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._waiting.pop(self, None)

    def _disarm_if_request_started(self) -> None:
        # uvicorn makes a new cycle when a request's headers are complete.
        if self.cycle is not None and self.cycle is not self._started_cycle:
            self._started_cycle = self.cycle
            self._disarm()

    def _close_waiting(self) -> None:
        self._deadline = None
        self._waiting.pop(self, None)
        if not self.transport.is_closing():
            # As uvicorn's own keep-alive timeout closes a connection.
            if self.conn.our_state is not h11.ERROR:
                self.conn.send(h11.ConnectionClosed())
            self.transport.close()

    def _make_room(self) -> None:
        for protocol in self._waiting:
            if protocol is not self:
                protocol._disarm()
                protocol._close_waiting()
                return
        self._disarm()
        self._close_waiting()


def bounded_protocol(limits: ConnectionLimits) -> type[BoundedH11Protocol]:
    """A ``BoundedH11Protocol`` with ``limits`` (the cap lowered by
    connection_cap()), for ``uvicorn.Config(http=...)``."""
    return type(
        "BoundedH11Protocol",
        (BoundedH11Protocol,),
        {
            "header_timeout": limits.header_timeout,
            "max_connections": connection_cap(limits.max_connections),
        },
    )


def configure_process(limits: ConnectionLimits) -> None:
    """Give ``BoundedH11Protocol`` itself ``limits``: for a process that only
    serves (serve() and its worker processes, which import the class by name)."""
    BoundedH11Protocol.header_timeout = limits.header_timeout
    BoundedH11Protocol.max_connections = connection_cap(limits.max_connections)


class RateLimitedFilter(logging.Filter):
    """Passes the first record of each kind (logger, level, first line of the
    message) per ``interval`` seconds and counts the rest; the next record of
    that kind to pass says how many were suppressed. A server under a flood
    of bad connections logs a few lines a minute, not a traceback each."""

    _MAX_KINDS = 1000

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        # kind -> [time it last passed, records suppressed since]
        self._kinds: dict[tuple[str, int, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        first_line = str(record.msg).split("\n", 1)[0][:100]
        kind = (record.name, record.levelno, first_line)
        now = self._clock()
        with self._lock:
            seen = self._kinds.get(kind)
            if seen is not None and now - seen[0] < self.interval:
                seen[1] += 1
                return False
            if len(self._kinds) >= self._MAX_KINDS:
                self._kinds.clear()
            self._kinds[kind] = [now, 0]
        suppressed = int(seen[1]) if seen is not None else 0
        if suppressed:
            record.msg = (
                f"{record.msg} ({suppressed} more like this in the last "
                f"{self.interval:g} s were not logged)"
            )
        return True


# The loggers a flood of bad connections writes to: asyncio's accept loop
# ("socket.accept() out of system resource" on EMFILE), uvicorn's protocol
# errors ("Invalid HTTP request received."), and this server's own.
RATE_LIMITED_LOGGERS = ("asyncio", "uvicorn.error", "log_collector.server")


def rate_limit_server_logs(interval: float = 60.0) -> RateLimitedFilter:
    """Install one ``RateLimitedFilter`` on each of ``RATE_LIMITED_LOGGERS``."""
    limiter = RateLimitedFilter(interval)
    for name in RATE_LIMITED_LOGGERS:
        logger = logging.getLogger(name)
        for existing in [f for f in logger.filters if isinstance(f, RateLimitedFilter)]:
            logger.removeFilter(existing)
        logger.addFilter(limiter)
    return limiter
