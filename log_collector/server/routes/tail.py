"""``GET /api/tail``: the logs matching the filters as they are stored, as Server-Sent Events.

Each log is one event: ``id:`` its row id (for a row that committed late with a lower id, the
id the stream had reached), ``event: log``, ``data:`` the record as one line of JSON
(https://html.spec.whatwg.org/multipage/server-sent-events.html). A stream starts after the
newest row stored when it opens, or after the id of the ``Last-Event-ID`` header, which an
``EventSource`` sends by itself when it reconnects, so a reconnecting reader misses nothing and
sees nothing twice.

The stream polls the store (``query.tail.TailCursor``) in a worker thread every
``TailSettings.poll_s``, at most ``batch`` records a time, and writes a comment line after
``heartbeat_s`` without a write. Memory per stream is bounded: the next rows are read only
after the previous ones were handed to the transport, and a reader that leaves a write
pending for ``write_timeout_s`` is dropped; what it did not read stays in the store, where
``Last-Event-ID`` resumes it. At most ``max_streams`` streams are open at once (503 beyond).
A stream ends when the client goes away, after ``max_age_s``, or when the server's graceful
shutdown times out and cancels it (uvicorn's ``timeout_graceful_shutdown``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import anyio
from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from .. import auth
from ..query.errors import BadQuery
from ..query.filters import Filters, parse_filters
from ..query.tail import TailCursor, newest_id, parse_last_event_id
from ..state import ServerState, state_of
from ..store import StoreUnavailable
from ._answers import RETRY_AFTER_S, unauthorised
from ._read_api import (
    FILTER_PARAMETERS,
    FILTERS_NOTE,
    Failure,
    bad_query,
    failure,
    query_params,
    store_unavailable,
)

logger = logging.getLogger("log_collector.server")

router = APIRouter(prefix="/api", tags=["query"])

HEADERS = {
    "Cache-Control": "no-cache",
    # nginx buffers proxied responses unless told not to, which would hold events back.
    # https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_buffering
    "X-Accel-Buffering": "no",
}


def event(record: dict[str, Any], position: int = 0) -> bytes:
    """One SSE event for ``record``; ``json.dumps`` escapes line breaks, so ``data`` is one
    line. Its id is the record's, or ``position`` (where the stream was) for a record that
    committed late with a lower id, so ``Last-Event-ID`` never moves back."""
    data = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    return f"id: {max(record['id'], position)}\nevent: log\ndata: {data}\n\n".encode()


class EventStream(StreamingResponse):
    """The response writing ``events``: each write must be taken by the client within
    ``write_timeout`` seconds, or the connection is dropped. ``on_close`` runs once when the
    response ends, however it ends."""

    def __init__(
        self,
        events: AsyncGenerator[bytes, None],
        write_timeout: float,
        on_close: Callable[[], None],
    ):
        super().__init__(events, headers=HEADERS, media_type="text/event-stream")
        self._events = events
        self._write_timeout = write_timeout
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for chunk in self._events:
                with anyio.fail_after(self._write_timeout):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            # Returning without ending the response makes the server close the connection.
            logger.warning(
                "dropped a /api/tail reader that took no data for %g s", self._write_timeout
            )
        except OSError:
            pass
        finally:
            try:
                await self._events.aclose()
            finally:
                self._on_close()


async def tail_events(
    request: Request, state: ServerState, filters: Filters, after_id: int
) -> AsyncGenerator[bytes, None]:
    """The stream's chunks: a first comment naming where it starts, the events, and heartbeat
    comments when idle."""
    settings = state.tail
    clock = time.monotonic
    started = last_write = clock()
    yield f": tail after id {after_id}\n\n".encode()
    cursor = TailCursor(after_id)
    while clock() - started < settings.max_age_s:
        if await request.is_disconnected():
            return
        position = cursor.after_id
        try:
            rows, more = await to_thread.run_sync(
                cursor.poll, state.store, filters, settings.batch, clock()
            )
        except StoreUnavailable:
            # The reader keeps its place; the next poll tries again.
            rows, more = [], False
        if rows:
            yield b"".join(event(record, position) for record in rows)
            last_write = clock()
        elif clock() - last_write >= settings.heartbeat_s:
            yield b": heartbeat\n\n"
            last_write = clock()
        if more:
            continue
        await anyio.sleep(settings.poll_s)


@router.get(
    "/tail",
    summary="New logs as they are stored (Server-Sent Events)",
    description=FILTERS_NOTE
    + " Each log is an event `log` whose data is the record as JSON and whose id is its row "
    "id. Send `Last-Event-ID` to resume after that id (an EventSource does on reconnect); "
    "without it the stream starts after the newest log stored. A comment line is written when "
    "nothing else was for the heartbeat interval (15 s by default).",
    response_model=None,
    openapi_extra={
        "parameters": [
            *FILTER_PARAMETERS,
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "description": "Resume after this row id.",
                "schema": {"type": "string"},
            },
        ]
    },
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream."},
        400: {"model": Failure, "description": "A parameter that is not accepted, named."},
        401: {"description": "No key, or an unknown one, while keys are set."},
        403: {"description": "An ingest key: reading needs a read key."},
        503: {"model": Failure, "description": "Too many streams open, or store unavailable."},
    },
)
async def get_tail(request: Request) -> Any:
    state = state_of(request)
    refused = unauthorised(state, request, auth.READ)
    if refused is not None:
        return refused
    try:
        filters = parse_filters(query_params(request), time.time())
        after_id = parse_last_event_id(request.headers.get("last-event-id"))
    except BadQuery as exc:
        return bad_query(exc)
    if state.tail_streams >= state.tail.max_streams:
        return _busy(state)
    # Taken before the first await below, so concurrent openings cannot pass the cap together.
    state.tail_streams += 1
    try:
        if after_id is None:
            after_id = await to_thread.run_sync(_newest_id, state)
    except StoreUnavailable as exc:
        state.tail_streams -= 1
        return store_unavailable(exc)
    except BaseException:
        state.tail_streams -= 1
        raise
    events = tail_events(request, state, filters, after_id)
    return EventStream(events, state.tail.write_timeout_s, lambda: _release(state))


def _release(state: ServerState) -> None:
    state.tail_streams -= 1


def _newest_id(state: ServerState) -> int:
    state.migrated.ensure()
    return newest_id(state.store)


def _busy(state: ServerState) -> JSONResponse:
    return failure(
        503,
        "busy",
        f"{state.tail.max_streams} tail streams are open: retry later",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
