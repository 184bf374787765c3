"""The dashboard at ``/ui/``: one HTML shell and its static files (``static/``).

The shell holds no data, so it needs no key: its ES modules (``static/js/``) ask ``/api/*``
for the logs with the read key the person enters, and the JavaScript router renders the page
named by the URL (``/ui/explore``, ``/ui/tail``, ``/ui/overview``, ``/ui/ask``,
``/ui/trace/<trace_id>``), whose query string holds the rest of its state. There is no build
step: the files here are served as they are.

Every answer under ``/ui`` carries a Content-Security-Policy that allows scripts, styles and
connections from this origin only, and no inline script or style attribute, so a log line
that reached the page as markup could still not run script
(https://www.w3.org/TR/CSP3/#directive-script-src).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from starlette.requests import Request

# One list of the pages for the router and for the saved views that open them.
from ..query.views import PAGES

STATIC_DIR = Path(__file__).resolve().parent / "static"

HOME = "/ui/explore"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

# Only these kinds of file are served, each with its type: a file of any other kind under
# static/ (a stray editor backup, say) is a 404 rather than a guess.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}

router = APIRouter(include_in_schema=False)


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**SECURITY_HEADERS, **(extra or {})}


def _not_found() -> Response:
    return Response("not found\n", status_code=404, media_type="text/plain", headers=_headers())


def _file(request: Request, path: Path) -> Response:
    """``path``'s bytes, revalidated on every use (``no-cache`` with an ETag): the files change
    with the package, and a stale module mixed with fresh ones would break the page."""
    body = path.read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = _headers({"Cache-Control": "no-cache", "ETag": etag})
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=CONTENT_TYPES[path.suffix], headers=headers)


@router.get("/ui")
@router.get("/ui/")
async def ui_home() -> Response:
    return RedirectResponse(HOME, status_code=307, headers=_headers())


@router.get("/ui/static/{name:path}")
async def ui_static(request: Request, name: str) -> Response:
    path = (STATIC_DIR / name).resolve()
    # resolve() folds any "..", so a path that left static/ no longer starts inside it.
    if not path.is_relative_to(STATIC_DIR) or not path.is_file():
        return _not_found()
    if path.suffix not in CONTENT_TYPES:
        return _not_found()
    return _file(request, path)


@router.get("/ui/trace/{trace_id:path}")
async def ui_trace(request: Request, trace_id: str) -> Response:
    return _file(request, STATIC_DIR / "index.html")


@router.get("/ui/{page}")
async def ui_page(request: Request, page: str) -> Response:
    # The pages the JavaScript router renders; any other /ui/<name> is a 404.
    if page not in PAGES:
        return _not_found()
    return _file(request, STATIC_DIR / "index.html")


__all__ = ["CONTENT_SECURITY_POLICY", "PAGES", "router"]
