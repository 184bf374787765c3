"""Library functions behind ``log-collector serve`` and ``log-collector migrate``."""

from __future__ import annotations

import ctypes
import gc
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from .app import create_app
from .connections import (
    ACCEPT_BATCH,
    BoundedH11Protocol,
    ConnectionLimits,
    configure_process,
    rate_limit_server_logs,
)
from .limits import Limits
from .maintenance import retention_setting
from .state import not_migrated
from .store import DEFAULT_DB_URL, StoreUnavailable, open_store
from .store.base import Maintenance, parse_keep

__all__ = ["DEFAULT_DB_URL", "app_from_environment", "migrate", "retain", "serve"]

# How serve() hands its settings to worker processes, which build their own app.
_WORKER_CONFIG_ENV = "LOG_COLLECTOR_SERVE_CONFIG"
# Seconds uvicorn lets open requests (a live tail never ends by itself) run on at shutdown.
GRACEFUL_SHUTDOWN_S = 10
# Container allocations between young-generation collections (Python's
# default: 700). A batch allocates thousands of containers (records, rows)
# that all live until its answer: at the default the collector traverses
# nearly every one, promotes it and traverses it again in the older
# generations. At this threshold most die before a collection.
# https://docs.python.org/3/library/gc.html#gc.set_threshold
_GC_YOUNG_THRESHOLD = 50_000
# Allocations from this size up get their own mmap, returned to the system
# when freed. glibc raises its threshold (128 KiB at first) to the size of
# each mmapped block freed, up to 32 MiB, so once a request body is freed
# every later body comes from the heap arenas, whose free space glibc keeps:
# RSS stays at its peak after the bodies are gone. Setting it fixes the
# threshold. https://man7.org/linux/man-pages/man3/mallopt.3.html
_MMAP_THRESHOLD = 1024 * 1024
_M_MMAP_THRESHOLD = -3


def migrate(db_url: str) -> list[str]:
    """Apply the pending migrations to ``db_url``; return the names applied (empty: up to date).

    Example: ``migrate("postgresql://postgres@127.0.0.1:5432/logs")``.
    """
    store = open_store(db_url)
    try:
        return store.migrate()
    finally:
        store.close()


def retain(db_url: str, keep: str) -> Maintenance:
    """Drop (PostgreSQL: whole day partitions) or delete (SQLite) the rows older than the day
    that holds now - ``keep`` (``30d``), after applying pending migrations; see
    ``Store.maintain``. Example: ``retain("postgresql://postgres@127.0.0.1/logs", "30d")``."""
    span = parse_keep(keep)
    store = open_store(db_url)
    try:
        store.migrate()
        return store.maintain(span)
    finally:
        store.close()


def _check_migrated(db_url: str) -> None:
    store = open_store(db_url)
    try:
        missing = store.pending_migrations()
    finally:
        store.close()
    if missing:
        raise StoreUnavailable(not_migrated(missing))


def serve(
    db_url: str = DEFAULT_DB_URL,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    api_keys: str | Iterable[str] | None = None,
    read_keys: str | Iterable[str] | None = None,
    cors_origins: str | Iterable[str] | None = None,
    limits: Limits | None = None,
    connections: ConnectionLimits | None = None,
    role: str = "all",
    sql_timeout: float = 5.0,
    workers: int = 1,
    read_db_url: str | None = None,
    retention: str | None = None,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Run the server until interrupted; ``role`` and the keys as in ``create_app``.

    Migrations run first, in this process: a database that cannot be reached
    or migrated fails here with StoreUnavailable (one clear error) instead of
    in every worker, and workers never race to migrate. The ``query`` role
    never writes (it may serve a read replica): it checks the migrations are
    applied and fails the same way when they are not.
    ``connections``: header timeout and connection cap (connections.py).
    ``workers``: processes sharing the store, each with its own pools; on SQLite one, said
    on stderr (one file, one writer). ``read_db_url``: a replica for the reads, ``retention``:
    how long rows are kept (``create_app``).
    Example: ``serve("sqlite:///./logs.db", port=8000)``.
    """
    import uvicorn

    retention_setting(retention)  # a bad span fails here, once, not in each worker
    if workers > 1 and db_url.startswith("sqlite:"):
        print(
            f"log-collector: SQLite has one writer, so the server runs 1 worker, not {workers}; "
            "use PostgreSQL for several",
            file=sys.stderr,
        )
        workers = 1
    if role == "query":
        _check_migrated(read_db_url or db_url)
    else:
        migrate(db_url)
    connections = connections or ConnectionLimits()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": access_log,
        "http": BoundedH11Protocol,
        "backlog": ACCEPT_BATCH,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
    }
    settings: dict[str, Any] = {
        "api_keys": _as_list(api_keys),
        "read_keys": _as_list(read_keys),
        "cors_origins": _as_list(cors_origins),
        "role": role,
        "sql_timeout": sql_timeout,
        "read_db_url": read_db_url,
        "retention": retention,
    }
    if workers == 1:
        app = create_app(db_url, limits=limits, **settings)
        _own_process(connections)
        config = uvicorn.Config(app, **options)
        # After uvicorn configured logging, which would not keep the filters.
        rate_limit_server_logs()
        uvicorn.Server(config).run()
        return
    # Worker processes import the app by name, so the settings go by environment.
    os.environ[_WORKER_CONFIG_ENV] = json.dumps(
        {
            "db_url": db_url,
            "settings": settings,
            "limits": asdict(limits) if limits else None,
            "connections": asdict(connections),
        }
    )
    uvicorn.run(
        "log_collector.server.run:app_from_environment",
        factory=True,
        workers=workers,
        **options,
    )


def app_from_environment() -> Any:
    """The app for a worker process started by ``serve(workers=N)``."""
    config = json.loads(os.environ[_WORKER_CONFIG_ENV])
    limits = Limits(**config["limits"]) if config["limits"] else None
    app = create_app(config["db_url"], limits=limits, **config["settings"])
    _own_process(ConnectionLimits(**config["connections"]))
    rate_limit_server_logs()
    return app


def _own_process(connections: ConnectionLimits) -> None:
    """Settings for a process that only serves: called by serve() and its
    workers, which own their process, never by create_app(), which may be
    embedded."""
    configure_process(connections)
    _tune_gc()
    _return_large_buffers()


def _return_large_buffers() -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None)
            libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        except (OSError, AttributeError):
            pass  # not glibc (musl has no mallopt): its own allocator's policy


def _tune_gc() -> None:
    # The modules and the app live as long as the process: frozen, the
    # collector no longer traverses them in every full collection.
    # https://docs.python.org/3/library/gc.html#gc.freeze
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def _as_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.split(",")
    return list(value)
