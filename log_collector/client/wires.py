"""The wires a spool's records go out on: this project's JSON to ``{server}/logs``
(``log-collector``, the default) or OTLP protobuf to ``{server}/v1/logs`` (``otlp``,
client/otlp.py). A spool keeps its client's wire in its meta table, so ``replay`` sends it
the way its client would have."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .transport import HttpTransport

WIRES = ("log-collector", "otlp")
DEFAULT_WIRE = "log-collector"

Encoder = Callable[..., bytes]


def logs_url(server_url: str, wire: str) -> str:
    """Where ``wire``'s batches are POSTed on the server at ``server_url``."""
    return server_url.rstrip("/") + ("/v1/logs" if wire == "otlp" else "/logs")


def wire_transport(
    server_url: str, wire: str, *, timeout: float, api_key: str | None
) -> tuple[HttpTransport, Encoder]:
    """The transport and the batch encoder of ``wire`` to the server at ``server_url``.
    Imported here, not above: settings reads this module's names without loading requests."""
    from .transport import HttpTransport, encode_batch

    url = logs_url(server_url, wire)
    if wire == "otlp":
        from . import otlp  # only this wire needs opentelemetry-proto

        transport = HttpTransport(
            url,
            timeout=timeout,
            api_key=api_key,
            content_type=otlp.CONTENT_TYPE,
            classify=otlp.classify_otlp,
        )
        return transport, otlp.encode
    if wire != DEFAULT_WIRE:
        raise ValueError(f"unknown wire {wire!r}: one of {', '.join(WIRES)}")
    return HttpTransport(url, timeout=timeout, api_key=api_key), encode_batch
