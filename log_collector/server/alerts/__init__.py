"""Alerts that watch the logs: rules (``rules``) evaluated by a background checker
(``checker``) every interval, kept in the table ``alerts`` (``storage``,
migrations/*/0006_alerts.sql) so they outlive a restart, and sent to a webhook (``webhook``).
``GET /api/alerts`` (``routes.alerts``) lists them."""

from .checker import AlertChecker, RunResult
from .rules import ErrorSpike, Finding, SilentService, SlowEndpoint
from .settings import AlertSettings
from .storage import list_alerts
from .webhook import WebhookSender

__all__ = [
    "AlertChecker",
    "AlertSettings",
    "ErrorSpike",
    "Finding",
    "RunResult",
    "SilentService",
    "SlowEndpoint",
    "WebhookSender",
    "list_alerts",
]
