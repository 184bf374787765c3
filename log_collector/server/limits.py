"""The server's limits on requests and connections, as frozen settings.

A leaf module (dataclasses only): the ``serve`` command reads its defaults
here without loading FastAPI, uvicorn or a database driver.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one POST /logs may hold, and how long it may take to arrive."""

    max_body_bytes: int = 10 * MiB
    max_decompressed_bytes: int = 64 * MiB
    max_records: int = 10_000
    # JSON values in one body, counted as the commas and opening brackets
    # outside strings (about one per value), checked before decoding: each
    # costs Python 30-200 bytes once decoded, so this bounds a request's
    # decoded objects to about 100 MB whatever its bytes. A batch of 10,000
    # records of 50 fields each holds about 500,000.
    max_values_per_request: int = 1_000_000
    # The same count in one record's metadata: a record over it is rejected
    # alone (the client keeps it in its dead letters).
    max_values_per_record: int = 100_000
    # Seconds a client has to send the whole body once its headers are in;
    # then 408. uvicorn bounds only the wait between requests, so without
    # this a client trickling a byte at a time holds its connection forever.
    body_timeout: float = 30.0
    # Bytes of request bodies one server process holds at once, counted from
    # Content-Length before a byte is read (or as a chunked body streams in);
    # past it, 503 with Retry-After. At least max_body_bytes, so every body
    # under the limit gets in once others are done.
    max_inflight_bytes: int = 64 * MiB

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_decompressed_bytes",
            "max_records",
            "max_values_per_request",
            "max_values_per_record",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1")
        if self.max_inflight_bytes < self.max_body_bytes:
            raise ValueError("Limits.max_inflight_bytes must be at least Limits.max_body_bytes")
        if not self.body_timeout > 0:  # also refuses NaN
            raise ValueError("Limits.body_timeout must be positive")


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a connection may wait to send headers, and how many may be open
    (enforced by ``connections.BoundedH11Protocol``)."""

    # Seconds a connection has to deliver a request's headers, from when it
    # opens or its previous response is complete.
    header_timeout: float = 10.0
    # Open connections at most, before connection_cap() lowers it to fit
    # the descriptor limit.
    max_connections: int = 4096

    def __post_init__(self) -> None:
        if not self.header_timeout > 0:  # also refuses NaN
            raise ValueError("ConnectionLimits.header_timeout must be positive")
        if self.max_connections < 1:
            raise ValueError("ConnectionLimits.max_connections must be at least 1")
