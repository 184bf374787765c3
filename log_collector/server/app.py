"""The HTTP surface of the ingest server (DESIGN.md section 5).

Routes take the raw ``Request`` and answer with ``JSONResponse``: no
request or response models, because validation is ``ingest``'s job and a
model per record would cost more than storing it. The event loop only
streams the body in; decoding, validation and the database run in the
thread pool so one large batch does not stall /healthz.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import traceback
from collections.abc import AsyncIterator, Iterable
from typing import Any

import anyio
from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect

from . import auth
from .ingest import IngestError, Limits, decode_body, normalise_all, parse_content_encoding
from .store import Store, StoreUnavailable, open_store

logger = logging.getLogger("log_collector.server")

CORS_ORIGINS_ENV = "LOG_COLLECTOR_CORS_ORIGINS"
# Seconds a client is asked to wait after a 503 before it tries again.
RETRY_AFTER_S = 5
DECODE_THREADS = 2


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _forget_frames(exc: BaseException | None) -> None:
    """Clear the locals of the finished frames ``exc``, and the exceptions it
    was raised during, passed through.

    Those locals hold the refused body and its decompressed bytes (up to the
    limit, 64 MiB), and an exception caught in a frame that names it is in a
    reference cycle (exception, traceback, frame, exception) that only the
    garbage collector frees: before this, every gzip bomb kept its 64 MiB
    until the next full collection, several hundred MB after a few bombs.
    https://docs.python.org/3/library/traceback.html#traceback.clear_frames
    """
    while exc is not None:
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__context__


def _refused_body(exc: IngestError) -> JSONResponse:
    _forget_frames(exc)
    # A client still holding back part of its body would otherwise keep the
    # connection open after the answer, trickling into the void.
    headers = {"Connection": "close"} if exc.close else None
    return _error(exc.status, exc.message, headers=headers)


def _unavailable(exc: StoreUnavailable) -> JSONResponse:
    _forget_frames(exc)
    return _error(503, f"store unavailable: {exc}", headers={"Retry-After": str(RETRY_AFTER_S)})


class _Migrated:
    """Runs the store's migrations once, at start or, if the database was down
    then, before the first request that needs it."""

    def __init__(self, store: Store):
        self._store = store
        self._lock = threading.Lock()
        self._done = False

    def ensure(self) -> None:
        if self._done:
            return
        with self._lock:
            if not self._done:
                applied = self._store.migrate()
                if applied:
                    logger.info("applied migrations: %s", ", ".join(applied))
                self._done = True


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The request body, refused with 413 as soon as it is past ``limit`` bytes
    and with 408 when it has not all arrived ``timeout`` seconds after the headers."""
    too_large = IngestError(413, f"body is over the limit of {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    try:
        with anyio.fail_after(timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    # The server discards the rest of the upload, so the client
                    # still reads this 413 instead of a reset connection.
                    raise too_large
    except TimeoutError:
        raise IngestError(
            408, f"body not received within {timeout:g} seconds", close=True
        ) from None
    return bytes(body)


def _parse_origins(cors_origins: str | Iterable[str] | None) -> list[str]:
    if cors_origins is None:
        cors_origins = os.environ.get(CORS_ORIGINS_ENV, "")
    if isinstance(cors_origins, str):
        cors_origins = cors_origins.split(",")
    return [origin.strip() for origin in cors_origins if origin.strip()]


def create_app(
    db_url: str,
    *,
    api_keys: str | Iterable[str] | None = None,
    cors_origins: str | Iterable[str] | None = None,
    limits: Limits | None = None,
    store_timeout: float = 5.0,
) -> FastAPI:
    """The ingest server for ``db_url`` (``sqlite:///path`` or ``postgresql://...``).

    ``api_keys``: accepted Bearer keys (default ``$LOG_COLLECTOR_API_KEYS``;
    none means no key is asked). ``cors_origins``: origins browsers may post
    from (default ``$LOG_COLLECTOR_CORS_ORIGINS``; ``*`` for any).
    ``store_timeout``: seconds to wait for the database before answering 503.

    Example::

        uvicorn.run(create_app("sqlite:///./logs.db"), port=8000)
    """
    store = open_store(db_url, timeout=store_timeout)
    migrated = _Migrated(store)
    keys = auth.load_keys(api_keys)
    limits = limits or Limits()
    # Batches decoded and stored at once (see Store.concurrency); made on first
    # use because a limiter belongs to the running event loop.
    ingest_slots: list[CapacityLimiter] = []
    # Of those, this many decode at once: decoding holds the GIL, so more
    # threads only take it from the store's writer (SQLite at 16 clients:
    # 45-49k -> 50-51k records/s in scripts/bench_server.py).
    decode_slots = threading.BoundedSemaphore(DECODE_THREADS)

    def _ingest_slots() -> CapacityLimiter:
        if not ingest_slots:
            ingest_slots.append(CapacityLimiter(store.concurrency))
        return ingest_slots[0]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(migrated.ensure)
        except StoreUnavailable as exc:
            logger.warning("starting without the store (will retry on demand): %s", exc)
        yield
        await run_in_threadpool(store.close)

    app = FastAPI(
        title="log-collector ingest server",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    origins = _parse_origins(cors_origins)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
            max_age=600,
        )

    def _refused(request: Request) -> JSONResponse | None:
        message = auth.check(keys, request.headers.get("authorization"))
        if message is None:
            return None
        return _error(401, message, headers={"WWW-Authenticate": "Bearer"})

    def _ingest(body: bytes, gzipped: bool) -> JSONResponse:
        """Decode, validate and store one batch, in a worker thread: the answer.
        Refusals are answers, not exceptions crossing back to the event loop."""
        received_at = time.time()
        try:
            with decode_slots:
                batch = normalise_all(decode_body(body, gzipped, limits), received_at)
            migrated.ensure()
            accepted, duplicates = store.insert(batch.rows)
        except IngestError as exc:
            return _refused_body(exc)
        except StoreUnavailable as exc:
            return _unavailable(exc)
        return JSONResponse(
            {
                "status": "ok",
                "count": len(batch.rows) + len(batch.rejected),
                "accepted": accepted,
                "duplicates": duplicates,
                "rejected": batch.rejected,
            }
        )

    @app.post("/logs")
    async def post_logs(request: Request) -> JSONResponse:
        refused = _refused(request)
        if refused is not None:
            return refused
        try:
            gzipped = parse_content_encoding(request.headers.get("content-encoding"))
            body = await _read_body(request, limits.max_body_bytes, limits.body_timeout)
        except IngestError as exc:
            return _refused_body(exc)
        except ClientDisconnect:
            # Gone before its body was in: nobody reads an answer, and it is not
            # the server's error (starlette would log a traceback and a 500).
            return _error(400, "client disconnected before sending the whole body")
        return await to_thread.run_sync(_ingest, body, gzipped, limiter=_ingest_slots())

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"status": "ok", "service": "log-server"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def _ready() -> None:
        migrated.ensure()
        store.ping()

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        try:
            await run_in_threadpool(_ready)
        except StoreUnavailable as exc:
            return _unavailable(exc)
        return JSONResponse({"status": "ready"})

    def _stats() -> dict[str, Any]:
        migrated.ensure()
        return store.stats()

    @app.get("/stats")
    async def stats(request: Request) -> JSONResponse:
        # Behind the key too when keys are set: service names are not public.
        refused = _refused(request)
        if refused is not None:
            return refused
        try:
            return JSONResponse(await run_in_threadpool(_stats))
        except StoreUnavailable as exc:
            return _unavailable(exc)

    app.state.store = store
    return app
