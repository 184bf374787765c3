"""ASGI middleware (log_collector/integrations/asgi.py) on Starlette and FastAPI, through
starlette's TestClient and httpx.AsyncClient with ASGITransport: request context on every record,
no bleed between concurrent asyncio tasks, trace id in and out, unhandled exceptions logged and
still handled by the framework, lifespan and websocket passed through."""

import asyncio
import contextlib

import httpx
import pytest
from fastapi import FastAPI
from helpers import INCOMING_TRACE_IDS, delivered
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient

from log_collector import get_request_context
from log_collector.integrations.asgi import LogCollectorMiddleware


@pytest.fixture
def client(make_client):
    return make_client(service="asgi-test")


def make_app(log_client, *, handled=None, add_middleware=True, **options):
    """A Starlette app with the middleware added the usual way (inside ServerErrorMiddleware)."""

    async def order(request):
        log_client.info("loading order", order_id=int(request.path_params["order_id"]))
        return JSONResponse({"id": request.path_params["order_id"]})

    def sync_view(request):  # Starlette runs it in a worker thread
        log_client.info("in a worker thread")
        return PlainTextResponse("ok")

    async def boom(request):
        raise RuntimeError("view failed")

    async def healthz(request):
        return PlainTextResponse("ok")

    async def on_error(request, exc):
        if handled is not None:
            handled.append(exc)
        return PlainTextResponse("handled by the app", status_code=500)

    return Starlette(
        routes=[
            Route("/orders/{order_id}", order),
            Route("/sync", sync_view),
            Route("/boom", boom),
            Route("/healthz", healthz),
        ],
        exception_handlers={Exception: on_error},
        middleware=(
            [Middleware(LogCollectorMiddleware, client=log_client, **options)]
            if add_middleware
            else []
        ),
    )


def test_every_record_of_a_request_carries_its_context_and_the_new_trace_id(client, receiver):
    response = TestClient(make_app(client)).get("/orders/7")

    records = delivered(client, receiver)
    trace_id = response.headers["x-trace-id"]
    assert 32 == len(trace_id) and int(trace_id, 16) >= 0
    assert ["Request received", "loading order", "Request completed"] == [
        r["message"] for r in records
    ]
    assert [("/orders/7", "GET", "testclient", trace_id)] * 3 == [
        (r["path"], r["method"], r["ip"], r["trace_id"]) for r in records
    ]
    assert (200, "INFO") == (records[-1]["status_code"], records[-1]["level"])
    assert records[-1]["duration_ms"] >= 0


def test_a_sync_view_in_a_worker_thread_sees_the_request_context(client, receiver):
    response = TestClient(make_app(client)).get("/sync", headers={"x-user-id": "u-9"})

    [record] = [r for r in delivered(client, receiver) if r["message"] == "in a worker thread"]
    assert (response.headers["x-trace-id"], "u-9") == (record["trace_id"], record["user_id"])


@pytest.mark.parametrize(("headers", "expected"), INCOMING_TRACE_IDS)
def test_the_incoming_trace_id_is_on_every_record_and_in_the_response(
    client, receiver, headers, expected
):
    response = TestClient(make_app(client)).get("/orders/1", headers=headers)

    assert expected == response.headers["x-trace-id"]
    assert [expected] * 3 == [r["trace_id"] for r in delivered(client, receiver)]


def test_the_ip_comes_from_the_trusted_proxy_header_when_configured(client, receiver):
    app = make_app(client, trusted_proxy_header="X-Forwarded-For")

    TestClient(app).get("/orders/1", headers={"x-forwarded-for": "203.0.113.7, 10.0.0.1"})

    assert {"203.0.113.7"} == {r["ip"] for r in delivered(client, receiver)}


def test_excluded_paths_and_switched_off_request_logs_log_nothing_of_their_own(client, receiver):
    http = TestClient(
        make_app(client, exclude_paths={"/healthz"}, log_received=False, log_completed=False)
    )

    health = http.get("/healthz")
    http.get("/orders/3")

    assert "x-trace-id" not in health.headers
    assert [("loading order", "/orders/3")] == [
        (r["message"], r["path"]) for r in delivered(client, receiver)
    ]


def test_an_exception_on_an_excluded_path_is_still_logged(client, receiver):
    http = TestClient(make_app(client, exclude_paths={"/boom"}), raise_server_exceptions=False)

    assert 500 == http.get("/boom").status_code

    assert [("Unhandled exception", "RuntimeError", None)] == [
        (r["message"], r["error_type"], r.get("path")) for r in delivered(client, receiver)
    ]


