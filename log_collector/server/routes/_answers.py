"""The error answers the routes share: one JSON shape, ``{"detail": ...}``,
with the headers each status calls for."""

from __future__ import annotations

import traceback

from fastapi.responses import JSONResponse
from starlette.requests import Request

from .. import auth
from ..ingest import IngestError
from ..state import ServerState
from ..store import StoreUnavailable

# Seconds a client is asked to wait after a 503 before it tries again.
RETRY_AFTER_S = 5
# Seconds to wait after a 503 for the in-flight byte budget: other bodies
# are being received and stored, which takes about a second at most.
BUSY_RETRY_AFTER_S = 1


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def forget_frames(exc: BaseException | None) -> None:
    """Clear the locals of the finished frames ``exc``, and the exceptions it
    is raised during, passed through.

    Those locals hold the refused body and its decompressed bytes (up to the
    limit, 64 MiB), and an exception caught in a frame that names it is in a
    reference cycle (exception, traceback, frame, exception) that only the
    garbage collector frees: uncleared, every gzip bomb keeps its 64 MiB
    until the next full collection.
    https://docs.python.org/3/library/traceback.html#traceback.clear_frames
    """
    while exc is not None:
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__context__


def refused_body(exc: IngestError) -> JSONResponse:
    forget_frames(exc)
    # A client still holding back part of its body would otherwise keep the
    # connection open after the answer, trickling into the void.
    headers = {"Connection": "close"} if exc.close else None
    return error(exc.status, exc.message, headers=headers)


def unavailable(exc: StoreUnavailable) -> JSONResponse:
    forget_frames(exc)
    return error(503, f"store unavailable: {exc}", headers={"Retry-After": str(RETRY_AFTER_S)})


def unauthorised(
    state: ServerState, request: Request, scope: str = auth.INGEST
) -> JSONResponse | None:
    """The 401 for a request without a key ``scope`` accepts, the 403 for a key of the other
    scope, or None when it may pass."""
    refusal = state.scopes.authorise(scope, request.headers.get("authorization"))
    if refusal is None:
        return None
    headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
    return error(refusal.status, refusal.message, headers=headers)
