"""What every web middleware does, whatever the framework.

A middleware turns its framework's request into a :class:`RequestLog`: the
request context (path, method, ip, trace_id, user_id) is set for the duration
of the request and restored afterwards, "Request received" and "Request
completed" are logged, an unhandled exception is logged with its trace, and
the trace id is echoed in the response. This module imports no framework.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable
from contextvars import Token
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..client.context import _request_context

if TYPE_CHECKING:
    from ..client.facade import AsyncLogClient

TRACE_HEADER = "x-trace-id"
USER_ID_HEADER = "x-user-id"

# W3C Trace Context, section 3.2 (https://www.w3.org/TR/trace-context/#traceparent-header):
# version "-" trace-id "-" parent-id "-" trace-flags, lower-case hex. A version
# above 00 may append fields ("-..."); version ff is invalid, and so is an
# all-zero trace id or parent id.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_PARENT = "0" * 16

# An x-trace-id is taken as sent when it is visible ASCII and fits the store's
# trace_id column (VARCHAR(100)); anything else gets a new id, so a bad header
# can neither get the request's records rejected nor be echoed unsafely.
_TRACE_ID = re.compile(r"[\x21-\x7e]{1,100}")

# The store's column limits (migrations/postgres/0001_logs.sql): a longer value
# would get every record of the request rejected, so the context holds a cut one.
_PATH_LIMIT = 500
_USER_ID_LIMIT = 255
# The store's http_method enum; another method goes into metadata as http_method.
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


def trace_id_from_traceparent(value: str | None) -> str | None:
    """The 32-hex trace id of a valid ``traceparent`` header, else ``None``."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_PARENT:
        return None
    return trace_id


def new_trace_id() -> str:
    return uuid.uuid4().hex


def pick_trace_id(traceparent: str | None, trace_header: str | None) -> str:
    """``traceparent``'s trace id, else the ``x-trace-id`` value, else a new 32-hex id."""
    found = trace_id_from_traceparent(traceparent)
    if found is not None:
        return found
    if trace_header:
        candidate = trace_header.strip()
        if _TRACE_ID.fullmatch(candidate):
            return candidate
    return new_trace_id()


def client_ip(peer: str | None, forwarded: str | None, header_name: str | None) -> str | None:
    """The client's address: from the trusted proxy header when it has one, else the peer.

    ``X-Forwarded-For: client, proxy1, proxy2`` and ``X-Real-IP`` give their first
    address; ``Forwarded`` (RFC 7239) gives the first ``for=`` parameter.
    """
    if header_name and forwarded:
        if header_name.lower() == "forwarded":
            address = _forwarded_for(forwarded)
        else:
            address = forwarded.split(",", 1)[0].strip()
        if address:
            return address
    return peer


def _forwarded_for(value: str) -> str | None:
    # RFC 7239 section 4: Forwarded: for="[2001:db8::1]:4711";proto=https, for=10.0.0.1
    first = value.split(",", 1)[0]
    for pair in first.split(";"):
        name, _, node = pair.strip().partition("=")
        if name.strip().lower() == "for":
            node = node.strip().strip('"')
            if node.startswith("["):  # [v6]:port
                return node[1 : node.find("]")] if "]" in node else None
            if node.count(":") == 1:  # v4:port
                node = node.split(":", 1)[0]
            return node or None
    return None


