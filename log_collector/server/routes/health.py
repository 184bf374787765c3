"""``GET /`` (the original server's greeting), ``/healthz`` (the process
answers) and ``/readyz`` (the store answers)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..state import state_of
from ..store import StoreUnavailable
from ._answers import unavailable

router = APIRouter()


@router.get("/")
async def root() -> dict[str, str]:
    return {"status": "ok", "service": "log-server"}


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
