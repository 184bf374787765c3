"""One frozen settings object: explicit argument > environment > ``.env`` > default.

``OPTIONS`` is the one table of the client's settings: each one's default, the
environment variables that set it (the first one set wins) and the check of its
value. ``load_settings`` resolves every setting from it, ``Settings`` holds the
checked values in the table's order, and ``AsyncLogClient``'s signature takes its
defaults from ``DEFAULTS``. Everything is validated once, at construction, and an
invalid value raises :class:`ConfigError` naming the setting. Nothing here writes
to ``os.environ``. One module past 400 lines: the table, its checks and the
resolution are read together, and splitting them would spread one setting again.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..common.vocabulary import (
    ENVIRONMENT_ALIASES,
    ENVIRONMENTS,
    LEVEL_ALIASES,
    LEVELS,
    LOG_TYPES,
    TEXT_LIMITS,
    canonical,
)
from .wires import WIRES, logs_url

logger = logging.getLogger("log_collector")

LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}

# Matched against each key lower-cased with '-' as '_', at any depth.
# Exact names rather than substrings, so "token_count" or "secretary" stay.
DEFAULT_REDACT_KEYS = frozenset(
    {
        "password", "passwd", "pwd", "pass", "secret", "client_secret", "token",
        "access_token", "refresh_token", "id_token", "auth_token", "session_token",
        "api_key", "apikey", "x_api_key", "authorization", "proxy_authorization",
        "cookie", "set_cookie", "private_key", "credit_card", "card_number", "cvv",
        "ssn",
    }
)  # fmt: skip

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


def normalise_level(level: Any) -> str | None:
    """``'warning'`` -> ``'WARN'``; ``None`` for a name that is no level.

    The same reading as the server's (``common.vocabulary``): exact, any case, or an alias.
    """
    if not isinstance(level, str):
        return None
    return canonical(level, LEVELS, LEVEL_ALIASES)


def _fail(name: str, value: Any, why: str, origin: str | None = None) -> ConfigError:
    source = f" (from {origin})" if origin else ""
    return ConfigError(f"log-collector: invalid setting {name}={value!r}{source}: {why}")


# A check takes the setting's name, the value and where it came from (an environment
# variable, or None for an argument or the default), and returns the setting's value.
Check = Callable[[str, Any, str | None], Any]


def _url(value: Any, origin: str | None = None) -> str:
    """A server URL without its trailing slash (also what ``log-collector replay --server``
    accepts)."""
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


def _server_url(name: str, value: Any, origin: str | None = None) -> str:
    return _url(value, origin)


def _optional_str(name: str, value: Any, origin: str | None = None) -> str | None:
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


def _log_type(name: str, value: Any, origin: str | None = None) -> str:
    found = canonical(value, LOG_TYPES, {}) if isinstance(value, str) else None
    if found is None:
        raise _fail(name, value, _allowed(LOG_TYPES, {}), origin)
    return found


def _environment(name: str, value: Any, origin: str | None = None) -> str:
    found = canonical(value, ENVIRONMENTS, ENVIRONMENT_ALIASES) if isinstance(value, str) else None
    if found is None:
        raise _fail(name, value, _allowed(ENVIRONMENTS, ENVIRONMENT_ALIASES), origin)
    return found


def _positive_int(
    name: str,
    value: Any,
    origin: str | None = None,
    *,
    minimum: int = 1,
    maximum: int | None = None,
    unit: str = "",
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


def _positive_float(
    name: str, value: Any, origin: str | None = None, *, minimum: float | None = None
) -> float:
    number = _number(name, value)
    if not number > 0:
        raise _fail(name, value, "must be a positive number")
    if minimum is not None and number < minimum:
        raise _fail(name, value, f"must be at least {minimum:g} seconds")
    return number


def _non_negative_float(name: str, value: Any, origin: str | None = None) -> float:
    number = _number(name, value)
    if number < 0:
        raise _fail(name, value, "must be zero or a positive number")
    return number


def _optional_positive_float(
    name: str, value: Any, origin: str | None = None, *, minimum: float | None = None
) -> float | None:
    return None if value is None else _positive_float(name, value, minimum=minimum)


def _bool(name: str, value: Any, origin: str | None = None) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise _fail(name, value, "must be a boolean (true/false)")


def _flag(name: str, value: Any, origin: str | None = None) -> bool:
    """A boolean where any false value (``0``, ``""``, ``None``) means off."""
    return _bool(name, value or False)


def _choice(choices: tuple[str, ...], name: str, value: Any, origin: str | None = None) -> str:
    if value not in choices:
        raise _fail(name, value, "must be one of " + ", ".join(repr(c) for c in choices))
    return value


def _wire(name: str, value: Any, origin: str | None = None) -> str:
    value = _choice(WIRES, name, value, origin)
    if value == "otlp" and importlib.util.find_spec("opentelemetry.proto") is None:
        raise _fail(
            name,
            value,
            "needs opentelemetry-proto: pip install 'log-collector-durable[otlp]'",
            origin,
        )
    return value


def _level(name: str, value: Any, origin: str | None = None) -> str:
    level = normalise_level(value) if isinstance(value, str) else None
    if level is None:
        raise _fail(name, value, "must be one of " + ", ".join(LEVELS))
    return level


def _redact_keys(name: str, value: Any, origin: str | None = None) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise _fail(name, value, "must be a collection of key names")
    keys = list(value)
    if not all(isinstance(k, str) for k in keys):
        raise _fail(name, value, "every key must be a string")
    return frozenset(k.lower().replace("-", "_") for k in keys)


def _path(name: str, value: Any, origin: str | None = None) -> Path | None:
    """A directory; ``None`` (or empty) for the default, which depends on ``service``."""
    return Path(value).expanduser() if value else None


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its default, the check of a given value, and the environment
    variables that set it when no argument does (the first one set wins).

    A setting with environment variables reads an argument of ``None`` as "not
    given"; any other setting checks whatever argument it was given.
    """

    default: Any
    check: Check
    env: tuple[str, ...] = ()


