"""``POST /v1/logs``: OpenTelemetry's OTLP/HTTP logs export, as protobuf or OTLP/JSON, with
the keys, limits and store of ``POST /logs`` (``ingest/otlp.py`` maps the records).

Answers as the OTLP/HTTP specification asks (https://opentelemetry.io/docs/specs/otlp/):
200 with an ``ExportLogsServiceResponse`` in the request's encoding, whose
``partial_success`` counts the records refused and names each (``log record N: reason``,
separated by ``; ``); otherwise a ``google.rpc.Status``
body with 400 (a body that is not a request), 401/403 (the key), 413 (over a limit), 415 (a
Content-Type or Content-Encoding OTLP does not use) or 503 with Retry-After (the store is
unavailable, or the server is busy receiving other bodies), which exporters retry.
"""

from __future__ import annotations

import time

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import Response
from starlette.requests import ClientDisconnect, Request

from .. import auth
from ..ingest import IngestError, normalise_all, parse_content_encoding, store_batch
from ..ingest.otlp import JSON, PROTOBUF, answer, decode_otlp, media_type, status
from ..ingest.receive import OverBudget, read_body
from ..state import ServerState, state_of
from ..store import StoreUnavailable
from ._answers import BUSY_RETRY_AFTER_S, RETRY_AFTER_S, forget_frames

router = APIRouter()

# google.rpc.Code of each HTTP status the route answers with.
# https://github.com/googleapis/googleapis/blob/master/google/rpc/code.proto
_CODES = {400: 3, 401: 16, 403: 7, 408: 4, 413: 3, 415: 3, 503: 14}
# How much of each refused record's reason the answer's error_message quotes.
_REASON_CHARS = 200


@router.post("/v1/logs")
async def post_otlp_logs(request: Request) -> Response:
    state = state_of(request)
    kind = media_type(request.headers.get("content-type"))
    refusal = state.scopes.authorise(auth.INGEST, request.headers.get("authorization"))
    if refusal is not None:
        headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
        return _failed(kind, refusal.status, refusal.message, headers)
    if kind is None:
        got = request.headers.get("content-type")
        return _failed(None, 415, f"Content-Type must be {PROTOBUF} or {JSON}, got {got or 'none'}")
    taken = [0]
    try:
        try:
            gzipped = parse_content_encoding(request.headers.get("content-encoding"))
            body = await read_body(request, state.limits, state.budget, taken)
        except IngestError as exc:
            return _refused(kind, exc)
        except OverBudget:
            return _failed(
                kind,
                503,
                "server is busy receiving other bodies: retry later",
                {"Retry-After": str(BUSY_RETRY_AFTER_S)},
            )
        except ClientDisconnect:
            return _failed(kind, 400, "client disconnected before sending the whole body")
        return await to_thread.run_sync(
            _ingest, state, body, gzipped, kind, limiter=state.ingest_slots()
        )
    finally:
        state.budget.give(taken[0])


def _ingest(state: ServerState, body: bytes, gzipped: bool, kind: str) -> Response:
    received_at = time.time()
    try:
        with state.decode_slots:
            batch = normalise_all(decode_otlp(body, gzipped, kind, state.limits), received_at)
        state.migrated.ensure()
        stored = store_batch(state.store.insert, batch)
    except IngestError as exc:
        return _refused(kind, exc)
    except StoreUnavailable as exc:
        forget_frames(exc)
        return _failed(kind, 503, f"store unavailable: {exc}", {"Retry-After": str(RETRY_AFTER_S)})
    # Every refused record by its index, so a sender can dead-letter exactly those
    # (client/otlp.py reads this form); each reason cut to _REASON_CHARS.
    message = "; ".join(
        f"log record {r['index']}: {r['reason'][:_REASON_CHARS]}" for r in stored.rejected
    )
    return Response(answer(kind, len(stored.rejected), message), media_type=kind)


def _refused(kind: str, exc: IngestError) -> Response:
    forget_frames(exc)
    return _failed(kind, exc.status, exc.message, {"Connection": "close"} if exc.close else None)


def _failed(
    kind: str | None, code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        status(kind, _CODES.get(code, 2), message),
        status_code=code,
        media_type=kind or JSON,
        headers=headers,
    )
