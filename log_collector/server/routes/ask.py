"""``POST /api/ask`` and ``POST /api/ask/stream``: a question in plain language (English or
Korean) answered with its interpretation, the SQL, the rows and an answer (``ask.service``).

The body is ``{"question", "conversation_id"?, "service"?, "since"?, "until"?, "choice"?}``;
``choice`` is the ``value`` of a clarification's option, sent back in the same conversation. The
SQL runs through the path of ``POST /api/sql`` (guard, read-only role or connection, statement
timeout, row limit); at most ``state.ASK_THREADS`` questions are answered at once. Failures
have the shape of the read API, ``{"error", "parameter"?, "reason"}``: 400 a body that is not a
request (naming the field), 401 and 403 as every read route, 408 a body not received in time,
413 a body over ``MAX_BODY_BYTES``, 415 a body not declared JSON, 503 with Retry-After when the
store is unavailable, 504 a statement stopped by its timeout.

The stream form answers ``text/event-stream``: ``event: interpretation``, then either
``clarification`` or ``sql``, ``rows`` and ``answer``, and last ``done`` (``error`` on a failure
after the stream started), each with one JSON line as ``data:``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.requests import Request

from .. import auth
from ..ask.service import AskRequest, AskService, BadAsk, parse_request
from ..query.sqlexec import SqlQueryError, SqlStoreUnavailable, SqlTimeout
from ..query.sqlguard import SqlRefused
from ..state import ServerState, state_of
from ..store import StoreUnavailable
from ._answers import forget_frames, unauthorised
from ._read_api import failure, json_request_body, read_json_body, store_unavailable

# A question is at most 2,000 characters; the rest of a body is a few short fields.
MAX_BODY_BYTES = 64 * 1024

router = APIRouter(prefix="/api", tags=["ask"])


class AskBody(BaseModel):
    question: str = Field(description="The question, in English or Korean.")
    conversation_id: str | None = Field(None, description="Continue this conversation.")
    service: str | None = Field(None, description="Only this service.")
    since: str | None = Field(None, description="ISO 8601 or 15m, 1h, 7d before now.")
    until: str | None = Field(None, description="ISO 8601 or 15m, 1h, 7d before now.")
    choice: dict[str, Any] | None = Field(
        None, description="The value of the clarification option chosen."
    )


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The interpretation, SQL, rows and answer (or a clarification)."},
    400: {"description": "A field of the body that is not accepted, named."},
    401: {"description": "No key, or an unknown one, while keys are set."},
    403: {"description": "An ingest key: reading needs a read key."},
    408: {"description": "Body not received within the body timeout."},
    413: {"description": "Body too large."},
    415: {"description": "Body not declared application/json."},
    503: {"description": "Store unavailable: retry after Retry-After."},
    504: {"description": "The statement ran past its timeout."},
}
# What the two routes share: the body they read themselves, and their answers.
_ROUTE: dict[str, Any] = {
    "response_model": None,
    "openapi_extra": json_request_body(AskBody),
    "responses": _RESPONSES,
}


@router.post("/ask", summary="Ask a question in plain language", **_ROUTE)
async def post_ask(request: Request) -> Response:
    accepted = await _accept(request)
    if isinstance(accepted, Response):
        return accepted
    state, asker, body = accepted
    return await to_thread.run_sync(_answer, asker, body, time.time(), limiter=state.sql_slots())


@router.post("/ask/stream", summary="Ask a question; the parts as Server-Sent Events", **_ROUTE)
async def post_ask_stream(request: Request) -> Response:
    accepted = await _accept(request)
    if isinstance(accepted, Response):
        return accepted
    state, asker, body = accepted
    steps = asker.ask_steps(body, time.time())
    # The first step (reading the question) runs before the stream starts, so a bad field or
    # an unavailable store is answered with its status rather than as an event.
    try:
        first = await to_thread.run_sync(next, steps, limiter=state.ask_slots())
    except Exception as exc:  # noqa: BLE001 - answered by _failure or re-raised
        return _failure(exc)
    return StreamingResponse(
        _events(state, first, steps),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _accept(request: Request) -> tuple[ServerState, AskService, AskRequest] | Response:
    state = state_of(request)
    refused = unauthorised(state, request, auth.READ)
    if refused is not None:
        return refused
    if state.ask is None:
        return failure(404, "not_found", "this server does not answer questions")
    raw = await read_json_body(request, state, MAX_BODY_BYTES)
    if isinstance(raw, Response):
        return raw
    try:
        document = json.loads(raw)
    except ValueError as exc:
        return failure(400, "bad_request", f"the body is not valid JSON: {exc}", parameter="body")
    except RecursionError:
        return failure(400, "bad_request", "the body is nested too deeply", parameter="body")
    try:
        return state, state.ask, parse_request(document)
    except BadAsk as exc:
        return _bad(exc)


def _answer(asker: AskService, body: AskRequest, now: float) -> Response:
    try:
        return JSONResponse(asker.ask(body, now))
    except Exception as exc:  # noqa: BLE001 - every failure is answered by _failure or re-raised
        return _failure(exc)


def _failure(exc: Exception) -> JSONResponse:
    if isinstance(exc, BadAsk):
        return _bad(exc)
    if isinstance(exc, SqlTimeout):
        return failure(504, "timeout", exc.reason)
    if isinstance(exc, (SqlStoreUnavailable, StoreUnavailable)):
        return store_unavailable(exc)
    if isinstance(exc, (SqlRefused, SqlQueryError)):
        # The builtin SQL is refused or fails only through a bug of ours: say so, not a 400.
        forget_frames(exc)
        return failure(500, "internal", f"the question's SQL failed: {exc.reason}")
    raise exc


def _bad(exc: BadAsk) -> JSONResponse:
    return failure(400, "bad_request", exc.reason, parameter=exc.field)


async def _events(
    state: ServerState, first: tuple[str, dict], steps: Iterator[tuple[str, dict]]
) -> AsyncIterator[str]:
    yield _event(*first)
    done = object()
    while True:
        try:
            step = await to_thread.run_sync(next, steps, done, limiter=state.ask_slots())
        except Exception as exc:  # noqa: BLE001 - reported to the client as an error event
            try:
                answer = _failure(exc)
            except Exception:  # noqa: BLE001 - an unexpected bug: reported, then logged
                yield _event("error", {"error": "internal", "reason": "the question failed"})
                raise
            yield _event("error", json.loads(bytes(answer.body)))
            yield _event("done", {})
            return
        if step is done:
            yield _event("done", {})
            return
        name, data = step  # type: ignore[misc]
        yield _event(name, data)


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
