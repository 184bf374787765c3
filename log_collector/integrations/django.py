"""Django: request context, trace id and request logs, for sync and async stacks.

In settings.py::

    MIDDLEWARE = [
        "log_collector.integrations.django.LogCollectorMiddleware",  # first: sees every request
        ...,
    ]
    LOG_COLLECTOR = {
        "client": "myproject.logs.client",  # an AsyncLogClient, or the dotted path to one
        "exclude_paths": {"/healthz"},
        "trusted_proxy_header": "x-forwarded-for",  # only behind a proxy you control
    }

The other keys are the middleware options (``_common.Options``). The setting
is read when Django builds its middleware chain (once per handler), so it is
the one place the configuration lives; a dotted path keeps settings.py free
of a client that would otherwise be created whenever settings are imported.

Django turns an exception raised in a view into a response before it reaches
this middleware's ``__call__``; ``process_exception`` logs it with its trace
and returns ``None``, so Django's own handling (``handler500``,
``got_request_exception``) goes on as usual. The exceptions Django answers
with 4xx (``Http404``, ``PermissionDenied``, ``BadRequest``,
``SuspiciousOperation``) are not logged as errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    ImproperlyConfigured,
    PermissionDenied,
    SuspiciousOperation,
)
from django.http import Http404
from django.utils.module_loading import import_string

from ._common import Options, RequestLog

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

    from ..client.facade import AsyncLogClient

__all__ = ["LogCollectorMiddleware"]

SETTING = "LOG_COLLECTOR"
_REQUEST_ATTR = "_log_collector_request"
_CLIENT_ERRORS = (Http404, PermissionDenied, BadRequest, SuspiciousOperation)


def _configured() -> tuple[AsyncLogClient, Options]:
    config = dict(getattr(settings, SETTING, None) or {})
    client = config.pop("client", None)
    if isinstance(client, str):
        try:
            client = import_string(client)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"{SETTING}['client']: cannot import {client!r}: {exc}"
            ) from exc
    if client is None or not callable(getattr(client, "error_with_trace", None)):
        raise ImproperlyConfigured(
            f"settings.{SETTING} = {{'client': ...}} must name an AsyncLogClient "
            f"(an instance or its dotted path), got {client!r}"
        )
    try:
        return client, Options.build(config)
    except TypeError as exc:
        raise ImproperlyConfigured(f"settings.{SETTING}: {exc}") from None


class LogCollectorMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.client, self.options = _configured()
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self.__acall__(request)
        log = self._start(request)
        if log is None:
            return self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException:
            log.finish(500)
            raise
        return self._finish(log, response)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        log = self._start(request)
        if log is None:
            return await self.get_response(request)
        try:
            response = await self.get_response(request)
        except BaseException:
            log.finish(500)
            raise
        return self._finish(log, response)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if isinstance(exception, _CLIENT_ERRORS):
            return None
        log: RequestLog | None = getattr(request, _REQUEST_ATTR, None)
        if log is not None:
            log.exception(exception)
        else:  # an excluded path: its errors are still worth a record
            self.client.error_with_trace("Unhandled exception", exception=exception)
        return None

    def _start(self, request: HttpRequest) -> RequestLog | None:
        if self.options.excluded(request.path):
            return None
        log = RequestLog(
            self.client,
            self.options,
            method=request.method or "GET",
            path=request.path,
            header=request.headers.get,
            peer=request.META.get("REMOTE_ADDR"),
        )
        setattr(request, _REQUEST_ATTR, log)
        log.start()
        return log

    def _finish(self, log: RequestLog, response: HttpResponseBase) -> HttpResponseBase:
        if self.options.trace_header not in response:
            response[self.options.trace_header] = log.trace_id
        log.finish(response.status_code)
        return response
