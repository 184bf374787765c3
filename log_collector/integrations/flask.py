"""Flask: request context, trace id and request logs for every request.

    from log_collector.integrations.flask import LogCollector, init_app

    init_app(app, client, exclude_paths={"/healthz"})
    # or, as an extension (application factories):
    log_collector = LogCollector(client=client)
    log_collector.init_app(app)

Options: see ``log_collector.integrations._common.Options``. The hooks are
Flask's own: the first ``before_request`` function sets the context and logs
"Request received"; the last ``after_request`` function adds ``x-trace-id`` to
the response; ``got_request_exception`` (sent for an exception no error
handler took) logs it with its trace, and Flask then answers 500 or, when
``PROPAGATE_EXCEPTIONS`` is on (testing), re-raises it; the last
``teardown_request`` function logs "Request completed" and restores the
context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, got_request_exception, request

from ._common import Options, RequestLog

if TYPE_CHECKING:
    from ..client.facade import AsyncLogClient

__all__ = ["LogCollector", "init_app"]

EXTENSION = "log_collector"
_G_KEY = "_log_collector_request"


def init_app(app: Flask, client: AsyncLogClient, **options: Any) -> None:
    """Log every request of ``app`` through ``client``."""
    if EXTENSION in app.extensions:
        raise RuntimeError("log-collector is already set up for this Flask app")
    opts = Options.build(options)

    def start() -> None:
        if opts.excluded(request.path):
            return
        log = RequestLog(
            client,
            opts,
            method=request.method,
            path=request.path,
            header=request.headers.get,
            peer=request.remote_addr,
        )
        setattr(g, _G_KEY, log)
        log.start()

    def add_trace_id(response: Response) -> Response:
        log: RequestLog | None = g.get(_G_KEY)
        if log is not None:
            log.status_code = response.status_code
            response.headers.setdefault(opts.trace_header, log.trace_id)
        return response

    def on_exception(sender: Flask, exception: BaseException, **extra: Any) -> None:
        log: RequestLog | None = g.get(_G_KEY)
        if log is not None:
            log.exception(exception)
        else:  # an excluded path: its errors are still worth a record
            client.error_with_trace("Unhandled exception", exception=exception)

    def finish(error: BaseException | None) -> None:
        log: RequestLog | None = g.pop(_G_KEY, None)
        if log is not None:
            # With PROPAGATE_EXCEPTIONS no response was made: Flask re-raises
            # and the server answers 500.
            log.finish(500 if error is not None and log.status_code is None else None)

    # First before_request (the context is set before any other hook logs) and
    # last after_request / teardown_request (Flask runs those in reverse order).
    app.before_request_funcs.setdefault(None, []).insert(0, start)
    app.after_request_funcs.setdefault(None, []).insert(0, add_trace_id)
    app.teardown_request_funcs.setdefault(None, []).insert(0, finish)
    got_request_exception.connect(on_exception, app, weak=False)
    app.extensions[EXTENSION] = client


class LogCollector:
    """The extension form: ``LogCollector(app, client=client)`` or ``.init_app(app)`` later."""

    def __init__(
        self, app: Flask | None = None, client: AsyncLogClient | None = None, **options: Any
    ) -> None:
        self.client = client
        self.options = options
        Options.build(options)  # fail now on a misspelt option, not at init_app
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, client: AsyncLogClient | None = None, **options: Any) -> None:
        client = client if client is not None else self.client
        if client is None:
            raise TypeError(
                "LogCollector needs a client: LogCollector(app, client=...) "
                "or log_collector.init_app(app, client=...)"
            )
        init_app(app, client, **{**self.options, **options})
