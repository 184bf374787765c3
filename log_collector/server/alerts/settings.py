"""The alert checker's one configuration object, ``AlertSettings``, validated once; the error
names the setting (or the environment variable) at fault.

From the environment (``AlertSettings.from_env``):

- ``LOG_COLLECTOR_ALERTS``: ``on``/``off`` (also ``true``/``false``, ``1``/``0``, ``yes``/``no``;
  default off);
- ``LOG_COLLECTOR_ALERT_INTERVAL_S``: seconds between checks (default 60);
- ``LOG_COLLECTOR_ALERT_WEBHOOK``: an ``http://`` or ``https://`` URL each opened and resolved
  alert is POSTed to as JSON;
- ``LOG_COLLECTOR_ALERT_RULES``: JSON overriding rule thresholds, e.g.
  ``{"error_spike": {"window_s": 600, "min_errors": 10}, "silent_service": {"enabled": false}}``
  (the fields of ``rules.ErrorSpike``, ``rules.SlowEndpoint`` and ``rules.SilentService``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .rules import RULES, ErrorSpike, SilentService, SlowEndpoint

ENABLED_ENV = "LOG_COLLECTOR_ALERTS"
INTERVAL_ENV = "LOG_COLLECTOR_ALERT_INTERVAL_S"
WEBHOOK_ENV = "LOG_COLLECTOR_ALERT_WEBHOOK"
RULES_ENV = "LOG_COLLECTOR_ALERT_RULES"

_TRUE = frozenset({"1", "true", "on", "yes"})
_FALSE = frozenset({"", "0", "false", "off", "no"})
_RULE_FIELDS: dict[str, type[Any]] = {rule.name: rule for rule in RULES}


@dataclass(frozen=True)
class AlertSettings:
    enabled: bool = False
    interval_s: float = 60.0
    webhook_url: str | None = None
    error_spike: ErrorSpike = field(default_factory=ErrorSpike)
    slow_endpoint: SlowEndpoint = field(default_factory=SlowEndpoint)
    silent_service: SilentService = field(default_factory=SilentService)
    # Attempts per webhook delivery before it is given up (logged), the wait before the second
    # (doubling after each failure, at most webhook_max_backoff_s), each request's timeout, and
    # the deliveries waiting at most (past that a new one is dropped, logged and counted).
    webhook_attempts: int = 6
    webhook_backoff_s: float = 2.0
    webhook_max_backoff_s: float = 300.0
    webhook_timeout_s: float = 10.0
    webhook_queue: int = 1000
    # Resolved alerts older than this are deleted by the checker, so the table stays small.
    keep_resolved_s: float = 30 * 86400.0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"alerts enabled must be true or false, got {self.enabled!r}")
        for name in (
            "interval_s",
            "webhook_backoff_s",
            "webhook_max_backoff_s",
            "webhook_timeout_s",
            "keep_resolved_s",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"alert setting {name} must be a number above 0, got {value!r}")
        for name in ("webhook_attempts", "webhook_queue"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not value > 0:
                raise ValueError(f"alert setting {name} must be a whole number above 0")
        if self.webhook_url is not None:
            parts = urlsplit(self.webhook_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(
                    f"alert webhook {self.webhook_url!r} must be an http:// or https:// URL"
                )

    @property
    def rules(self) -> tuple[ErrorSpike | SlowEndpoint | SilentService, ...]:
        """The rules the checker evaluates: those enabled."""
        every = (self.error_spike, self.slow_endpoint, self.silent_service)
        return tuple(rule for rule in every if rule.enabled)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> AlertSettings:
        """Settings from ``environ`` (default ``os.environ``), then ``overrides`` (the fields
        above, as create_app passes them) on top."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {"enabled": _switch(env.get(ENABLED_ENV, ""))}
        interval = env.get(INTERVAL_ENV, "").strip()
        if interval:
            try:
                values["interval_s"] = float(interval)
            except ValueError:
                raise ValueError(f"{INTERVAL_ENV} must be a number of seconds") from None
            if not values["interval_s"] > 0:
                raise ValueError(f"{INTERVAL_ENV} must be above 0, got {interval}")
        webhook = env.get(WEBHOOK_ENV, "").strip()
        if webhook:
            values["webhook_url"] = webhook
        rules = env.get(RULES_ENV, "").strip()
        if rules:
            values.update(parse_rules(rules))
        values.update(overrides)
        return cls(**values)


def _switch(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{ENABLED_ENV} must be on or off, got {text!r}")


def parse_rules(text: str) -> dict[str, Any]:
    """The rule settings ``LOG_COLLECTOR_ALERT_RULES`` holds: ``{rule: {field: value}}`` as
    ``{rule: rule object}``, each field not given left at its default."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{RULES_ENV} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{RULES_ENV} must be a JSON object of rules")
    chosen: dict[str, Any] = {}
    for name, fields in document.items():
        rule_class = _RULE_FIELDS.get(name)
        if rule_class is None:
            raise ValueError(
                f"{RULES_ENV}: unknown rule {name!r}: use {', '.join(sorted(_RULE_FIELDS))}"
            )
        if not isinstance(fields, dict):
            raise ValueError(f"{RULES_ENV}: {name} must be an object of settings")
        known = [f.name for f in dataclasses.fields(rule_class)]
        for key in fields:
            if key not in known:
                raise ValueError(
                    f"{RULES_ENV}: {name}.{key} is not a setting: use {', '.join(known)}"
                )
        try:
            chosen[name] = rule_class(**fields)
        except ValueError as exc:
            raise ValueError(f"{RULES_ENV}: {exc}") from None
    return chosen
