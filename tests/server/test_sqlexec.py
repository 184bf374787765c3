"""The execution layers of the guarded SQL endpoint (log_collector/server/query/sqlexec.py),
on real SQLite files and the real PostgreSQL.

The hostile corpus goes through the guard and, separately, straight to the execution layer
with the guard skipped: either way the data and the schema stay as they were. The legitimate
corpus returns what the same SQL returns when run directly.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import psycopg
import pytest
from sql_corpus import HOSTILE, LEGITIMATE

from log_collector.server import open_store
from log_collector.server.query.sqlexec import (
    READER_ROLE,
    SqlQueryError,
    SqlRefused,
    SqlStoreUnavailable,
    SqlTimeout,
    execute_postgres,
    execute_sqlite,
    open_sqlite_reader,
    reader_transaction,
)
from log_collector.server.query.sqlguard import GuardedQuery, SqlError, guard

SEED = [
    # (service, level, path, metadata, duration_ms, message)
    ("api", "INFO", "/api/users", {"order_id": 1}, 12.5, "paid"),
    ("api", "ERROR", "/api/users/delete", {"order_id": 2}, 250.0, "delete failed"),
    ("api", "WARN", "/api/users/delete", None, 90.0, "DROP TABLE logs; --"),
    ("worker", "ERROR", None, {"order_id": 3}, 1000.0, "job crashed"),
    ("worker", "INFO", None, {"job": "x"}, 5.0, "job done"),
    ("web", "INFO", "/", None, None, "page paid"),
    ("web", "WARN", "/login", {"order_id": 1}, 30.0, "slow login"),
    ("api", "INFO", "/api/orders", {"order_id": 4}, 140.0, "order paid"),
    ("worker", "WARN", None, None, 75.0, "retrying"),
    ("api", "ERROR", "/api/orders", {"order_id": 5}, 400.0, "timeout"),
]
HOSTILE_SLEEPS = "pg_sleep"


def _unguarded(sql: str, dialect: str, limit: int = 10) -> GuardedQuery:
    """What the execution layer would get if the parser layer were switched off."""
    return GuardedQuery(sql=sql, inner_sql=sql, dialect=dialect, limit=limit)


# SQLite


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    path = tmp_path / "logs.db"
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    store.close()
    now_us = int(time.time() * 1_000_000)
    with sqlite3.connect(path) as conn:
        for i, (service, level, path_, meta, duration, message) in enumerate(SEED):
            conn.execute(
                "INSERT INTO logs (created_at, level, service, path, metadata, duration_ms, "
                "message, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    now_us - i * 60_000_000,
                    level,
                    service,
                    path_,
                    json.dumps(meta) if meta is not None else None,
                    duration,
                    message,
                    now_us,
                ),
            )
    conn.close()
    return path


def _sqlite_snapshot(path: Path) -> tuple:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT * FROM logs ORDER BY id").fetchall()
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()
    # A WAL database's readers create its -wal and -shm files; any other new file would be a
    # write (VACUUM INTO, ATTACH of a new database).
    files = sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(("-wal", "-shm")))
    return rows, schema, files


@pytest.fixture
def reader(sqlite_path: Path):
    conn = open_sqlite_reader(sqlite_path)
    yield conn
    conn.close()


def test_sqlite_hostile_corpus_is_refused_by_the_guard_and_changes_nothing(sqlite_path, reader):
    before = _sqlite_snapshot(sqlite_path)
    for sql, dialects in HOSTILE:
        if "sqlite" in dialects:
            with pytest.raises(SqlRefused):
                execute_sqlite(reader, guard(sql, "sqlite"))
    assert before == _sqlite_snapshot(sqlite_path)


def test_sqlite_hostile_corpus_without_the_guard_is_stopped_by_the_execution_layer(
    sqlite_path, reader
):
    """Each statement either fails with a SqlError or only reads; nothing is written."""
    before = _sqlite_snapshot(sqlite_path)
    outcomes = {}
    for sql, _ in HOSTILE:
        try:
            execute_sqlite(reader, _unguarded(sql, "sqlite"), timeout=0.5)
            outcomes[sql] = "ran"
        except SqlError as exc:
            outcomes[sql] = type(exc).__name__
    assert before == _sqlite_snapshot(sqlite_path)
    assert "SqlRefused" == outcomes["DELETE FROM logs"]
    assert "SqlRefused" == outcomes["SELECT * FROM sqlite_master"]
    assert "SqlRefused" == outcomes["ATTACH DATABASE '/tmp/evil.db' AS evil"]
    assert "SqlRefused" == outcomes["VACUUM INTO '/tmp/copy.db'"]
    assert "SqlRefused" == outcomes["SELECT load_extension('/tmp/evil.so')"]


@pytest.mark.parametrize(
    ("sql", "denied"),
    [
        ("DELETE FROM logs", "DELETE logs"),
        ("UPDATE logs SET message = 'x'", "UPDATE logs message"),
        ("ATTACH DATABASE ':memory:' AS other", "ATTACH :memory:"),
        ("PRAGMA writable_schema = 1", "PRAGMA writable_schema"),
        ("SELECT name FROM sqlite_master", "reading sqlite_master.name"),
        ("SELECT load_extension('/tmp/evil.so')", "function 'load_extension'"),
        ("SELECT sqlite_version()", "function 'sqlite_version'"),
        ("CREATE TABLE x (y)", "INSERT sqlite_master"),
    ],
)
def test_sqlite_authorizer_alone_denies_on_a_writable_connection(sqlite_path, sql, denied):
    """No mode=ro, no query_only: the authorizer on its own stops the statement."""
    before = _sqlite_snapshot(sqlite_path)
    conn = sqlite3.connect(sqlite_path)
    try:
        with pytest.raises(SqlRefused) as refused:
            execute_sqlite(conn, _unguarded(sql, "sqlite"))
        conn.commit()
    finally:
        conn.close()
    assert denied in refused.value.reason
    assert before == _sqlite_snapshot(sqlite_path)


def test_sqlite_reader_connection_alone_cannot_write(sqlite_path, reader):
    """No authorizer: mode=ro and query_only still stop a DELETE."""
    with pytest.raises(sqlite3.OperationalError) as error:
        reader.execute("DELETE FROM logs")
    assert sqlite3.SQLITE_READONLY == error.value.sqlite_errorcode & 0xFF
    assert len(SEED) == reader.execute("SELECT count(*) FROM logs").fetchone()[0]


def test_sqlite_progress_handler_stops_a_runaway_recursive_cte(reader):
    runaway = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    with pytest.raises(SqlTimeout, match="timeout of 0.2 s"):
        execute_sqlite(reader, guard(runaway, "sqlite"), timeout=0.2)
    assert [[1]] == execute_sqlite(reader, guard("SELECT 1", "sqlite")).rows


def test_sqlite_fetch_reads_limit_plus_one_rows_of_an_endless_query(reader):
    """Unwrapped (no LIMIT), an endless recursive CTE still returns: only limit + 1 rows are
    fetched, well before the timeout."""
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
    result = execute_sqlite(reader, _unguarded(endless, "sqlite", limit=10), timeout=5)
    assert [[i] for i in range(1, 11)] == result.rows
    assert result.truncated


@pytest.mark.parametrize(
    ("limit", "rows", "truncated"), [(5, 5, True), (10, 10, False), (20, 10, False)]
)
def test_sqlite_limit_wrap_returns_at_most_limit_rows(reader, limit, rows, truncated):
    result = execute_sqlite(reader, guard("SELECT id FROM logs ORDER BY id", "sqlite", limit))
    assert ["id"] == result.columns
    assert [[i] for i in range(1, rows + 1)] == result.rows
    assert truncated == result.truncated


@pytest.mark.parametrize("sql", [sql for sql, dialect in LEGITIMATE if dialect == "sqlite"])
def test_sqlite_legitimate_query_returns_what_running_it_directly_returns(sqlite_path, reader, sql):
    direct = sqlite3.connect(sqlite_path)
    try:
        expected = [list(row) for row in direct.execute(sql).fetchall()]
    finally:
        direct.close()
    result = execute_sqlite(reader, guard(sql, "sqlite", limit=1000))
    assert expected == result.rows
    assert not result.truncated


def test_sqlite_query_errors_are_query_errors_not_store_failures(reader):
    with pytest.raises(SqlQueryError, match="no such column"):
        execute_sqlite(reader, guard("SELECT nope FROM logs", "sqlite"))


def test_sqlite_missing_file_is_store_unavailable(tmp_path):
    with pytest.raises(SqlStoreUnavailable):
        open_sqlite_reader(tmp_path / "missing.db")


# PostgreSQL


@pytest.fixture
def pg_url(pg_session_url: str) -> str:
    with psycopg.connect(pg_session_url, autocommit=True) as conn:
        conn.execute("TRUNCATE logs RESTART IDENTITY")
        for i, (service, level, path_, meta, duration, message) in enumerate(SEED):
            conn.execute(
                "INSERT INTO logs (created_at, level, service, path, metadata, duration_ms, "
                "message) VALUES (now() - make_interval(mins => %s), %s, %s, %s, %s, %s, %s)",
                (i, level, service, path_, json.dumps(meta) if meta else None, duration, message),
            )
    return pg_session_url


@pytest.fixture
def pg(pg_url: str):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


def _pg_snapshot(url: str) -> tuple:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT md5(string_agg(l::text, ',' ORDER BY id)) FROM logs l"
        ).fetchone()
        relations = conn.execute(
            "SELECT relname, relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1"
        ).fetchall()
        roles = conn.execute("SELECT rolname, rolsuper FROM pg_roles ORDER BY 1").fetchall()
    return rows, relations, roles


@pytest.mark.postgres
def test_postgres_hostile_corpus_is_refused_by_the_guard_and_changes_nothing(pg_url, pg):
    before = _pg_snapshot(pg_url)
    for sql, dialects in HOSTILE:
        if "postgres" in dialects:
            with pytest.raises(SqlRefused):
                execute_postgres(pg, guard(sql, "postgres"))
    sleeping = pg.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE %s AND pid <> pg_backend_pid()",
        (f"%{HOSTILE_SLEEPS}%",),
    ).fetchone()
    assert (0,) == sleeping
    assert before == _pg_snapshot(pg_url)


@pytest.mark.postgres
def test_postgres_hostile_corpus_without_the_guard_is_stopped_by_the_execution_layer(pg_url, pg):
    """Each statement either fails with a SqlError or only reads; nothing is written, and the
    connection comes back as the session user outside any transaction."""
    before = _pg_snapshot(pg_url)
    outcomes = {}
    for sql, _ in HOSTILE:
        if "\x00" in sql:
            continue
        try:
            execute_postgres(pg, _unguarded(sql, "postgres"), timeout=0.3)
            outcomes[sql] = "ran"
        except SqlError as exc:
            outcomes[sql] = type(exc).__name__
        assert psycopg.pq.TransactionStatus.IDLE == pg.info.transaction_status
    assert before == _pg_snapshot(pg_url)
    assert "SqlTimeout" == outcomes["SELECT pg_sleep(600) -- deleted"]
    assert "SqlRefused" == outcomes["SELECT pg_read_file('/etc/passwd')"]
    assert "SqlRefused" == outcomes["SELECT usename, passwd FROM pg_shadow"]
    assert "SqlRefused" == outcomes["SELECT * FROM log_collector_migrations"]
    assert "SqlQueryError" == outcomes["SELECT 1; DROP TABLE logs"]
    assert ("postgres", "0") == pg.execute(
        "SELECT current_user, current_setting('statement_timeout')"
    ).fetchone()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM logs",
        "UPDATE logs SET message = 'x'",
        "CREATE TABLE stolen (x int)",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT * FROM log_collector_migrations",
        "SELECT lo_import('/etc/passwd')",
    ],
)
def test_postgres_reader_role_alone_cannot_write_or_read_files(pg_url, pg, sql):
    """In a read-write transaction, the role of migrations/postgres/0002 on its own is denied."""
    before = _pg_snapshot(pg_url)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), pg.transaction(force_rollback=True):
        pg.execute(f"SET LOCAL ROLE {READER_ROLE}")
        pg.execute(sql)
    assert before == _pg_snapshot(pg_url)


@pytest.mark.postgres
@pytest.mark.parametrize("sql", ["DELETE FROM logs", "CREATE TABLE stolen (x int)"])
def test_postgres_read_only_transaction_alone_stops_writes_even_for_a_superuser(pg_url, pg, sql):
    before = _pg_snapshot(pg_url)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), pg.transaction():
        pg.execute("SET TRANSACTION READ ONLY")
        pg.execute(sql)
    assert before == _pg_snapshot(pg_url)


@pytest.mark.postgres
def test_postgres_reader_transaction_runs_as_the_reader_read_only(pg):
    with reader_transaction(pg, timeout=1.5):
        assert (READER_ROLE, "on", "1500ms") == pg.execute(
            "SELECT current_user, current_setting('transaction_read_only'), "
            "current_setting('statement_timeout')"
        ).fetchone()


@pytest.mark.postgres
def test_postgres_a_setting_changed_by_the_statement_is_rolled_back(pg):
    execute_postgres(pg, _unguarded("SELECT set_config('work_mem', '1MB', false)", "postgres"))
    assert ("4MB",) == pg.execute("SHOW work_mem").fetchone()


@pytest.mark.postgres
def test_postgres_statement_timeout_raises_the_timeout_error(pg):
    with pytest.raises(SqlTimeout, match="timeout of 0.2 s"):
        execute_postgres(pg, _unguarded("SELECT pg_sleep(30)", "postgres"), timeout=0.2)


@pytest.mark.postgres
def test_postgres_fetch_reads_limit_plus_one_rows_of_an_endless_query(pg):
    """Unwrapped, an endless recursive CTE still returns through the server-side cursor."""
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
    result = execute_postgres(pg, _unguarded(endless, "postgres", limit=10), timeout=5)
    assert [[i] for i in range(1, 11)] == result.rows
    assert result.truncated


@pytest.mark.postgres
def test_postgres_ten_million_row_series_with_limit_10_returns_10_rows(pg):
    sql = "SELECT n FROM generate_series(1, 10000000) AS g(n)"
    result = execute_postgres(pg, guard(sql, "postgres", limit=10), timeout=5)
    assert (["n"], [[i] for i in range(1, 11)], True) == (
        result.columns,
        result.rows,
        result.truncated,
    )


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("limit", "rows", "truncated"), [(5, 5, True), (10, 10, False), (20, 10, False)]
)
def test_postgres_limit_wrap_returns_at_most_limit_rows(pg, limit, rows, truncated):
    result = execute_postgres(pg, guard("SELECT id FROM logs ORDER BY id", "postgres", limit))
    assert [[i] for i in range(1, rows + 1)] == result.rows
    assert truncated == result.truncated


@pytest.mark.postgres
@pytest.mark.parametrize("sql", [sql for sql, dialect in LEGITIMATE if dialect == "postgres"])
def test_postgres_legitimate_query_returns_what_running_it_directly_returns(pg, sql):
    expected = [list(row) for row in pg.execute(sql).fetchall()]
    result = execute_postgres(pg, guard(sql, "postgres", limit=1000))
    assert expected == result.rows
    assert not result.truncated


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("sql", "match"),
    [("SELECT 1 / (id - id) FROM logs", "division by zero"), ("SELECT nope FROM logs", "nope")],
)
def test_postgres_query_errors_are_query_errors_not_store_failures(pg, sql, match):
    with pytest.raises(SqlQueryError, match=match):
        execute_postgres(pg, guard(sql, "postgres"))


@pytest.mark.postgres
def test_postgres_closed_connection_is_store_unavailable(pg_url):
    conn = psycopg.connect(pg_url, autocommit=True)
    conn.close()
    with pytest.raises(SqlStoreUnavailable):
        execute_postgres(conn, guard("SELECT 1", "postgres"))


@pytest.mark.postgres
def test_postgres_reader_role_migration_is_idempotent(pg_url, pg):
    """Roles are cluster-wide while migrations run per database: running it again is a no-op."""
    from log_collector.common.migrations import sql_files

    role_sql = dict(sql_files("postgres"))["0002_reader_role"]
    pg.execute(role_sql)
    pg.execute(role_sql)
    assert [(READER_ROLE, False, False)] == pg.execute(
        "SELECT rolname, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = %s", (READER_ROLE,)
    ).fetchall()
