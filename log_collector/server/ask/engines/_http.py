"""One JSON POST to a language-model API, with a deadline and bounded retries.

The engines call :func:`post_json`; it returns the decoded JSON of a 2xx answer or raises
:class:`EngineError` saying why in words an operator can act on. :func:`classify` is the one
place that decides what a status or an exception means:

- 429 (rate limited), 5xx (Anthropic's 529 "overloaded" included) and network errors
  (refused, reset, closed without an answer) are retried, at most ``max_attempts`` times in
  all, after a delay with exponential backoff and full jitter
  (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/), or after the
  answer's Retry-After when it gives one;
- any other 4xx (a bad key, an unknown model, a malformed request) is not: sending the same
  request again cannot change the answer;
- a timeout ends the call: ``timeout_s`` bounds the whole call, waits between attempts
  included, because a person is waiting for the answer and the ask service falls back to the
  builtin engine.

The standard library's urllib does the HTTP: the server extra has no HTTP client, and one JSON
POST does not justify a new dependency. Redirects are not followed: a redirected POST would
carry the API key to another address (set the base URL to the final one instead). Proxies come
from the environment (``https_proxy``, ``no_proxy``), as urllib reads them.

Secrets (the API key) never appear in an error: an API's error text may echo part of the key
(OpenAI's 401 does), so every text taken from an answer is redacted.
"""

from __future__ import annotations

import email.utils
import enum
import http.client
import json
import random
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from log_collector.server.ask.engines.base import EngineError

# An answer larger than this is refused: a chat completion holding one SQL statement or a few
# sentences is a few kilobytes.
MAX_REPLY_BYTES = 1024 * 1024
# How much of an API's error text is quoted in an EngineError.
_MAX_DETAIL_CHARS = 200
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call is retried. ``max_attempts`` counts the first one."""

    max_attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 4.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("retry delays must not be negative")

    def backoff(self, retry: int, rng: Callable[[], float]) -> float:
        """Full jitter: uniform in [0, min(max_delay, base * 2**retry)) for the retry-th retry."""
        return rng() * min(self.max_delay_s, self.base_delay_s * 2**retry)


class Kind(enum.Enum):
    OK = "ok"
    RETRY = "retry"  # 5xx, network error: back off and send again
    THROTTLED = "throttled"  # 429: wait Retry-After (or back off) and send again
    FAIL = "fail"  # any other status, a redirect, a TLS failure: give up now
    TIMEOUT = "timeout"  # no answer in time: give up, the time budget is spent


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    status: int | None = None
    retry_after: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class Seams:
    """What tests replace: the clock, the wait between attempts, the jitter's random source."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: Callable[[], float] = random.random


DEFAULT_RETRY = RetryPolicy()
REAL_SEAMS = Seams()


def classify(
    status: int | None, headers: Mapping[str, str] | None, error: BaseException | None
) -> Outcome:
    """What one attempt's answer (``status``, ``headers``) or failure (``error``) means."""
    if error is not None:
        return _classify_error(error)
    assert status is not None
    if 200 <= status < 300:
        return Outcome(Kind.OK, status)
    if status == 429:
        return Outcome(Kind.THROTTLED, status, retry_after=retry_after_s(headers))
    if status >= 500:
        return Outcome(Kind.RETRY, status, retry_after=retry_after_s(headers))
    return Outcome(Kind.FAIL, status)


