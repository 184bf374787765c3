"""HTTP: one POST of one batch, mapped to an :class:`Outcome`.

``classify`` is the single place that decides what a response or an
exception means for the rows of a batch; the sender acts on its answer.
"""

from __future__ import annotations

import email.utils
import enum
import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests
import requests.adapters
import urllib3
import urllib3.connectionpool
import urllib3.exceptions

from .._version import __version__

# Level 1: on a 2-core host the CPU matters more than bytes on a LAN, and log
# text still shrinks several-fold at this level. ISA-L (python-isal) writes the
# same gzip format as zlib at about an eighth of zlib's CPU for a batch of log
# records, and smaller (docs/performance.md); zlib stands in where isal has no
# build for the platform. Both let go of the GIL while they compress.
GZIP_LEVEL = 1
try:
    from isal.isal_zlib import DEFLATED, compressobj
except ImportError:  # pragma: no cover - isal ships wheels for the platforms we test on
    from zlib import DEFLATED, compressobj
GZIP_WBITS = 31  # a gzip header and trailer around the deflate stream
# Records joined and compressed this many at a time (about 100 KB of text): below glibc's
# mmap threshold, so the buffers come from memory malloc keeps, while one body for a whole
# batch (hundreds of KB) is mapped and unmapped for every POST and its page faults cost
# more than compressing it (docs/performance.md).
_CHUNK_RECORDS = 256
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
    # Records an OTLP endpoint refused without saying which (partial_success): the batch
    # is acknowledged all the same, and they are counted.
    unnamed: int = 0

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


class Response(Protocol):
    """What ``classify`` reads of a response (``Answer``, or ``requests.Response``)."""

    status_code: int

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def classify(
    response: Response | None,
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


def _preview(response: Response) -> str:
    kind = response.headers.get("Content-Type") or "no Content-Type"
    text = " ".join((response.text or "")[:400].split())[:80]
    return f"{kind}: {text!r}" if text else f"{kind}, empty body"


def encode_batch(bodies: list[str], *, compress: bool) -> bytes:
    """``{"logs": [...]}`` from rows that are already JSON text: joined, never re-parsed;
    gzip'd ``_CHUNK_RECORDS`` records at a time when ``compress``."""
    if not compress:
        return ('{"logs":[' + ",".join(bodies) + "]}").encode("utf-8")
    deflate = compressobj(GZIP_LEVEL, DEFLATED, GZIP_WBITS)
    out = [deflate.compress(b'{"logs":[')]
    for start in range(0, len(bodies), _CHUNK_RECORDS):
        text = ",".join(bodies[start : start + _CHUNK_RECORDS])
        out.append(deflate.compress((("," if start else "") + text).encode("utf-8")))
    out.append(deflate.compress(b"]}"))
    out.append(deflate.flush())
    return b"".join(out)


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


@dataclass(frozen=True, slots=True)
class Answer:
    """A response as ``classify`` reads it: ``requests.Response`` has the same four members,
    so a response from requests (in tests) classifies the same way."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive, as urllib3 gives them
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


@dataclass(frozen=True, slots=True)
class _Route:
    """Where and how a POST goes, worked out once per connection pool."""

    pool: urllib3.connectionpool.HTTPConnectionPool
    url: str  # the path, or the absolute URL when an HTTP proxy carries the request
    headers: dict[str, str]
    gzip_headers: dict[str, str]


class HttpTransport:
    """POSTs batches through one kept-alive connection.

    requests works out once, with its own functions, what the environment says about
    ``url`` (proxy variables and ``NO_PROXY``, the CA-bundle variables, ``~/.netrc``) and
    builds the connection pool for it (proxy, TLS verification, client certificate). Each
    POST then goes straight to that urllib3 pool: a ``Session.post`` costs the sender's
    thread about twice the CPU for the same request (docs/performance.md). After a failed
    send everything is worked out again, so a changed environment is picked up then.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        api_key: str | None = None,
        content_type: str = "application/json",
        classify: Callable[..., Outcome] = classify,
    ) -> None:
        """``content_type`` and ``classify`` are the wire's: this project's JSON by default,
        OTLP's protobuf for ``wire="otlp"`` (``client.otlp``)."""
        self.url = url
        self.timeout = timeout
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._classify = classify
        self._headers = {
            "Content-Type": content_type,
            "User-Agent": f"log-collector-durable/{__version__}",
        }
        self._api_key = api_key
        self._adapter: requests.adapters.HTTPAdapter | None = None
        self._route: _Route | None = None

    def environment(self) -> dict[str, Any]:
        """What the environment says for ``url``: ``proxies``, ``verify``, ``cert``."""
        with requests.Session() as session:
            return session.merge_environment_settings(self.url, {}, None, None, None)

    def _connect(self) -> _Route:
        settings = self.environment()
        verify, cert, proxies = settings["verify"], settings["cert"], settings["proxies"]
        # The Bearer key when there is one: requests would let ~/.netrc credentials
        # replace an Authorization header, and a netrc ``default`` entry matches every
        # host. Without a key, netrc credentials for the host are sent, as requests does.
        # https://requests.readthedocs.io/en/latest/user/authentication/#netrc-authentication
        netrc = None if self._api_key else requests.utils.get_netrc_auth(self.url)
        prepared = requests.Request("POST", self.url, auth=netrc).prepare()
        headers = dict(self._headers)
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        elif "Authorization" in prepared.headers:
            headers["Authorization"] = prepared.headers["Authorization"]
        self._adapter = adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1)
        pool = adapter.get_connection_with_tls_context(prepared, verify, proxies=proxies, cert=cert)
        adapter.cert_verify(pool, self.url, verify, cert)
        return _Route(
            pool=pool,
            url=adapter.request_url(prepared, proxies),
            headers=headers,
            gzip_headers={**headers, "Content-Encoding": "gzip"},
        )

    def send(self, body: bytes, *, gzipped: bool, count: int) -> Outcome:
        try:
            route = self._route or self._connect()
            self._route = route
            response = route.pool.urlopen(
                "POST",
                route.url,
                body=body,
                headers=route.gzip_headers if gzipped else route.headers,
                redirect=False,
                assert_same_host=False,
                retries=False,
                timeout=self._timeout,
                preload_content=True,
            )
        except Exception as exc:  # any failure to get an answer means: keep the rows, retry
            self.reset()
            return self._classify(None, exc, count=count)
        answer = Answer(response.status, response.headers, response.data)
        return self._classify(answer, count=count)

    def reset(self) -> None:
        """Drop pooled connections (after an error, a half-read answer must not be reused)."""
        if self._adapter is not None:
            self._adapter.close()
        self._adapter = self._route = None
