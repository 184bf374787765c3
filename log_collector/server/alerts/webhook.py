"""Delivery of alert changes to a webhook: a JSON POST ``{"event": "opened"|"resolved",
"alert": {...}}`` per change, sent by one daemon thread from a bounded queue, so neither the
checker nor ingest ever waits for the receiver.

Each delivery is tried up to ``attempts`` times: a network error, a timeout, 408, 429 and
every 5xx are retried after a wait that doubles from ``backoff_s`` (at most
``max_backoff_s``; a 429 or 503 with ``Retry-After`` in seconds waits that long, within the
same cap); any other answer is final (a 4xx will not change by sending the same body again).
Deliveries go out one at a time in the order queued, so a receiver sees an alert opened before
it sees it resolved. A delivery given up, or dropped because the queue is full, is logged on the
``log_collector.server`` logger and counted (``counts``).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("log_collector.server")

DELIVERED = "delivered"
RETRY = "retry"
REJECTED = "rejected"
# Answers worth sending again: the receiver is busy, overloaded or failing for now.
# https://www.rfc-editor.org/rfc/rfc9110#name-408-request-timeout
_RETRY_STATUSES = frozenset({408, 425, 429})

OnDelivered = Callable[[dict[str, Any]], None]


@dataclass
class _Delivery:
    event: str
    alert: dict[str, Any]
    on_delivered: OnDelivered | None


def classify(status: int | None) -> str:
    """DELIVERED for 2xx, RETRY for no answer (None), 408, 425, 429 and 5xx, REJECTED else."""
    if status is None or status in _RETRY_STATUSES or status >= 500:
        return RETRY
    if 200 <= status < 300:
        return DELIVERED
    return REJECTED


class WebhookSender:
    def __init__(
        self,
        url: str,
        *,
        attempts: int = 6,
        backoff_s: float = 2.0,
        max_backoff_s: float = 300.0,
        timeout_s: float = 10.0,
        queue_size: int = 1000,
    ):
        self.url = url
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._timeout_s = timeout_s
        self._queue: queue.Queue[_Delivery] = queue.Queue(maxsize=queue_size)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        self.counts = {"delivered": 0, "given_up": 0, "dropped": 0}

    def send(
        self, event: str, alert: dict[str, Any], on_delivered: OnDelivered | None = None
    ) -> bool:
        """Queue ``alert`` for delivery as ``event`` without waiting; False (logged, counted)
        when the queue is full or the sender is stopped. ``on_delivered(alert)`` runs on the
        sender's thread after the receiver accepted it."""
        if self._stopping.is_set():
            self._lost("dropped", event, alert, "the webhook sender is stopped")
            return False
        self._start()
        try:
            self._queue.put_nowait(_Delivery(event, alert, on_delivered))
        except queue.Full:
            self._lost("dropped", event, alert, f"{self._queue.maxsize} deliveries are waiting")
            return False
        return True

    def _start(self) -> None:
        # Started on first use; a forked child inherits the objects but no running thread, so
        # it starts its own (and drops the parent's queued deliveries, the parent sends those).
        with self._lock:
            if self._thread is not None and self._thread_pid == os.getpid():
                return
            if self._thread is not None:
                self._queue = queue.Queue(maxsize=self._queue.maxsize)
            self._thread = threading.Thread(
                target=self._run, name="log-collector-alert-webhook", daemon=True
            )
            self._thread_pid = os.getpid()
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the request in progress (bounded by ``timeout``); the deliveries still
        queued are logged as not delivered."""
        self._stopping.set()
        thread = self._thread if self._thread_pid == os.getpid() else None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("alert webhook: still sending after %.1f s; left running", timeout)
        left = self._queue.qsize()
        if left:
            logger.warning("alert webhook: %d deliveries to %s not sent at stop", left, self.url)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                delivery = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._deliver(delivery)
            except Exception:
                # Never raised out of the thread: the next delivery still goes.
                logger.exception("alert webhook: delivery failed unexpectedly")

    def _deliver(self, delivery: _Delivery) -> None:
        body = json.dumps({"event": delivery.event, "alert": delivery.alert}).encode()
        delay = self._backoff_s
        reason = ""
        for attempt in range(1, self._attempts + 1):
            status, retry_after, reason = self._post(body)
            outcome = classify(status)
            if outcome == DELIVERED:
                with self._lock:
                    self.counts["delivered"] += 1
                if delivery.on_delivered is not None:
                    try:
                        delivery.on_delivered(delivery.alert)
                    except Exception:
                        logger.exception(
                            "alert webhook: alert %s delivered, but recording that failed",
                            delivery.alert.get("id"),
                        )
                return
            if outcome == REJECTED or attempt == self._attempts:
                break
            wait = min(retry_after if retry_after is not None else delay, self._max_backoff_s)
            delay = min(delay * 2, self._max_backoff_s)
            if self._stopping.wait(wait):
                reason = f"{reason}; stopped before attempt {attempt + 1}"
                break
        self._lost("given_up", delivery.event, delivery.alert, reason)

    def _post(self, body: bytes) -> tuple[int | None, float | None, str]:
        """``(status or None, Retry-After seconds or None, what happened)`` of one POST."""
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "log-collector-alerts"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                response.read()
                return response.status, None, f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, _retry_after(exc.headers.get("Retry-After")), f"HTTP {exc.code}"
            finally:
                exc.close()
        except (OSError, ValueError) as exc:
            # URLError, a refused or reset connection, a timeout; ValueError: a URL urllib
            # cannot send to.
            return None, None, f"{type(exc).__name__}: {exc}"

    def _lost(self, counter: str, event: str, alert: dict[str, Any], reason: str) -> None:
        with self._lock:
            self.counts[counter] += 1
        logger.warning(
            "alert webhook: %s %s alert %s (%s %s) to %s: %s",
            "gave up sending" if counter == "given_up" else "dropped",
            event,
            alert.get("id"),
            alert.get("rule"),
            alert.get("key"),
            self.url,
            reason,
        )


def _retry_after(value: str | None) -> float | None:
    """A Retry-After in seconds; the HTTP-date form is not used by receivers we meet, and is
    left to the backoff."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
