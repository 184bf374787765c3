"""Alerts on each store (``db_url``) with an injected clock and rows seeded through the store:
each rule fires on synthetic data, is not repeated while open, resolves when its condition
clears; the webhook gets the opened and resolved alerts, retries a failing receiver and gives
up on one that keeps failing; alerts outlive a restart; GET /api/alerts on a real server;
the settings read from the environment."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import pytest
import requests
from server_helpers import closed_port, execute, row
from webhook_receiver import Receiver, running_receiver

from log_collector.server import create_app, open_store
from log_collector.server.alerts import (
    AlertChecker,
    AlertSettings,
    ErrorSpike,
    SilentService,
    SlowEndpoint,
    WebhookSender,
    list_alerts,
    storage,
)
from log_collector.server.alerts.rules import Finding
from log_collector.server.alerts.webhook import (
    DELIVERED,
    REJECTED,
    RETRY,
    _retry_after,
    classify,
)
from log_collector.server.store import StoreUnavailable

# Not on a minute's edge, so the windows have ends that no granule of log_counts covers.
NOW = 1_750_000_123.456
MINUTE = 60.0
READ_KEY = "read-1"
INGEST_KEY = "ingest-1"


class Clock:
    def __init__(self, now: float = NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def empty_db_url(db_url: str) -> str:
    """A migrated database of each kind without logs or alerts (the PostgreSQL one is shared
    by the session)."""
    execute(db_url, "DELETE FROM alerts")
    return db_url


@pytest.fixture
def store(empty_db_url: str) -> Iterator[Any]:
    store = open_store(empty_db_url)
    try:
        yield store
    finally:
        store.close()


def add(store: Any, at: float, count: int = 1, **fields: Any) -> None:
    """``count`` lines created at ``at`` (Unix seconds), INFO of service api unless given."""
    fields = {"service": "api", "level": "INFO", **fields}
    store.insert([row(created_at=at, **fields) for _ in range(count)])


def only(rule: str, **settings: Any) -> AlertSettings:
    """Settings with ``rule`` the one rule enabled, and ``settings`` on top."""
    rules = {
        "error_spike": ErrorSpike(enabled=rule == "error_spike"),
        "slow_endpoint": SlowEndpoint(enabled=rule == "slow_endpoint"),
        "silent_service": SilentService(enabled=rule == "silent_service"),
    }
    rules.update({k: v for k, v in settings.items() if k in rules})
    others = {k: v for k, v in settings.items() if k not in rules}
    return AlertSettings(enabled=True, **rules, **others)


def open_now(store: Any) -> list[dict[str, Any]]:
    return list_alerts(store, "open")["alerts"]


# error-rate spike


def test_a_rise_from_zero_errors_opens_an_error_spike_for_that_service_alone(store):
    """No error in the baseline: 6 errors in the last 5 minutes (min_errors 5) open an alert;
    another service's 2 errors stay under min_errors."""
    for minute in range(6, 35):
        add(store, NOW - minute * MINUTE, 3, service="payment-api")
    add(store, NOW - 10, 6, service="payment-api", level="ERROR", error_type="Timeout")
    add(store, NOW - 4 * MINUTE, 2, service="web", level="FATAL")
    result = AlertChecker(store, only("error_spike"), clock=Clock()).run_once()
    assert [("error_spike", "payment-api", "open", "critical")] == [
        (a["rule"], a["key"], a["status"], a["severity"]) for a in result.opened
    ]
    details = result.opened[0]["details"]
    assert (6, 6, 0.0, [0] * 6) == (
        details["errors"],
        details["lines"],
        details["baseline_mean"],
        details["baseline_errors"],
    )
    assert "from none" in result.opened[0]["summary"]
    assert result.opened == open_now(store)


def test_an_error_spike_needs_more_than_factor_times_the_baseline_mean(store):
    """Both services had 4 errors in each of the 6 windows before (mean 4, factor 3): 12 now is
    not a spike, 13 is."""
    for window in range(1, 7):
        at = NOW - window * 300 - 100
        add(store, at, 4, service="steady", level="ERROR")
        add(store, at, 4, service="spiking", level="ERROR")
    add(store, NOW - 100, 12, service="steady", level="ERROR")
    add(store, NOW - 100, 13, service="spiking", level="ERROR")
    result = AlertChecker(store, only("error_spike"), clock=Clock()).run_once()
    assert ["spiking"] == [a["key"] for a in result.opened]
    assert (13, 4.0) == (
        result.opened[0]["details"]["errors"],
        result.opened[0]["details"]["baseline_mean"],
    )


