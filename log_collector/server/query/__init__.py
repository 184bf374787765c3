"""Query side of the server: the guarded read-only SQL layers (``sqlguard``, ``sqlexec``) and
the read functions over the logs (``filters``, ``search``, ``aggregates``)."""

from .aggregates import facets, histogram, services
from .errors import BadQuery, NotFound
from .filters import Filters, parse_filters
from .search import context, get_log, search, trace
from .sqlexec import (
    SqlQueryError,
    SqlResult,
    SqlStoreUnavailable,
    SqlTimeout,
    execute_postgres,
    execute_sqlite,
    open_sqlite_reader,
)
from .sqlguard import GuardedQuery, SqlError, SqlRefused, guard

__all__ = [
    "BadQuery",
    "Filters",
    "NotFound",
    "GuardedQuery",
    "SqlError",
    "SqlQueryError",
    "SqlRefused",
    "SqlResult",
    "SqlStoreUnavailable",
    "SqlTimeout",
    "execute_postgres",
    "execute_sqlite",
    "context",
    "facets",
    "get_log",
    "guard",
    "histogram",
    "open_sqlite_reader",
    "parse_filters",
    "search",
    "services",
    "trace",
]
