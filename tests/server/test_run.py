"""serve() and migrate(), the library functions behind the CLI, and
``python -m log_collector.server``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import requests
from server_helpers import closed_port, migration_steps, record, stored_messages

from log_collector.server import migrate


def test_migrate_applies_each_step_once(fresh_db_url):
    assert migration_steps(fresh_db_url) == migrate(fresh_db_url)
    assert [] == migrate(fresh_db_url)


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    port = closed_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "log_collector.server", "--port", str(port), *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_until_ready(process: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"server did not become ready: {process.communicate()[1]}")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_python_m_server_migrates_serves_and_stops_on_sigterm(fresh_db_url, workers):
    process, url = start_server("--db", fresh_db_url, "--workers", workers, "--log-level", "error")
    try:
        wait_until_ready(process, url)
        response = requests.post(f"{url}/logs", json={"logs": [record("via -m")]}, timeout=10)
        assert 200 == response.status_code
    finally:
        process.terminate()
        process.wait(30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM in a single process.
    assert process.returncode in (0, -signal.SIGTERM)
    assert ["via -m"] == stored_messages(fresh_db_url)


@pytest.mark.parametrize(
    ("db", "message"),
    [
        ("mysql://nowhere", "log-collector server: unsupported database URL 'mysql://nowhere'"),
        (
            f"postgresql://postgres@127.0.0.1:{closed_port()}/x",
            "log-collector server: PostgreSQL store: ",
        ),
    ],
)
def test_a_database_it_cannot_use_is_one_line_and_exit_1(db, message):
    process, _ = start_server("--db", db)
    _, stderr = process.communicate(timeout=60)
    assert 1 == process.returncode
    assert stderr.startswith(message)
    assert 1 == len(stderr.strip().splitlines())


def test_acknowledged_records_survive_the_sqlite_server_being_killed(tmp_path):
    """A commit is in the WAL file (synchronous=FULL: and on disk) before the 200, so SIGKILL
    right after the answers loses nothing acknowledged."""
    db_url = f"sqlite:///{tmp_path}/logs.db"
    process, url = start_server("--db", db_url, "--log-level", "error")
    try:
        wait_until_ready(process, url)
        for batch in range(5):
            logs = [record(f"{batch}-{i}") for i in range(200)]
            response = requests.post(f"{url}/logs", json={"logs": logs}, timeout=30)
            assert 200 == response.status_code
    finally:
        process.kill()
        process.wait(30)
    assert [f"{b}-{i}" for b in range(5) for i in range(200)] == stored_messages(db_url)
