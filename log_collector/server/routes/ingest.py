"""``POST /logs``: the key, the content type and encoding, then the body
streamed in on the event loop; decoding, validation and the database run in
the thread pool, so one large batch does not stall /healthz."""

from __future__ import annotations

import time

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect, Request

from ..ingest import IngestError, decode_body, normalise_all, parse_content_encoding, store_batch
from ..ingest.receive import OverBudget, is_json, read_body
from ..state import ServerState, state_of
from ..store import StoreUnavailable
from ._answers import BUSY_RETRY_AFTER_S, error, refused_body, unauthorised, unavailable

router = APIRouter()


@router.post("/logs")
async def post_logs(request: Request) -> JSONResponse:
    state = state_of(request)
    refused = unauthorised(state, request)
    if refused is None:
        refused = _unsupported_type(request)
    if refused is not None:
        return refused
    taken = [0]
    try:
        try:
            gzipped = parse_content_encoding(request.headers.get("content-encoding"))
            body = await read_body(request, state.limits, state.budget, taken)
        except IngestError as exc:
            return refused_body(exc)
        except OverBudget:
            return error(
                503,
                "server is busy receiving other bodies "
                f"(over {state.limits.max_inflight_bytes} bytes in flight): retry later",
                headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
            )
        except ClientDisconnect:
            # Gone before its body was in: nobody reads an answer, and it is not
            # the server's error (starlette would log a traceback and a 500).
            return error(400, "client disconnected before sending the whole body")
        return await to_thread.run_sync(_ingest, state, body, gzipped, limiter=state.ingest_slots())
    finally:
        state.budget.give(taken[0])


def _unsupported_type(request: Request) -> JSONResponse | None:
    content_type = request.headers.get("content-type")
    if is_json(content_type):
        return None
    # JSON only: a browser may send text/plain, form types or no type
    # across sites without a CORS preflight, application/json it may not.
    # https://fetch.spec.whatwg.org/#cors-safelisted-request-header
    got = f"'{content_type}'" if content_type else "none"
    return error(415, f"Content-Type must be application/json, got {got}")


def _ingest(state: ServerState, body: bytes, gzipped: bool) -> JSONResponse:
    """Decode, validate and store one batch, in a worker thread: the answer.
    Refusals are answers, not exceptions crossing back to the event loop."""
    received_at = time.time()
    try:
        with state.decode_slots:
            batch = normalise_all(decode_body(body, gzipped, state.limits), received_at)
        state.migrated.ensure()
        stored = store_batch(state.store.insert, batch)
    except IngestError as exc:
        return refused_body(exc)
    except StoreUnavailable as exc:
        return unavailable(exc)
    answer = {
        "status": "ok",
        "count": len(batch.rows) + len(batch.rejected),
        "accepted": stored.accepted,
        "duplicates": stored.duplicates,
        "rejected": stored.rejected,
    }
    if stored.coerced:
        answer["coerced"] = stored.coerced
    return JSONResponse(answer)
