"""``POST /api/sql``: one read-only SELECT over the logs, guarded by ``query.sqlguard`` and run
by ``query.sqlexec`` (read-only connection, statement timeout, at most ``limit + 1`` rows), both
through ``query.sqlrun`` as ``POST /api/ask`` runs its SQL.

Answers: 200 ``{"columns", "rows", "truncated", "elapsed_ms"}``; every failure is
``{"error": <kind>, "reason": <what exactly>}``: 400 for a body that is not a request
(``bad_request``), a statement the guard or the database refuses (``refused``) or an error of
the query itself (``query_error``, with the database's message); 408 a body not received within
the body timeout; 413 a body over ``MAX_BODY_BYTES``; 415 a body not declared JSON; 503 with
Retry-After when the store is unavailable; 504 a statement stopped by its timeout
(``timeout``): the server's own limit, not the client's slowness (408), and a status that
clients and browsers do not resend on their own.
"""

from __future__ import annotations

import json
from typing import Any

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.requests import Request

from .. import auth
from ..query.sqlexec import SqlQueryError, SqlStoreUnavailable, SqlTimeout
from ..query.sqlguard import DEFAULT_LIMIT, MAX_LIMIT, MAX_SQL_CHARS, SqlRefused
from ..query.sqlrun import json_value as json_value
from ..query.sqlrun import run_guarded
from ..state import ServerState, state_of
from ..store import StoreUnavailable
from ._answers import unauthorised
from ._read_api import failure, json_request_body, read_json_body, store_unavailable

# A statement is at most MAX_SQL_CHARS characters; JSON may spell each as a 6-byte \uXXXX
# escape, so a longer body cannot hold a statement the guard would take.
MAX_BODY_BYTES = 6 * MAX_SQL_CHARS + 4096

router = APIRouter(prefix="/api", tags=["query"])


class SqlRequest(BaseModel):
    sql: str = Field(description="One SELECT over the relation logs (and logs_iso on SQLite).")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Rows returned at most.")


class SqlAnswer(BaseModel):
    columns: list[str]
    rows: list[list[Any]] = Field(
        description="Times as ISO 8601 text, intervals as seconds, numeric as numbers, "
        "JSON as JSON, bytes as hex text, NaN and infinities as text."
    )
    truncated: bool = Field(description="More rows than limit matched.")
    elapsed_ms: float


class SqlFailure(BaseModel):
    error: str = Field(
        description="bad_request, refused, query_error, timeout, unavailable, too_large, "
        "body_timeout or unsupported_media_type."
    )
    reason: str


@router.post(
    "/sql",
    summary="Run one read-only SELECT",
    response_model=None,
    openapi_extra=json_request_body(SqlRequest),
    responses={
        200: {"model": SqlAnswer, "description": "The rows."},
        400: {"model": SqlFailure, "description": "Bad body, refused statement or query error."},
        401: {"description": "No key, or an unknown one, while read keys are set."},
        403: {"description": "An ingest key: reading needs a read key."},
        408: {"model": SqlFailure, "description": "Body not received within the body timeout."},
        413: {"model": SqlFailure, "description": "Body too large."},
        415: {"model": SqlFailure, "description": "Body not declared application/json."},
        503: {"model": SqlFailure, "description": "Store unavailable: retry after Retry-After."},
        504: {"model": SqlFailure, "description": "The statement ran past its timeout."},
    },
)
async def post_sql(request: Request) -> JSONResponse:
    state = state_of(request)
    refused = unauthorised(state, request, auth.READ)
    if refused is not None:
        return refused
    body = await read_json_body(request, state, MAX_BODY_BYTES)
    if isinstance(body, JSONResponse):
        return body
    parsed = parse_request(body)
    if isinstance(parsed, JSONResponse):
        return parsed
    sql, limit = parsed
    return await to_thread.run_sync(run_sql, state, sql, limit, limiter=state.sql_slots())


def parse_request(body: bytes) -> tuple[str, int] | JSONResponse:
    """``(sql, limit)`` from the body, or the 400 saying what is wrong with it."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        return failure(400, "bad_request", f"the body is not valid JSON: {exc}")
    except RecursionError:
        return failure(400, "bad_request", "the body is nested too deeply")
    if not isinstance(document, dict):
        return failure(
            400, "bad_request", 'the body must be a JSON object: {"sql": "SELECT ...", "limit": n}'
        )
    unknown = sorted(set(document) - {"sql", "limit"})
    if unknown:
        return failure(400, "bad_request", f"unknown fields: {', '.join(map(repr, unknown))}")
    sql = document.get("sql")
    if not isinstance(sql, str):
        return failure(400, "bad_request", '"sql" must be a string holding one SELECT')
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (JSON allows "\ud800") is not text any database can take.
        return failure(400, "bad_request", '"sql" is not valid Unicode text')
    limit = document.get("limit", DEFAULT_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        return failure(400, "bad_request", f'"limit" must be an integer from 1 to {MAX_LIMIT}')
    return sql, limit


def run_sql(state: ServerState, sql: str, limit: int) -> JSONResponse:
    """Guard, run and encode one statement, in a worker thread: the answer."""
    try:
        result = run_guarded(state, sql, limit)
        return JSONResponse(
            {
                "columns": result.columns,
                "rows": [[json_value(value) for value in row] for row in result.rows],
                "truncated": result.truncated,
                "elapsed_ms": result.elapsed_ms,
            }
        )
    except SqlRefused as exc:
        return failure(400, "refused", exc.reason)
    except SqlQueryError as exc:
        return failure(400, "query_error", exc.reason)
    except SqlTimeout as exc:
        return failure(504, "timeout", exc.reason)
    except (SqlStoreUnavailable, StoreUnavailable) as exc:
        return store_unavailable(exc)
    except RecursionError:
        # A JSON value nested deeper than Python decodes or encodes (PostgreSQL takes more).
        return failure(400, "query_error", "a value of the result is nested too deeply to return")
