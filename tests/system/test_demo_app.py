"""The demo backend (tests/demo-app/backend-python/server.py) runs with the ASGI middleware:
login, a todo's life and the raising endpoint, through starlette's TestClient, arrive at a real
receiver with their request context."""

import importlib.util
import subprocess
from pathlib import Path

import pytest
from helpers import TRACE_ID, TRACEPARENT
from starlette.testclient import TestClient

SERVER = Path(__file__).resolve().parents[1] / "demo-app" / "backend-python" / "server.py"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("demo_backend_server", SERVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def client(make_client):
    return make_client(service="demo-backend-python")


def test_login_a_todo_and_a_failing_endpoint_are_logged_per_request(demo, client, receiver):
    with TestClient(demo.create_app(client), raise_server_exceptions=False) as http:
        refused = http.post("/api/login", json={"username": "demo", "password": "wrong"})
        login = http.post("/api/login", json={"username": "demo", "password": "demo123"})
        auth = {"authorization": f"Bearer {login.json()['token']}", "x-user-id": "user-demo"}
        created = http.post("/api/todos", json={"title": "write docs"}, headers=auth)
        todo_id = created.json()["id"]
        updated = http.put(f"/api/todos/{todo_id}", json={"done": True}, headers=auth)
        listed = http.get("/api/todos", headers=auth)
        deleted = http.delete(f"/api/todos/{todo_id}", headers=auth)
        failed = http.get("/api/error")
        slow = http.get("/api/slow", params={"ms": 1})

    assert [401, 200, 201, 200, 200, 204, 500, 200] == [
        r.status_code for r in (refused, login, created, updated, listed, deleted, failed, slow)
    ]
    assert [{"id": todo_id, "owner": "user-demo", "title": "write docs", "done": True}] == (
        listed.json()
    )
    assert client.flush(timeout=10)
    records = receiver.records
    by_message = {r["message"]: r for r in records}
    assert "wrong" not in str(records)  # the refused password is never logged
    assert ("user-demo", created.headers["x-trace-id"], "/api/todos") == (
        by_message["Todo created"]["user_id"],
        by_message["Todo created"]["trace_id"],
        by_message["Todo created"]["path"],
    )
    error = by_message["Unhandled exception"]
    assert ("RuntimeError", "/api/error") == (error["error_type"], error["path"])
    assert "Simulated failure in the demo backend" in error["stack_trace"]
    assert {"Slow operation finished", "Report computed"} <= by_message.keys()
    assert by_message["Slow operation finished"]["duration_ms"] >= 0
    completed = [r["status_code"] for r in records if r["message"] == "Request completed"]
    assert [401, 200, 201, 200, 200, 204, 500, 200] == completed


def test_the_500_of_the_raising_endpoint_carries_the_trace_id_of_its_records(
    demo, client, receiver
):
    """The README promises x-trace-id on every response: the middleware wraps the whole app,
    so Starlette's 500 for an unhandled exception passes through it too."""
    with TestClient(demo.create_app(client), raise_server_exceptions=False) as http:
        failed = http.get("/api/error", headers={"traceparent": TRACEPARENT})

    assert client.flush(timeout=10)
    errors = [r for r in receiver.records if r["message"] == "Unhandled exception"]
    assert (500, TRACE_ID) == (failed.status_code, failed.headers.get("x-trace-id"))
    assert [TRACE_ID] == [r["trace_id"] for r in errors]


def test_the_readme_stores_the_demo_database_where_git_ignores_it():
    readme = (SERVER.parent / "README.md").read_text()
    serve = next(line for line in readme.splitlines() if "log-collector serve --db" in line)
    db_path = serve.split("sqlite:///", 1)[1].split()[0]

    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", db_path, f"{db_path}-wal"],
        cwd=REPO,
        capture_output=True,
    )

    assert ".demo/demo-app.db" == db_path
    assert (0, [db_path, f"{db_path}-wal"]) == (
        ignored.returncode,
        ignored.stdout.decode().split(),
    )
