"""The execution layers of ``POST /api/sql``: run a guarded statement so it can only read.

``sqlguard`` (the parser layer) has already refused anything but one SELECT over the allowed
relations and functions. This module does not trust that: it runs the statement in a way that
stops writes, catalog reads and runaway queries on its own, and it fetches at most
``limit + 1`` rows.

PostgreSQL (:func:`execute_postgres`): one transaction, ``SET TRANSACTION READ ONLY``,
``SET LOCAL statement_timeout``, ``SET LOCAL ROLE log_collector_reader`` (created by
migrations/postgres/0002_reader_role.sql, with SELECT on ``logs`` only), and a server-side
cursor: psycopg sends ``DECLARE ... CURSOR FOR <query>`` with the extended protocol, which
accepts exactly one statement, and ``FETCH`` reads ``limit + 1`` rows, never the whole result.
The role layer assumes the text is a single SELECT: a session user may ``SET ROLE`` back to
itself, which the parser layer stops by refusing ``set_config`` and every non-SELECT statement.

SQLite (:func:`execute_sqlite`): a separate connection opened read-only (``mode=ro`` URI) with
``PRAGMA query_only``, an authorizer that allows SELECT, reads of the allowed tables and
allowlisted functions and denies everything else, and a progress handler that interrupts the
statement after the timeout. This is Datasette's approach:
https://docs.datasette.io/en/stable/sql_queries.html and
https://www.sqlite.org/c3ref/set_authorizer.html

Errors: a refusal by a layer raises :class:`SqlRefused`, the timeout :class:`SqlTimeout`, an
error of the user's query (a bad column, a division by zero) :class:`SqlQueryError`, and the
store being unreachable :class:`SqlStoreUnavailable`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql as pgsql

from .sqlguard import ALLOWED_ANONYMOUS_FUNCTIONS, ALLOWED_RELATIONS, GuardedQuery, SqlError
from .sqlguard import SqlRefused as SqlRefused

DEFAULT_TIMEOUT = 5.0
READER_ROLE = "log_collector_reader"
# SQLite calls the progress handler every this many virtual-machine instructions: often enough
# to stop within milliseconds of the deadline, rarely enough to cost nothing measurable.
_PROGRESS_STEPS = 1000

# The functions the SQLite authorizer lets a statement call (SQLITE_FUNCTION reports the name
# as written, lower-cased by SQLite). The parser layer's typed functions appear here under their
# SQLite names, plus those the view logs_iso calls.
SQLITE_FUNCTIONS = ALLOWED_ANONYMOUS_FUNCTIONS["sqlite"] | frozenset(
    {
        "->",
        "->>",
        "abs",
        "avg",
        "ceil",
        "ceiling",
        "coalesce",
        "count",
        "cume_dist",
        "dense_rank",
        "exp",
        "first_value",
        "floor",
        "group_concat",
        "ifnull",
        "json_extract",
        "json_type",
        "lag",
        "last_value",
        "lead",
        "length",
        "like",
        "glob",
        "ln",
        "log",
        "lower",
        "max",
        "min",
        "nth_value",
        "ntile",
        "nullif",
        "percent_rank",
        "pow",
        "power",
        "rank",
        "round",
        "row_number",
        "sign",
        "sqrt",
        "substring",
        "sum",
        "trim",
        "typeof",
        "upper",
    }
)


class SqlTimeout(SqlError):
    """The statement ran longer than its timeout and was cancelled."""


class SqlQueryError(SqlError):
    """The database rejected the user's query (a bad column, a division by zero, ...)."""


class SqlStoreUnavailable(SqlError):
    """The store could not be reached or failed for a reason unrelated to the query."""


@dataclass(frozen=True)
class SqlResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    elapsed_ms: float


