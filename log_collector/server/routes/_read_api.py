"""What the routes of the read API (``query``, ``views``, ``tail``, ``sql``, ``ask``) share: the
query string as ``Params``, the failure shape ``{"error": <kind>, "reason": <what exactly>}``,
``answer`` (the read scope, then the work in a worker thread, its errors as failures),
``read_json_body`` (a JSON body read under a size and time limit), and the pieces of their
OpenAPI description (``parameter``, ``FILTER_PARAMETERS``, ``responses``,
``json_request_body``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

import anyio
from anyio import to_thread
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect, Request

from .. import auth
from ..ingest.receive import is_json
from ..query.errors import BadQuery, NotFound
from ..query.filters import EQUALITY_FILTERS, one_param
from ..state import ServerState, state_of
from ..store import StoreUnavailable
from ._answers import RETRY_AFTER_S, forget_frames, unauthorised

Params = dict[str, list[str]]


def query_params(request: Request) -> Params:
    """The query string as ``{name: [value, ...]}``, repeated names kept in order."""
    grouped: Params = {}
    for name, value in request.query_params.multi_items():
        grouped.setdefault(name, []).append(value)
    return grouped


def failure(
    status: int,
    error: str,
    reason: str,
    *,
    parameter: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, str] = {"error": error}
    if parameter is not None:
        body["parameter"] = parameter
    body["reason"] = reason
    return JSONResponse(body, status_code=status, headers=headers)


def bad_query(exc: BadQuery) -> JSONResponse:
    return failure(400, "bad_request", exc.message, parameter=exc.parameter)


def store_unavailable(exc: BaseException) -> JSONResponse:
    forget_frames(exc)
    return failure(
        503, "unavailable", f"store unavailable: {exc}", headers={"Retry-After": str(RETRY_AFTER_S)}
    )


def no_other_params(params: Params, allowed: Collection[str] = ()) -> None:
    """BadQuery for the first parameter not in ``allowed``: an endpoint without filters takes
    no filter, so a misspelt or misplaced one is reported rather than ignored."""
    for name in params:
        if name not in allowed:
            raise BadQuery(name[:100], "unknown parameter")


def option(params: Params, name: str, default: Any) -> Any:
    """The single value of ``name`` (the query function checks it), ``default`` without one."""
    value = one_param(params, name)
    return default if value is None else value


Work = Callable[[ServerState, Params, float], Any]


async def answer(request: Request, work: Work, status: int = 200) -> Response:
    """Check the read scope, then run ``work(state, params, now)`` in a worker thread (its SQL
    must not hold the event loop) and answer its result as JSON with ``status`` (a Response it
    returns is answered as it is)."""
    state = state_of(request)
    refused = unauthorised(state, request, auth.READ)
    if refused is not None:
        return refused
    return await to_thread.run_sync(_run, work, state, query_params(request), time.time(), status)


def _run(work: Work, state: ServerState, params: Params, now: float, status: int) -> Response:
    try:
        result = work(state, params, now)
    except BadQuery as exc:
        return bad_query(exc)
    except NotFound as exc:
        return failure(404, "not_found", str(exc))
    except StoreUnavailable as exc:
        return store_unavailable(exc)
    if isinstance(result, Response):
        return result
    return JSONResponse(result, status_code=status)


async def read_json_body(
    request: Request, state: ServerState, max_bytes: int
) -> bytes | JSONResponse:
    """The body of a route that reads its JSON itself, or its failure: 415 a body not declared
    JSON, 413 one over ``max_bytes``, 408 one not received within the body timeout, 400 a client
    that left before sending it all."""
    if not is_json(request.headers.get("content-type")):
        return failure(415, "unsupported_media_type", "Content-Type must be application/json")
    try:
        return await _read_body(request, state.limits.body_timeout, max_bytes)
    except _TooLarge:
        return failure(413, "too_large", f"the body is larger than {max_bytes} bytes")
    except TimeoutError:
        return failure(
            408, "body_timeout", f"the body did not arrive within {state.limits.body_timeout:g} s"
        )
    except ClientDisconnect:
        return failure(400, "bad_request", "client disconnected before sending the whole body")


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, timeout: float, max_bytes: int) -> bytes:
    chunks = bytearray()
    with anyio.fail_after(timeout):
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > max_bytes:
                raise _TooLarge
    return bytes(chunks)


def store_of(state: ServerState) -> Any:
    """The store, once its migrations are known to be applied."""
    state.migrated.ensure()
    return state.store


def parameter(name: str, description: str, *, repeated: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if repeated:
        schema = {"type": "array", "items": schema}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


FILTER_PARAMETERS = [
    parameter("service", "Service name; repeat for any of several.", repeated=True),
    parameter(
        "level", "TRACE, DEBUG, INFO, WARN, ERROR or FATAL; repeat for several.", repeated=True
    ),
    parameter("min_level", "This level and the ones above it."),
    parameter("since", "Inclusive start: ISO 8601 (UTC without a zone) or 15m, 1h, 7d before now."),
    parameter("until", "Exclusive end: ISO 8601 or 15m, 1h, 7d before now."),
    parameter("q", "Text the message contains, case-insensitively."),
    *(parameter(name, f"{name} equals this value.") for name in EQUALITY_FILTERS),
]
FILTERS_NOTE = (
    "Filters: the parameters listed, `meta.KEY=VALUE` for a top-level metadata key's value "
    "as text (`meta.order_id=42`), and `not.FIELD=VALUE` (repeatable; FIELD one of service, "
    "level, environment, trace_id, user_id, session_id, path, method, error_type, "
    "function_name) to leave out the logs whose FIELD is VALUE (a log without the field "
    "stays). Deleted logs are never returned."
)


class Failure(BaseModel):
    error: str = Field(
        description="bad_request, not_found, unavailable (or too_large, unsupported_media_type)."
    )
    parameter: str | None = Field(None, description="The parameter at fault (400 only).")
    reason: str


def responses(ok: Any, description: str, found: bool = False) -> dict:
    """The answers of a read route: 200 with ``ok`` (a model, or None), its failures, and the
    404 when ``found`` (a route naming one log or trace)."""
    described: dict[int | str, dict[str, Any]] = {
        200: {"description": description},
        400: {"model": Failure, "description": "A parameter that is not accepted, named."},
        401: {"description": "No key, or an unknown one, while keys are set."},
        403: {"description": "An ingest key: reading needs a read key."},
        503: {"model": Failure, "description": "Store unavailable: retry after Retry-After."},
    }
    if ok is not None:
        described[200]["model"] = ok
    if found:
        described[404] = {"model": Failure, "description": "No such log or trace."}
    return described


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that reads its JSON body itself (no request model, see
    ``routes``): the body described by ``model``, required."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