def test_an_open_alert_is_not_repeated_and_resolves_when_the_errors_stop(store):
    """A second check a minute later finds the spike again and refreshes the one open alert;
    ten minutes later the window holds no error and the alert is resolved at the clock's time."""
    add(store, NOW - 30, 8, service="payment-api", level="ERROR")
    clock = Clock()
    checker = AlertChecker(store, only("error_spike"), clock=clock)
    first = checker.run_once()
    assert 1 == len(first.opened)
    alert_id = first.opened[0]["id"]

    clock.advance(MINUTE)
    second = checker.run_once()
    assert ([], [], 1) == (second.opened, second.resolved, second.kept)
    [still_open] = open_now(store)
    assert (alert_id, first.opened[0]["opened_at"]) == (still_open["id"], still_open["opened_at"])
    assert first.opened[0]["updated_at"] < still_open["updated_at"]

    clock.advance(10 * MINUTE)
    third = checker.run_once()
    assert ([], [alert_id]) == (third.opened, [a["id"] for a in third.resolved])
    assert [] == open_now(store)
    [resolved] = list_alerts(store, "resolved")["alerts"]
    assert resolved["resolved_at"] == resolved["updated_at"]
    assert NOW + 11 * MINUTE == pytest.approx(_seconds(resolved["resolved_at"]))


def test_a_new_episode_after_a_resolved_one_opens_a_new_alert(store):
    clock = Clock()
    checker = AlertChecker(store, only("error_spike"), clock=clock)
    add(store, NOW - 30, 8, service="payment-api", level="ERROR")
    first = checker.run_once().opened[0]["id"]
    clock.advance(10 * MINUTE)
    assert [first] == [a["id"] for a in checker.run_once().resolved]
    add(store, clock.now - 30, 30, service="payment-api", level="ERROR")
    second = checker.run_once().opened[0]["id"]
    assert second != first
    assert [second, first] == [a["id"] for a in list_alerts(store)["alerts"]]


# slow endpoint


def test_a_slow_endpoint_opens_an_alert_with_its_p95_and_resolves_without_slow_requests(store):
    """POST /api/v1/payment: 20 requests of 1,500 to 2,450 ms in the window (p95 over the
    1,000 ms threshold); GET /health is fast; GET /report is slow but has 3 requests
    (min_count 10)."""
    for i in range(20):
        add(store, NOW - 100 - i, path="/api/v1/payment", method="POST", duration_ms=1500 + 50 * i)
        add(store, NOW - 100 - i, path="/health", method="GET", duration_ms=5)
    add(store, NOW - 60, 3, path="/report", method="GET", duration_ms=9000)
    clock = Clock()
    checker = AlertChecker(store, only("slow_endpoint"), clock=clock)
    result = checker.run_once()
    assert [("slow_endpoint", "POST /api/v1/payment", "warning")] == [
        (a["rule"], a["key"], a["severity"]) for a in result.opened
    ]
    details = result.opened[0]["details"]
    # percentile_cont(0.95) of 1500, 1550, ..., 2450: rank 18.05 -> 2400 + 0.05 * 50.
    assert (20, 2402.5, "/api/v1/payment", "POST") == (
        details["count"],
        pytest.approx(details["p95_ms"]),
        details["path"],
        details["method"],
    )
    clock.advance(MINUTE)
    assert (0, 1) == (len(checker.run_once().opened), len(open_now(store)))
    clock.advance(10 * MINUTE)
    assert ["POST /api/v1/payment"] == [a["key"] for a in checker.run_once().resolved]


# silent service