def execute_postgres(
    conn: psycopg.Connection,
    query: GuardedQuery,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    role: str = READER_ROLE,
) -> SqlResult:
    """Run ``query`` on ``conn`` (idle, outside a transaction) read-only as ``role``."""
    if conn.closed or conn.broken:
        raise SqlStoreUnavailable("the connection to the store is closed")
    started = time.perf_counter()
    try:
        with (
            reader_transaction(conn, timeout=timeout, role=role),
            conn.cursor(name="log_collector_sql") as cursor,
        ):
            cursor.execute(query.sql)
            columns = [col.name for col in cursor.description or ()]
            rows = [list(row) for row in cursor.fetchmany(query.limit + 1)]
    except psycopg.errors.QueryCanceled:
        raise SqlTimeout(f"the statement ran longer than its timeout of {timeout:g} s") from None
    except psycopg.Error as exc:
        raise _classify_postgres(exc) from None
    return _result(columns, rows, query.limit, started)


@contextmanager
def reader_transaction(
    conn: psycopg.Connection, *, timeout: float = DEFAULT_TIMEOUT, role: str = READER_ROLE
) -> Iterator[None]:
    """A read-only transaction on ``conn`` with a statement timeout, as ``role``; rolled back."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise ValueError("a reader transaction needs a connection outside any transaction")
    timeout_ms = max(1, int(timeout * 1000))
    # Always rolled back: a read needs no commit, and the rollback also undoes any setting
    # the statement changed (set_config(..., false) survives a commit), so a pooled
    # connection returns as it came.
    with conn.transaction(force_rollback=True):
        # SET TRANSACTION must come before any query of the transaction.
        # https://www.postgresql.org/docs/15/sql-set-transaction.html
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute(
            pgsql.SQL("SET LOCAL statement_timeout = {}").format(pgsql.Literal(timeout_ms))
        )
        conn.execute(pgsql.SQL("SET LOCAL ROLE {}").format(pgsql.Identifier(role)))
        yield


# SQLSTATE classes of errors caused by the statement itself rather than by the store:
# https://www.postgresql.org/docs/15/errcodes-appendix.html
_QUERY_ERROR_CLASSES = {"21", "22", "23", "2F", "39", "42", "44", "0A", "54"}
_REFUSED_CODES = {
    "25006",  # read_only_sql_transaction
    "42501",  # insufficient_privilege
}


def _classify_postgres(exc: psycopg.Error) -> SqlError:
    code = exc.sqlstate or ""
    message = _first_line(exc)
    if code in _REFUSED_CODES:
        return SqlRefused(f"refused by the database: {message}")
    if code[:2] in _QUERY_ERROR_CLASSES:
        return SqlQueryError(message)
    return SqlStoreUnavailable(message)


def open_sqlite_reader(path: str | Path) -> sqlite3.Connection:
    """A connection to the database file at ``path`` that cannot write: ``mode=ro`` and
    ``PRAGMA query_only``. https://www.sqlite.org/uri.html"""
    uri = f"file:{quote(str(path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        conn.execute("PRAGMA query_only = 1")
    except sqlite3.Error as exc:
        raise SqlStoreUnavailable(f"cannot open {path} read-only: {_first_line(exc)}") from None
    return conn


