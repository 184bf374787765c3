"""The read API over the logs, under ``/api/``: ``GET /api/logs``, ``/api/logs/{id}``,
``/api/logs/{id}/context``, ``/api/histogram``, ``/api/facets``, ``/api/traces/{trace_id}``,
``/api/services`` and ``/api/endpoints``. Each answers what the ``query`` function of the same
name returns, as JSON. The dashboard's saved views, ``GET``/``POST /api/views`` and ``DELETE
/api/views/{id}`` (``query.views``), take the same read scope.

The query string is read raw (``multi_items``) and handed to ``query.filters.parse_filters``:
filters may repeat (``service``, ``level``) or carry a name chosen by the user
(``meta.KEY=VALUE``), which declared parameters cannot express, and a value FastAPI refused
would be a 422 without the parameter's name. The parameters are still described to the OpenAPI
schema (``openapi_extra``), so /docs lists them.

Answers: 200 with the result; every failure is ``{"error": <kind>, "reason": <what exactly>}``
as ``POST /api/sql`` answers: 400 ``bad_request`` for a parameter the request may not give
(an unknown name, a malformed value, a number out of range, a cursor this server did not
issue), with ``parameter`` naming it; 404 ``not_found`` for a log, trace or view that does not
exist; 503 ``unavailable`` with Retry-After when the store does not answer in time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from typing import Any

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.requests import Request

from .. import auth
from ..query import aggregates, endpoints, views
from ..query.errors import BadQuery, NotFound
from ..query.filters import EQUALITY_FILTERS, Filters, one_param, parse_filters
from ..query.search import (
    DEFAULT_CONTEXT,
    DEFAULT_LIMIT,
    MAX_CONTEXT,
    MAX_LIMIT,
    MAX_TRACE_LOGS,
    context,
    get_log,
    search,
    trace,
)
from ..state import ServerState, state_of
from ..store import StoreUnavailable
from ._answers import RETRY_AFTER_S, forget_frames, unauthorised

router = APIRouter(prefix="/api", tags=["query"])

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


def store_unavailable(exc: StoreUnavailable) -> JSONResponse:
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


def filters_of(params: Params, now: float, extra: Collection[str] = ()) -> Filters:
    return parse_filters(params, now, extra=extra)


def _store(state: ServerState) -> Any:
    state.migrated.ensure()
    return state.store


def _parameter(name: str, description: str, *, repeated: bool = False) -> dict[str, Any]:
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
    _parameter("service", "Service name; repeat for any of several.", repeated=True),
    _parameter(
        "level", "TRACE, DEBUG, INFO, WARN, ERROR or FATAL; repeat for several.", repeated=True
    ),
    _parameter("min_level", "This level and the ones above it."),
    _parameter(
        "since", "Inclusive start: ISO 8601 (UTC without a zone) or 15m, 1h, 7d before now."
    ),
    _parameter("until", "Exclusive end: ISO 8601 or 15m, 1h, 7d before now."),
    _parameter("q", "Text the message contains, case-insensitively."),
    *(_parameter(name, f"{name} equals this value.") for name in EQUALITY_FILTERS),
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


def _responses(ok: Any, description: str, found: bool = False) -> dict:
    responses: dict[int | str, dict[str, Any]] = {
        200: {"description": description},
        400: {"model": Failure, "description": "A parameter that is not accepted, named."},
        401: {"description": "No key, or an unknown one, while keys are set."},
        403: {"description": "An ingest key: reading needs a read key."},
        503: {"model": Failure, "description": "Store unavailable: retry after Retry-After."},
    }
    if ok is not None:
        responses[200]["model"] = ok
    if found:
        responses[404] = {"model": Failure, "description": "No such log or trace."}
    return responses


Record = dict[str, Any]


class LogsPage(BaseModel):
    logs: list[Record] = Field(description="Records, newest first: every column of logs.")
    next_cursor: str | None = Field(description="Give as cursor for the next page; null: last.")


class Context(BaseModel):
    before: list[Record] = Field(description="Older logs of the same service, oldest first.")
    line: Record
    after: list[Record] = Field(description="Newer logs of the same service, oldest first.")


class Bucket(BaseModel):
    t: str = Field(description="The bucket's start, ISO 8601 UTC.")
    counts: dict[str, int] = Field(description="Logs per level the filters admit.")


class Histogram(BaseModel):
    interval_s: int
    buckets: list[Bucket]


class FacetValue(BaseModel):
    value: str
    count: int


class Trace(BaseModel):
    trace_id: str
    services: list[str] = Field(description="In the order they first log.")
    started_at: str
    duration_ms: float = Field(description="From the trace's first log to its last.")
    logs: list[Record] = Field(description="Oldest first.")
    truncated: bool = Field(description=f"More than {MAX_TRACE_LOGS} logs: the rest left out.")


class Service(BaseModel):
    service: str
    count: int
    last_seen: str
    errors_1h: int = Field(description="ERROR and FATAL logs in the last hour.")


_LIMIT = _parameter("limit", f"Logs per page, 1 to {MAX_LIMIT} (default 50).")
_CURSOR = _parameter("cursor", "The next_cursor of the previous page.")


@router.get(
    "/logs",
    summary="Search logs, newest first, a page at a time",
    description=FILTERS_NOTE,
    response_model=None,
    openapi_extra={"parameters": [*FILTER_PARAMETERS, _LIMIT, _CURSOR]},
    responses=_responses(LogsPage, "A page of logs."),
)
async def get_logs(request: Request) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        filters = filters_of(params, now, extra=("limit", "cursor"))
        limit = one_param(params, "limit")
        cursor = one_param(params, "cursor")
        return search(_store(state), filters, DEFAULT_LIMIT if limit is None else limit, cursor)

    return await answer(request, work)


@router.get(
    "/logs/{log_id}",
    summary="One log",
    response_model=None,
    responses=_responses(None, "The record: every column of logs.", found=True),
)
async def get_one_log(request: Request, log_id: str) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        no_other_params(params)
        return get_log(_store(state), log_id)

    return await answer(request, work)


@router.get(
    "/logs/{log_id}/context",
    summary="The logs of the same service around one log",
    response_model=None,
    openapi_extra={
        "parameters": [
            _parameter("before", f"Logs before it, 0 to {MAX_CONTEXT} (default 20)."),
            _parameter("after", f"Logs after it, 0 to {MAX_CONTEXT} (default 20)."),
        ]
    },
    responses=_responses(Context, "The log and its neighbours.", found=True),
)
async def get_context(request: Request, log_id: str) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        no_other_params(params, ("before", "after"))
        before = one_param(params, "before")
        after = one_param(params, "after")
        return context(
            _store(state),
            log_id,
            DEFAULT_CONTEXT if before is None else before,
            DEFAULT_CONTEXT if after is None else after,
        )

    return await answer(request, work)


@router.get(
    "/histogram",
    summary="Logs per level over time",
    description=FILTERS_NOTE + " The window is [since, until), since 24 h before until by "
    "default; buckets start at multiples of interval_s since the epoch.",
    response_model=None,
    openapi_extra={
        "parameters": [
            *FILTER_PARAMETERS,
            _parameter(
                "buckets", f"Buckets wanted at most, 1 to {aggregates.MAX_BUCKETS} (default 60)."
            ),
        ]
    },
    responses=_responses(Histogram, "Every bucket of the window, zeros included."),
)
async def get_histogram(request: Request) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        filters = filters_of(params, now, extra=("buckets",))
        buckets = one_param(params, "buckets")
        return aggregates.histogram(
            _store(state), filters, aggregates.DEFAULT_BUCKETS if buckets is None else buckets
        )

    return await answer(request, work)


@router.get(
    "/facets",
    summary="The most frequent values of chosen columns",
    description=FILTERS_NOTE,
    response_model=None,
    openapi_extra={
        "parameters": [
            *FILTER_PARAMETERS,
            _parameter(
                "fields",
                f"Comma-separated columns among {', '.join(aggregates.FACET_FIELDS)} "
                "(default service,level).",
            ),
            _parameter("top", f"Values per column, 1 to {aggregates.MAX_TOP} (default 10)."),
        ]
    },
    responses=_responses(
        dict[str, list[FacetValue]], "{column: [{value, count}], ...}, most frequent first."
    ),
)
async def get_facets(request: Request) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        filters = filters_of(params, now, extra=("fields", "top"))
        top = one_param(params, "top")
        return aggregates.facets(
            _store(state),
            filters,
            params.get("fields"),
            aggregates.DEFAULT_TOP if top is None else top,
        )

    return await answer(request, work)


@router.get(
    "/traces/{trace_id:path}",
    summary="The logs of one trace, oldest first",
    response_model=None,
    responses=_responses(Trace, "The trace.", found=True),
)
async def get_trace(request: Request, trace_id: str) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        no_other_params(params)
        return trace(_store(state), trace_id)

    return await answer(request, work)


@router.get(
    "/services",
    summary="One line per service: its logs, last log and recent errors",
    response_model=None,
    responses=_responses(list[Service], "One line per service, by name."),
)
async def get_services(request: Request) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        no_other_params(params)
        return aggregates.services(_store(state), now)

    return await answer(request, work)


class Endpoint(BaseModel):
    path: str
    method: str | None
    count: int = Field(description="Requests of the window that logged a duration_ms.")
    p50_ms: float = Field(description="Median duration_ms (percentile_cont 0.5).")
    p95_ms: float = Field(description="95th percentile of duration_ms (percentile_cont 0.95).")
    max_ms: float
    errors: int = Field(description="ERROR and FATAL logs of this path and method.")


class Endpoints(BaseModel):
    endpoints: list[Endpoint] = Field(description="Slowest p95 first.")


@router.get(
    "/endpoints",
    summary="The slowest endpoints: duration_ms percentiles per path and method",
    description=FILTERS_NOTE + " The window is [since, until), since an hour before until by "
    "default; rows without a path are left out, and the durations are those of rows that have "
    "one.",
    response_model=None,
    openapi_extra={
        "parameters": [
            *FILTER_PARAMETERS,
            _parameter("top", f"Endpoints listed, 1 to {endpoints.MAX_TOP} (default 10)."),
        ]
    },
    responses=_responses(Endpoints, "The endpoints, slowest 95th percentile first."),
)
async def get_endpoints(request: Request) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        filters = filters_of(params, now, extra=("top",))
        top = one_param(params, "top")
        return endpoints.endpoints(
            _store(state), filters, endpoints.DEFAULT_TOP if top is None else top
        )

    return await answer(request, work)


# A view's JSON body is at most this long: its fields hold about 4 KiB of text, which JSON
# escapes may make six times longer.
MAX_VIEW_BODY_BYTES = 64 * 1024


class ViewIn(BaseModel):
    name: str = Field(min_length=1, max_length=views.MAX_NAME_CHARS, description="Unique.")
    page: str = Field(description=f"One of {', '.join(views.PAGES)}.")
    query: str = Field(
        "",
        max_length=views.MAX_QUERY_CHARS,
        description="The page URL's query string, without '?'.",
    )


class View(ViewIn):
    id: int
    created_at: str


class Views(BaseModel):
    views: list[View] = Field(description="By name.")


@router.get(
    "/views",
    summary="The dashboard's saved views",
    response_model=None,
    responses=_responses(Views, "Every saved view, by name."),
)
async def get_views(request: Request) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        no_other_params(params)
        return views.list_views(_store(state))

    return await answer(request, work)


@router.post(
    "/views",
    summary="Save a view of the dashboard (a name that exists is replaced)",
    status_code=201,
    response_model=None,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ViewIn.model_json_schema()}},
        }
    },
    responses={
        **_responses(None, ""),
        201: {"model": View, "description": "The view as stored."},
        413: {"model": Failure, "description": f"A body over {MAX_VIEW_BODY_BYTES} bytes."},
        415: {"model": Failure, "description": "A body not sent as application/json."},
    },
)
async def post_view(request: Request) -> Response:
    # The key is checked before the body is read (answer() checks it again, cheaply).
    refused = unauthorised(state_of(request), request, auth.READ)
    if refused is not None:
        return refused
    body = await _json_body(request)
    if isinstance(body, Response):
        return body

    def work(state: ServerState, params: Params, now: float) -> Any:
        no_other_params(params)
        return views.save_view(_store(state), views.parse_view(body), now)

    return await answer(request, work, status=201)


@router.delete(
    "/views/{view_id}",
    summary="Delete a saved view",
    status_code=204,
    response_model=None,
    responses={
        **_responses(None, ""),
        204: {"description": "Deleted."},
        404: {"model": Failure, "description": "No such view."},
    },
)
async def delete_view(request: Request, view_id: str) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        no_other_params(params)
        views.delete_view(_store(state), view_id)
        return Response(status_code=204)

    return await answer(request, work)


async def _json_body(request: Request) -> Any:
    """The request's body decoded as JSON, or the failure to answer: 415 when it is not sent as
    application/json (a cross-site form cannot send that type without a CORS preflight, which
    fails for any origin not configured), 413 past MAX_VIEW_BODY_BYTES, 400 when it is not
    JSON."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return failure(415, "unsupported_media_type", "send the body as application/json")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_VIEW_BODY_BYTES:
            return failure(
                413, "too_large", f"a view's body is at most {MAX_VIEW_BODY_BYTES} bytes"
            )
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except ValueError as exc:
        return failure(400, "bad_request", f"the body is not JSON: {exc}", parameter="body")
