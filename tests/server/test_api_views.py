"""The dashboard's saved views over HTTP on a real server, on each store (GET, POST /api/views,
DELETE /api/views/{id}): a saved view is listed with its id and time and outlives the server,
the same name replaces it, bad input is a 400 naming the field, an unknown id a 404, the read
scope applies, and the table is out of reach of POST /api/sql."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from typing import Any

import psycopg
import pytest
import requests

from log_collector.server import create_app
from log_collector.server.query import views
from log_collector.server.query.sqlguard import ALLOWED_RELATIONS

READ_KEY = "read-1"
INGEST_KEY = "ingest-1"


def execute(db_url: str, sql: str, params: Any = ()) -> None:
    if db_url.startswith("sqlite:///"):
        conn = sqlite3.connect(db_url[len("sqlite:///") :])
        with conn:
            conn.execute(sql, params)
        conn.close()
    else:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(sql.replace("?", "%s"), params)


@pytest.fixture
def empty_db_url(db_url: str) -> str:
    """A migrated database of each kind without saved views (the PostgreSQL one is shared by
    the session)."""
    execute(db_url, "DELETE FROM saved_views")
    return db_url


@pytest.fixture
def url(empty_db_url: str, serve) -> str:
    return serve(create_app(empty_db_url))


def save(url: str, body: Any, **request: Any) -> requests.Response:
    return requests.post(f"{url}/api/views", json=body, timeout=30, **request)


def post_bytes(url: str, data: bytes, content_type: str = "application/json") -> requests.Response:
    """A POST /api/views whose body is ``data`` as it is, declared as ``content_type``."""
    return requests.post(
        f"{url}/api/views", data=data, headers={"Content-Type": content_type}, timeout=30
    )


def listed(url: str, **request: Any) -> list[dict[str, Any]]:
    response = requests.get(f"{url}/api/views", timeout=30, **request)
    assert 200 == response.status_code, response.text
    return response.json()["views"]


def delete(url: str, view_id: Any, **request: Any) -> requests.Response:
    return requests.delete(f"{url}/api/views/{view_id}", timeout=30, **request)


def test_a_saved_view_is_answered_and_listed_with_its_id_and_time(url):
    before = time.time()
    response = save(url, {"name": "Errors", "page": "explore", "query": "level=ERROR&since=1h"})
    after = time.time()
    assert 201 == response.status_code
    view = response.json()
    assert {"name": "Errors", "page": "explore", "query": "level=ERROR&since=1h"} == {
        key: view[key] for key in ("name", "page", "query")
    }
    assert isinstance(view["id"], int)
    assert before - 1 <= datetime.fromisoformat(view["created_at"]).timestamp() <= after + 1
    assert [view] == listed(url)


def test_views_are_kept_by_the_database_across_servers(empty_db_url, serve):
    view = save(serve(create_app(empty_db_url)), {"name": "tail", "page": "tail"}).json()
    assert [view] == listed(serve(create_app(empty_db_url)))


def test_saving_a_name_again_replaces_its_view_and_keeps_its_id(url):
    first = save(url, {"name": "mine", "page": "explore", "query": "service=api"}).json()
    second = save(url, {"name": "mine", "page": "overview", "query": ""})
    assert 201 == second.status_code
    assert [second.json()] == listed(url)
    assert (first["id"], "overview", "") == (
        second.json()["id"],
        second.json()["page"],
        second.json()["query"],
    )


def test_views_are_listed_by_name_in_code_point_order(url):
    names = ["beta", "Beta", "alpha", "étoile", "Zed", "10 errors"]
    for name in names:
        assert 201 == save(url, {"name": name, "page": "explore"}).status_code
    assert sorted(names) == [view["name"] for view in listed(url)]


def test_the_name_is_trimmed_and_a_leading_question_mark_dropped(url):
    view = save(url, {"name": "  spaced  ", "page": "explore", "query": "?q=timeout"}).json()
    assert ("spaced", "q=timeout") == (view["name"], view["query"])


def test_the_longest_name_and_query_are_accepted(url):
    body = {"name": "n" * views.MAX_NAME_CHARS, "page": "trace", "query": "q" * 4096}
    response = save(url, body)
    assert 201 == response.status_code, response.text
    assert body == {key: listed(url)[0][key] for key in body}


def test_a_deleted_view_is_gone_and_deleting_it_again_is_a_404(url):
    kept = save(url, {"name": "kept", "page": "explore"}).json()
    gone = save(url, {"name": "gone", "page": "explore"}).json()
    response = delete(url, gone["id"])
    assert (204, b"") == (response.status_code, response.content)
    assert [kept] == listed(url)
    again = delete(url, gone["id"])
    assert (404, "not_found") == (again.status_code, again.json()["error"])


@pytest.mark.parametrize("view_id", ["abc", "0", "-1", "99999999999999999999"])
def test_a_malformed_id_is_a_400_naming_it(url, view_id):
    response = delete(url, view_id)
    assert (400, "id") == (response.status_code, response.json()["parameter"])


BAD_VIEWS = [
    ({"page": "explore"}, "name"),
    ({"name": "", "page": "explore"}, "name"),
    ({"name": "   ", "page": "explore"}, "name"),
    ({"name": 7, "page": "explore"}, "name"),
    ({"name": "n" * 201, "page": "explore"}, "name"),
    ({"name": "line\nbreak", "page": "explore"}, "name"),
    ({"name": "x"}, "page"),
    ({"name": "x", "page": "home"}, "page"),
    ({"name": "x", "page": "explore", "query": "q" * 4097}, "query"),
    ({"name": "x", "page": "explore", "query": "q=two words"}, "query"),
    ({"name": "x", "page": "explore", "query": "q=x#top"}, "query"),
    ({"name": "x", "page": "explore", "query": ["level=ERROR"]}, "query"),
    ({"name": "x", "page": "explore", "colour": "red"}, "colour"),
    (["name", "x"], "body"),
]


@pytest.mark.parametrize(("body", "parameter"), BAD_VIEWS, ids=[p for _, p in BAD_VIEWS])
def test_a_bad_view_is_a_400_naming_the_field_and_stores_nothing(url, body, parameter):
    response = save(url, body)
    assert (400, "bad_request", parameter) == (
        response.status_code,
        response.json()["error"],
        response.json()["parameter"],
    )
    assert response.json()["reason"]
    assert [] == listed(url)


def test_a_body_that_is_not_json_is_a_400_naming_the_body(url):
    response = post_bytes(url, b'{"name": "x", ')
    assert (400, "body") == (response.status_code, response.json()["parameter"])


def test_an_unknown_field_with_an_unpaired_surrogate_is_named_escaped(url):
    response = post_bytes(url, b'{"name": "x", "page": "explore", "\\ud800": 1}')
    assert (400, "\\ud800") == (response.status_code, response.json()["parameter"])


def test_a_body_not_sent_as_json_is_a_415(url):
    """A cross-site HTML form can send text/plain without a CORS preflight, not JSON."""
    response = post_bytes(url, b'{"name": "x", "page": "explore"}', "text/plain")
    assert (415, []) == (response.status_code, listed(url))


def test_a_body_past_the_limit_is_a_413(url):
    response = save(url, {"name": "x", "page": "explore", "query": "q" * 70_000})
    assert 413 == response.status_code


def test_an_unknown_query_parameter_is_a_400_naming_it(url):
    response = requests.get(f"{url}/api/views", params={"page": "explore"}, timeout=30)
    assert (400, "page") == (response.status_code, response.json()["parameter"])


def test_a_new_name_past_the_most_views_kept_is_refused_but_a_known_one_replaced(url, empty_db_url):
    for i in range(views.MAX_VIEWS):
        execute(
            empty_db_url,
            "INSERT INTO saved_views (name, page, query, created_at) VALUES (?, 'explore', '', ?)",
            (f"view {i:04}", 0 if empty_db_url.startswith("sqlite") else datetime.now()),
        )
    refused = save(url, {"name": "one more", "page": "explore"})
    assert (400, "name") == (refused.status_code, refused.json()["parameter"])
    assert 201 == save(url, {"name": "view 0007", "page": "tail"}).status_code
    assert views.MAX_VIEWS == len(listed(url))


def test_views_need_a_read_key_when_keys_are_set(empty_db_url, serve):
    url = serve(create_app(empty_db_url, api_keys=INGEST_KEY, read_keys=READ_KEY))
    body = {"name": "x", "page": "explore"}
    for key, status in ((None, 401), (INGEST_KEY, 403)):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        assert status == requests.get(f"{url}/api/views", headers=headers, timeout=30).status_code
        assert status == save(url, body, headers=headers).status_code
        assert status == delete(url, 1, headers=headers).status_code
    reader = {"Authorization": f"Bearer {READ_KEY}"}
    view = save(url, body, headers=reader).json()
    assert [view] == listed(url, headers=reader)
    assert 204 == delete(url, view["id"], headers=reader).status_code


def test_saved_views_are_out_of_reach_of_the_sql_endpoint(url):
    save(url, {"name": "secret", "page": "explore"})
    response = requests.post(
        f"{url}/api/sql", json={"sql": "SELECT name FROM saved_views"}, timeout=30
    )
    assert (400, "refused") == (response.status_code, response.json()["error"])
    assert "saved_views" in response.json()["reason"]
    assert {"postgres": {"logs"}, "sqlite": {"logs", "logs_iso"}} == ALLOWED_RELATIONS


def test_the_openapi_schema_describes_the_view_routes(sqlite_url, serve):
    schema = requests.get(f"{serve(create_app(sqlite_url))}/openapi.json", timeout=30).json()
    assert {"get", "post"} == set(schema["paths"]["/api/views"])
    assert {"delete"} == set(schema["paths"]["/api/views/{view_id}"])
    body = schema["paths"]["/api/views"]["post"]["requestBody"]["content"]["application/json"]
    assert {"name", "page", "query"} == set(body["schema"]["properties"])