@dataclass(frozen=True)
class Options:
    """How a middleware logs; every framework's middleware takes these as keyword arguments.

    A request to one of ``exclude_paths`` (health checks, say) gets no context,
    no request logs and no trace id header; an exception escaping it is still
    logged. ``trusted_proxy_header`` names the header a reverse proxy you control sets
    (``"x-forwarded-for"``, ``"x-real-ip"``, ``"forwarded"``); leave it unset when
    clients reach the app directly, or any client could choose its logged ip.
    """

    log_received: bool = True  # log "Request received"
    log_completed: bool = True  # log "Request completed" (status_code, duration_ms)
    exclude_paths: frozenset[str] = field(default_factory=frozenset)  # exact paths, unlogged
    trusted_proxy_header: str | None = None
    trace_header: str = TRACE_HEADER  # read from the request and echoed in the response
    user_id_header: str = USER_ID_HEADER

    @classmethod
    def build(cls, options: dict[str, Any]) -> Options:
        """Options from keyword arguments; an unknown name raises ``TypeError`` naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(
                f"unknown log-collector middleware option(s): {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})"
            )
        values = dict(options)
        paths = values.get("exclude_paths")
        if paths is not None:
            if isinstance(paths, str):
                paths = [paths]
            values["exclude_paths"] = frozenset(paths)
        for name in ("trace_header", "user_id_header", "trusted_proxy_header"):
            if values.get(name):
                values[name] = values[name].lower()
        return cls(**values)

    def excluded(self, path: str) -> bool:
        return path in self.exclude_paths


class RequestLog:
    """The logging of one request, from ``start()`` to ``finish()``.

    ``header`` looks a request header up by lower-case name. The context is
    set in ``start()`` and restored in ``finish()``, which must run in the
    same thread or task (contextvars token); both never raise.
    """

    def __init__(
        self,
        client: AsyncLogClient,
        options: Options,
        *,
        method: str,
        path: str,
        header: Callable[[str], str | None],
        peer: str | None,
    ) -> None:
        self.client = client
        self.options = options
        self.trace_id = pick_trace_id(header("traceparent"), header(options.trace_header))
        context: dict[str, Any] = {"path": path[:_PATH_LIMIT]}
        method = method.upper()
        context["method" if method in _METHODS else "http_method"] = method
        ip = client_ip(
            peer,
            header(options.trusted_proxy_header) if options.trusted_proxy_header else None,
            options.trusted_proxy_header,
        )
        if ip:
            context["ip"] = ip
        context["trace_id"] = self.trace_id
        user_id = header(options.user_id_header)
        if user_id:
            context["user_id"] = user_id[:_USER_ID_LIMIT]
        self.context = context
        self.status_code: int | None = None
        self._start = 0.0
        self._token: Token[dict[str, Any] | None] | None = None
        self._previous: dict[str, Any] | None = None
        self._finished = False

    def start(self) -> None:
        self._start = time.perf_counter()
        self._previous = _request_context.get()
        self._token = _request_context.set(self.context)
        if self.options.log_received:
            self.client.info("Request received", auto_caller=False)

    def exception(self, exc: BaseException) -> None:
        """Log an exception that escaped the view, with its stack trace."""
        self.client.error_with_trace("Unhandled exception", exception=exc)

    def finish(self, status_code: int | None = None) -> None:
        """Log "Request completed" and restore the context; later calls do nothing."""
        if self._finished:
            return
        self._finished = True
        if status_code is not None:
            self.status_code = status_code
        try:
            if self.options.log_completed:
                status = self.status_code
                self.client.log(
                    _completed_level(status),
                    "Request completed",
                    auto_caller=False,
                    status_code=status,
                    duration_ms=(time.perf_counter() - self._start) * 1000,
                )
        finally:
            self._restore()

    def _restore(self) -> None:
        token, self._token = self._token, None
        if token is None:
            return
        try:
            _request_context.reset(token)
        except ValueError:
            # Set in another context (a framework that copies contexts between
            # its hooks): put back what was there when the request started.
            _request_context.set(self._previous)


def _completed_level(status: int | None) -> str:
    if status is None:  # no response: the request was cancelled (client gone)
        return "WARN"
    return "ERROR" if status >= 500 else "INFO"


def header_getter(pairs: Iterable[tuple[str, str]]) -> Callable[[str], str | None]:
    """A lookup by lower-case name over ``(name, value)`` pairs; the first occurrence wins."""
    table: dict[str, str] = {}
    for name, value in pairs:
        table.setdefault(name.lower(), value)
    return table.get
