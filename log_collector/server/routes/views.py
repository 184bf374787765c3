"""The dashboard's saved views, under the read scope: ``GET /api/views`` lists them, ``POST
/api/views`` saves one (a name that exists is replaced), ``DELETE /api/views/{id}`` deletes
one. Each answers what the ``query.views`` function of the same job returns, as JSON.

Failures are those of the other read routes (``routes.query``), and for ``POST`` the body's
own: 415 ``unsupported_media_type`` for a body not sent as application/json, 413 ``too_large``
past ``MAX_VIEW_BODY_BYTES``, 400 ``bad_request`` naming ``body`` or the field at fault.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.requests import Request

from .. import auth
from ..query import views
from ..state import ServerState, state_of
from ._answers import unauthorised
from ._read_api import (
    Failure,
    Params,
    answer,
    failure,
    json_request_body,
    no_other_params,
    responses,
    store_of,
)

router = APIRouter(prefix="/api", tags=["query"])

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
    responses=responses(Views, "Every saved view, by name."),
)
async def get_views(request: Request) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        no_other_params(params)
        return views.list_views(store_of(state))

    return await answer(request, work)


@router.post(
    "/views",
    summary="Save a view of the dashboard (a name that exists is replaced)",
    status_code=201,
    response_model=None,
    openapi_extra=json_request_body(ViewIn),
    responses={
        **responses(None, ""),
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
        return views.save_view(store_of(state), views.parse_view(body), now)

    return await answer(request, work, status=201)


@router.delete(
    "/views/{view_id}",
    summary="Delete a saved view",
    status_code=204,
    response_model=None,
    responses={
        **responses(None, ""),
        204: {"description": "Deleted."},
        404: {"model": Failure, "description": "No such view."},
    },
)
async def delete_view(request: Request, view_id: str) -> Response:
    def work(state: ServerState, params: Params, now: float) -> Any:
        no_other_params(params)
        views.delete_view(store_of(state), view_id)
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