def execute_sqlite(
    conn: sqlite3.Connection,
    query: GuardedQuery,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    relations: Iterable[str] = ALLOWED_RELATIONS["sqlite"],
    functions: Iterable[str] = SQLITE_FUNCTIONS,
) -> SqlResult:
    """Run ``query`` on ``conn`` (from :func:`open_sqlite_reader`) under the authorizer and a
    progress handler; the handlers are removed again afterwards."""
    allowed_tables = frozenset(name.lower() for name in relations)
    allowed_functions = frozenset(name.lower() for name in functions)
    denied: list[str] = []
    timed_out: list[bool] = []
    deadline = time.monotonic() + timeout

    def authorize(action: int, arg1: str | None, arg2: str | None, db: str | None, _src) -> int:
        if action == sqlite3.SQLITE_SELECT:
            return sqlite3.SQLITE_OK
        # A read that uses no column (count(*)) names the table with an empty column and no
        # database; attaching another database is denied, so that table is main's.
        if (
            action == sqlite3.SQLITE_READ
            and db in ("main", None)
            and (arg1 or "").lower() in allowed_tables
        ):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in allowed_functions:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_RECURSIVE:
            return sqlite3.SQLITE_OK
        denied.append(_describe_action(action, arg1, arg2))
        return sqlite3.SQLITE_DENY

    def progress() -> int:
        if time.monotonic() >= deadline:
            timed_out.append(True)
            return 1
        return 0

    started = time.perf_counter()
    conn.set_authorizer(authorize)
    conn.set_progress_handler(progress, _PROGRESS_STEPS)
    cursor = conn.cursor()
    try:
        cursor.execute(query.sql)
        columns = [col[0] for col in cursor.description or ()]
        rows = [list(row) for row in cursor.fetchmany(query.limit + 1)]
    except sqlite3.Error as exc:
        raise _classify_sqlite(exc, denied, timed_out, timeout) from None
    finally:
        cursor.close()
        conn.set_progress_handler(None, 0)
        conn.set_authorizer(None)
    return _result(columns, rows, query.limit, started)


def _classify_sqlite(
    exc: sqlite3.Error, denied: list[str], timed_out: list[bool], timeout: float
) -> SqlError:
    code = getattr(exc, "sqlite_errorcode", None)
    if timed_out or code == sqlite3.SQLITE_INTERRUPT:
        return SqlTimeout(f"the statement ran longer than its timeout of {timeout:g} s")
    if denied or code == sqlite3.SQLITE_AUTH:
        what = denied[0] if denied else "an action"
        return SqlRefused(f"refused by the database: {what} is not allowed")
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
        return SqlRefused(f"refused by the database: {_first_line(exc)}")
    if code in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_NOMEM,
    ):
        return SqlStoreUnavailable(_first_line(exc))
    return SqlQueryError(_first_line(exc))


# The authorizer's action codes, named as in https://www.sqlite.org/c3ref/c_alter_table.html
_SQLITE_ACTIONS = {
    code: name
    for name, code in (
        ("create index", 1),
        ("create table", 2),
        ("create temp index", 3),
        ("create temp table", 4),
        ("create temp trigger", 5),
        ("create temp view", 6),
        ("create trigger", 7),
        ("create view", 8),
        ("delete", 9),
        ("drop index", 10),
        ("drop table", 11),
        ("drop temp index", 12),
        ("drop temp table", 13),
        ("drop temp trigger", 14),
        ("drop temp view", 15),
        ("drop trigger", 16),
        ("drop view", 17),
        ("insert", 18),
        ("pragma", 19),
        ("read", 20),
        ("select", 21),
        ("transaction", 22),
        ("update", 23),
        ("attach", 24),
        ("detach", 25),
        ("alter table", 26),
        ("reindex", 27),
        ("analyze", 28),
        ("create vtable", 29),
        ("drop vtable", 30),
        ("function", 31),
        ("savepoint", 32),
        ("recursive", 33),
    )
}


def _describe_action(action: int, arg1: str | None, arg2: str | None) -> str:
    if action == sqlite3.SQLITE_READ:
        return f"reading {arg1}.{arg2}" if arg2 else f"reading {arg1}"
    if action == sqlite3.SQLITE_FUNCTION:
        return f"function {arg2!r}"
    if action == sqlite3.SQLITE_PRAGMA:
        return f"PRAGMA {arg1}"
    name = _SQLITE_ACTIONS.get(action, f"action {action}").upper()
    target = " ".join(a for a in (arg1, arg2) if a)
    return f"{name} {target}".strip()


def _result(columns: list[str], rows: list[list[Any]], limit: int, started: float) -> SqlResult:
    return SqlResult(
        columns=columns,
        rows=rows[:limit],
        truncated=len(rows) > limit,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
    )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
