"""The PostgreSQL migration runner (SQLite uses sqlite-utils', see ``common.migrations``).

Each numbered file under ``migrations/postgres/`` runs in one transaction
together with its bookkeeping row, so a step is either fully applied and
recorded or not at all (PostgreSQL DDL is transactional). A session advisory
lock serialises runners, so servers starting together do not race.
https://www.postgresql.org/docs/15/explicit-locking.html#ADVISORY-LOCKS
"""

from __future__ import annotations

import psycopg

from ...common.migrations import sql_files

BOOKKEEPING_TABLE = "log_collector_migrations"
# Any constant shared by every runner; "lcmigr" in ASCII.
_LOCK_KEY = 0x6C636D696772


def apply_postgres(conn: psycopg.Connection) -> list[str]:
    """Apply the pending ``postgres`` migrations on ``conn`` (autocommit); return their names."""
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {BOOKKEEPING_TABLE} ("
            "name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        applied = {name for (name,) in conn.execute(f"SELECT name FROM {BOOKKEEPING_TABLE}")}
        done = []
        for name, sql in sql_files("postgres"):
            if name in applied:
                continue
            with conn.transaction():
                # No parameters: psycopg sends the file as one simple query,
                # which may hold several statements.
                conn.execute(sql)
                conn.execute(f"INSERT INTO {BOOKKEEPING_TABLE} (name) VALUES (%s)", (name,))
            done.append(name)
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def applied_postgres(conn: psycopg.Connection) -> list[str]:
    """Names of the ``postgres`` migrations already applied on ``conn``, in order."""
    exists = conn.execute("SELECT to_regclass(%s)", (BOOKKEEPING_TABLE,)).fetchone()
    if exists is None or exists[0] is None:
        return []
    return [n for (n,) in conn.execute(f"SELECT name FROM {BOOKKEEPING_TABLE} ORDER BY name")]
