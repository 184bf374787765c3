"""FastAPI / Starlette (any ASGI app): a pure ASGI middleware.

    from log_collector.integrations.asgi import LogCollectorMiddleware

    app.add_middleware(LogCollectorMiddleware, client=client, exclude_paths={"/healthz"})
    # or, to wrap the framework's own error handling too (see below):
    app = LogCollectorMiddleware(app, client)

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: the view runs in the
request's own task, so the context set here is the one the view sees, and
streaming responses are not buffered. Only ``http`` scopes are logged;
``lifespan`` and ``websocket`` pass through untouched.

Where it sits matters for errors. Starlette's ``ServerErrorMiddleware`` (which
answers 500) sits outside ``add_middleware``'s middlewares: an exception
escaping the view is logged here with its trace and re-raised to it, and
"Request completed" says 500, but that 500 response does not pass through
here and so carries no ``x-trace-id``. Wrapping the whole app puts this
middleware outside it, and the 500 carries the header too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from ._common import Options, RequestLog, header_getter

if TYPE_CHECKING:
    from ..client.facade import AsyncLogClient

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["LogCollectorMiddleware"]


class LogCollectorMiddleware:
    """``LogCollectorMiddleware(app, client, **options)``; options: see ``_common.Options``."""

    def __init__(self, app: ASGIApp, client: AsyncLogClient, **options: Any) -> None:
        self.app = app
        self.client = client
        self.options = Options.build(options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.options.excluded(scope.get("path", "")):
            try:
                await self.app(scope, receive, send)
            except Exception as exc:  # an excluded path's errors are still worth a record
                self.client.error_with_trace("Unhandled exception", exception=exc)
                raise
            return
        peer = scope.get("client")
        request = RequestLog(
            self.client,
            self.options,
            method=scope.get("method", "GET"),
            path=scope.get("path", ""),
            header=header_getter(
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in scope.get("headers", ())
            ),
            peer=peer[0] if peer else None,
        )
        trace_header = self.options.trace_header.encode("latin-1")
        trace_value = request.trace_id.encode("latin-1")

        async def send_with_trace_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                request.status_code = message["status"]
                headers = list(message.get("headers", ()))
                if not any(name.lower() == trace_header for name, _ in headers):
                    headers.append((trace_header, trace_value))
                message = {**message, "headers": headers}
            await send(message)

        request.start()
        try:
            await self.app(scope, receive, send_with_trace_id)
        except Exception as exc:
            request.exception(exc)
            # The response may have started (wrapping the framework's error
            # handling); if not, what answers is the framework's 500.
            request.finish(request.status_code or 500)
            raise
        finally:
            request.finish()
