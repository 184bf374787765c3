"""The alert checker: every ``interval_s`` it evaluates each enabled rule (``rules``), opens an
alert for a finding without one, refreshes the open alert of a finding that holds again (one
row per episode, however many checks see it), and resolves an open alert whose finding is gone.
Each opened and resolved alert goes to the webhook, if one is set; a checker that starts
queues again each change the webhook has not delivered (``notified_at``), so a change is
delivered at least once across restarts.

It reads on the store's read connections and writes one small transaction per run through
``store.writing()``; it runs on its own daemon thread, so ingest never waits for it. A rule
that fails (logged) changes nothing of its own alerts that run: its open alerts stay open
rather than being resolved by an error. Open alerts of a rule that is disabled are left as they
are. The clock is injected (``clock``, Unix seconds): every time the rules compare and the
alerts record is the clock's, never the database's.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..store import StoreUnavailable
from . import storage
from .rules import Finding
from .settings import AlertSettings
from .webhook import WebhookSender

logger = logging.getLogger("log_collector.server")

# Undelivered changes queued again when a checker starts, at most.
RESEND_AT_MOST = 100


@dataclass
class RunResult:
    """What one run did: the alerts it opened and resolved (as ``GET /api/alerts`` lists
    them), how many open ones it refreshed, and the rules that failed with their error."""

    opened: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    kept: int = 0
    failed: dict[str, str] = field(default_factory=dict)


class AlertChecker:
    def __init__(
        self,
        store: Any,
        settings: AlertSettings,
        clock: Callable[[], float] = time.time,
        webhook: WebhookSender | None = None,
        *,
        ready: Callable[[], None] | None = None,
    ):
        """``webhook``: where changes go (default: a ``WebhookSender`` for
        ``settings.webhook_url`` when it is set). ``ready``: called before each run, raises
        StoreUnavailable while the store cannot be used yet (the server passes its
        ``migrated.ensure``)."""
        self._store = store
        self._settings = settings
        self._clock = clock
        self._ready = ready
        if webhook is None and settings.webhook_url is not None:
            webhook = WebhookSender(
                settings.webhook_url,
                attempts=settings.webhook_attempts,
                backoff_s=settings.webhook_backoff_s,
                max_backoff_s=settings.webhook_max_backoff_s,
                timeout_s=settings.webhook_timeout_s,
                queue_size=settings.webhook_queue,
            )
        self.webhook = webhook
        # One run at a time: the thread's and any a caller starts (tests, a CLI).
        self._run_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_pid = 0

    def run_once(self) -> RunResult:
        """Evaluate every enabled rule now and write the changes. Raises StoreUnavailable when
        the store cannot be read or written; a failing rule is logged and reported in
        ``failed``."""
        with self._run_lock:
            if self._ready is not None:
                self._ready()
            now_us = round(self._clock() * 1_000_000)
            result = RunResult()
            by_rule: dict[str, dict[str, int]] = {}
            for alert in storage.open_alerts(self._store):
                by_rule.setdefault(alert.rule, {})[alert.key] = alert.id
            opened: list[Finding] = []
            kept: list[tuple[int, Finding]] = []
            resolved: list[int] = []
            for rule in self._settings.rules:
                open_now = by_rule.get(rule.name, {})
                try:
                    findings = rule.evaluate(self._store, now_us, frozenset(open_now))
                except StoreUnavailable:
                    raise
                except Exception as exc:
                    logger.exception(
                        "alert rule %s failed; its alerts are left as they are", rule.name
                    )
                    result.failed[rule.name] = f"{type(exc).__name__}: {exc}"
                    continue
                found = {finding.key: finding for finding in findings}
                for key, alert_id in open_now.items():
                    finding = found.pop(key, None)
                    if finding is None:
                        resolved.append(alert_id)
                    else:
                        kept.append((alert_id, finding))
                opened.extend(found.values())
            prune_before_us = now_us - round(self._settings.keep_resolved_s * 1_000_000)
            result.opened, result.resolved = storage.apply(
                self._store, storage.Changes(opened, kept, resolved), now_us, prune_before_us
            )
            result.kept = len(kept)
        for event, alerts in (("opened", result.opened), ("resolved", result.resolved)):
            for alert in alerts:
                logger.info("alert %s: %s", event, alert["summary"])
                if self.webhook is not None:
                    self.webhook.send(event, alert, self._mark_notified)
        return result

    def resend_unnotified(self) -> int:
        """Queue for the webhook each change it has not delivered (``storage.unnotified``):
        those a process ended before sending, or gave up on. Returns how many were queued.
        A change two server processes both find goes out twice: the webhook delivers at
        least once, and a receiver tells repeats apart by the alert's ``id`` and ``status``."""
        if self.webhook is None:
            return 0
        pending = storage.unnotified(self._store, RESEND_AT_MOST)
        for event, alert in pending:
            logger.info("alert %s again (not delivered before): %s", event, alert["summary"])
            self.webhook.send(event, alert, self._mark_notified)
        return len(pending)

    def _mark_notified(self, alert: dict[str, Any]) -> None:
        storage.mark_notified(self._store, alert["id"], round(self._clock() * 1_000_000))

    def start(self) -> None:
        """Run every ``interval_s`` on a daemon thread, the first run now. Idempotent; a forked
        child inherits no running thread, so ``start`` there starts its own."""
        if self._thread is not None and self._thread_pid == os.getpid():
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._loop, name="log-collector-alert-checker", daemon=True
        )
        self._thread_pid = os.getpid()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (waiting up to ``timeout`` for a run in progress), then the
        webhook's (up to ``timeout`` again)."""
        self._stopping.set()
        thread = self._thread if self._thread_pid == os.getpid() else None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("alert checker: a run is still going after %.1f s", timeout)
        self._thread = None
        if self.webhook is not None:
            self.webhook.stop(timeout)

    def _loop(self) -> None:
        interval = self._settings.interval_s
        due = time.monotonic()
        resent = False
        while not self._stopping.wait(max(0.0, due - time.monotonic())):
            try:
                if not resent:
                    # What an earlier process left undelivered, once the store is ready.
                    if self._ready is not None:
                        self._ready()
                    self.resend_unnotified()
                    resent = True
                self.run_once()
            except StoreUnavailable as exc:
                logger.warning("alert check skipped: %s", exc)
            except Exception:
                # Never raised out of the thread: the next run tries again.
                logger.exception("alert check failed")
            due += interval
            now = time.monotonic()
            if due < now:
                # A run longer than the interval: the missed runs are skipped, not bunched.
                due = now + interval
