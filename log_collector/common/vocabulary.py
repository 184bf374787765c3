"""The wire vocabulary: the values the store's enum columns accept, and the
aliases normalised to them, as the schema defines them (migrations/*/0001_logs.sql)."""

from __future__ import annotations

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
LOG_TYPES = ("BACKEND", "FRONTEND", "MOBILE", "IOT", "WORKER")
ENVIRONMENTS = ("production", "staging", "development", "test", "local")
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")

# Keys are lower case; a value is looked up as given, then stripped and lower-cased.
LEVEL_ALIASES = {"warning": "WARN", "critical": "FATAL"}
ENVIRONMENT_ALIASES = {
    "prod": "production",
    "prd": "production",
    "stage": "staging",
    "stg": "staging",
    "dev": "development",
    "develop": "development",
    "testing": "test",
}

# The text columns and their lengths (None: TEXT) in migrations/postgres/0001_logs.sql.
TEXT_LIMITS: dict[str, int | None] = {
    "service": 100,
    "service_version": 50,
    "trace_id": 100,
    "user_id": 255,
    "session_id": 100,
    "error_type": 200,
    "message": None,
    "stack_trace": None,
    "path": 500,
    "action_type": 50,
    "function_name": 300,
    "file_path": 1000,
}

LOGS_PATH = "/logs"
MiB = 1024 * 1024


def canonical(value: str, values: tuple[str, ...], aliases: dict[str, str]) -> str | None:
    """``value`` as one of ``values`` (exact, any case, or an alias); None if it is none."""
    if value in values:
        return value
    key = value.strip().lower()
    for candidate in values:
        if candidate.lower() == key:
            return candidate
    return aliases.get(key)
