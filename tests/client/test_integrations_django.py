"""Django middleware (log_collector/integrations/django.py), sync and async, through Django's test
Client and AsyncClient: request context on every record, no bleed between threads or asyncio
tasks, trace id in and out, unhandled exceptions logged and still handled by Django (handler500),
4xx exceptions not logged as errors, configuration through settings.LOG_COLLECTOR."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import django
import pytest
from django.conf import settings
from helpers import INCOMING_TRACE_IDS, delivered

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="log-collector-tests",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        DATABASES={},
        MIDDLEWARE=[],
    )
    django.setup()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.http import Http404, HttpResponse, HttpResponseServerError, JsonResponse  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402

from log_collector import get_request_context  # noqa: E402

MIDDLEWARE = "log_collector.integrations.django.LogCollectorMiddleware"
N_CONCURRENT = 20

# What the views below use; each test sets it through the `configured` fixture.
SHARED_CLIENT = None


def log():
    return settings.LOG_COLLECTOR["client"]


def order(request, order_id):
    log().info("loading order", order_id=order_id)
    return JsonResponse({"id": order_id})


async def async_order(request, order_id):
    log().info("loading order", order_id=order_id)
    return JsonResponse({"id": order_id})


def boom(request):
    raise RuntimeError("view failed")


async def async_boom(request):
    raise RuntimeError("async view failed")


def missing(request):
    raise Http404("no such order")


def healthz(request):
    return HttpResponse("ok")


_threads_together = threading.Barrier(N_CONCURRENT)


def thread_work(request):
    _threads_together.wait(timeout=30)  # every request is inside its view at once
    log().info("working")
    return HttpResponse("done")


_tasks_together: list = []


async def task_work(request):
    await _tasks_together[0].wait()  # every request is inside its view at once
    log().info("working")
    return HttpResponse("done")


handled_by_django = []


def server_error(request):
    handled_by_django.append(request.path)
    return HttpResponseServerError("handled by the app")


handler500 = server_error
urlpatterns = [
    path("orders/<int:order_id>", order),
    path("async/orders/<int:order_id>", async_order),
    path("boom", boom),
    path("async/boom", async_boom),
    path("missing", missing),
    path("healthz", healthz),
    path("thread-work", thread_work),
    path("task-work", task_work),
]


@pytest.fixture
def client(make_client):
    return make_client(service="django-test")


@pytest.fixture
def configured(client):
    """configured(**options): settings.LOG_COLLECTOR for this test, with the middleware on."""
    overrides = []

    def configure(**options):
        override = override_settings(
            ROOT_URLCONF=__name__,
            MIDDLEWARE=[MIDDLEWARE],
            LOG_COLLECTOR={"client": client, **options},
        )
        override.enable()
        overrides.append(override)

    yield configure
    for override in reversed(overrides):
        override.disable()
    handled_by_django.clear()


@pytest.mark.parametrize("url", ["/orders/7", "/async/orders/7"], ids=["sync-view", "async-view"])
@pytest.mark.parametrize("http_client", [Client, AsyncClient], ids=["Client", "AsyncClient"])
def test_every_record_of_a_request_carries_its_context_and_the_new_trace_id(
    client, receiver, configured, url, http_client
):
    configured()
    http = http_client()
    response = http.get(url)
    if asyncio.iscoroutine(response):
        response = asyncio.run(response)

    records = delivered(client, receiver)
    trace_id = response.headers["x-trace-id"]
    assert 32 == len(trace_id) and int(trace_id, 16) >= 0
    assert ["Request received", "loading order", "Request completed"] == [
        r["message"] for r in records
    ]
    assert [(url, "GET", "127.0.0.1", trace_id)] * 3 == [
        (r["path"], r["method"], r["ip"], r["trace_id"]) for r in records
    ]
    assert (200, "INFO") == (records[-1]["status_code"], records[-1]["level"])
    assert get_request_context() is None


@pytest.mark.parametrize(("headers", "expected"), INCOMING_TRACE_IDS[:2])
def test_the_incoming_trace_id_is_on_every_record_and_in_the_response(
    client, receiver, configured, headers, expected
):
    configured()

    response = Client(headers={**headers, "x-user-id": "u-1"}).get("/orders/1")

    assert expected == response.headers["x-trace-id"]
    assert [(expected, "u-1")] * 3 == [
        (r["trace_id"], r["user_id"]) for r in delivered(client, receiver)
    ]


def test_the_ip_comes_from_the_trusted_proxy_header_when_configured(client, receiver, configured):
    configured(trusted_proxy_header="x-forwarded-for")

    Client(headers={"x-forwarded-for": "203.0.113.7, 10.0.0.1"}).get("/orders/1")

    assert {"203.0.113.7"} == {r["ip"] for r in delivered(client, receiver)}


def test_excluded_paths_and_switched_off_request_logs_log_nothing_of_their_own(
    client, receiver, configured
):
    configured(exclude_paths={"/healthz"}, log_received=False, log_completed=False)
    http = Client()

    health = http.get("/healthz")
    http.get("/orders/3")

    assert "x-trace-id" not in health.headers
    assert [("loading order", "/orders/3")] == [
        (r["message"], r["path"]) for r in delivered(client, receiver)
    ]


@pytest.mark.parametrize(
    ("url", "view", "message"),
    [("/boom", "boom", "view failed"), ("/async/boom", "async_boom", "async view failed")],
    ids=["sync-view", "async-view"],
)
@pytest.mark.parametrize("http_client", [Client, AsyncClient], ids=["Client", "AsyncClient"])
def test_an_exception_in_a_view_is_logged_with_its_trace_and_handled_by_django(
    client, receiver, configured, http_client, url, view, message
):
    configured()
    response = http_client(raise_request_exception=False).get(url)
    if asyncio.iscoroutine(response):
        response = asyncio.run(response)

    assert (500, b"handled by the app") == (response.status_code, response.content)
    assert [url] == handled_by_django
    records = delivered(client, receiver)
    assert ["Request received", "Unhandled exception", "Request completed"] == [
        r["message"] for r in records
    ]
    error, completed = records[1], records[2]
    assert ("ERROR", "RuntimeError", view) == (
        error["level"],
        error["error_type"],
        error["function_name"],
    )
    assert f"RuntimeError: {message}" in error["stack_trace"]
    assert (500, "ERROR") == (completed["status_code"], completed["level"])
    assert {response.headers["x-trace-id"]} == {r["trace_id"] for r in records}


def test_an_exception_on_an_excluded_path_is_still_logged(client, receiver, configured):
    configured(exclude_paths={"/boom"})

    assert 500 == Client(raise_request_exception=False).get("/boom").status_code

    assert [("Unhandled exception", "RuntimeError", None)] == [
        (r["message"], r["error_type"], r.get("path")) for r in delivered(client, receiver)
    ]


def test_the_exception_still_reaches_the_test_client_by_default(client, receiver, configured):
    configured(log_received=False)

    with pytest.raises(RuntimeError, match="view failed"):
        Client().get("/boom")

    assert ["Unhandled exception", "Request completed"] == [
        r["message"] for r in delivered(client, receiver)
    ]


def test_exceptions_django_answers_with_4xx_are_not_logged_as_errors(client, receiver, configured):
    configured(log_received=False)

    assert 404 == Client().get("/missing").status_code

    assert [("Request completed", "INFO", 404)] == [
        (r["message"], r["level"], r["status_code"]) for r in delivered(client, receiver)
    ]


def test_concurrent_requests_in_threads_keep_their_own_context(client, receiver, configured):
    configured()

    def call(i):
        headers = {"x-user-id": f"user-{i}", "x-trace-id": f"trace-{i}"}
        return Client(headers=headers).get("/thread-work").headers["x-trace-id"]

    with ThreadPoolExecutor(N_CONCURRENT) as pool:
        echoed = list(pool.map(call, range(N_CONCURRENT)))

    assert [f"trace-{i}" for i in range(N_CONCURRENT)] == echoed
    working = [r for r in delivered(client, receiver) if r["message"] == "working"]
    assert sorted((f"user-{i}", f"trace-{i}") for i in range(N_CONCURRENT)) == sorted(
        (r["user_id"], r["trace_id"]) for r in working
    )


def test_concurrent_async_requests_keep_their_own_context(client, receiver, configured):
    configured()

    async def call(i):
        headers = {"x-user-id": f"user-{i}", "x-trace-id": f"trace-{i}"}
        # Per request: AsyncClient(headers=...) does not reach the ASGI scope (Django 5.2).
        response = await AsyncClient().get("/task-work", headers=headers)
        return response.headers["x-trace-id"]

    async def main():
        _tasks_together[:] = [asyncio.Barrier(N_CONCURRENT)]
        return await asyncio.wait_for(
            asyncio.gather(*(call(i) for i in range(N_CONCURRENT))), timeout=30
        )

    echoed = asyncio.run(main())

    assert [f"trace-{i}" for i in range(N_CONCURRENT)] == echoed
    working = [r for r in delivered(client, receiver) if r["message"] == "working"]
    assert sorted((f"user-{i}", f"trace-{i}") for i in range(N_CONCURRENT)) == sorted(
        (r["user_id"], r["trace_id"]) for r in working
    )


def test_the_client_may_be_given_as_a_dotted_path(client, receiver, configured, monkeypatch):
    monkeypatch.setitem(globals(), "SHARED_CLIENT", client)
    configured()
    with override_settings(
        LOG_COLLECTOR={"client": f"{__name__}.SHARED_CLIENT", "log_received": False}
    ):
        # The views log through settings.LOG_COLLECTOR["client"], the string here.
        response = Client().get("/healthz")

    assert [("Request completed", response.headers["x-trace-id"])] == [
        (r["message"], r["trace_id"]) for r in delivered(client, receiver)
    ]


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        (None, "must name an AsyncLogClient"),
        ({"client": "nowhere.client"}, "cannot import 'nowhere.client'"),
        ({"client": "client-placeholder", "exclude_path": ["/healthz"]}, "exclude_path"),
    ],
    ids=["missing", "bad-path", "unknown-option"],
)
def test_a_bad_configuration_says_what_is_wrong(client, config, complaint):
    if config and config["client"] == "client-placeholder":
        config = {**config, "client": client}
    with (
        override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=[MIDDLEWARE], LOG_COLLECTOR=config),
        pytest.raises(ImproperlyConfigured, match=complaint),
    ):
        Client().get("/healthz")