def test_a_service_that_logged_this_hour_but_not_for_15_minutes_is_silent(store):
    """batch last logged 30 minutes ago: silent. api logged a minute ago; old last logged two
    hours ago, outside the lookback: neither."""
    add(store, NOW - 30 * MINUTE, 5, service="batch")
    add(store, NOW - MINUTE, service="api")
    add(store, NOW - 120 * MINUTE, service="old")
    clock = Clock()
    checker = AlertChecker(store, only("silent_service"), clock=clock)
    result = checker.run_once()
    assert [("silent_service", "batch")] == [(a["rule"], a["key"]) for a in result.opened]
    assert 30 * 60 == result.opened[0]["details"]["silent_s"]

    add(store, clock.now - 1, service="batch")
    clock.advance(MINUTE)
    assert ["batch"] == [a["key"] for a in checker.run_once().resolved]


def test_a_silent_alert_stays_open_after_the_last_line_leaves_the_lookback(store):
    add(store, NOW - 30 * MINUTE, service="batch")
    clock = Clock()
    checker = AlertChecker(store, only("silent_service"), clock=clock)
    [opened] = checker.run_once().opened
    clock.advance(3 * 3600)
    result = checker.run_once()
    assert ([], [], 1) == (result.opened, result.resolved, result.kept)
    [still] = open_now(store)
    assert (opened["id"], 3 * 3600 + 30 * 60) == (still["id"], still["details"]["silent_s"])


# failures and storage


@dataclass(frozen=True)
class BrokenSpike(ErrorSpike):
    name: ClassVar[str] = "error_spike"
    broken: bool = False

    def evaluate(self, store: Any, now_us: int, open_keys: frozenset[str]) -> list[Finding]:
        if self.broken:
            raise RuntimeError("rule broke")
        return super().evaluate(store, now_us, open_keys)


def test_a_failing_rule_is_reported_and_leaves_its_open_alerts_open(store, caplog):
    add(store, NOW - 30, 8, service="payment-api", level="ERROR")
    add(store, NOW - 30 * MINUTE, service="batch")
    clock = Clock()
    AlertChecker(store, AlertSettings(error_spike=BrokenSpike()), clock=clock).run_once()
    assert {"batch", "payment-api"} == {a["key"] for a in open_now(store)}

    clock.advance(10 * MINUTE)
    broken = AlertSettings(error_spike=BrokenSpike(broken=True))
    result = AlertChecker(store, broken, clock=clock).run_once()
    assert {"error_spike": "RuntimeError: rule broke"} == result.failed
    assert ([], 1) == (result.resolved, result.kept)
    assert {"batch", "payment-api"} == {a["key"] for a in open_now(store)}
    assert "alert rule error_spike failed" in caplog.text


def test_a_second_insert_of_the_same_open_alert_is_skipped_and_returns_nothing(store):
    """Two checkers on one database that both read no open alert and both open it: the partial
    unique index keeps one, and only the first gets it back (and notifies)."""
    finding = Finding("error_spike", "payment-api", "critical", "s", {"errors": 8})
    changes = storage.Changes([finding], [], [])
    first, _ = storage.apply(store, changes, int(NOW * 1e6), 0)
    second, _ = storage.apply(store, changes, int(NOW * 1e6) + 1, 0)
    assert (1, []) == (len(first), second)
    assert 1 == len(open_now(store))


def test_resolved_alerts_older_than_the_retention_are_deleted(store):
    add(store, NOW - 30, 8, service="payment-api", level="ERROR")
    clock = Clock()
    checker = AlertChecker(store, only("error_spike", keep_resolved_s=3600.0), clock=clock)
    checker.run_once()
    clock.advance(10 * MINUTE)
    checker.run_once()
    assert 1 == len(list_alerts(store)["alerts"])
    clock.advance(3601)
    checker.run_once()
    assert [] == list_alerts(store)["alerts"]


def test_alerts_survive_a_restart_without_a_duplicate(empty_db_url):
    """A new store and checker on the same database see the open alert, refresh it and open no
    second one; a server started on it lists it."""
    first_store = open_store(empty_db_url)
    add(first_store, NOW - 30, 8, service="payment-api", level="ERROR")
    [opened] = AlertChecker(first_store, only("error_spike"), clock=Clock()).run_once().opened
    first_store.close()

    second_store = open_store(empty_db_url)
    try:
        result = AlertChecker(second_store, only("error_spike"), clock=Clock(NOW + 60)).run_once()
        assert ([], 1) == (result.opened, result.kept)
        assert [opened["id"]] == [a["id"] for a in open_now(second_store)]
    finally:
        second_store.close()


