"""``GET /`` (the original server's greeting), ``/healthz`` (the process
answers) and ``/readyz`` (the store answers)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..state import state_of
from ..store import StoreUnavailable
from ._answers import unavailable

router = APIRouter()

# The roles that mount the dashboard (routes.QUERY_ROUTERS), where a browser asking for / is
# sent.
UI_ROLES = frozenset({"query", "all"})
UI_HOME = "/ui/"


@router.get(
    "/",
    response_model=None,
    responses={307: {"description": f"A browser (Accept prefers text/html) goes to {UI_HOME}."}},
)
async def root(request: Request) -> Response:
    """The original server's greeting for API clients; a browser is sent to the dashboard."""
    # Vary: a cache must not give an API client the browser's redirect, or the reverse.
    headers = {"Vary": "Accept"}
    if state_of(request).role in UI_ROLES and prefers_html(request.headers.get("accept", "")):
        return RedirectResponse(UI_HOME, status_code=307, headers=headers)
    return JSONResponse({"status": "ok", "service": "log-server"}, headers=headers)


def prefers_html(accept: str) -> bool:
    """Whether an Accept header ranks text/html above application/json: a browser's
    (``text/html,...,*/*;q=0.8``) does, an API client's (none, ``*/*``,
    ``application/json``) does not. Each type takes the quality of the most specific range
    that matches it. https://www.rfc-editor.org/rfc/rfc9110#section-12.5.1"""
    return _quality(accept, "text", "html") > _quality(accept, "application", "json")


def _quality(accept: str, kind: str, subtype: str) -> float:
    best_specificity, quality = -1, 0.0
    for item in accept.split(",")[:50]:
        media_range, *params = (part.strip() for part in item.split(";"))
        range_kind, _, range_subtype = media_range.lower().partition("/")
        if range_kind == kind and range_subtype == subtype:
            specificity = 2
        elif range_kind == kind and range_subtype == "*":
            specificity = 1
        elif range_kind == "*" and range_subtype == "*":
            specificity = 0
        else:
            continue
        if specificity <= best_specificity:
            continue
        best_specificity, quality = specificity, _q(params)
    return quality


def _q(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return min(max(float(value.strip()), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    try:
        await run_in_threadpool(state_of(request).ready)
    except StoreUnavailable as exc:
        return unavailable(exc)
    return JSONResponse({"status": "ready"})
