"""``GET /stats``: totals by level and service and recent errors, from the
app's cache (``state.StatsCache``), behind the read scope's keys when keys are set."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from .. import auth
from ..state import state_of
from ..store import StoreUnavailable
from ._answers import unauthorised, unavailable

router = APIRouter()


@router.get("/stats")
async def stats(request: Request) -> JSONResponse:
    state = state_of(request)
    # Behind the read keys when keys are set: service names are not public.
    refused = unauthorised(state, request, auth.READ)
    if refused is not None:
        return refused
    try:
        return JSONResponse(await run_in_threadpool(state.stats.get))
    except StoreUnavailable as exc:
        return unavailable(exc)