def test_the_store_unavailable_is_raised_by_run_once():
    def not_ready() -> None:
        raise StoreUnavailable("not migrated yet")

    checker = AlertChecker(object(), AlertSettings(), clock=Clock(), ready=not_ready)
    with pytest.raises(StoreUnavailable, match="not migrated yet"):
        checker.run_once()


# the thread


def test_the_checker_thread_checks_at_start_and_stops(store):
    add(store, NOW - 30, 8, service="payment-api", level="ERROR")
    settings = only("error_spike", interval_s=3600.0)
    checker = AlertChecker(store, settings, clock=Clock())
    checker.start()
    checker.start()  # idempotent
    try:
        _wait_until(lambda: len(open_now(store)) == 1)
    finally:
        checker.stop()
    assert checker._thread is None


def test_errors_in_the_checker_thread_are_logged_and_the_thread_goes_on(store, caplog):
    calls = []

    def not_ready() -> None:
        calls.append(1)
        raise StoreUnavailable("database down")

    settings = AlertSettings(interval_s=0.01)
    checker = AlertChecker(store, settings, clock=Clock(), ready=not_ready)
    with caplog.at_level(logging.WARNING, logger="log_collector.server"):
        checker.start()
        try:
            _wait_until(lambda: len(calls) >= 3)
        finally:
            checker.stop()
    assert "alert check skipped: database down" in caplog.text


class BrokenStore:
    """A store whose reads fail with an error no rule expects."""

    def reading(self) -> Any:
        raise RuntimeError("driver bug")


def test_an_unexpected_error_in_the_checker_thread_is_logged_with_its_traceback(caplog):
    checker = AlertChecker(BrokenStore(), AlertSettings(interval_s=0.01), clock=Clock())
    with caplog.at_level(logging.WARNING, logger="log_collector.server"):
        checker.start()
        try:
            _wait_until(lambda: caplog.text.count("alert check failed") >= 2)
        finally:
            checker.stop()
    assert "RuntimeError: driver bug" in caplog.text


# webhook


def _sender(url: str, **options: Any) -> WebhookSender:
    return WebhookSender(url, **{"backoff_s": 0.01, "max_backoff_s": 0.05, **options})


def test_the_webhook_gets_the_opened_and_the_resolved_alert_and_notified_at_is_set(store):
    add(store, NOW - 30, 8, service="payment-api", level="ERROR")
    clock = Clock()
    with running_receiver(Receiver()) as receiver:
        sender = _sender(receiver.url)
        checker = AlertChecker(store, only("error_spike"), clock=clock, webhook=sender)
        [opened] = checker.run_once().opened
        receiver.wait_for(received=1)
        clock.advance(10 * MINUTE)
        [resolved] = checker.run_once().resolved
        receiver.wait_for(received=2)
        checker.stop()
    assert [("opened", opened), ("resolved", resolved)] == [
        (body["event"], body["alert"]) for body in receiver.received
    ]
    _wait_until(lambda: list_alerts(store)["alerts"][0]["notified_at"] is not None)
    assert {"delivered": 2, "given_up": 0, "dropped": 0} == sender.counts


def test_a_receiver_failing_twice_still_gets_the_alert(store):
    add(store, NOW - 30, 8, service="payment-api", level="ERROR")
    with running_receiver(Receiver(fail_first=2)) as receiver:
        sender = _sender(receiver.url)
        [opened] = (
            AlertChecker(store, only("error_spike"), clock=Clock(), webhook=sender)
            .run_once()
            .opened
        )
        receiver.wait_for(received=1)
        sender.stop()
    assert (3, [opened]) == (receiver.attempts, [body["alert"] for body in receiver.received])
    assert 1 == sender.counts["delivered"]


