"""HTTP: one POST of one batch, mapped to an :class:`Outcome`.

``classify`` is the single place that decides what a response or an
exception means for the rows of a batch; the sender acts on its answer.
"""

from __future__ import annotations

import email.utils
import enum
import gzip
import http.client
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import requests
import urllib3.exceptions

from .._version import __version__

# Level 1: on a 2-core host the CPU matters more than bytes on a LAN, and log
# text still shrinks several-fold at this level.
GZIP_LEVEL = 1
# A Retry-After beyond this is treated as this: a misconfigured proxy must not
# park the spool for a day.
MAX_RETRY_AFTER = 300.0


class Kind(enum.Enum):
    ACKED = "acked"  # 2xx with the acknowledgement JSON: delete the rows (less those rejected)
    RETRY = "retry"  # 502/504 and other statuses, timeout, refused, reset: keep the rows, back off
    # 3xx, or a 2xx whose body is not the acknowledgement: something other than a log-collector
    # server answered (a login page behind an http -> https redirect, a captive portal, a
    # default vhost). Keep the rows, back off, warn.
    MISDIRECTED = "misdirected"
    # 500: retried like RETRY, but a batch answered 500 again and again is split, and a record
    # that alone keeps getting 500 while the server acknowledges others is dead-lettered
    # (the sender decides; see server_errors.SPLIT_AFTER_500).
    SERVER_ERROR = "server_error"
    THROTTLED = "throttled"  # 429/503: keep the rows, wait Retry-After
    TOO_LARGE = "too_large"  # 413: split the batch
    REJECTED = "rejected"  # 400/422 for the whole batch: bisect to find the poisoned record
    UNAUTHORIZED = "unauthorized"  # 401/403: keep the rows, back off long, warn once


RETRYABLE = frozenset({Kind.RETRY, Kind.THROTTLED, Kind.UNAUTHORIZED, Kind.MISDIRECTED})


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    status: int | None = None
    retry_after: float | None = None
    rejected: tuple[tuple[int, str], ...] = ()
    duplicates: int = 0
    detail: str = ""

    def describe(self) -> str:
        """One line: ``HTTP 500: <the server's text>``, or the short reason a request got no
        answer (``connection refused``)."""
        if self.status is None:
            return self.detail or self.kind.value
        head = f"HTTP {self.status}"
        return f"{head}: {self.detail}" if self.detail else head


# What an exception found anywhere in the chain requests builds (ConnectionError ->
# MaxRetryError -> NewConnectionError -> ConnectionRefusedError) means, most specific first.
# Only the short reason is reported: the whole chain repeats the URL three times over.
_REASONS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (ConnectionRefusedError, "connection refused"),
    ((socket.gaierror, urllib3.exceptions.NameResolutionError), "name not resolved"),
    ((ssl.SSLError, requests.exceptions.SSLError, urllib3.exceptions.SSLError), "TLS error"),
    ((requests.exceptions.ProxyError, urllib3.exceptions.ProxyError), "proxy error"),
    (
        (TimeoutError, requests.exceptions.Timeout, urllib3.exceptions.TimeoutError),
        "timed out",
    ),
    (ConnectionResetError, "connection reset"),
    ((http.client.RemoteDisconnected, BrokenPipeError), "connection closed without an answer"),
    (ConnectionAbortedError, "connection aborted"),
    (OSError, "network error"),
)


def short_reason(error: BaseException | None) -> str:
    """A few words for why a request got no answer: ``connection refused``, ``timed out``..."""
    chain: list[BaseException] = []
    todo = [error]
    while todo and len(chain) < 20:
        exc = todo.pop(0)
        if exc is None or any(exc is seen for seen in chain):
            continue
        chain.append(exc)
        reason = getattr(exc, "reason", None)
        todo.extend(a for a in exc.args if isinstance(a, BaseException))
        todo.extend([reason if isinstance(reason, BaseException) else None])
        todo.extend([exc.__cause__, exc.__context__])
    for types, reason in _REASONS:
        if any(isinstance(exc, types) for exc in chain):
            return reason
    return type(error).__name__ if error is not None else "no answer"


def parse_retry_after(value: str | None, now: Callable[[], float] | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        # time.time looked up at the call, not bound at import: freezegun can drive it.
        seconds = when.timestamp() - (now or time.time)()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _rejected(payload: Any, count: int) -> tuple[tuple[int, str], ...]:
    items = payload.get("rejected") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        return ()
    found = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("index"), int):
            index = item["index"]
            if 0 <= index < count:
                found.append((index, str(item.get("reason", "rejected by the server"))))
    return tuple(found)


