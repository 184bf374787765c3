"""One frozen settings object: explicit argument > environment > ``.env`` > default.

Everything is validated once, at construction, and an invalid value raises
:class:`ConfigError` naming the setting. Nothing here writes to ``os.environ``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..common.vocabulary import ENVIRONMENT_ALIASES, ENVIRONMENTS, LOG_TYPES, TEXT_LIMITS, canonical
from .record import DEFAULT_REDACT_KEYS, LEVELS, normalise_level

logger = logging.getLogger("log_collector")

DEFAULTS: Mapping[str, Any] = {
    "server_url": "http://localhost:8000",
    "environment": "development",
    "service_version": "v0.0.0-dev",
    "log_type": "BACKEND",
}

# setting -> environment variables, first one set wins.
ENV_VARS: Mapping[str, tuple[str, ...]] = {
    "server_url": ("LOG_SERVER_URL",),
    "service": ("SERVICE_NAME",),
    "environment": ("ENVIRONMENT", "NODE_ENV"),
    "service_version": ("SERVICE_VERSION",),
    "log_type": ("LOG_TYPE",),
    "enable_global_error_handler": ("ENABLE_GLOBAL_ERROR_HANDLER",),
    "spool_dir": ("LOG_COLLECTOR_SPOOL_DIR",),
    "api_key": ("LOG_COLLECTOR_API_KEY",),
}

DURABILITY = ("normal", "full")
SPOOL_FULL_POLICIES = ("drop_oldest", "drop_newest")
MiB = 1024 * 1024
KiB = 1024

# Floors under which a setting only loses records or spins. A spool smaller
# than MIN_SPOOL_BYTES cannot hold a record with a stack trace, so the cap
# would drop nearly every record (the chaos harness, scripts/chaos.py, runs a
# 128 KiB spool to make the cap bite within seconds). Records age out only
# while the server is unreachable; under MIN_RECORD_AGE an ordinary server
# restart would expire them.
MIN_SPOOL_BYTES = 64 * KiB
MIN_FLUSH_INTERVAL = 0.01  # seconds; below it the sender wakes in a busy loop
MIN_REQUEST_TIMEOUT = 0.1  # seconds; below it a loopback request can time out
MIN_BACKOFF = 0.05  # seconds; max_backoff below it hammers a server that is down
MIN_RECORD_AGE = 60.0  # seconds


class ConfigError(ValueError):
    """An invalid setting; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    server_url: str
    service: str | None
    environment: str | None
    service_version: str | None
    log_type: str | None
    batch_size: int
    flush_interval: float
    enable_compression: bool
    enable_global_error_handler: bool
    spool_dir: Path
    durability: str
    max_spool_bytes: int
    spool_full_policy: str
    max_record_age: float | None
    timeout: float
    api_key: str | None
    redact_keys: frozenset[str]
    min_level: str
    gzip_min_records: int
    gzip_min_bytes: int
    max_backoff: float
    close_timeout: float
    fallback_capacity: int

    @property
    def logs_url(self) -> str:
        return self.server_url + "/logs"