def test_changes_the_webhook_did_not_deliver_are_sent_by_the_next_checker(store):
    """A process gives up on (or ends before) a delivery: the next checker that starts sends
    that change, and only that one, and then none again."""
    add(store, NOW - 30, 8, service="payment-api", level="ERROR")
    clock = Clock()
    with running_receiver(Receiver()) as receiver:
        sender = _sender(receiver.url)
        [opened] = (
            AlertChecker(store, only("error_spike"), clock=clock, webhook=sender).run_once().opened
        )
        receiver.wait_for(received=1)
        sender.stop()
    clock.advance(10 * MINUTE)
    dead = _sender(f"http://127.0.0.1:{closed_port()}/hook", attempts=1)
    [resolved] = (
        AlertChecker(store, only("error_spike"), clock=clock, webhook=dead).run_once().resolved
    )
    _wait_until(lambda: dead.counts["given_up"] == 1)
    dead.stop()
    add(store, NOW + 10 * MINUTE - 30, 8, service="checkout", level="ERROR")
    settings = only("error_spike", interval_s=3600.0)
    silent = _sender(f"http://127.0.0.1:{closed_port()}/hook", attempts=1)
    [second] = AlertChecker(store, settings, clock=clock, webhook=silent).run_once().opened
    _wait_until(lambda: silent.counts["given_up"] == 1)
    silent.stop()

    with running_receiver(Receiver()) as receiver:
        restarted = AlertChecker(store, settings, clock=clock, webhook=_sender(receiver.url))
        restarted.start()
        receiver.wait_for(received=2)
        restarted.stop()
        again = AlertChecker(store, settings, clock=clock, webhook=_sender(receiver.url))
        assert 0 == again.resend_unnotified()
        again.stop()

    assert [("resolved", resolved["id"]), ("opened", second["id"])] == [
        (body["event"], body["alert"]["id"]) for body in receiver.received
    ]
    assert opened["id"] == resolved["id"]
    assert all(a["notified_at"] is not None for a in list_alerts(store)["alerts"])


@pytest.mark.parametrize(("status", "attempts"), [(503, 3), (429, 3), (400, 1), (404, 1)])
def test_a_delivery_that_keeps_failing_is_given_up_and_logged(status, attempts, caplog):
    """A 5xx or 429 is sent again up to ``attempts`` times; a 4xx is final at once."""
    alert = {"id": 7, "rule": "error_spike", "key": "payment-api"}
    with running_receiver(Receiver(always=status)) as receiver:
        sender = _sender(receiver.url, attempts=3)
        assert sender.send("opened", alert)
        _wait_until(lambda: sender.counts["given_up"] == 1)
        sender.stop()
    assert attempts == receiver.attempts
    assert "gave up sending opened alert 7 (error_spike payment-api)" in caplog.text
    assert f"HTTP {status}" in caplog.text


def test_a_receiver_that_cannot_be_reached_is_retried_then_given_up(caplog):
    sender = _sender(f"http://127.0.0.1:{closed_port()}/hook", attempts=2)
    sender.send("resolved", {"id": 1, "rule": "silent_service", "key": "batch"})
    _wait_until(lambda: sender.counts["given_up"] == 1)
    sender.stop()
    assert "gave up sending resolved alert 1" in caplog.text


def test_a_full_queue_drops_the_new_delivery_and_the_checker_does_not_wait(store, caplog):
    """The receiver holds its answer: the sender's thread waits on the first delivery, the
    second waits in the queue (of one), the third is dropped; run_once returns meanwhile."""
    with running_receiver(Receiver()) as receiver:
        receiver.gate.clear()
        sender = _sender(receiver.url, queue_size=1)
        assert sender.send("opened", {"id": 1})
        receiver.wait_for(arrived=1)
        assert sender.send("opened", {"id": 2})
        assert not sender.send("opened", {"id": 3})
        add(store, NOW - 30, 8, service="payment-api", level="ERROR")
        checker = AlertChecker(store, only("error_spike"), clock=Clock(), webhook=sender)
        assert 1 == len(checker.run_once().opened)
        assert 2 == sender.counts["dropped"]
        receiver.gate.set()
        receiver.wait_for(received=2)
        sender.stop()
    assert [1, 2] == [body["alert"]["id"] for body in receiver.received]
    assert "dropped opened alert 3" in caplog.text


