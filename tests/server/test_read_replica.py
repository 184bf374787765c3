"""Reads from a replica (``create_app(read_db_url=...)``, ``serve --read-db``): the query API
and /stats read the replica, ingest and saved views write the primary. A second database
that the test fills differently stands in for the streaming replica, so where each request
went shows in what it answers."""

from __future__ import annotations

import socket
import subprocess
import sys

import psycopg
import pytest
import requests
from server_helpers import stored_messages, wait_healthy

from log_collector.server import create_app, open_store


def migrated(pg_databases) -> str:
    url = pg_databases.create()
    store = open_store(url)
    store.migrate()
    store.close()
    return url


def post(url: str, *messages: str) -> None:
    logs = [{"message": m, "service": "replica-test"} for m in messages]
    answer = requests.post(f"{url}/logs", json={"logs": logs}, timeout=10)
    assert 200 == answer.status_code, answer.text


@pytest.mark.postgres
def test_reads_go_to_the_replica_and_writes_to_the_primary(pg_databases, serve):
    primary, replica = migrated(pg_databases), migrated(pg_databases)
    post(serve(create_app(replica)), "only on the replica")
    url = serve(create_app(primary, read_db_url=replica))

    post(url, "written through the primary")
    listed = requests.get(f"{url}/api/logs", timeout=10).json()
    saved = requests.post(
        f"{url}/api/views",
        json={"name": "mine", "page": "explore", "query": "level=ERROR"},
        timeout=10,
    )

    assert ["only on the replica"] == [row["message"] for row in listed["logs"]]
    assert ["written through the primary"] == stored_messages(primary)
    assert ["only on the replica"] == stored_messages(replica)
    assert saved.status_code in (200, 201), saved.text
    with psycopg.connect(primary) as conn:
        assert [("mine",)] == conn.execute("SELECT name FROM saved_views").fetchall()


def test_an_sqlite_store_refuses_a_replica(tmp_path):
    with pytest.raises(ValueError, match="a read replica needs PostgreSQL"):
        create_app(f"sqlite:///{tmp_path}/logs.db", read_db_url="postgresql://x@y/z")


def test_several_workers_on_sqlite_run_one_and_say_so(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "log_collector.server", "--db", f"sqlite:///{tmp_path}/logs.db"]
        + ["--port", str(port), "--workers", "3", "--log-level", "warning"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        post(url, "one writer")
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)

    assert "SQLite has one writer, so the server runs 1 worker, not 3" in err
    assert ["one writer"] == stored_messages(f"sqlite:///{tmp_path}/logs.db")
