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


@pytest.fixture
def make_client(tmp_path, receiver):
    """Makes AsyncLogClients shipping to `receiver` and spooling in tmp_path/"spool", with a
    short max_backoff so retries stay quick; every client made is closed after the test."""
    from log_collector import AsyncLogClient

    made = []

    def make(**options):
        options.setdefault("server_url", receiver.url)
        options.setdefault("spool_dir", tmp_path / "spool")
        options.setdefault("service", "test-service")
        options.setdefault("max_backoff", 0.2)
        options.setdefault("close_timeout", 2.0)
        client = AsyncLogClient(**options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=1.0)


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
