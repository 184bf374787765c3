"""Helpers the server tests share: rows for a store, reading the store back, building requests,
running a real uvicorn server."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests
import uvicorn
from psycopg.rows import dict_row

from log_collector.common.migrations import sql_files
from log_collector.server.ingest.validate import normalise

# The received_at of every row() made in this test session.
NOW = time.time()


def closed_port() -> int:
    """A port of 127.0.0.1 with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(admin_url: str, dbname: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def migration_steps(db_url: str) -> list[str]:
    """The names of every numbered migration of ``db_url``'s kind, in order."""
    kind = "sqlite" if db_url.startswith("sqlite:") else "postgres"
    return [name for name, _ in sql_files(kind)]


# rows for a store


def row(message: str = "m", event_id: str | None = "new", **fields: Any) -> tuple:
    """A record normalised as ingest hands it to a store, received at NOW. ``event_id="new"``
    (the default) draws a fresh one; ``None`` leaves it out, as the older client does."""
    record = {"message": message, **fields}
    if event_id == "new":
        record["event_id"] = str(uuid.uuid4())
    elif event_id is not None:
        record["event_id"] = event_id
    return normalise(record, NOW)


def execute(db_url: str, sql: str) -> None:
    """Run a write statement on a connection of its own (the store's read one is read-only)."""
    if db_url.startswith("sqlite:///"):
        conn = sqlite3.connect(db_url[len("sqlite:///") :])
        try:
            with conn:
                conn.execute(sql)
        finally:
            conn.close()
    else:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(sql)


# reading back what was stored


def stored_rows(db_url: str) -> list[dict[str, Any]]:
    """Every row of ``logs`` in id order, with values in one shape for both stores:
    times as Unix seconds, enums and UUIDs as strings, metadata as a dict.
    """
    if db_url.startswith("sqlite:///"):
        conn = sqlite3.connect(db_url[len("sqlite:///") :])
        conn.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in conn.execute("SELECT * FROM logs ORDER BY id")]
        finally:
            conn.close()
        for row in rows:
            row["created_at"] = row["created_at"] / 1_000_000
            row["received_at"] = row["received_at"] / 1_000_000
            row["metadata"] = json.loads(row["metadata"]) if row["metadata"] else None
            row["deleted"] = bool(row["deleted"])
        return rows
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM logs ORDER BY id").fetchall()
    for row in rows:
        row["created_at"] = row["created_at"].timestamp()
        row["received_at"] = row["received_at"].timestamp()
        row["event_id"] = str(row["event_id"]) if row["event_id"] else None
    return rows


def stored_messages(db_url: str) -> list[str]:
    return [row["message"] for row in stored_rows(db_url)]


# requests


def record(message: str = "hello", **fields: Any) -> dict[str, Any]:
    """A record as our client sends it: with an event_id."""
    return {"event_id": str(uuid.uuid4()), "level": "INFO", "message": message, **fields}


def gzip_json(document: Any) -> bytes:
    return gzip.compress(json.dumps(document).encode("utf-8"))


# a real server


@contextlib.contextmanager
def running_server(app: Any, **config: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port of 127.0.0.1; yield its base URL.
    ``config`` goes to ``uvicorn.Config`` (``http=`` for another protocol class)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = {"log_level": "warning", "lifespan": "on", **config}
    server = uvicorn.Server(uvicorn.Config(app, **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def wait_healthy(url: str, timeout: float = 30.0) -> None:
    """Wait until a server started in another process answers ``/healthz``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up within {timeout:g} s")
