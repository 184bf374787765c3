"""Server roles, over HTTP on real servers: ``ingest`` serves POST /logs, ``query`` serves
/api/* and /stats (and the dashboard), ``all`` both; every role answers the health probes and
/openapi.json, and ``GET /`` sends a browser to /ui/ where the role serves it."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
from server_helpers import closed_port, record, stored_messages

from log_collector.server import create_app

PROBES = ("/", "/healthz", "/readyz", "/openapi.json")


def post_logs(url: str, message: str) -> requests.Response:
    return requests.post(f"{url}/logs", json={"logs": [record(message)]}, timeout=30)


def query(url: str) -> requests.Response:
    return requests.post(f"{url}/api/sql", json={"sql": "SELECT message FROM logs"}, timeout=30)


def test_an_ingest_server_stores_logs_and_has_no_query_routes(db_url, serve):
    url = serve(create_app(db_url, role="ingest"))
    assert 200 == post_logs(url, "ingested").status_code
    assert ["ingested"] == stored_messages(db_url)
    assert 404 == query(url).status_code
    assert 404 == requests.get(f"{url}/stats", timeout=30).status_code
    assert "/api/sql" not in requests.get(f"{url}/openapi.json", timeout=30).json()["paths"]
    for path in PROBES:
        assert (path, 200) == (path, requests.get(f"{url}{path}", timeout=30).status_code)


def test_a_query_server_reads_what_an_ingest_server_stored_and_takes_no_logs(db_url, serve):
    ingest = serve(create_app(db_url, role="ingest"))
    reader = serve(create_app(db_url, role="query"))
    post_logs(ingest, "from the ingest role")
    assert [["from the ingest role"]] == query(reader).json()["rows"]
    assert 1 == requests.get(f"{reader}/stats", timeout=30).json()["total_logs"]
    assert post_logs(reader, "refused").status_code in (404, 405)
    assert ["from the ingest role"] == stored_messages(db_url)
    assert "/logs" not in requests.get(f"{reader}/openapi.json", timeout=30).json()["paths"]
    for path in PROBES:
        assert (path, 200) == (path, requests.get(f"{reader}{path}", timeout=30).status_code)


def test_the_default_role_serves_both(db_url, serve):
    url = serve(create_app(db_url))
    assert 200 == post_logs(url, "both").status_code
    assert [["both"]] == query(url).json()["rows"]


def test_an_unknown_role_is_refused_naming_the_roles(sqlite_url):
    with pytest.raises(ValueError, match="unknown role 'reader': use one of ingest, query, all"):
        create_app(sqlite_url, role="reader")


def test_serve_role_query_from_the_command_line_has_no_post_logs(tmp_path):
    """``python -m log_collector.server --role query`` on a migrated database (the query role
    never migrates, tests/server/test_query_role.py): reads, takes no logs."""
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    db = f"sqlite:///{tmp_path}/logs.db"
    subprocess.run(
        [sys.executable, "-m", "log_collector", "migrate", "--db", db], check=True, timeout=60
    )
    command = [sys.executable, "-m", "log_collector.server", "--port", str(port), "--db", db]
    process = subprocess.Popen(
        [*command, "--role", "query", "--log-level", "warning", "--sql-timeout", "2"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        assert [[0]] == requests.post(
            f"{url}/api/sql", json={"sql": "SELECT count(*) FROM logs"}, timeout=10
        ).json()["rows"]
        assert post_logs(url, "refused").status_code in (404, 405)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "the query API (/api/*, /stats) is open" in stderr
    assert [] == stored_messages(db)


# What Chromium and Firefox send when they load a page.
BROWSER_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
)


def root(url: str, accept: str | None) -> requests.Response:
    # requests sends Accept: */* unless told otherwise; None leaves the header out.
    return requests.get(f"{url}/", headers={"Accept": accept}, allow_redirects=False, timeout=30)


@pytest.mark.parametrize("role", ["query", "all"])
@pytest.mark.parametrize(
    "accept", [BROWSER_ACCEPT, "text/html", "text/*, application/json;q=0.5", "TEXT/HTML"]
)
def test_a_browser_asking_for_the_root_is_sent_to_the_dashboard(sqlite_url, serve, role, accept):
    response = root(serve(create_app(sqlite_url, role=role)), accept)
    assert (307, "/ui/") == (response.status_code, response.headers["location"])
    assert "Accept" == response.headers["vary"]


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "*/*",
        "application/json",
        "application/json, text/html;q=0.9",
        "text/html;q=0.5, application/*",
        "text/html;q=0, */*",
        "text/html;q=oops",
    ],
)
def test_an_api_client_asking_for_the_root_gets_the_original_json(sqlite_url, serve, accept):
    response = root(serve(create_app(sqlite_url)), accept)
    assert (200, {"status": "ok", "service": "log-server"}) == (
        response.status_code,
        response.json(),
    )


def test_an_ingest_server_has_no_dashboard_and_answers_a_browser_with_the_json(sqlite_url, serve):
    response = root(serve(create_app(sqlite_url, role="ingest")), BROWSER_ACCEPT)
    assert (200, {"status": "ok", "service": "log-server"}) == (
        response.status_code,
        response.json(),
    )
