"""The dashboard's saved views: a name, the page and the URL query string that rebuild what
someone was looking at, kept in the table ``saved_views`` (migrations/*/0004_saved_views.sql)
and shared by everyone with the read scope. Saving a name that exists replaces that view.

``parse_view`` checks a request body and raises ``BadQuery`` naming the field at fault; the
others run their SQL on the store (reads in ``snapshot``, writes in ``store.writing()``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .dialect import Dialect, dialect_of, snapshot
from .errors import BadQuery, NotFound
from .filters import checked_int, encodable, iso, printable, to_microseconds

# The pages of /ui/ a view may open.
PAGES = ("explore", "tail", "trace", "overview", "ask")
MAX_NAME_CHARS = 200
MAX_QUERY_CHARS = 4096
FIELDS = ("name", "page", "query")
# Views a server keeps at most, so the read scope cannot grow the database without bound.
MAX_VIEWS = 1000
# A query string as a browser's location.search holds it (without the "?"): printable ASCII,
# everything else percent-encoded, no space and no fragment.
_QUERY_CHARS = re.compile(r"[!\"$-~]*")
_MAX_ID = 2**63 - 1
_COLUMNS = "id, name, page, query, created_at"


@dataclass(frozen=True)
class View:
    name: str
    page: str
    query: str


def parse_view(body: object) -> View:
    """The view ``body`` (a decoded JSON object ``{"name", "page", "query"}``) describes:
    ``name`` 1 to MAX_NAME_CHARS characters once surrounding spaces are removed, ``page`` one
    of PAGES, ``query`` (default empty) the URL's query string, a leading ``?`` dropped, at
    most MAX_QUERY_CHARS characters."""
    if not isinstance(body, dict):
        raise BadQuery("body", "must be a JSON object with name, page and query")
    for key in body:
        if key not in FIELDS:
            raise BadQuery(printable(key), f"unknown field: give {', '.join(FIELDS)}")
    name = body.get("name")
    if not isinstance(name, str):
        raise BadQuery("name", "required, as text")
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        raise BadQuery("name", f"must be 1 to {MAX_NAME_CHARS} characters")
    if not name.isprintable() or not encodable(name):
        raise BadQuery("name", "may not hold control characters or unpaired surrogates")
    page = body.get("page")
    if page not in PAGES:
        raise BadQuery("page", f"must be one of {', '.join(PAGES)}")
    query = body.get("query", "")
    if not isinstance(query, str):
        raise BadQuery("query", "must be text")
    query = query.removeprefix("?")
    if len(query) > MAX_QUERY_CHARS:
        raise BadQuery("query", f"at most {MAX_QUERY_CHARS} characters")
    if not _QUERY_CHARS.fullmatch(query):
        raise BadQuery("query", "must be a URL query string: printable ASCII, percent-encoded")
    return View(name, page, query)


def list_views(store: Any) -> dict[str, list[dict[str, Any]]]:
    """``{"views": [{"id", "name", "page", "query", "created_at"}]}``, by name in code point
    order."""
    with snapshot(store) as (conn, d):
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM saved_views ORDER BY {d.text('name')}"
        ).fetchall()
        return {"views": [_view(d, row) for row in rows]}


def save_view(store: Any, view: View, now: float) -> dict[str, Any]:
    """Store ``view`` as created at ``now`` (Unix seconds), replacing the view of the same name
    (which keeps its id); return it as ``list_views`` lists it."""
    with store.writing() as conn:
        d = dialect_of(conn)
        p = d.p
        (count,) = conn.execute(
            f"SELECT count(*) FROM saved_views WHERE name <> {p}", [view.name]
        ).fetchone()
        if count >= MAX_VIEWS:
            raise BadQuery("name", f"at most {MAX_VIEWS} saved views: delete one first")
        rows = conn.execute(
            f"INSERT INTO saved_views (name, page, query, created_at) VALUES ({p}, {p}, {p}, {p}) "
            "ON CONFLICT (name) DO UPDATE SET page = excluded.page, query = excluded.query, "
            f"created_at = excluded.created_at RETURNING {_COLUMNS}",
            [view.name, view.page, view.query, d.time(to_microseconds(now))],
        ).fetchall()
        return _view(d, rows[0])


def delete_view(store: Any, view_id: int | str) -> None:
    """Delete the view ``view_id``; NotFound when there is none."""
    number = checked_int("id", view_id, 1, _MAX_ID)
    with store.writing() as conn:
        d = dialect_of(conn)
        deleted = conn.execute(f"DELETE FROM saved_views WHERE id = {d.p}", [number]).rowcount
    if deleted == 0:
        raise NotFound(f"no saved view {number}")


def _view(d: Dialect, row: tuple[Any, ...]) -> dict[str, Any]:
    view_id, name, page, query, created_at = row
    return {
        "id": view_id,
        "name": name,
        "page": page,
        "query": query,
        "created_at": iso(d.us(created_at)),
    }
