"""Fixtures for the ingest server: real stores, real uvicorn servers on 127.0.0.1.

PostgreSQL tests use a fresh database per session (``lc_test_<random>``,
dropped at the end) on ``$LOG_COLLECTOR_TEST_PG_URL``. They are skipped when
no server answers, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from server_helpers import database_url, running_server

from log_collector.server import create_app, open_store

PG_ADMIN_URL = os.environ.get(
    "LOG_COLLECTOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


class PostgresDatabases:
    """Creates throwaway databases on the test server and drops them all at the end."""

    def __init__(self, admin: psycopg.Connection):
        self._admin = admin
        self._created: list[str] = []

    def create(self) -> str:
        name = f"lc_test_{secrets.token_hex(6)}"
        self._admin.execute(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return database_url(PG_ADMIN_URL, name)

    def drop_all(self) -> None:
        for name in self._created:
            self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PostgresDatabases]:
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        message = f"no PostgreSQL at {PG_ADMIN_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)
    databases = PostgresDatabases(admin)
    try:
        yield databases
    finally:
        databases.drop_all()
        admin.close()


@pytest.fixture(scope="session")
def pg_session_url(pg_databases: PostgresDatabases) -> str:
    """One migrated database shared by the session; tests empty ``logs`` first."""
    url = pg_databases.create()
    store = open_store(url)
    store.migrate()
    store.close()
    return url


def _empty_logs(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE logs RESTART IDENTITY")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/logs.db"
        store = open_store(url)
        store.migrate()
        store.close()
        return url
    url = request.getfixturevalue("pg_session_url")
    _empty_logs(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A database of each kind that has never been migrated."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/fresh.db"
    return request.getfixturevalue("pg_databases").create()


@pytest.fixture
def store(db_url: str) -> Iterator[Any]:
    """The store of ``db_url``, closed after the test."""
    opened = open_store(db_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """For HTTP-shape tests where the store kind does not matter."""
    return f"sqlite:///{tmp_path}/logs.db"


@pytest.fixture
def serve() -> Iterator[Callable[[Any], str]]:
    """``serve(app)`` starts a real server for the test; all are stopped after it."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(running_server(app))


@pytest.fixture
def server_url(db_url: str, serve: Callable[[Any], str]) -> str:
    """A real server on each kind of store, with the default settings."""
    return serve(create_app(db_url))
