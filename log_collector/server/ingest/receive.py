"""Receiving a POST /logs body from the connection, within the body limit,
the body timeout and the process's in-flight byte budget."""

from __future__ import annotations

import anyio
from starlette.requests import Request

from ..limits import Limits
from .decode import IngestError


class OverBudget(Exception):
    """The body would take the process past its in-flight byte budget."""


class BodyBudget:
    """Bytes of request bodies held by the process at once (``Limits.max_inflight_bytes``).

    Only the event loop's thread takes and gives back, so no lock. A body is
    counted from before its first byte is read until its answer is ready:
    its buffer, its decompressed copy and its records all live until then.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> None:
        if self.used + size > self.limit:
            raise OverBudget
        self.used += size

    def give(self, size: int) -> None:
        self.used -= size


def is_json(content_type: str | None) -> bool:
    """Whether the media type is ``application/json``, parameters such as
    ``charset`` aside (RFC 9110 section 8.3.1: the type is case-insensitive)."""
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


async def read_body(
    request: Request, limits: Limits, budget: BodyBudget, taken: list[int]
) -> bytearray:
    """The request body, refused with 413 as soon as it is past the body limit,
    with 408 when it has not all arrived ``limits.body_timeout`` seconds after
    the headers, and with OverBudget when the in-flight budget cannot hold
    it. The bytes taken from ``budget`` are added to ``taken[0]``, for the
    caller to give back.

    A declared Content-Length is taken from the budget before a byte is read
    and read into one buffer of that size: one allocation, no copies as it
    grows, no ``bytes()`` copy at the end (``decode_body`` reads a bytearray).
    A chunked body is counted chunk by chunk as it streams in.
    """
    limit, timeout = limits.max_body_bytes, limits.body_timeout
    too_large = IngestError(413, f"body is over the limit of {limit} bytes")
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isdigit() else None
    if size is not None and size > limit:
        raise too_large
    if size is not None:
        budget.take(size)
        taken[0] += size
    body = bytearray(size or 0)
    received = 0
    try:
        with anyio.fail_after(timeout):
            async for chunk in request.stream():
                end = received + len(chunk)
                if end > limit:
                    # The server discards the rest of the upload, so the client
                    # still reads this 413 instead of a reset connection.
                    raise too_large
                if end > len(body):  # chunked: no size is declared
                    budget.take(end - len(body))
                    taken[0] += end - len(body)
                    del body[received:]
                    body += chunk
                else:
                    body[received:end] = chunk
                received = end
    except TimeoutError:
        raise IngestError(
            408, f"body not received within {timeout:g} seconds", close=True
        ) from None
    if received < len(body):
        del body[received:]
    return body
