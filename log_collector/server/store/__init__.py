"""Stores behind one interface (``Store``), chosen by the database URL's scheme."""

from __future__ import annotations

from .base import ROW_COLUMNS, Row, Store, StoreUnavailable

__all__ = [
    "DEFAULT_DB_URL",
    "ROW_COLUMNS",
    "Row",
    "Store",
    "StoreUnavailable",
    "open_store",
]

# The store a server uses when none is named: a file in the working directory.
DEFAULT_DB_URL = "sqlite:///./logs.db"

_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def open_store(db_url: str, *, timeout: float = 5.0, read_url: str | None = None) -> Store:
    """The store for ``db_url``: ``sqlite:///relative.db``, ``sqlite:////abs/path.db``
    or ``postgresql://user@host:port/dbname``. Nothing is connected until first use.
    ``read_url``: a PostgreSQL replica the reads go to (``PostgresStore``).
    """
    if read_url is not None and not read_url.startswith(_POSTGRES_PREFIXES):
        raise ValueError(f"read database URL {read_url!r}: a read replica is a postgresql:// URL")
    if db_url.startswith(_SQLITE_PREFIX):
        if read_url is not None:
            raise ValueError("a read replica needs PostgreSQL: an SQLite store reads its own file")
        path = db_url[len(_SQLITE_PREFIX) :]
        if not path or path == ":memory:":
            raise ValueError(
                f"database URL {db_url!r} names no file: use sqlite:///path/to/logs.db"
            )
        from .sqlite import SQLiteStore

        return SQLiteStore(path, timeout=timeout)
    if db_url.startswith(_POSTGRES_PREFIXES):
        # Imported here: an SQLite-only server never loads psycopg.
        from .postgres import PostgresStore

        return PostgresStore(db_url, timeout=timeout, read_url=read_url)
    raise ValueError(
        f"unsupported database URL {db_url!r}: use sqlite:///path/to/logs.db "
        "or postgresql://user@host:5432/dbname"
    )
