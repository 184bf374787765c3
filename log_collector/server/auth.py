"""Optional API keys: ``Authorization: Bearer <key>`` checked in constant time."""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable

API_KEYS_ENV = "LOG_COLLECTOR_API_KEYS"


def load_keys(api_keys: str | Iterable[str] | None = None) -> tuple[bytes, ...]:
    """The accepted keys: ``api_keys`` (a list or a comma-separated string), else
    ``$LOG_COLLECTOR_API_KEYS``. Empty means the server takes requests without a key.
    """
    if api_keys is None:
        api_keys = os.environ.get(API_KEYS_ENV, "")
    if isinstance(api_keys, str):
        api_keys = api_keys.split(",")
    return tuple(key.strip().encode("utf-8") for key in api_keys if key.strip())


def check(keys: tuple[bytes, ...], authorization: str | None) -> str | None:
    """None when the request may pass, else the message for its 401."""
    if not keys:
        return None
    if not authorization:
        return "missing API key: send 'Authorization: Bearer <key>'"
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return "malformed Authorization header: expected 'Bearer <key>'"
    presented = token.encode("utf-8")
    # Compare with every key, without stopping at a match, so the time taken
    # says nothing about which key (or how much of one) matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(key, presented)
    return None if matched else "invalid API key"