def test_a_failure_to_record_a_delivery_is_logged_and_the_next_delivery_goes(caplog):
    def broken(alert: dict[str, Any]) -> None:
        raise StoreUnavailable("database down")

    with running_receiver(Receiver()) as receiver:
        sender = _sender(receiver.url)
        sender.send("opened", {"id": 1}, on_delivered=broken)
        sender.send("opened", {"id": 2})
        _wait_until(lambda: sender.counts["delivered"] == 2)
        sender.stop()
    assert [1, 2] == [body["alert"]["id"] for body in receiver.received]
    assert "alert 1 delivered, but recording that failed" in caplog.text


def test_a_stopped_sender_drops_what_it_is_given(caplog):
    sender = _sender(f"http://127.0.0.1:{closed_port()}/hook")
    sender.stop()
    assert not sender.send("opened", {"id": 5, "rule": "error_spike", "key": "api"})
    assert 1 == sender.counts["dropped"]
    assert "the webhook sender is stopped" in caplog.text


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), (" 0.5 ", 0.5), ("-1", None), ("Wed, 21 Oct 2026 07:28:00 GMT", None),
     (None, None)],
)  # fmt: skip
def test_retry_after_is_read_in_seconds_and_anything_else_left_to_the_backoff(header, seconds):
    assert seconds == _retry_after(header)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, DELIVERED), (204, DELIVERED), (None, RETRY), (408, RETRY), (429, RETRY),
     (500, RETRY), (503, RETRY), (400, REJECTED), (401, REJECTED), (404, REJECTED)],
)  # fmt: skip
def test_each_answer_is_classified(status, outcome):
    assert outcome == classify(status)


# GET /api/alerts


@pytest.fixture
def alerts_url(store, empty_db_url, serve) -> str:
    """A real server with read and ingest keys and the alerts router, over three alerts: two
    resolved, one open (the newest)."""
    clock = Clock()
    checker = AlertChecker(store, only("error_spike"), clock=clock)
    for service in ("one", "two", "three"):
        add(store, clock.now - 30, 8, service=service, level="ERROR")
        checker.run_once()
        clock.advance(10 * MINUTE)
    return serve(create_app(empty_db_url, api_keys=INGEST_KEY, read_keys=READ_KEY))


def _get(url: str, key: str | None = READ_KEY, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(f"{url}/api/alerts", params=params, headers=headers, timeout=30)


def test_get_alerts_lists_newest_first_by_status_and_limit(alerts_url):
    every = _get(alerts_url).json()["alerts"]
    assert [("three", "open"), ("two", "resolved"), ("one", "resolved")] == [
        (a["key"], a["status"]) for a in every
    ]
    assert ["three"] == [a["key"] for a in _get(alerts_url, status="open").json()["alerts"]]
    resolved = _get(alerts_url, status="resolved", limit="1").json()["alerts"]
    assert ["two"] == [a["key"] for a in resolved]
    assert {
        "id", "rule", "key", "status", "severity", "summary", "details", "opened_at",
        "updated_at", "resolved_at", "notified_at",
    } == set(every[0])  # fmt: skip


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({"status": "closed"}, "status"), ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"),
     ({"service": "api"}, "service")],
)  # fmt: skip
def test_get_alerts_answers_400_naming_the_parameter(alerts_url, params, parameter):
    response = _get(alerts_url, **params)
    assert (400, parameter) == (response.status_code, response.json()["parameter"])


def test_get_alerts_needs_a_read_key(alerts_url):
    assert 401 == _get(alerts_url, key=None).status_code
    assert 401 == _get(alerts_url, key="nope").status_code
    assert 403 == _get(alerts_url, key=INGEST_KEY).status_code


def test_get_alerts_is_described_in_the_openapi_schema(alerts_url):
    schema = requests.get(f"{alerts_url}/openapi.json", timeout=30).json()
    operation = schema["paths"]["/api/alerts"]["get"]
    assert ["status", "limit"] == [p["name"] for p in operation["parameters"]]
    assert "Alerts" in schema["components"]["schemas"]


# settings


def test_settings_default_to_off_every_minute_without_a_webhook():
    settings = AlertSettings.from_env({})
    assert (False, 60.0, None) == (settings.enabled, settings.interval_s, settings.webhook_url)
    assert ("error_spike", "slow_endpoint", "silent_service") == tuple(
        rule.name for rule in settings.rules
    )


