import contextlib
import sys
from pathlib import Path

import pytest

# Lets any test (and tests/server/) write `from receiver import Receiver`.
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)


@pytest.fixture
def receiver():
    """A started stand-in ingest server on 127.0.0.1, stopped after the test."""
    from receiver import Receiver

    with Receiver() as started:
        yield started


@contextlib.contextmanager
def _clients(closed_within: float, **defaults):
    """Yields make(**options): an AsyncLogClient with `defaults` under `options`; every client
    made is closed, each within `closed_within` seconds, on the way out."""
    from log_collector import AsyncLogClient

    made = []

    def make(**options):
        client = AsyncLogClient(**{**defaults, **options})
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            client.close(timeout=closed_within)


@pytest.fixture
def make_client(tmp_path, receiver):
    """Makes AsyncLogClients shipping to `receiver` and spooling in tmp_path/"spool", with a
    short max_backoff so retries stay quick; every client made is closed after the test."""
    with _clients(
        1.0,
        server_url=receiver.url,
        spool_dir=tmp_path / "spool",
        service="test-service",
        max_backoff=0.2,
        close_timeout=2.0,
    ) as make:
        yield make


@pytest.fixture
def client(make_client):
    """One client made by `make_client`. A test file whose records need their own service name
    overrides it: ``def client(make_client): return make_client(service="...")``."""
    return make_client()


@pytest.fixture
def offline_client(tmp_path):
    """Makes clients whose server never answers: what they log stays visible in client.queue."""
    from helpers import DEAD_URL

    with _clients(
        0.1, server_url=DEAD_URL, spool_dir=tmp_path / "spool", flush_interval=60.0
    ) as make:
        yield make


@pytest.fixture
def no_context():
    """Clears the request and user context before and after the test (they are contextvars,
    so one test's context would otherwise leak into the next)."""
    from log_collector import clear_request_context, clear_user_context

    clear_request_context()
    clear_user_context()
    yield
    clear_request_context()
    clear_user_context()


@pytest.fixture
def run(monkeypatch, tmp_path):
    """run(*args, env=None): the log-collector CLI in-process with a clean environment and an
    empty cache directory; returns click's Result."""
    from click.testing import CliRunner

    from log_collector.cli import main

    monkeypatch.delenv("LOG_COLLECTOR_SPOOL_DIR", raising=False)
    monkeypatch.delenv("LOG_COLLECTOR_API_KEY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def invoke(*args, env=None):
        return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def no_sender_thread_left():
    """Fails the test if a log-collector sender thread outlives it (a client left open)."""
    import threading
    import time

    yield
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        left = [t for t in threading.enumerate() if t.name == "log-collector-sender"]
        if not left:
            return
        left[0].join(0.1)
    assert [] == [t.name for t in threading.enumerate() if t.name == "log-collector-sender"]