def read_dotenv(path: Path) -> dict[str, str]:
    """The ``.env`` file's values, parsed by python-dotenv, never exported."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values  # imported here: only clients that find a .env pay for it

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def default_spool_dir(service: str | None, env: Mapping[str, str]) -> Path:
    cache = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "log-collector" / _safe_name(service or "default")


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "default"


def load_settings(
    explicit: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
) -> Settings:
    """Resolve every setting from its sources and validate it.

    ``explicit`` holds the constructor's arguments; ``None`` means "not given".
    """
    env = os.environ if environ is None else environ
    dotenv = read_dotenv(dotenv_path if dotenv_path is not None else Path.cwd() / ".env")

    def pick_from(name: str) -> tuple[Any, str | None]:
        """The value and where it came from (None: argument or default)."""
        if explicit.get(name) is not None:
            return explicit[name], None
        for source, where in ((env, ""), (dotenv, " in .env")):
            for var in ENV_VARS.get(name, ()):
                if source.get(var):
                    return source[var], var + where
        return DEFAULTS.get(name), None

    def pick(name: str) -> Any:
        return pick_from(name)[0]

    service = _text("service", *pick_from("service"))
    spool_dir = pick("spool_dir")
    settings = Settings(
        server_url=_url(*pick_from("server_url")),
        service=service,
        environment=_environment(explicit.get("environment"), env, dotenv),
        service_version=_text("service_version", *pick_from("service_version")),
        log_type=_log_type(*pick_from("log_type")),
        batch_size=_positive_int("batch_size", explicit.get("batch_size", 1000), maximum=10_000),
        flush_interval=_positive_float(
            "flush_interval", explicit.get("flush_interval", 1.0), minimum=MIN_FLUSH_INTERVAL
        ),
        enable_compression=_bool("enable_compression", explicit.get("enable_compression", True)),
        enable_global_error_handler=_bool(
            "enable_global_error_handler", pick("enable_global_error_handler") or False
        ),
        spool_dir=Path(spool_dir).expanduser() if spool_dir else default_spool_dir(service, env),
        durability=_choice("durability", explicit.get("durability", "normal"), DURABILITY),
        max_spool_bytes=_positive_int(
            "max_spool_bytes",
            explicit.get("max_spool_bytes", 256 * MiB),
            minimum=MIN_SPOOL_BYTES,
            unit=f" bytes ({MIN_SPOOL_BYTES // KiB} KiB, MIN_SPOOL_BYTES)",
        ),
        spool_full_policy=_choice(
            "spool_full_policy",
            explicit.get("spool_full_policy", "drop_oldest"),
            SPOOL_FULL_POLICIES,
        ),
        max_record_age=_optional_positive_float(
            "max_record_age", explicit.get("max_record_age"), minimum=MIN_RECORD_AGE
        ),
        timeout=_positive_float(
            "timeout", explicit.get("timeout", 5.0), minimum=MIN_REQUEST_TIMEOUT
        ),
        api_key=_optional_str("api_key", pick("api_key")),
        redact_keys=_redact_keys(explicit.get("redact_keys", DEFAULT_REDACT_KEYS)),
        min_level=_level("min_level", explicit.get("min_level", "TRACE")),
        gzip_min_records=_positive_int("gzip_min_records", explicit.get("gzip_min_records", 100)),
        gzip_min_bytes=_positive_int("gzip_min_bytes", explicit.get("gzip_min_bytes", 16 * 1024)),
        max_backoff=_positive_float(
            "max_backoff", explicit.get("max_backoff", 30.0), minimum=MIN_BACKOFF
        ),
        close_timeout=_non_negative_float("close_timeout", explicit.get("close_timeout", 5.0)),
        fallback_capacity=_positive_int(
            "fallback_capacity", explicit.get("fallback_capacity", 10_000)
        ),
    )
    return settings


def _fail(name: str, value: Any, why: str, origin: str | None = None) -> ConfigError:
    source = f" (from {origin})" if origin else ""
    return ConfigError(f"log-collector: invalid setting {name}={value!r}{source}: {why}")


def _url(value: Any, origin: str | None = None) -> str:
    if not isinstance(value, str):
        raise _fail("server_url", value, "must be a string such as 'http://localhost:8000'")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail("server_url", value, "must be an http:// or https:// URL with a host", origin)
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise _fail("server_url", value, str(exc), origin) from None
    return value.strip().rstrip("/")


def _optional_str(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(name, value, "must be a string")
    return value


def _text(name: str, value: Any, origin: str | None = None) -> str | None:
    """A common text field (service, service_version): the store's column holds at most
    ``TEXT_LIMITS[name]`` characters, and a blank one would name nothing."""
    if value is None:
        return None
    limit = TEXT_LIMITS[name]
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, value, "must be a non-empty string", origin)
    if limit is not None and len(value) > limit:
        raise _fail(name, value, f"must be at most {limit} characters, not {len(value)}", origin)
    return value


def _allowed(values: tuple[str, ...], aliases: dict[str, str]) -> str:
    allowed = "must be one of " + ", ".join(repr(v) for v in values)
    if aliases:
        allowed += " (or an alias: " + ", ".join(f"{a}={v}" for a, v in aliases.items()) + ")"
    return allowed


def _log_type(value: Any, origin: str | None = None) -> str:
    found = canonical(value, LOG_TYPES, {}) if isinstance(value, str) else None
    if found is None:
        raise _fail("log_type", value, _allowed(LOG_TYPES, {}), origin)
    return found


def _environment(explicit: Any, env: Mapping[str, str], dotenv: Mapping[str, str]) -> str:
    """The argument, else ENVIRONMENT, else NODE_ENV (environment before .env), else the
    default; aliases (``prod``, ``dev``) become the stored name.

    An unknown argument or ENVIRONMENT raises: the server would refuse every record.
    An unknown NODE_ENV does not: it is the JavaScript ecosystem's variable, set by tools
    that know nothing of us to values such as ``ci`` or ``preview``, so it is passed
    over with one warning and the next source decides.
    """
    if explicit is not None:
        return _environment_value(explicit, None)
    for source, where in ((env, ""), (dotenv, " in .env")):
        if source.get("ENVIRONMENT"):
            return _environment_value(source["ENVIRONMENT"], "ENVIRONMENT" + where)
        node_env = source.get("NODE_ENV")
        if node_env:
            found = canonical(node_env, ENVIRONMENTS, ENVIRONMENT_ALIASES)
            if found is not None:
                return found
            logger.warning(
                "log-collector: NODE_ENV=%r%s is not an environment the server stores (%s); "
                "it is ignored, set ENVIRONMENT to choose one",
                node_env,
                where,
                ", ".join(ENVIRONMENTS),
            )
    return str(DEFAULTS["environment"])


def _environment_value(value: Any, origin: str | None) -> str:
    found = canonical(value, ENVIRONMENTS, ENVIRONMENT_ALIASES) if isinstance(value, str) else None
    if found is None:
        raise _fail("environment", value, _allowed(ENVIRONMENTS, ENVIRONMENT_ALIASES), origin)
    return found


def _positive_int(
    name: str, value: Any, *, minimum: int = 1, maximum: int | None = None, unit: str = ""
) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(name, value, "must be a positive integer")
    if value < minimum:
        raise _fail(name, value, f"must be at least {minimum}{unit}")
    if maximum is not None and value > maximum:
        raise _fail(name, value, f"must be at most {maximum}")
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(name, value, "must be a finite number of seconds")
    return float(value)


def _positive_float(name: str, value: Any, *, minimum: float | None = None) -> float:
    number = _number(name, value)
    if not number > 0:
        raise _fail(name, value, "must be a positive number")
    if minimum is not None and number < minimum:
        raise _fail(name, value, f"must be at least {minimum:g} seconds")
    return number


def _non_negative_float(name: str, value: Any) -> float:
    number = _number(name, value)
    if number < 0:
        raise _fail(name, value, "must be zero or a positive number")
    return number


def _optional_positive_float(
    name: str, value: Any, *, minimum: float | None = None
) -> float | None:
    return None if value is None else _positive_float(name, value, minimum=minimum)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise _fail(name, value, "must be a boolean (true/false)")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _fail(name, value, "must be one of " + ", ".join(repr(c) for c in choices))
    return value


def _level(name: str, value: Any) -> str:
    level = normalise_level(value) if isinstance(value, str) else None
    if level is None:
        raise _fail(name, value, "must be one of " + ", ".join(LEVELS))
    return level


def _redact_keys(value: Any) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise _fail("redact_keys", value, "must be a collection of key names")
    keys = list(value)
    if not all(isinstance(k, str) for k in keys):
        raise _fail("redact_keys", value, "every key must be a string")
    return frozenset(k.lower().replace("-", "_") for k in keys)
