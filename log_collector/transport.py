"""HTTP: one POST of one batch, mapped to an :class:`Outcome`.

``classify`` is the single place that decides what a response or an
exception means for the rows of a batch; the sender acts on its answer.
"""

from __future__ import annotations

import email.utils
import enum
import gzip
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from . import __version__

# Level 1: on a 2-core host the CPU matters more than bytes on a LAN, and log
# text still shrinks several-fold at this level.
GZIP_LEVEL = 1
# A Retry-After beyond this is treated as this: a misconfigured proxy must not
# park the spool for a day.
MAX_RETRY_AFTER = 300.0


class Kind(enum.Enum):
    ACKED = "acked"  # 2xx: delete the rows (less any the server rejected one by one)
    RETRY = "retry"  # 5xx, timeout, refused, reset: keep the rows, back off
    THROTTLED = "throttled"  # 429/503: keep the rows, wait Retry-After
    TOO_LARGE = "too_large"  # 413: split the batch
    REJECTED = "rejected"  # 400/422 for the whole batch: bisect to find the poisoned record
    UNAUTHORIZED = "unauthorized"  # 401/403: keep the rows, back off long, warn once


RETRYABLE = frozenset({Kind.RETRY, Kind.THROTTLED, Kind.UNAUTHORIZED})


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    status: int | None = None
    retry_after: float | None = None
    rejected: tuple[tuple[int, str], ...] = ()
    duplicates: int = 0
    detail: str = ""

    def describe(self) -> str:
        head = f"HTTP {self.status}" if self.status is not None else self.kind.value
        return f"{head}: {self.detail}" if self.detail else head


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
        return Outcome(Kind.RETRY, detail=f"{type(error).__name__}: {error}"[:500])
    status = response.status_code
    detail = (response.text or "")[:500]
    if 200 <= status < 300:
        try:
            payload = response.json()
        except ValueError:
            payload = None  # the original server's plain answer is an ack too
        duplicates = payload.get("duplicates", 0) if isinstance(payload, dict) else 0
        return Outcome(
            Kind.ACKED,
            status,
            rejected=_rejected(payload, count),
            duplicates=duplicates if isinstance(duplicates, int) else 0,
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
    # Every other status (5xx, 404 from a wrong path, 408, a proxy's 502) keeps
    # the rows: nothing here proves the records themselves are bad.
    return Outcome(Kind.RETRY, status, detail=detail)


def encode_batch(bodies: list[str], *, compress: bool) -> bytes:
    """``{"logs": [...]}`` from rows that are already JSON text: joined, never re-parsed."""
    data = ('{"logs":[' + ",".join(bodies) + "]}").encode("utf-8")
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0) if compress else data


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
                self.url, data=body, headers=headers, timeout=self.timeout
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