def test_settings_come_from_the_environment_and_then_the_arguments():
    env = {
        "LOG_COLLECTOR_ALERTS": "on",
        "LOG_COLLECTOR_ALERT_INTERVAL_S": "15",
        "LOG_COLLECTOR_ALERT_WEBHOOK": "https://hooks.example/alerts",
        "LOG_COLLECTOR_ALERT_RULES": '{"error_spike": {"window_s": 600, "min_errors": 10},'
        ' "silent_service": {"enabled": false}}',
    }
    settings = AlertSettings.from_env(env, interval_s=30.0)
    assert (True, 30.0, "https://hooks.example/alerts") == (
        settings.enabled,
        settings.interval_s,
        settings.webhook_url,
    )
    assert ErrorSpike(window_s=600, min_errors=10) == settings.error_spike
    assert ("error_spike", "slow_endpoint") == tuple(rule.name for rule in settings.rules)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LOG_COLLECTOR_ALERTS": "maybe"}, "LOG_COLLECTOR_ALERTS must be on or off"),
        ({"LOG_COLLECTOR_ALERT_INTERVAL_S": "soon"}, "LOG_COLLECTOR_ALERT_INTERVAL_S must be"),
        ({"LOG_COLLECTOR_ALERT_INTERVAL_S": "0"}, "LOG_COLLECTOR_ALERT_INTERVAL_S must be above"),
        ({"LOG_COLLECTOR_ALERT_WEBHOOK": "ftp://x/y"}, "must be an http:// or https:// URL"),
        ({"LOG_COLLECTOR_ALERT_RULES": "{"}, "LOG_COLLECTOR_ALERT_RULES is not JSON"),
        ({"LOG_COLLECTOR_ALERT_RULES": "[]"}, "must be a JSON object of rules"),
        ({"LOG_COLLECTOR_ALERT_RULES": '{"disk": {}}'}, "unknown rule 'disk'"),
        ({"LOG_COLLECTOR_ALERT_RULES": '{"error_spike": 3}'}, "error_spike must be an object"),
        (
            {"LOG_COLLECTOR_ALERT_RULES": '{"error_spike": {"windw_s": 3}}'},
            "error_spike.windw_s is not a setting",
        ),
        (
            {"LOG_COLLECTOR_ALERT_RULES": '{"slow_endpoint": {"threshold_ms": -1}}'},
            "slow_endpoint.threshold_ms must be a number above 0",
        ),
        (
            {"LOG_COLLECTOR_ALERT_RULES": '{"silent_service": {"severity": "loud"}}'},
            "silent_service.severity must be one of",
        ),
        (
            {"LOG_COLLECTOR_ALERT_RULES": '{"silent_service": {"lookback_s": 600}}'},
            "silent_service.lookback_s must be longer than silence_s",
        ),
    ],
)
def test_a_bad_setting_is_an_error_naming_it(env, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("?", r"\?")):
        AlertSettings.from_env(env)


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _wait_until(condition, timeout: float = 30.0) -> None:
    """Poll ``condition`` until true; AssertionError after ``timeout`` (a deadline for a
    background thread, not a measurement)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# the server's own checker (create_app(alerts=...))


def test_a_server_with_alerts_on_checks_at_start_and_lists_at_api_alerts(empty_db_url, serve):
    store = open_store(empty_db_url)
    add(store, time.time() - 30, 8, service="payment-api", level="ERROR")
    store.close()
    url = serve(create_app(empty_db_url, alerts=only("error_spike")))
    _wait_until(lambda: requests.get(f"{url}/api/alerts", timeout=30).json()["alerts"] != [])
    [alert] = requests.get(f"{url}/api/alerts?status=open", timeout=30).json()["alerts"]
    assert ("error_spike", "payment-api") == (alert["rule"], alert["key"])


def test_a_query_server_runs_no_checker(empty_db_url):
    """A query server may read a replica, where the checker could not write."""
    app = create_app(empty_db_url, role="query", alerts=True)
    assert app.state.alert_checker is None
