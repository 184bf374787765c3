"""The read API over the logs, under ``/api/``: ``GET /api/logs``, ``/api/logs/{id}``,
``/api/logs/{id}/context``, ``/api/histogram``, ``/api/facets``, ``/api/traces/{trace_id}``,
``/api/services`` and ``/api/endpoints``. Each answers what the ``query`` function of the same
name returns, as JSON. The dashboard's saved views (``routes.views``) and the live tail
(``routes.tail``) take the same read scope and answer failures alike (``routes._read_api``).

The query string is read raw (``multi_items``) and handed to ``query.filters.parse_filters``:
filters may repeat (``service``, ``level``) or carry a name chosen by the user
(``meta.KEY=VALUE``), which declared parameters cannot express, and a value FastAPI refused
would be a 422 without the parameter's name. The parameters are still described to the OpenAPI
schema (``openapi_extra``), so /docs lists them.

Answers: 200 with the result; every failure is ``{"error": <kind>, "reason": <what exactly>}``
as ``POST /api/sql`` answers: 400 ``bad_request`` for a parameter the request may not give
(an unknown name, a malformed value, a number out of range, a cursor this server did not
issue), with ``parameter`` naming it; 404 ``not_found`` for a log or trace that does not
exist; 503 ``unavailable`` with Retry-After when the store does not answer in time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.requests import Request

from ..query import aggregates, endpoints
from ..query.filters import Filters, parse_filters
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
from ..state import ServerState
from ._read_api import (
    FILTER_PARAMETERS,
    FILTERS_NOTE,
    Params,
    Work,
    answer,
    no_other_params,
    option,
    parameter,
    responses,
    store_of,
)

router = APIRouter(prefix="/api", tags=["query"])


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


_LIMIT = parameter("limit", f"Logs per page, 1 to {MAX_LIMIT} (default 50).")
_CURSOR = parameter("cursor", "The next_cursor of the previous page.")


@router.get(
    "/logs",
    summary="Search logs, newest first, a page at a time",
    description=FILTERS_NOTE,
    response_model=None,
    openapi_extra={"parameters": [*FILTER_PARAMETERS, _LIMIT, _CURSOR]},
    responses=responses(LogsPage, "A page of logs."),
)
async def get_logs(request: Request) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        filters = parse_filters(params, now, extra=("limit", "cursor"))
        limit = option(params, "limit", DEFAULT_LIMIT)
        return search(store_of(state), filters, limit, option(params, "cursor", None))

    return await answer(request, work)


@router.get(
    "/logs/{log_id}",
    summary="One log",
    response_model=None,
    responses=responses(None, "The record: every column of logs.", found=True),
)
async def get_one_log(request: Request, log_id: str) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        no_other_params(params)
        return get_log(store_of(state), log_id)

    return await answer(request, work)


@router.get(
    "/logs/{log_id}/context",
    summary="The logs of the same service around one log",
    response_model=None,
    openapi_extra={
        "parameters": [
            parameter("before", f"Logs before it, 0 to {MAX_CONTEXT} (default 20)."),
            parameter("after", f"Logs after it, 0 to {MAX_CONTEXT} (default 20)."),
        ]
    },
    responses=responses(Context, "The log and its neighbours.", found=True),
)
async def get_context(request: Request, log_id: str) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        no_other_params(params, ("before", "after"))
        before = option(params, "before", DEFAULT_CONTEXT)
        after = option(params, "after", DEFAULT_CONTEXT)
        return context(store_of(state), log_id, before, after)

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
            parameter(
                "buckets", f"Buckets wanted at most, 1 to {aggregates.MAX_BUCKETS} (default 60)."
            ),
        ]
    },
    responses=responses(Histogram, "Every bucket of the window, zeros included."),
)
async def get_histogram(request: Request) -> Response:
    work = _filtered(aggregates.histogram, "buckets", aggregates.DEFAULT_BUCKETS)
    return await answer(request, work)


@router.get(
    "/facets",
    summary="The most frequent values of chosen columns",
    description=FILTERS_NOTE,
    response_model=None,
    openapi_extra={
        "parameters": [
            *FILTER_PARAMETERS,
            parameter(
                "fields",
                f"Comma-separated columns among {', '.join(aggregates.FACET_FIELDS)} "
                "(default service,level).",
            ),
            parameter("top", f"Values per column, 1 to {aggregates.MAX_TOP} (default 10)."),
        ]
    },
    responses=responses(
        dict[str, list[FacetValue]], "{column: [{value, count}], ...}, most frequent first."
    ),
)
async def get_facets(request: Request) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        filters = parse_filters(params, now, extra=("fields", "top"))
        top = option(params, "top", aggregates.DEFAULT_TOP)
        return aggregates.facets(store_of(state), filters, params.get("fields"), top)

    return await answer(request, work)


@router.get(
    "/traces/{trace_id:path}",
    summary="The logs of one trace, oldest first",
    response_model=None,
    responses=responses(Trace, "The trace.", found=True),
)
async def get_trace(request: Request, trace_id: str) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        no_other_params(params)
        return trace(store_of(state), trace_id)

    return await answer(request, work)


@router.get(
    "/services",
    summary="One line per service: its logs, last log and recent errors",
    response_model=None,
    responses=responses(list[Service], "One line per service, by name."),
)
async def get_services(request: Request) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        no_other_params(params)
        return aggregates.services(store_of(state), now)

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
            parameter("top", f"Endpoints listed, 1 to {endpoints.MAX_TOP} (default 10)."),
        ]
    },
    responses=responses(Endpoints, "The endpoints, slowest 95th percentile first."),
)
async def get_endpoints(request: Request) -> Response:
    return await answer(request, _filtered(endpoints.endpoints, "top", endpoints.DEFAULT_TOP))


def _filtered(run: Callable[[Any, Filters, Any], Any], name: str, default: Any) -> Work:
    """The work of a route over the logs the filters select that takes one parameter of its
    own, ``name``: ``run(store, filters, its value or default)``."""

    def work(state: ServerState, params: Params, now: float) -> Any:
        filters = parse_filters(params, now, extra=(name,))
        return run(store_of(state), filters, option(params, name, default))

    return work