def classify(
    response: requests.Response | None,
    error: BaseException | None = None,
    *,
    count: int = 0,
    now: Callable[[], float] | None = None,
) -> Outcome:
    """What a response (or the exception instead of one) means for a batch of ``count`` rows."""
    if response is None:
        # Refused, reset, timed out, or the connection dropped after the server
        # may have stored the batch: resend; event_ids make the repeat harmless.
        return Outcome(Kind.RETRY, detail=short_reason(error))
    status = response.status_code
    detail = (response.text or "")[:500]
    if 200 <= status < 300:
        # Only our server's own answer acknowledges: {"status": "ok", ...}, which the
        # original server's {"status": "ok", "count": N} is too. A login page or an empty
        # 200 from a proxy stored nothing, so the rows must stay.
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or payload.get("status") != "ok":
            return Outcome(
                Kind.MISDIRECTED,
                status,
                detail="not a log-collector server: the answer is not the acknowledgement "
                f"JSON ({_preview(response)})",
            )
        duplicates = payload.get("duplicates", 0)
        return Outcome(
            Kind.ACKED,
            status,
            rejected=_rejected(payload, count),
            duplicates=duplicates if isinstance(duplicates, int) else 0,
        )
    if 300 <= status < 400:
        # Following a redirect would turn the POST into a GET (301/302/303) and take
        # whatever answers there as the ack; the URL to fix is the configured one.
        location = response.headers.get("Location") or "nowhere"
        return Outcome(
            Kind.MISDIRECTED,
            status,
            detail=f"redirected to {location}; redirects are not followed, "
            "set server_url to the log-collector server itself",
        )
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        return Outcome(Kind.THROTTLED, status, retry_after=retry_after, detail=detail)
    if status == 413:
        return Outcome(Kind.TOO_LARGE, status, detail=detail)
    if status in (400, 422):
        return Outcome(Kind.REJECTED, status, detail=detail)
    if status in (401, 403):
        return Outcome(Kind.UNAUTHORIZED, status, detail=detail)
    if status == 500:
        # The application failed on this request: it may be the batch's content, so the
        # sender narrows it down once the server is seen acknowledging other records.
        return Outcome(Kind.SERVER_ERROR, status, detail=detail)
    # Every other status (502/504 from a proxy, 404 from a wrong path, 408) keeps the
    # rows: nothing here points at the records themselves.
    return Outcome(Kind.RETRY, status, detail=detail)


def _preview(response: requests.Response) -> str:
    kind = response.headers.get("Content-Type") or "no Content-Type"
    text = " ".join((response.text or "")[:400].split())[:80]
    return f"{kind}: {text!r}" if text else f"{kind}, empty body"


def encode_batch(bodies: list[str], *, compress: bool) -> bytes:
    """``{"logs": [...]}`` from rows that are already JSON text: joined, never re-parsed."""
    data = ('{"logs":[' + ",".join(bodies) + "]}").encode("utf-8")
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0) if compress else data


class Transport(Protocol):
    """What the sender needs to ship a batch: ``HttpTransport``, or in tests a double
    that answers from a script (as httpx's ``MockTransport`` stands in for the network)."""

    url: str

    def send(self, body: bytes, *, gzipped: bool, count: int) -> Outcome:
        """POST one encoded batch of ``count`` records; never raises: a failure is an
        outcome."""
        ...

    def reset(self) -> None:
        """Drop pooled connections."""
        ...


class _Bearer(requests.auth.AuthBase):
    """The API key, as ``Authorization: Bearer``. Given to requests as the
    session's auth rather than as a header: requests replaces an Authorization
    header with credentials it finds in ~/.netrc for the host (a netrc
    ``default`` entry matches every host), but never an explicit auth.
    https://requests.readthedocs.io/en/latest/user/authentication/#netrc-authentication
    """

    def __init__(self, key: str) -> None:
        self._value = f"Bearer {key}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._value
        return request


class HttpTransport:
    """POSTs batches with one reused ``requests.Session`` (made in the sender's thread)."""

    def __init__(self, url: str, *, timeout: float, api_key: str | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": f"log-collector-durable/{__version__}",
        }
        self._auth = _Bearer(api_key) if api_key else None
        self._session: requests.Session | None = None

    def _new_session(self) -> requests.Session:
        """A session with the environment's settings for ``url`` read once.

        requests reads the proxy variables, the CA-bundle variables and ~/.netrc
        on every request: a fifth to a quarter of the sender's CPU per post here.
        They are read here instead, by requests' own functions, and the session
        stops reading them. A session is made again after every failed send, so
        a changed environment is picked up then.
        """
        session = requests.Session()
        settings = session.merge_environment_settings(self.url, {}, None, None, None)
        session.proxies = settings["proxies"]
        session.verify = settings["verify"]
        session.cert = settings["cert"]
        session.auth = self._auth or requests.utils.get_netrc_auth(self.url)
        session.trust_env = False
        return session

    def send(self, body: bytes, *, gzipped: bool, count: int) -> Outcome:
        headers = dict(self._headers)
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        if self._session is None:
            self._session = self._new_session()
        try:
            response = self._session.post(
                self.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except Exception as exc:  # any failure to get an answer means: keep the rows, retry
            self.reset()
            return classify(None, exc, count=count)
        return classify(response, count=count)

    def reset(self) -> None:
        """Drop pooled connections (after an error, a half-read answer must not be reused)."""
        if self._session is not None:
            self._session.close()
            self._session = None
