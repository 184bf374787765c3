"""What one app shares between its routes: the store, its migrations, the
keys of both scopes, the role, the SQL endpoint's settings, the limits, the
in-flight budget, the decode, ingest and SQL slots, the /stats cache and the
service behind /api/ask. One
``ServerState`` per app, on ``app.state.server``; a route reaches it through
its request (``state_of``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from anyio import CapacityLimiter
from starlette.requests import Request

from . import auth
from .ask.service import AskService
from .ask.settings import AskSettings
from .ingest.receive import BodyBudget
from .limits import Limits
from .query.tail import TailSettings
from .store import Store, StoreUnavailable
from .store.sqlite import SQLiteStore

logger = logging.getLogger("log_collector.server")

# Batches decoded at once: decoding holds the GIL, so more threads only take
# it from the store's writer (figures in docs/performance.md).
DECODE_THREADS = 2
# Statements of POST /api/sql run at once: each holds a worker thread (and on PostgreSQL a
# read connection) until it ends or its timeout stops it; the rest wait their turn.
SQL_THREADS = 4

# Questions of POST /api/ask answered at once: apart from POST /api/sql's slots, because with a
# language-model engine a question also waits for the engine's replies.
ASK_THREADS = 4

# Seconds a /stats answer is reused: its counts scan the table, so however
# many clients poll it the store computes it at most this often.
STATS_TTL_S = 5.0


class Migrated:
    """Runs the store's migrations once, at start or, if the database is down
    then, before the first request that needs it. With ``check_only`` (the
    query role, which may read a replica where nothing can be written) it
    checks that every migration is applied instead, and until they are,
    raises StoreUnavailable naming the missing ones."""

    def __init__(self, store: Store, check_only: bool = False):
        self._store = store
        self._check_only = check_only
        self._lock = threading.Lock()
        self._done = False

    def ensure(self) -> None:
        if self._done:
            return
        with self._lock:
            if self._done:
                return
            if self._check_only:
                missing = self._store.pending_migrations()
                if missing:
                    raise StoreUnavailable(not_migrated(missing))
            else:
                applied = self._store.migrate()
                if applied:
                    logger.info("applied migrations: %s", ", ".join(applied))
            self._done = True


def not_migrated(missing: list[str]) -> str:
    return (
        f"the database lacks migrations {', '.join(missing)}: run `log-collector migrate "
        "--db URL` (on the primary), then this query server starts answering"
    )


class StatsCache:
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


class ServerState:
    """The per-app objects every route shares."""

    def __init__(
        self,
        store: Store,
        api_keys: str | Iterable[str] | None,
        limits: Limits,
        *,
        read_keys: str | Iterable[str] | None = None,
        role: str = "all",
        sql_timeout: float = 5.0,
        tail: TailSettings | None = None,
        ask: AskSettings | None = None,
    ):
        if role not in auth.ROLES:
            raise ValueError(f"unknown role {role!r}: use one of {', '.join(auth.ROLES)}")
        if not sql_timeout > 0:
            raise ValueError(f"sql_timeout must be a positive number of seconds, got {sql_timeout}")
        self.store = store
        self.migrated = Migrated(store, check_only=role == "query")
        self.scopes = auth.Keys.load(api_keys, read_keys)
        # The ingest keys, as POST /logs checks them.
        self.keys = self.scopes.ingest
        self.role = role
        self.sql_timeout = sql_timeout
        self.tail = tail or TailSettings()
        # /api/tail streams open now (the event loop alone changes it).
        self.tail_streams = 0
        # POST /api/sql opens its own read-only connections to an SQLite file.
        self.sqlite_path = store.path if isinstance(store, SQLiteStore) else None
        self.sql_dialect = "postgres" if self.sqlite_path is None else "sqlite"
        self._sql_slots: CapacityLimiter | None = None
        self._ask_slots: CapacityLimiter | None = None
        self.limits = limits
        self.budget = BodyBudget(limits.max_inflight_bytes)
        # Of the batches in flight, this many decode at once.
        self.decode_slots = threading.BoundedSemaphore(DECODE_THREADS)
        self.stats = StatsCache(self._compute_stats, STATS_TTL_S)
        self._ingest_slots: CapacityLimiter | None = None
        # /api/ask: its engine is loaded here, so a misconfigured one fails at start, naming
        # the setting, rather than at the first question. An ingest server answers none.
        self.ask_settings: AskSettings | None = None
        self.ask: AskService | None = None
        if role != "ingest":
            self.ask_settings = ask if ask is not None else AskSettings.from_env()
            self.ask = AskService(self, self.ask_settings)

    def ingest_slots(self) -> CapacityLimiter:
        """Batches decoded and stored at once (see Store.concurrency); made on
        first use because a limiter belongs to the running event loop."""
        if self._ingest_slots is None:
            self._ingest_slots = CapacityLimiter(self.store.concurrency)
        return self._ingest_slots

    def sql_slots(self) -> CapacityLimiter:
        """Statements of POST /api/sql run at once (SQL_THREADS); made on first use, like
        ``ingest_slots``."""
        if self._sql_slots is None:
            self._sql_slots = CapacityLimiter(SQL_THREADS)
        return self._sql_slots

    def ask_slots(self) -> CapacityLimiter:
        """Questions of POST /api/ask answered at once (ASK_THREADS); made on first use."""
        if self._ask_slots is None:
            self._ask_slots = CapacityLimiter(ASK_THREADS)
        return self._ask_slots

    def ready(self) -> None:
        """Return when the store is migrated and answers; StoreUnavailable otherwise."""
        self.migrated.ensure()
        self.store.ping(reading=self.role == "query")

    def _compute_stats(self) -> dict[str, Any]:
        self.migrated.ensure()
        return self.store.stats()


def state_of(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state
