"""Flask integration (log_collector/integrations/flask.py), through Flask's test client and a real
threaded werkzeug server: request context on every record of a request, trace id in and out,
request logs, excluded paths, unhandled exceptions logged and still handled by Flask."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from flask import Flask
from helpers import INCOMING_TRACE_IDS, delivered
from werkzeug.serving import make_server

from log_collector import get_request_context
from log_collector.integrations.flask import LogCollector, init_app


@pytest.fixture
def client(make_client):
    return make_client(service="flask-test")


def make_app(log_client, **options):
    app = Flask(__name__)
    init_app(app, log_client, **options)

    @app.get("/orders/<int:order_id>")
    def order(order_id):
        log_client.info("loading order", order_id=order_id)
        return {"id": order_id}

    @app.get("/boom")
    def boom():
        raise RuntimeError("view failed")

    @app.get("/healthz")
    def healthz():
        return "ok"

    @app.errorhandler(500)
    def server_error(error):
        return "handled by the app", 500

    return app


def test_every_record_of_a_request_carries_its_context_and_the_new_trace_id(client, receiver):
    response = make_app(client).test_client().get("/orders/7")

    records = delivered(client, receiver)
    trace_id = response.headers["x-trace-id"]
    assert 32 == len(trace_id) and int(trace_id, 16) >= 0
    assert ["Request received", "loading order", "Request completed"] == [
        r["message"] for r in records
    ]
    assert [("/orders/7", "GET", "127.0.0.1", trace_id)] * 3 == [
        (r["path"], r["method"], r["ip"], r["trace_id"]) for r in records
    ]
    completed = records[-1]
    assert (200, "INFO") == (completed["status_code"], completed["level"])
    assert completed["duration_ms"] >= 0


@pytest.mark.parametrize(("headers", "expected"), INCOMING_TRACE_IDS)
def test_the_incoming_trace_id_is_on_every_record_and_in_the_response(
    client, receiver, headers, expected
):
    response = make_app(client).test_client().get("/orders/1", headers=headers)

    assert expected == response.headers["x-trace-id"]
    assert [expected] * 3 == [r["trace_id"] for r in delivered(client, receiver)]


def test_user_id_comes_from_x_user_id(client, receiver):
    make_app(client).test_client().get("/orders/1", headers={"X-User-Id": "u-42"})

    assert ["u-42"] * 3 == [r["user_id"] for r in delivered(client, receiver)]


def test_the_ip_comes_from_the_trusted_proxy_header_only_when_configured(client, receiver):
    forwarded = {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}
    make_app(client).test_client().get("/orders/1", headers=forwarded)
    trusting = make_app(client, trusted_proxy_header="x-forwarded-for")
    trusting.test_client().get("/orders/2", headers=forwarded)

    assert [("/orders/1", "127.0.0.1"), ("/orders/2", "203.0.113.7")] == [
        (r["path"], r["ip"]) for r in delivered(client, receiver) if r["message"] == "loading order"
    ]


def test_excluded_paths_and_switched_off_request_logs_log_nothing_of_their_own(client, receiver):
    quiet = make_app(client, exclude_paths={"/healthz"}, log_received=False, log_completed=False)
    health = quiet.test_client().get("/healthz")
    quiet.test_client().get("/orders/3")

    assert "x-trace-id" not in health.headers
    assert [("loading order", "/orders/3")] == [
        (r["message"], r["path"]) for r in delivered(client, receiver)
    ]


def test_an_exception_in_a_view_is_logged_with_its_trace_and_handled_by_flask(client, receiver):
    response = make_app(client).test_client().get("/boom")

    assert (500, b"handled by the app") == (response.status_code, response.data)
    records = delivered(client, receiver)
    assert ["Request received", "Unhandled exception", "Request completed"] == [
        r["message"] for r in records
    ]
    error, completed = records[1], records[2]
    assert ("ERROR", "RuntimeError", "boom") == (
        error["level"],
        error["error_type"],
        error["function_name"],
    )
    assert "RuntimeError: view failed" in error["stack_trace"]
    assert (500, "ERROR") == (completed["status_code"], completed["level"])
    assert {response.headers["x-trace-id"]} == {r["trace_id"] for r in records}


def test_an_exception_on_an_excluded_path_is_still_logged(client, receiver):
    assert 500 == make_app(client, exclude_paths={"/boom"}).test_client().get("/boom").status_code

    assert [("Unhandled exception", "RuntimeError", None)] == [
        (r["message"], r["error_type"], r.get("path")) for r in delivered(client, receiver)
    ]


def test_setting_up_one_app_twice_is_refused(client):
    app = make_app(client)

    with pytest.raises(RuntimeError, match="already set up"):
        init_app(app, client)


def test_with_propagated_exceptions_the_error_reaches_the_caller_and_is_logged(client, receiver):
    app = make_app(client)
    app.testing = True

    with pytest.raises(RuntimeError, match="view failed"):
        app.test_client().get("/boom")

    assert [("Unhandled exception", None), ("Request completed", 500)] == [
        (r["message"], r.get("status_code")) for r in delivered(client, receiver)[1:]
    ]
    assert get_request_context() is None


def test_the_request_context_is_restored_after_the_request(client):
    make_app(client).test_client().get("/orders/1")

    assert get_request_context() is None


def test_concurrent_requests_on_a_threaded_server_keep_their_own_context(client, receiver):
    n = 20
    together = threading.Barrier(n)
    app = Flask(__name__)
    init_app(app, client)

    @app.get("/work")
    def work():
        together.wait(timeout=30)  # every request is inside its view at once
        client.info("working")
        return "done"

    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    url = f"http://127.0.0.1:{server.server_port}/work"

    def call(i):
        headers = {"x-user-id": f"user-{i}", "x-trace-id": f"trace-{i}"}
        return requests.get(url, headers=headers, timeout=30).headers["x-trace-id"]

    try:
        with ThreadPoolExecutor(n) as pool:
            echoed = list(pool.map(call, range(n)))
    finally:
        server.shutdown()
        serving.join()

    assert [f"trace-{i}" for i in range(n)] == echoed
    working = [r for r in delivered(client, receiver) if r["message"] == "working"]
    assert sorted((f"user-{i}", f"trace-{i}") for i in range(n)) == sorted(
        (r["user_id"], r["trace_id"]) for r in working
    )


def test_the_extension_object_takes_its_client_now_or_at_init_app(client, receiver):
    app = Flask(__name__)
    LogCollector(client=client, log_received=False).init_app(app)
    app.add_url_rule("/", "index", lambda: "hi")

    response = app.test_client().get("/")

    assert [("Request completed", response.headers["x-trace-id"])] == [
        (r["message"], r["trace_id"]) for r in delivered(client, receiver)
    ]
    with pytest.raises(TypeError, match="needs a client"):
        LogCollector(Flask(__name__))
    with pytest.raises(TypeError, match="log_recieved"):
        LogCollector(client=client, log_recieved=False)