OPTIONS: Mapping[str, Option] = {
    "server_url": Option("http://localhost:8000", _server_url, ("LOG_SERVER_URL",)),
    "service": Option(None, _text, ("SERVICE_NAME",)),
    "environment": Option("development", _environment, ("ENVIRONMENT", "NODE_ENV")),
    "service_version": Option("v0.0.0-dev", _text, ("SERVICE_VERSION",)),
    "log_type": Option("BACKEND", _log_type, ("LOG_TYPE",)),
    "batch_size": Option(10_000, partial(_positive_int, maximum=10_000)),
    "flush_interval": Option(1.0, partial(_positive_float, minimum=MIN_FLUSH_INTERVAL)),
    "enable_compression": Option(True, _bool),
    "enable_global_error_handler": Option(False, _flag, ("ENABLE_GLOBAL_ERROR_HANDLER",)),
    "spool_dir": Option(None, _path, ("LOG_COLLECTOR_SPOOL_DIR",)),
    "durability": Option("normal", partial(_choice, DURABILITY)),
    "max_spool_bytes": Option(
        256 * MiB,
        partial(
            _positive_int,
            minimum=MIN_SPOOL_BYTES,
            unit=f" bytes ({MIN_SPOOL_BYTES // KiB} KiB, MIN_SPOOL_BYTES)",
        ),
    ),
    "spool_full_policy": Option("drop_oldest", partial(_choice, SPOOL_FULL_POLICIES)),
    "max_record_age": Option(None, partial(_optional_positive_float, minimum=MIN_RECORD_AGE)),
    "timeout": Option(5.0, partial(_positive_float, minimum=MIN_REQUEST_TIMEOUT)),
    "api_key": Option(None, _optional_str, ("LOG_COLLECTOR_API_KEY",)),
    "redact_keys": Option(DEFAULT_REDACT_KEYS, _redact_keys),
    "min_level": Option("TRACE", _level),
    "gzip_min_records": Option(100, _positive_int),
    "gzip_min_bytes": Option(16 * KiB, _positive_int),
    "max_backoff": Option(30.0, partial(_positive_float, minimum=MIN_BACKOFF)),
    "close_timeout": Option(5.0, _non_negative_float),
    "fallback_capacity": Option(10_000, _positive_int),
    "wire": Option("log-collector", _wire, ("LOG_COLLECTOR_WIRE",)),
}
DEFAULTS: Mapping[str, Any] = {name: option.default for name, option in OPTIONS.items()}
ENV_VARS: Mapping[str, tuple[str, ...]] = {
    name: option.env for name, option in OPTIONS.items() if option.env
}


@dataclass(frozen=True, slots=True)
class Settings:
    """The checked value of every setting in ``OPTIONS``, in its order (a test holds the
    two to the same names); the annotations give each one's type."""

    server_url: str
    service: str | None
    environment: str
    service_version: str | None
    log_type: str
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
    wire: str

    @property
    def logs_url(self) -> str:
        return logs_url(self.server_url, self.wire)


def read_dotenv(path: Path) -> dict[str, str]:
    """The ``.env`` file's values, parsed by python-dotenv, never exported. A file this process
    may not read (a working directory it cannot enter, a file of another user) is left out with
    a warning: the other sources decide, and the client still starts."""
    try:
        if not path.is_file():
            return {}
        from dotenv import dotenv_values  # imported here: only clients that find a .env pay

        values = dotenv_values(path)
    except OSError as exc:
        logger.warning("log-collector: %s is not read (%s); the other settings apply", path, exc)
        return {}
    return {k: v for k, v in values.items() if v is not None}


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
    """Resolve every setting of ``OPTIONS`` from its sources and check it.

    ``explicit`` holds the constructor's arguments; a setting missing from it is not given.
    """
    env = os.environ if environ is None else environ
    sources = (
        (env, ""),
        (read_dotenv(dotenv_path if dotenv_path is not None else Path.cwd() / ".env"), " in .env"),
    )
    values: dict[str, Any] = {}
    for name, option in OPTIONS.items():
        if not option.env:
            values[name] = option.check(name, explicit.get(name, option.default), None)
        elif explicit.get(name) is not None:
            values[name] = option.check(name, explicit[name], None)
        elif name == "environment":
            values[name] = _environment_from(sources)
        else:
            values[name] = option.check(name, *_from_environment(name, option, sources))
    if values["spool_dir"] is None:
        values["spool_dir"] = default_spool_dir(values["service"], env)
    return Settings(**values)


Sources = tuple[tuple[Mapping[str, str], str], ...]


def _from_environment(name: str, option: Option, sources: Sources) -> tuple[Any, str | None]:
    """The first variable set (environment before .env), and which; else the default."""
    for source, where in sources:
        for var in option.env:
            if source.get(var):
                return source[var], var + where
    return option.default, None


def _environment_from(sources: Sources) -> str:
    """ENVIRONMENT, else NODE_ENV (environment before .env), else the default; aliases
    (``prod``, ``dev``) become the stored name.

    An unknown ENVIRONMENT raises: the server would refuse every record. An unknown
    NODE_ENV does not: it is the JavaScript ecosystem's variable, set by tools that know
    nothing of us to values such as ``ci`` or ``preview``, so it is passed over with one
    warning and the next source decides.
    """
    for source, where in sources:
        if source.get("ENVIRONMENT"):
            return _environment("environment", source["ENVIRONMENT"], "ENVIRONMENT" + where)
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
    return str(OPTIONS["environment"].default)
