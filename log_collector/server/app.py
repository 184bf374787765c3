"""The ingest server's app: its shared state, CORS, and the routers mounted
(``routes``). The event loop only streams bodies in; decoding, validation
and the database run in the thread pool."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterable

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware

from .limits import Limits
from .routes import ROUTERS
from .state import ServerState
from .store import StoreUnavailable, open_store

logger = logging.getLogger("log_collector.server")

CORS_ORIGINS_ENV = "LOG_COLLECTOR_CORS_ORIGINS"


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
    app = FastAPI(
        title="log-collector ingest server",
        lifespan=_lifespan,
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
    for router in ROUTERS:
        app.include_router(router)
    app.state.server = ServerState(store, api_keys, limits or Limits())
    app.state.store = store
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServerState = app.state.server
    try:
        await run_in_threadpool(state.migrated.ensure)
    except StoreUnavailable as exc:
        logger.warning("starting without the store (will retry on demand): %s", exc)
    yield
    await run_in_threadpool(state.store.close)


def _parse_origins(cors_origins: str | Iterable[str] | None) -> list[str]:
    if cors_origins is None:
        cors_origins = os.environ.get(CORS_ORIGINS_ENV, "")
    if isinstance(cors_origins, str):
        cors_origins = cors_origins.split(",")
    return [origin.strip() for origin in cors_origins if origin.strip()]
