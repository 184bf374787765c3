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
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import anyio
from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect

from . import auth
from .ingest import (
    IngestError,
    Limits,
    decode_body,
    normalise_all,
    parse_content_encoding,
    store_batch,
)
from .store import Store, StoreUnavailable, open_store

logger = logging.getLogger("log_collector.server")

CORS_ORIGINS_ENV = "LOG_COLLECTOR_CORS_ORIGINS"
# Seconds a client is asked to wait after a 503 before it tries again.
RETRY_AFTER_S = 5
# Seconds to wait after a 503 for the in-flight byte budget: other bodies
# are being received and stored, which takes about a second at most.
BUSY_RETRY_AFTER_S = 1
DECODE_THREADS = 2
# Seconds a /stats answer is reused: its counts scan the table, so however
# many clients poll it the store computes it at most this often.
STATS_TTL_S = 5.0


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


class _OverBudget(Exception):
    """The body would take the process past its in-flight byte budget."""


class _BodyBudget:
    """Bytes of request bodies held by the process at once (``Limits.max_inflight_bytes``).

    Only the event loop's thread takes and gives back, so no lock. A body is
    counted from before its first byte is read until its answer is ready:
    its buffer, its decompressed copy and its records all live until then.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> None:
        if self.used + size > self.limit:
            raise _OverBudget
        self.used += size

    def give(self, size: int) -> None:
        self.used -= size


def _is_json(content_type: str | None) -> bool:
    """Whether the media type is ``application/json``, parameters such as
    ``charset`` aside (RFC 9110 section 8.3.1: the type is case-insensitive)."""
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


async def _read_body(
    request: Request, limits: Limits, budget: _BodyBudget, taken: list[int]
) -> bytearray:
    """The request body, refused with 413 as soon as it is past the body limit,
    with 408 when it has not all arrived ``limits.body_timeout`` seconds after
    the headers, and with _OverBudget when the in-flight budget cannot hold
    it. The bytes taken from ``budget`` are added to ``taken[0]``, for the
    caller to give back.

    A declared Content-Length is taken from the budget before a byte is read
    and read into one buffer of that size: one allocation, no copies as it
    grows, no ``bytes()`` copy at the end (``decode_body`` reads a bytearray).
    A chunked body is counted chunk by chunk as it streams in.
    """
    limit, timeout = limits.max_body_bytes, limits.body_timeout
    too_large = IngestError(413, f"body is over the limit of {limit} bytes")
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isdigit() else None
    if size is not None and size > limit:
        raise too_large
    if size is not None:
        budget.take(size)
        taken[0] += size
    body = bytearray(size or 0)
    received = 0
    try:
        with anyio.fail_after(timeout):
            async for chunk in request.stream():
                end = received + len(chunk)
                if end > limit:
                    # The server discards the rest of the upload, so the client
                    # still reads this 413 instead of a reset connection.
                    raise too_large
                if end > len(body):  # chunked: no size was declared
                    budget.take(end - len(body))
                    taken[0] += end - len(body)
                    del body[received:]
                    body += chunk
                else:
                    body[received:end] = chunk
                received = end
    except TimeoutError:
        raise IngestError(
            408, f"body not received within {timeout:g} seconds", close=True
        ) from None
    if received < len(body):
        del body[received:]
    return body


class _StatsCache:
    """The /stats document, computed at most once per ``ttl`` seconds however
    many ask: its queries count the whole table. One computation runs at a
    time (on the store's read connections); callers arriving meanwhile wait
    for its result, up to ``wait`` seconds, then get StoreUnavailable."""

    def __init__(
        self,
        compute: Callable[[], dict[str, Any]],
        ttl: float,
        wait: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._compute = compute
        self._ttl = ttl
        self._wait = wait
        self._clock = clock
        self._lock = threading.Lock()
        self._value: dict[str, Any] | None = None
        self._computed_at = 0.0

    def _fresh(self) -> dict[str, Any] | None:
        if self._value is not None and self._clock() - self._computed_at < self._ttl:
            return self._value
        return None

    def get(self) -> dict[str, Any]:
        value = self._fresh()
        if value is not None:
            return value
        if not self._lock.acquire(timeout=self._wait):
            raise StoreUnavailable("statistics are being computed: retry later")
        try:
            value = self._fresh()
            if value is None:
                started = self._clock()
                value = self._compute()
                self._value, self._computed_at = value, started
            return value
        finally:
            self._lock.release()


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
    budget = _BodyBudget(limits.max_inflight_bytes)
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
            stored = store_batch(store.insert, batch)
        except IngestError as exc:
            return _refused_body(exc)
        except StoreUnavailable as exc:
            return _unavailable(exc)
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

    @app.post("/logs")
    async def post_logs(request: Request) -> JSONResponse:
        refused = _refused(request)
        if refused is not None:
            return refused
        content_type = request.headers.get("content-type")
        if not _is_json(content_type):
            # JSON only: a browser may send text/plain, form types or no type
            # across sites without a CORS preflight, application/json it may not.
            # https://fetch.spec.whatwg.org/#cors-safelisted-request-header
            got = f"'{content_type}'" if content_type else "none"
            return _error(415, f"Content-Type must be application/json, got {got}")
        taken = [0]
        try:
            try:
                gzipped = parse_content_encoding(request.headers.get("content-encoding"))
                body = await _read_body(request, limits, budget, taken)
            except IngestError as exc:
                return _refused_body(exc)
            except _OverBudget:
                return _error(
                    503,
                    "server is busy receiving other bodies "
                    f"(over {limits.max_inflight_bytes} bytes in flight): retry later",
                    headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
                )
            except ClientDisconnect:
                # Gone before its body was in: nobody reads an answer, and it is not
                # the server's error (starlette would log a traceback and a 500).
                return _error(400, "client disconnected before sending the whole body")
            return await to_thread.run_sync(_ingest, body, gzipped, limiter=_ingest_slots())
        finally:
            budget.give(taken[0])

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

    def _compute_stats() -> dict[str, Any]:
        migrated.ensure()
        return store.stats()

    stats_cache = _StatsCache(_compute_stats, STATS_TTL_S)

    @app.get("/stats")
    async def stats(request: Request) -> JSONResponse:
        # Behind the key too when keys are set: service names are not public.
        refused = _refused(request)
        if refused is not None:
            return refused
        try:
            return JSONResponse(await run_in_threadpool(stats_cache.get))
        except StoreUnavailable as exc:
            return _unavailable(exc)

    app.state.store = store
    return app