def test_an_exception_in_a_view_is_logged_with_its_trace_and_reaches_the_exception_handler(
    client, receiver
):
    handled = []
    http = TestClient(make_app(client, handled=handled), raise_server_exceptions=False)

    response = http.get("/boom", headers={"x-trace-id": "t-boom"})

    assert (500, "handled by the app") == (response.status_code, response.text)
    assert ["view failed"] == [str(exc) for exc in handled]
    records = delivered(client, receiver)
    assert ["Request received", "Unhandled exception", "Request completed"] == [
        r["message"] for r in records
    ]
    error, completed = records[1], records[2]
    assert ("ERROR", "RuntimeError", "boom", "t-boom") == (
        error["level"],
        error["error_type"],
        error["function_name"],
        error["trace_id"],
    )
    assert "RuntimeError: view failed" in error["stack_trace"]
    assert (500, "ERROR") == (completed["status_code"], completed["level"])


def test_wrapping_the_whole_app_puts_the_trace_id_on_the_error_response_too(client, receiver):
    handled = []
    wrapped = LogCollectorMiddleware(
        make_app(client, handled=handled, add_middleware=False), client
    )

    response = TestClient(wrapped, raise_server_exceptions=False).get("/boom")

    assert (500, 1) == (response.status_code, len(handled))
    records = delivered(client, receiver)
    assert [("Request received", None), ("Unhandled exception", None)] == [
        (r["message"], r.get("status_code")) for r in records[:2]
    ]
    assert ("Request completed", 500) == (records[2]["message"], records[2]["status_code"])
    assert {response.headers["x-trace-id"]} == {r["trace_id"] for r in records}


def test_fastapi_exception_handler_still_runs_and_http_errors_are_not_logged_as_errors(
    client, receiver
):
    app = FastAPI()
    app.add_middleware(LogCollectorMiddleware, client=client, log_received=False)
    handled = []

    @app.exception_handler(Exception)
    async def on_error(request, exc):
        handled.append(exc)
        return PlainTextResponse("handled", status_code=500)

    @app.get("/boom")
    async def boom():
        raise KeyError("missing")

    http = TestClient(app, raise_server_exceptions=False)
    assert 500 == http.get("/boom").status_code
    assert 404 == http.get("/nowhere").status_code

    assert 1 == len(handled)
    assert [
        ("Unhandled exception", "ERROR", None),
        ("Request completed", "ERROR", 500),
        ("Request completed", "INFO", 404),
    ] == [(r["message"], r["level"], r.get("status_code")) for r in delivered(client, receiver)]


def test_twenty_concurrent_async_requests_keep_their_own_context(client, receiver):
    n = 20
    together = asyncio.Barrier(n)

    async def work(request):
        await together.wait()  # every request is inside its view at once
        client.info("working")
        return PlainTextResponse("done")

    app = Starlette(
        routes=[Route("/work", work)],
        middleware=[Middleware(LogCollectorMiddleware, client=client)],
    )

    async def call(http, i):
        headers = {"x-user-id": f"user-{i}", "x-trace-id": f"trace-{i}"}
        response = await http.get("/work", headers=headers)
        return response.headers["x-trace-id"], get_request_context()

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            return await asyncio.wait_for(
                asyncio.gather(*(call(http, i) for i in range(n))), timeout=30
            )

    answers = asyncio.run(main())

    assert [(f"trace-{i}", None) for i in range(n)] == answers
    working = [r for r in delivered(client, receiver) if r["message"] == "working"]
    assert sorted((f"user-{i}", f"trace-{i}") for i in range(n)) == sorted(
        (r["user_id"], r["trace_id"]) for r in working
    )


def test_lifespan_and_websocket_pass_through_unlogged(client, receiver):
    started = []

    async def echo(websocket):
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        started.append(True)
        yield

    app = Starlette(
        routes=[WebSocketRoute("/ws", echo)],
        lifespan=lifespan,
        middleware=[Middleware(LogCollectorMiddleware, client=client)],
    )

    with TestClient(app) as http, http.websocket_connect("/ws") as ws:
        ws.send_text("hello")
        assert "hello" == ws.receive_text()
    client.info("marker")

    assert [True] == started
    assert ["marker"] == [r["message"] for r in delivered(client, receiver)]


def test_unknown_options_are_refused_with_their_name(client):
    with pytest.raises(TypeError, match="exclude_path"):
        LogCollectorMiddleware(make_app(client), client, exclude_path={"/healthz"})
