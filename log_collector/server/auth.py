"""API keys in two scopes: ``Authorization: Bearer <key>`` checked in constant time.

Ingest keys (``$LOG_COLLECTOR_API_KEYS``) post logs; read keys (``$LOG_COLLECTOR_READ_KEYS``)
read them back (/api/*, /stats). They are separate because an ingest key ships inside every
application, some of them web pages, while a read key opens every stored log.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass

API_KEYS_ENV = "LOG_COLLECTOR_API_KEYS"
READ_KEYS_ENV = "LOG_COLLECTOR_READ_KEYS"

INGEST = "ingest"
READ = "read"
# What a server serves (``serve --role``): the ingest scope's routes, the read scope's
# ("query"), or all of them.
ROLES = ("ingest", "query", "all")

_INVALID = "invalid API key"


def load_keys(
    api_keys: str | Iterable[str] | None = None, env: str = API_KEYS_ENV
) -> tuple[bytes, ...]:
    """The accepted keys: ``api_keys`` (a list or a comma-separated string), else
    ``$<env>`` (``$LOG_COLLECTOR_API_KEYS`` by default). Empty means no key is asked.
    """
    if api_keys is None:
        api_keys = os.environ.get(env, "")
    if isinstance(api_keys, str):
        api_keys = api_keys.split(",")
    return tuple(key.strip().encode("utf-8") for key in api_keys if key.strip())


def check(keys: tuple[bytes, ...], authorization: str | None) -> str | None:
    """None when the request may pass, else the message for its 401."""
    if not keys:
        return None
    presented = _presented(authorization)
    if isinstance(presented, str):
        return presented
    return None if _matches(keys, presented) else _INVALID


@dataclass(frozen=True)
class Refusal:
    """Why a request may not pass: 401 (no key, or one the server does not know) or 403 (a
    key of the other scope)."""

    status: int
    message: str


@dataclass(frozen=True)
class Keys:
    """The keys of both scopes.

    The read scope takes the read keys when any are set. Without read keys it takes the
    ingest keys, so a server that guarded /stats with its ingest keys does not open /stats or
    the query API to anyone; without any key both scopes are open.
    """

    ingest: tuple[bytes, ...] = ()
    read: tuple[bytes, ...] = ()

    @classmethod
    def load(
        cls,
        api_keys: str | Iterable[str] | None = None,
        read_keys: str | Iterable[str] | None = None,
    ) -> Keys:
        return cls(load_keys(api_keys), load_keys(read_keys, READ_KEYS_ENV))

    def accepted(self, scope: str) -> tuple[bytes, ...]:
        if scope == INGEST:
            return self.ingest
        return self.read or self.ingest

    def authorise(self, scope: str, authorization: str | None) -> Refusal | None:
        """None when a request of ``scope`` (INGEST or READ) with this header may pass."""
        accepted = self.accepted(scope)
        if not accepted:
            return None
        presented = _presented(authorization)
        if isinstance(presented, str):
            return Refusal(401, presented)
        if _matches(accepted, presented):
            return None
        other = self.read if scope == INGEST else self.ingest if self.read else ()
        if other and _matches(other, presented):
            if scope == INGEST:
                return Refusal(403, "this key may only read: posting logs needs an ingest key")
            return Refusal(
                403, f"this key may only post logs: reading needs a read key ({READ_KEYS_ENV})"
            )
        return Refusal(401, _INVALID)


def _presented(authorization: str | None) -> bytes | str:
    """The key of a Bearer header, or the message saying what is wrong with the header."""
    if not authorization:
        return "missing API key: send 'Authorization: Bearer <key>'"
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return "malformed Authorization header: expected 'Bearer <key>'"
    return token.encode("utf-8")


def _matches(keys: tuple[bytes, ...], presented: bytes) -> bool:
    # Compare with every key, without stopping at a match, so the time taken
    # says nothing about which key (or how much of one) matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(key, presented)
    return matched