def _classify_error(error: BaseException) -> Outcome:
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, ReplyTooLarge):
        return Outcome(Kind.FAIL, detail=f"the answer is larger than {MAX_REPLY_BYTES} bytes")
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return Outcome(Kind.TIMEOUT, detail="timed out")
    if isinstance(reason, ssl.SSLError):
        # A certificate that does not verify will not verify on the next attempt either.
        return Outcome(Kind.FAIL, detail=f"TLS error: {reason}")
    if isinstance(reason, socket.gaierror):
        return Outcome(Kind.RETRY, detail="host name not resolved")
    if isinstance(reason, ConnectionRefusedError):
        return Outcome(Kind.RETRY, detail="connection refused")
    if isinstance(reason, http.client.RemoteDisconnected):
        return Outcome(Kind.RETRY, detail="connection closed without an answer")
    if isinstance(reason, ConnectionResetError):
        return Outcome(Kind.RETRY, detail="connection reset")
    if isinstance(reason, (http.client.HTTPException, OSError)):
        return Outcome(Kind.RETRY, detail=f"network error: {type(reason).__name__}")
    return Outcome(Kind.FAIL, detail=type(reason).__name__)


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (OpenAI) or ``Retry-After``: delta-seconds or an
    HTTP-date (RFC 9110 section 10.2.3)."""
    if not headers:
        return None
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = _header(headers, "retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hands a 3xx back as the answer: see the module docstring."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None


def post_json(
    url: str,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    *,
    api: str,
    timeout_s: float,
    retry: RetryPolicy,
    secrets: Sequence[str] = (),
    seams: Seams = REAL_SEAMS,
) -> Any:
    """POST ``body`` as JSON to ``url``; the decoded JSON answer, or EngineError.

    ``api`` names the API in errors ("anthropic"); ``secrets`` are redacted from them.
    """
    # ASCII with \u escapes: any text, a lone surrogate included, goes out as valid UTF-8.
    data = json.dumps(body).encode("ascii")
    request_headers = {"content-type": "application/json", "accept": "application/json"}
    request_headers.update(headers)
    host = urlsplit(url).netloc
    deadline = seams.monotonic() + timeout_s
    last: Outcome | None = None
    for attempt in range(retry.max_attempts):
        if attempt:
            assert last is not None
            delay = last.retry_after
            if delay is None:
                delay = retry.backoff(attempt - 1, seams.rng)
            if seams.monotonic() + delay >= deadline:
                raise EngineError(
                    _give_up(api, last, secrets)
                    + f"; not retried: the next attempt would start past the {timeout_s:g} s "
                    "time limit"
                )
            seams.sleep(delay)
        remaining = deadline - seams.monotonic()
        if remaining <= 0:
            raise EngineError(f"{api}: no answer from {host} within {timeout_s:g} s")
        status, reply_headers, payload, error = _attempt(url, request_headers, data, remaining)
        last = classify(status, reply_headers, error)
        if last.kind is Kind.OK:
            return _decode(api, payload)
        if last.status is not None:
            last = Outcome(
                last.kind, last.status, last.retry_after, _error_detail(payload, secrets)
            )
        if last.kind is Kind.TIMEOUT:
            raise EngineError(f"{api}: no answer from {host} within {timeout_s:g} s")
        if last.kind is Kind.FAIL:
            raise EngineError(_give_up(api, last, secrets))
    assert last is not None
    raise EngineError(_give_up(api, last, secrets) + f" (after {retry.max_attempts} attempts)")


def _attempt(
    url: str, headers: Mapping[str, str], data: bytes, timeout: float
) -> tuple[int | None, Mapping[str, str] | None, bytes, BaseException | None]:
    """One request: ``(status, headers, body, None)`` or ``(None, None, b"", error)``."""
    request = urllib.request.Request(url, data=data, headers=dict(headers), method="POST")
    opener = urllib.request.build_opener(_NoRedirect)
    deadline = time.monotonic() + timeout
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), _read(response, deadline), None
    except urllib.error.HTTPError as exc:
        try:
            payload = _read(exc, deadline)
        except (OSError, http.client.HTTPException, ReplyTooLarge):
            payload = b""
        return exc.code, dict(exc.headers or {}), payload, None
    except (OSError, http.client.HTTPException, ReplyTooLarge, ValueError) as exc:
        return None, None, b"", exc


class ReplyTooLarge(Exception):
    """The answer's body passed MAX_REPLY_BYTES."""


def _read(response: Any, deadline: float) -> bytes:
    """The body, in chunks: each read waits at most the socket timeout, and the deadline is
    checked between them, so a server that trickles bytes cannot hold the call forever."""
    chunks = bytearray()
    while True:
        chunk = response.read(_READ_CHUNK)
        if not chunk:
            return bytes(chunks)
        chunks += chunk
        if len(chunks) > MAX_REPLY_BYTES:
            raise ReplyTooLarge
        if time.monotonic() > deadline:
            raise TimeoutError("the answer did not arrive in time")


def _decode(api: str, payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):
        raise EngineError(f"{api}: the answer is not JSON ({len(payload)} bytes)") from None


def _give_up(api: str, outcome: Outcome, secrets: Sequence[str]) -> str:
    if outcome.status is None:
        return f"{api}: {_redact(outcome.detail, secrets)}"
    head = f"{api}: HTTP {outcome.status}"
    if outcome.status in (401, 403):
        head += " (the API refused the key: check LOG_COLLECTOR_ASK_API_KEY)"
    elif 300 <= outcome.status < 400:
        head += " (a redirect, not followed: set LOG_COLLECTOR_ASK_BASE_URL to the final address)"
    return f"{head}: {outcome.detail}" if outcome.detail else head


def _error_detail(payload: bytes, secrets: Sequence[str]) -> str:
    """The API's own words for an error: ``error.message`` (both APIs, and Ollama, vLLM and
    llama.cpp's OpenAI-compatible servers), else the start of the body."""
    text = payload.decode("utf-8", "replace")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        document = None
    if isinstance(document, dict):
        error = document.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(error, str):
            text = error
    text = " ".join(text.split())
    return _redact(text, secrets)[:_MAX_DETAIL_CHARS]


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, "[key]")
        # An API may echo a part of the key ("sk-abc***xyz"): hide any run of its last or first
        # eight characters too.
        for part in (secret[:8], secret[-8:]):
            if len(part) >= 8:
                text = text.replace(part, "[key]")
    return text
