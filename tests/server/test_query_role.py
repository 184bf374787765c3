"""The query role never writes: it serves a database migrated elsewhere, a PostgreSQL read
replica included (simulated by a database whose transactions are read-only by default), and on
a database lacking migrations it says which and how to apply them, creating nothing."""

from __future__ import annotations

import psycopg
import pytest
import requests
from server_helpers import row

from log_collector.server import create_app, open_store
from log_collector.server.run import serve as run_server
from log_collector.server.store import StoreUnavailable


def _tables(url: str) -> set[str]:
    if url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()
    with psycopg.connect(url) as conn:
        return {
            n
            for (n,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }


def test_a_query_server_on_an_unmigrated_database_names_the_missing_migrations(fresh_db_url, serve):
    url = serve(create_app(fresh_db_url, role="query"))
    ready = requests.get(f"{url}/readyz", timeout=10)
    assert 503 == ready.status_code
    reason = ready.json()["detail"]
    assert "0001_logs" in reason
    assert "log-collector migrate" in reason
    assert "logs" not in _tables(fresh_db_url)
    with pytest.raises(StoreUnavailable, match="lacks migrations 0001_logs"):
        # run_server checks before it binds a port: nothing starts.
        run_server(fresh_db_url, port=0, role="query")
    assert "logs" not in _tables(fresh_db_url)


@pytest.mark.postgres
def test_a_query_server_reads_a_database_where_nothing_can_be_written(pg_databases, serve):
    """A replica refuses every write, migrations included: the query role checks they were
    applied and serves the rows."""
    db = pg_databases.create()
    store = open_store(db)
    try:
        store.migrate()
        store.insert([row("from the primary")])
    finally:
        store.close()
    name = db.rsplit("/", 1)[1]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    url = serve(create_app(db, role="query"))
    assert 200 == requests.get(f"{url}/readyz", timeout=10).status_code
    logs = requests.get(f"{url}/api/logs", timeout=10).json()["logs"]
    assert ["from the primary"] == [r["message"] for r in logs]
    with pytest.raises(StoreUnavailable):
        store = open_store(db)
        try:
            store.migrate()
        finally:
            store.close()
