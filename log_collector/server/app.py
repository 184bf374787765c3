"""The server's app: its shared state, CORS, and the routers its role mounts
(``routes``). The event loop only streams bodies in; decoding, validation,
SQL and the database run in the thread pool."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware

from . import auth
from .alerts import AlertChecker, AlertSettings
from .ask.settings import AskSettings
from .limits import Limits
from .maintenance import Maintainer, retention_setting
from .query.tail import TailSettings
from .routes import routers_for
from .state import ServerState
from .store import StoreUnavailable, open_store

logger = logging.getLogger("log_collector.server")

CORS_ORIGINS_ENV = "LOG_COLLECTOR_CORS_ORIGINS"


def create_app(
    db_url: str,
    *,
    api_keys: str | Iterable[str] | None = None,
    read_keys: str | Iterable[str] | None = None,
    cors_origins: str | Iterable[str] | None = None,
    limits: Limits | None = None,
    store_timeout: float = 5.0,
    role: str = "all",
    sql_timeout: float = 5.0,
    tail: TailSettings | None = None,
    ask: AskSettings | None = None,
    alerts: AlertSettings | bool | None = None,
    read_db_url: str | None = None,
    retention: str | timedelta | None = None,
) -> FastAPI:
    """The server for ``db_url`` (``sqlite:///path`` or ``postgresql://...``).

    ``api_keys``: Bearer keys that may post logs (default ``$LOG_COLLECTOR_API_KEYS``).
    ``read_keys``: Bearer keys that may read, /api/* and /stats (default
    ``$LOG_COLLECTOR_READ_KEYS``; none: the read scope takes the ingest keys, and with no key
    at all every route is open). ``cors_origins``: origins browsers may call from (default
    ``$LOG_COLLECTOR_CORS_ORIGINS``; ``*`` for any). ``store_timeout``: seconds to wait for
    the database before answering 503. ``role``: ``ingest`` (POST /logs), ``query`` (/api/*
    and /stats) or ``all``; each also serves /, /healthz, /readyz, /docs and /openapi.json.
    ``sql_timeout``: seconds a POST /api/sql statement may run. ``tail``: how /api/tail streams
    poll, beat and drop slow readers (``TailSettings``). ``ask``: how POST /api/ask answers
    (``AskSettings``; default from ``$LOG_COLLECTOR_ASK_ENGINE`` and the other
    ``LOG_COLLECTOR_ASK_*`` variables: the builtin engine, no network). ``alerts``: the alert
    checker's settings (``AlertSettings``), or True/False to switch it on or off with the rest
    from the environment (default: all from ``$LOG_COLLECTOR_ALERTS``, off unless set, and the
    other ``LOG_COLLECTOR_ALERT_*``); it runs in servers that write (roles ``all`` and
    ``ingest``), and GET /api/alerts lists what it found.
    ``read_db_url``: a PostgreSQL streaming replica of ``db_url`` that the reads (/api/*,
    /stats) go to; ingest and every write stay on ``db_url``.
    ``retention``: how long rows are kept (``30d``; default ``$LOG_COLLECTOR_RETENTION``, else
    forever). A server that writes runs the store's maintenance at start and hourly
    (``maintenance.Maintainer``): PostgreSQL's day partitions ahead, and the retention.

    Example::

        uvicorn.run(create_app("sqlite:///./logs.db"), port=8000)
    """
    routers = routers_for(role)
    keep = retention_setting(retention)
    store = open_store(db_url, timeout=store_timeout, read_url=read_db_url)
    # /docs is FastAPI's Swagger UI page, whose script and style load from a CDN
    # (cdn.jsdelivr.net): offline or under a strict Content-Security-Policy the page stays
    # blank, while /openapi.json is served by this process and works anywhere.
    # https://fastapi.tiangolo.com/how-to/custom-docs-ui-assets/
    app = FastAPI(
        title="log-collector server",
        lifespan=_lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
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
    for router in routers:
        app.include_router(router)
    app.state.server = ServerState(
        store,
        api_keys,
        limits or Limits(),
        read_keys=read_keys,
        role=role,
        sql_timeout=sql_timeout,
        tail=tail,
        ask=ask,
    )
    app.state.store = store
    if isinstance(alerts, AlertSettings):
        alert_settings = alerts
    else:
        alert_settings = AlertSettings.from_env(**({} if alerts is None else {"enabled": alerts}))
    # A query server may read a replica, where nothing can be written: it lists alerts only.
    app.state.alert_checker = (
        AlertChecker(store, alert_settings, ready=app.state.server.migrated.ensure)
        if alert_settings.enabled and role != "query"
        else None
    )
    app.state.maintainer = (
        Maintainer(store, keep, ready=app.state.server.migrated.ensure)
        if role != "query" and (store.partitioned or keep is not None)
        else None
    )
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServerState = app.state.server
    _warn_open_reads(state)
    try:
        await run_in_threadpool(state.migrated.ensure)
    except StoreUnavailable as exc:
        logger.warning("starting without the store (will retry on demand): %s", exc)
    checker: AlertChecker | None = app.state.alert_checker
    if checker is not None:
        checker.start()
    maintainer: Maintainer | None = app.state.maintainer
    if maintainer is not None:
        await run_in_threadpool(maintainer.run_once)
        maintainer.start()
    yield
    if checker is not None:
        await run_in_threadpool(checker.stop)
    if maintainer is not None:
        await run_in_threadpool(maintainer.stop)
    await run_in_threadpool(state.store.close)


def _warn_open_reads(state: ServerState) -> None:
    """One line at start when the read scope has no keys of its own."""
    if state.role == "ingest" or state.scopes.read:
        return
    if state.scopes.ingest:
        logger.warning(
            "no read keys are set (%s): the query API (/api/*, /stats) takes the ingest keys",
            auth.READ_KEYS_ENV,
        )
    else:
        logger.warning(
            "no read keys are set (%s): the query API (/api/*, /stats) is open to anyone "
            "who can reach this server",
            auth.READ_KEYS_ENV,
        )


def _parse_origins(cors_origins: str | Iterable[str] | None) -> list[str]:
    if cors_origins is None:
        cors_origins = os.environ.get(CORS_ORIGINS_ENV, "")
    if isinstance(cors_origins, str):
        cors_origins = cors_origins.split(",")
    return [origin.strip() for origin in cors_origins if origin.strip()]
