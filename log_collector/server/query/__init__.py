"""Query side of the server: the guarded read-only SQL layers (``sqlguard``, ``sqlexec``)."""

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
    "GuardedQuery",
    "SqlError",
    "SqlQueryError",
    "SqlRefused",
    "SqlResult",
    "SqlStoreUnavailable",
    "SqlTimeout",
    "execute_postgres",
    "execute_sqlite",
    "guard",
    "open_sqlite_reader",
]
