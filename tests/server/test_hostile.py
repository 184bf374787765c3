"""Hostile input at the ingest server (issue 5, item 5): whatever a client sends,
the answer is never a 5xx, the server process survives with bounded memory,
only what is not a JSON object is rejected, and every other record is stored
as sent, each value the server coerced kept under ``metadata._invalid``.

The fuzzing runs against a real server process per store (``python -m
log_collector.server``), so a crash, a leak or a traceback in its log is seen.
Each request is checked against a reference: ``json.loads`` of the bytes the
server should decode decides the status, and the rows read back by event_id
decide what was stored.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import re
import select
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import closed_port, record, stored_rows

from log_collector.server import Limits, create_app

# Failing examples hold bodies of megabytes; Hypothesis warns before printing them.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

MiB = 1024 * 1024
DEFAULTS = Limits()
JSON = {"Content-Type": "application/json"}
GZIP = {"Content-Type": "application/json", "Content-Encoding": "gzip"}

# The columns a record may name (the logs table's); id, deleted and
# received_at are the server's and go to metadata like any other key.
TEXT_LIMITS = {
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
ENUMS = {
    "level": ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"),
    "log_type": ("BACKEND", "FRONTEND", "MOBILE", "IOT", "WORKER"),
    "environment": ("production", "staging", "development", "test", "local"),
    "method": ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"),
}
COLUMN_KEYS = {*TEXT_LIMITS, *ENUMS, "created_at", "duration_ms", "metadata", "event_id"}
SERVER_KEYS = ("id", "deleted", "received_at")


# a server in its own process


@dataclass
class ServerProcess:
    url: str
    db_url: str
    process: subprocess.Popen
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def memory_kib(self, field_name: str = "VmRSS") -> int:
        """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) from /proc, in KiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith(f"{field_name}:"))
        return int(line.split()[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_healthy(self) -> None:
        """Alive, answering, and no traceback in its log (starlette logs one per 500)."""
        assert self.alive(), self.log()
        assert 200 == requests.get(f"{self.url}/healthz", timeout=10).status_code
        assert "Traceback" not in self.log()


@contextlib.contextmanager
def server_process(
    db_url: str, log_path: Path, env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "log_collector.server", "--db", db_url, "--port", str(port)]
    command += ["--log-level", "warning", "--no-access-log"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    server = ServerProcess(url, db_url, process, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            if not server.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{server.log()}")
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def hostile_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server process per store for the whole module: examples use fresh
    event_ids, so nothing is reset between them."""
    directory = tmp_path_factory.mktemp(f"hostile-{request.param}")
    if request.param == "sqlite":
        db_url = f"sqlite:///{directory}/logs.db"
    else:
        db_url = request.getfixturevalue("pg_databases").create()
    with server_process(db_url, directory / "server.log") as server:
        yield server
        server.assert_healthy()


# reading rows back by event_id

_READ_COLUMNS = [*TEXT_LIMITS, *ENUMS, "metadata", "event_id"]


def rows_by_event_id(db_url: str, event_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored rows with these event_ids, metadata as decoded JSON."""
    if not event_ids:
        return {}
    if db_url.startswith("sqlite:///"):
        conn = sqlite3.connect(db_url[len("sqlite:///") :])
        try:
            marks = ", ".join("?" for _ in event_ids)
            rows = conn.execute(
                f"SELECT {', '.join(_READ_COLUMNS)} FROM logs WHERE event_id IN ({marks})",
                event_ids,
            ).fetchall()
        finally:
            conn.close()
        found = [dict(zip(_READ_COLUMNS, row, strict=True)) for row in rows]
        for row in found:
            row["metadata"] = json.loads(row["metadata"]) if row["metadata"] else None
    else:
        columns = ", ".join(
            f"{c}::text" if c in ENUMS or c == "event_id" else c for c in _READ_COLUMNS
        )
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(
                f"SELECT {columns} FROM logs WHERE event_id = ANY(%s::uuid[])", (event_ids,)
            ).fetchall()
        found = [dict(zip(_READ_COLUMNS, row, strict=True)) for row in rows]
    return {row["event_id"]: row for row in found}


def same_json(expected: Any, stored: Any) -> bool:
    """Equal JSON values, numbers compared as numbers: PostgreSQL's jsonb keeps
    numbers as decimals (1e300 comes back as 1000...0, -0.0 as 0). A loop, not
    recursion: values may be nested hundreds deep."""
    numbers = (int, float)
    pending = [(expected, stored)]
    while pending:
        want, got = pending.pop()
        if type(want) is bool or type(got) is bool:
            if want is not got:
                return False
        elif isinstance(want, numbers) and isinstance(got, numbers):
            if type(want) is int and type(got) is int:
                if want != got:
                    return False
            elif not (want == got or math.isclose(want, got, rel_tol=1e-15)):
                return False
        elif type(want) is dict and type(got) is dict:
            if want.keys() != got.keys():
                return False
            pending.extend((value, got[key]) for key, value in want.items())
        elif type(want) is list and type(got) is list:
            if len(want) != len(got):
                return False
            pending.extend(zip(want, got, strict=True))
        elif not (type(want) is type(got) and want == got):
            return False
    return True


# generating hostile bodies

SQL = [
    "'; DROP TABLE logs; --",
    "x' OR '1'='1",
    '"; DELETE FROM logs; --',
    "1); DROP TABLE logs; --",
    "Robert'); DROP TABLE students;--",
    "$$; DROP TABLE logs; $$",
    "E'\\x00'",
    "$1",
    "%s",
    "%(message)s",
    "?",
    ":name",
    "\\N",
    "\\.",
    "\\",
    "'",
    '"',
    "/* */ --",
    "\\'; --",
    '{"$gt": ""}',
    "') ON CONFLICT DO NOTHING; --",
    "\t\n\r",
    "COPY logs TO PROGRAM 'rm -rf /'",
]
ODD_TEXT = [
    "\u0000",
    "a\u0000b",
    "\ud800",
    "\udfff",
    "x\udbff",
    "\ud83d\ude00",
    "\U0001f600",
    "\u202e",
    "\ufeff",
    "\uffff",
    "\x7f",
    "\x1b[31m",
    "\u2028",
    "é",
    "",
    " ",
]
# Text any store holds: no NUL, no unpaired surrogate.
clean_text = st.one_of(
    st.text(max_size=30).filter(lambda s: "\x00" not in s),
    st.sampled_from(SQL),
    st.lists(st.sampled_from(SQL), min_size=2, max_size=4).map("".join),
)
any_text = st.one_of(
    clean_text,
    st.sampled_from(ODD_TEXT),
    st.text(
        st.one_of(st.characters(), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),
        max_size=20,
    ),
)
# Long strings, up to 1 MB: a repeated piece is cheap to generate.
long_text = st.builds(
    lambda piece, length: piece * (length // len(piece) or 1),
    st.sampled_from(["x", "'", "\\", "é", "'; DROP TABLE logs; --"]),
    st.sampled_from([51, 101, 256, 1001, 70_000, 1_000_000]),
)


@dataclass
class Raw:
    """Bytes written into the body as they are, where a JSON value goes."""

    token: bytes


def _nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"k":' * depth + b"1" + b"}" * depth


# Depths away from 1,000, Python's recursion limit, where whether the
# reference or the server recurses one frame deeper would decide the status.
deep = st.builds(
    lambda depth, kind: Raw(_nested(depth, kind)),
    st.sampled_from([10, 100, 254, 255, 256, 257, 500, 800, 100_000]),
    st.sampled_from(["list", "object"]),
)
raw_numbers = st.sampled_from(
    [
        b"1e400",
        b"-1e400",
        b"1e-400",
        b"-0",
        b"-0.0",
        b"0e0",
        b"1E+2",
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"18446744073709551616",
        b"123456789012345678901234567890",
        b"9" * 4300,
        b"9" * 4301,
        b"-" + b"1" * 5000,
        b"1.7976931348623157e308",
        b"5e-324",
    ]
).map(Raw)
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**80), 2**80),
    st.floats(),
    any_text,
    raw_numbers,
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)
    ),
    max_leaves=12,
)
# Finite JSON any store holds, for the records the server must accept.
clean_value = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**80), 2**80),
        st.floats(allow_nan=False, allow_infinity=False),
        clean_text,
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(clean_text, inner, max_size=4)
    ),
    max_leaves=10,
)
garbage = st.one_of(
    json_value,
    long_text,
    deep,
    st.sampled_from(
        [
            "",
            " INFO ",
            "info\u0000",
            "İNFO",
            "ınfo",
            "\u212aelvin",
            "WARNING",
            "prod",
            "get",
            "nope",
            "2024-13-45",
            "9999-12-31T23:59:59.999999-14:00",
            "0001-01-01T00:00:00+14:00",
            "1969-12-31T23:59:59Z",
            "nan",
            "-inf",
            "1e400",
            "0x10",
            "１２３",
            "1_000",
        ]
    ),
    # Other spellings of a UUID, fresh each time like every event_id here.
    st.builds(
        lambda form: form.format(uuid.uuid4()),
        st.sampled_from(["urn:uuid:{}", "{{{}}}", "{!s:.35}", " {} "]),
    ),
    st.builds(lambda: str(uuid.uuid4()).upper()),
    st.builds(lambda: uuid.uuid4().hex),
)


def _fresh_event_id() -> str:
    return str(uuid.uuid4())


good_record = st.builds(
    lambda required, optional: {**required, **optional},
    st.fixed_dictionaries(
        {"event_id": st.builds(_fresh_event_id), "message": st.one_of(clean_text, long_text)}
    ),
    st.fixed_dictionaries(
        {},
        optional={
            **{
                name: (
                    clean_text.filter(lambda s, limit=limit: len(s) <= limit)
                    if limit
                    else clean_text
                )
                for name, limit in TEXT_LIMITS.items()
                if name != "message"
            },
            **{name: st.sampled_from(values) for name, values in ENUMS.items()},
            "created_at": st.one_of(
                st.floats(0, 4e9), st.just("2024-05-01T12:00:00+02:00"), st.just(1.7e12)
            ),
            "duration_ms": st.floats(allow_nan=False, allow_infinity=False),
            "metadata": st.dictionaries(clean_text, clean_value, max_size=4),
            "order_id": clean_value,
            "'; DROP TABLE logs; --": clean_value,
            "id": clean_value,
            "received_at": clean_value,
        },
    ),
)
hostile_record = st.one_of(
    # A record with every kind of value under column names and other keys.
    st.builds(
        lambda base, fields: {**base, **fields},
        st.fixed_dictionaries(
            {"event_id": st.builds(_fresh_event_id), "message": any_text},
        ),
        st.dictionaries(
            st.one_of(st.sampled_from(sorted(COLUMN_KEYS) + list(SERVER_KEYS)), any_text),
            garbage,
            max_size=6,
        ),
    ),
    # Not an object at all.
    json_value,
    deep,
)


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[Any], set[int]]:
    """A list of records and the indexes of the ones the server must accept."""
    records: list[Any] = []
    good: set[int] = set()
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.booleans()):
            good.add(len(records))
            records.append(draw(good_record))
        else:
            records.append(draw(hostile_record))
    return records, good


@dataclass
class Body:
    """One request, and what the server must make of it."""

    data: bytes
    headers: dict[str, str]
    # The bytes the server must decode as JSON; None when the encoding is broken.
    decoded: bytes | None
    # 415 when the Content-Encoding is one the server does not take.
    encoding_refused: bool = False
    good: set[int] = field(default_factory=set)

    def __repr__(self) -> str:  # Hypothesis prints the failing example.
        shown = self.data if len(self.data) < 2000 else self.data[:2000] + b"..."
        return f"Body(headers={self.headers!r}, {len(self.data)} bytes: {shown!r})"


def _dumps(document: Any, ensure_ascii: bool) -> bytes:
    """JSON text of ``document``, each Raw replaced by its bytes, lone
    surrogates written raw (invalid UTF-8) when not escaped."""
    raws: list[bytes] = []

    def placeholder(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value.token)
            return f"\x01raw{len(raws) - 1}\x01"
        if isinstance(value, dict):
            return {k: placeholder(v) for k, v in value.items()}
        if isinstance(value, list):
            return [placeholder(v) for v in value]
        return value

    text = json.dumps(placeholder(document), ensure_ascii=ensure_ascii, allow_nan=True)
    data = text.encode("utf-8", "surrogatepass")
    for index, token in enumerate(raws):
        data = data.replace(f'"\\u0001raw{index}\\u0001"'.encode(), token)
        data = data.replace(f'"\x01raw{index}\x01"'.encode(), token)
    return data


def _position(draw: st.DrawFn, last: int) -> int:
    """A place in 0..last. Drawn as a fraction: lengths vary with the random
    event_ids (and the gzip of them), and Hypothesis replays its draws."""
    return round(draw(st.floats(0, 1)) * max(0, last))


@st.composite
def bodies(draw: st.DrawFn) -> Body:
    records, good = draw(batches())
    shape = draw(st.sampled_from(["logs"] * 6 + ["extra-keys", "not-logs", "any"]))
    if shape == "logs":
        document: Any = {"logs": records}
    elif shape == "extra-keys":
        document = {"logs": records, "LOGS": draw(json_value), "": None}
    elif shape == "not-logs":
        document = {"logs": draw(json_value)}
    else:
        document = draw(st.one_of(json_value, deep))
    data = _dumps(document, ensure_ascii=draw(st.booleans()))

    mutation = draw(
        st.sampled_from(["none"] * 8 + ["byte", "truncate", "utf-16", "utf-32", "bom", "junk"])
    )
    if mutation == "byte":
        at = _position(draw, len(data))
        data = (
            data[:at] + draw(st.sampled_from([b"\xff", b"\x80", b"\xc0\xaf", b"\x00"])) + data[at:]
        )
    elif mutation == "truncate":
        data = data[: _position(draw, len(data) - 1)]
    elif mutation in ("utf-16", "utf-32"):
        with contextlib.suppress(UnicodeError):
            data = data.decode("utf-8", "surrogatepass").encode(mutation, "surrogatepass")
    elif mutation == "bom":
        data = b"\xef\xbb\xbf" + data
    elif mutation == "junk":
        data += draw(st.sampled_from([b"x", b" ]", b"\x00", b"{}"]))

    encoding = draw(
        st.sampled_from(
            ["plain"] * 4
            + ["gzip"] * 3
            + ["gzip-members", "gzip-padded", "gzip-truncated", "gzip-garbage", "gzip-lie"]
            + ["unlabelled-gzip", "identity", "br", "gzip, br"]
        )
    )
    headers = dict(JSON)
    decoded: bytes | None = data
    if encoding.startswith("gzip"):
        headers["Content-Encoding"] = draw(
            st.sampled_from(["gzip", "x-gzip", "GZIP", "gzip, identity"])
        )
    if encoding == "gzip":
        sent = gzip.compress(data, compresslevel=draw(st.integers(0, 9)))
    elif encoding == "gzip-members":
        cut = _position(draw, len(data))
        sent = gzip.compress(data[:cut]) + gzip.compress(data[cut:])
    elif encoding == "gzip-padded":
        sent = gzip.compress(data) + b"\x00" * draw(st.integers(1, 16))
    elif encoding == "gzip-truncated":
        whole = gzip.compress(data)
        sent, decoded = whole[: _position(draw, len(whole) - 1)], None
    elif encoding == "gzip-garbage":
        sent, decoded = gzip.compress(data) + b"garbage", None
    elif encoding == "gzip-lie":
        sent, decoded = data, None  # labelled gzip, sent plain: JSON is not gzip
    elif encoding == "unlabelled-gzip":
        sent = decoded = gzip.compress(data)
    elif encoding == "identity":
        headers["Content-Encoding"] = "identity"
        sent = data
    elif encoding in ("br", "gzip, br"):
        headers["Content-Encoding"] = encoding
        sent, decoded = data, None
    else:
        sent = data
    return Body(
        sent,
        headers,
        decoded,
        encoding_refused=encoding in ("br", "gzip, br"),
        good=good if mutation == "none" and shape in ("logs", "extra-keys") else set(),
    )


# the reference


SERVER_RECURSION_LIMIT = sys.getrecursionlimit()


def reference_decode(data: bytes) -> Any:
    """``json.loads(data)``, run on a fresh thread so its recursion depth is
    about the server's; raises what it raises."""
    outcome: list[Any] = []

    def decode() -> None:
        # The recursion limit is process-wide: lowering it here, while the test's
        # thread runs under the limit Hypothesis raised, made that thread fail
        # at random. The depths tried stay clear of both limits instead.
        try:
            outcome.append((True, json.loads(data)))
        except (ValueError, RecursionError) as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=decode)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def expected_status(body: Body) -> tuple[int, Any]:
    """The status the server must answer, and the decoded document for a 200."""
    if body.encoding_refused:
        return 415, None
    if len(body.data) > DEFAULTS.max_body_bytes:
        return 413, None
    if body.decoded is None:
        return 400, None
    if len(body.decoded) > DEFAULTS.max_decompressed_bytes:
        return 413, None
    try:
        document = reference_decode(body.decoded)
    except (ValueError, RecursionError):
        return 400, None
    if type(document) is not dict or type(document.get("logs")) is not list:
        return 400, None
    if len(document["logs"]) > DEFAULTS.max_records:
        return 413, None
    return 200, document


def storable(value: Any) -> bool:
    """Whether a store holds ``value`` as it is: no NaN or infinity, no NUL, no
    unpaired surrogate (the server replaces those and reports the record coerced)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if type(item) is float and not math.isfinite(item):
            return False
        if type(item) is str:
            if "\x00" in item:
                return False
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif type(item) is dict:
            pending.extend(item.keys())
            pending.extend(item.values())
        elif type(item) is list:
            pending.extend(item)
    return True


def findable_event_id(rec: dict[str, Any]) -> str | None:
    try:
        return str(uuid.UUID(rec["event_id"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def check_stored(
    server: ServerProcess,
    records: list[Any],
    rejected: set[int],
    coerced: dict[int, list[str]] | None = None,
) -> None:
    """Every record not rejected is stored; its text verbatim, its metadata
    the same JSON (its ``metadata`` object and every key that names no column);
    each value the server coerced (``coerced``: index -> fields) is kept under
    ``metadata._invalid`` when a store can hold it as it is."""
    coerced = coerced or {}
    expected: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, rec in enumerate(records):
        if index in rejected:
            continue
        assert type(rec) is dict, f"record {index} is not an object but was not rejected"
        event_id = findable_event_id(rec)
        if event_id is None or "event_id" in coerced.get(index, ()):
            continue  # stored without an id: nothing to find it by
        expected[event_id] = (index, rec)
    stored = rows_by_event_id(server.db_url, list(expected))
    assert set(expected) == set(stored), "records acknowledged but not stored"
    for event_id, (index, rec) in expected.items():
        row = stored[event_id]
        fields = set(coerced.get(index, ()))
        metadata = dict(row["metadata"] or {})
        column_fields = fields & COLUMN_KEYS
        invalid = metadata.pop("_invalid", {}) if column_fields else {}
        for name in TEXT_LIMITS:
            if type(rec.get(name)) is str and name not in fields:
                assert rec[name] == row[name], f"{name} not stored verbatim"
        for name, values in ENUMS.items():
            if rec.get(name) in values:
                assert rec[name] == row[name]
        for name in column_fields:
            if rec.get(name) is not None and storable(rec[name]) and name in invalid:
                assert same_json(rec[name], invalid[name]), f"_invalid.{name} of {event_id}"
        explicit = rec.get("metadata") if type(rec.get("metadata")) is dict else {}
        if "metadata" in fields:
            explicit = {}  # not an object, or holding text a store cannot hold
        extra = {k: v for k, v in rec.items() if k not in COLUMN_KEYS}
        for key, value in {**explicit, **extra}.items():
            if key in fields or (key == "_invalid" and column_fields) or not storable(key):
                continue
            assert key in metadata, f"metadata.{key} of {event_id} missing"
            assert same_json(value, metadata[key]), f"metadata.{key} of {event_id} differs"
        if not fields:
            assert same_json({**explicit, **extra}, row["metadata"] or {})


def check_response(server: ServerProcess, body: Body) -> None:
    response = requests.post(f"{server.url}/logs", data=body.data, headers=body.headers, timeout=60)
    status, document = expected_status(body)
    assert response.status_code < 500, response.text
    assert status == response.status_code, response.text
    answer = response.json()
    if status != 200:
        assert answer["detail"]
        return
    records = document["logs"]
    rejected = {r["index"] for r in answer["rejected"]}
    coerced = {c["index"]: c["fields"] for c in answer.get("coerced", [])}
    assert len(rejected) == len(answer["rejected"])
    assert all(type(r["reason"]) is str and r["reason"] for r in answer["rejected"])
    assert all(type(c["reason"]) is str and c["fields"] for c in answer.get("coerced", []))
    assert rejected <= set(range(len(records)))
    assert not rejected & set(coerced)
    # Only what is not an object is refused: every object is stored.
    assert {i for i, r in enumerate(records) if type(r) is not dict} == rejected
    assert not rejected & body.good, answer["rejected"]
    assert not set(coerced) & body.good, answer["coerced"]
    assert len(records) == answer["count"]
    assert answer["count"] == answer["accepted"] + answer["duplicates"] + len(rejected)
    # Every event_id is fresh: nothing is a duplicate.
    assert 0 == answer["duplicates"]
    check_stored(server, records, rejected, coerced)


FUZZ_SETTINGS = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
}


def fuzz(server: ServerProcess, max_examples: int) -> None:
    @settings(max_examples=max_examples, **FUZZ_SETTINGS)
    @given(bodies())
    def one_request(body: Body) -> None:
        check_response(server, body)

    one_request()
    server.assert_healthy()


def test_fuzzed_bodies_get_no_5xx_and_what_is_accepted_is_stored_verbatim(hostile_server):
    fuzz(hostile_server, max_examples=300)


@pytest.mark.slow
def test_fuzzed_bodies_at_length(hostile_server):
    fuzz(hostile_server, max_examples=3000)


# specific hostile bodies


@pytest.mark.parametrize(
    "data",
    [
        # Past sys.get_int_max_str_digits(): int() refuses to read it (was a 500).
        b'{"logs": [{"message": "m", "n": ' + b"9" * 4301 + b"}]}",
        b'{"logs": [{"message": -' + b"1" * 5000 + b"}]}",
    ],
    ids=["int-4301-digits", "negative-int-5000-digits"],
)
def test_an_integer_too_long_for_python_is_a_400(hostile_server, data):
    response = requests.post(f"{hostile_server.url}/logs", data=data, headers=JSON, timeout=30)
    assert 400 == response.status_code
    assert response.json()["detail"].startswith("body is not valid JSON: Exceeds the limit")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_text_no_store_holds_is_replaced_in_a_utf16_or_utf32_body_too(hostile_server, encoding):
    # The scan for \u0000 and surrogate escapes looks at UTF-8 bytes only:
    # these bodies are always checked record by record.
    ids = [str(uuid.uuid4()) for _ in range(4)]
    records = [
        {"message": "nul \u0000", "event_id": ids[0]},
        {"message": "lone \ud800", "event_id": ids[1]},
        {"message": "ok", "\u0000": 1, "event_id": ids[2]},
        {"message": "stored", "event_id": ids[3]},
    ]
    data = json.dumps({"logs": records}).encode(encoding)
    response = requests.post(f"{hostile_server.url}/logs", data=data, headers=JSON, timeout=30)
    assert 200 == response.status_code
    answer = response.json()
    assert ([], [0, 1, 2]) == (answer["rejected"], [c["index"] for c in answer["coerced"]])
    rows = rows_by_event_id(hostile_server.db_url, ids)
    assert ["nul \ufffd", "lone \ufffd", "ok", "stored"] == [rows[i]["message"] for i in ids]
    assert {"\ufffd": 1} == rows[ids[2]]["metadata"]


def test_sql_in_every_field_is_stored_verbatim(hostile_server):
    injection = "'; DROP TABLE logs; --"
    records = []
    for text in SQL:
        rec = {name: text[:limit] if limit else text for name, limit in TEXT_LIMITS.items()}
        rec |= {"event_id": str(uuid.uuid4()), text: text, "metadata": {text: [text, {text: text}]}}
        records.append(rec)
    records.append({"event_id": str(uuid.uuid4()), "message": injection, injection: injection})
    response = requests.post(
        f"{hostile_server.url}/logs", json={"logs": records}, headers=JSON, timeout=30
    )
    assert (200, []) == (response.status_code, response.json()["rejected"])
    check_stored(hostile_server, records, rejected=set())


def test_a_mixed_batch_stores_every_object_coerces_each_bad_value_and_rejects_the_rest(
    server_url, db_url
):
    # Objects with a value that does not fit are dicts paired with the fields
    # reported coerced; what is not an object is (value, the reason it is rejected).
    layout: list[Any] = [
        record("plain"),
        ("a string", "a record must be a JSON object, got a string"),
        (None, "a record must be a JSON object, got null"),
        (record("x", level="LOUD"), ["level"]),
        (record("x", service="s" * 101), ["service"]),
        (record("x", metadata=[1]), ["metadata"]),
        record("'; DROP TABLE logs; --", service="x'); DELETE FROM logs; --"),
        (record("nul \u0000"), ["message"]),
        (record("x", created_at="yesterday"), ["created_at"]),
        (record("x", event_id="not-a-uuid"), ["event_id"]),
        ({"level": "INFO"}, ["message"]),
        (record("x", duration_ms=float("nan")), ["duration_ms"]),
        record("emoji \U0001f600 and \\N", metadata={"nested": [{"a": None}]}, order_id=7),
    ]
    logs = [item[0] if type(item) is tuple else item for item in layout]
    rejected = [
        {"index": index, "reason": item[1]}
        for index, item in enumerate(layout)
        if type(item) is tuple and type(item[1]) is str
    ]
    coerced = [
        (index, item[1])
        for index, item in enumerate(layout)
        if type(item) is tuple and type(item[1]) is list
    ]
    data = json.dumps({"logs": logs}).encode()  # NaN written as NaN, as json does
    response = requests.post(f"{server_url}/logs", data=data, headers=JSON, timeout=30)
    assert 200 == response.status_code
    answer = response.json()
    assert rejected == answer["rejected"]
    assert coerced == [(c["index"], c["fields"]) for c in answer["coerced"]]
    assert (len(logs), len(logs) - 2, 0) == (
        answer["count"],
        answer["accepted"],
        answer["duplicates"],
    )
    rows = stored_rows(db_url)
    stored = [item[0] if type(item) is tuple else item for item in layout]
    stored = [item for item in stored if type(item) is dict]
    assert ["plain", "x", "x", "x", "'; DROP TABLE logs; --", "nul \ufffd", "x", "x", "", "x"] + [
        "emoji \U0001f600 and \\N"
    ] == [row["message"] for row in rows]
    assert len(stored) == len(rows)
    by_message = {row["message"]: row for row in rows}
    assert "x'); DELETE FROM logs; --" == by_message["'; DROP TABLE logs; --"]["service"]
    assert {"nested": [{"a": None}], "order_id": 7} == rows[-1]["metadata"]
    assert [
        ("INFO", {"level": "LOUD"}),
        ("s" * 100, {"service": "s" * 101}),
        (None, {"metadata": [1]}),
    ] == [
        (rows[1]["level"], rows[1]["metadata"]["_invalid"]),
        (rows[2]["service"], rows[2]["metadata"]["_invalid"]),
        (None, rows[3]["metadata"]["_invalid"]),
    ]
    assert (None, {"event_id": "not-a-uuid"}) == (
        rows[7]["event_id"],
        rows[7]["metadata"]["_invalid"],
    )
    assert {"duration_ms": "NaN"} == rows[9]["metadata"]["_invalid"]


# gzip bombs


def _bomb(members: int) -> bytes:
    """``members`` gzip members of 128 MiB of zeros each: 130 KB apiece on the wire."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    return (b"".join(deflate.compress(zeros) for _ in range(128)) + deflate.flush()) * members


def test_gzip_bombs_are_refused_and_the_server_process_memory_stays_bounded(tmp_path):
    # test_app.py checks the 413 in-process; here the server is its own
    # process, so its resident memory is its own to read.
    bomb = _bomb(40)  # 5 MB sent, 5 GiB inflated
    # Just under the decompressed limit, and not JSON: refused after inflating.
    not_json = gzip.compress(b"x" * (DEFAULTS.max_decompressed_bytes - 1), compresslevel=1)
    with server_process(f"sqlite:///{tmp_path}/logs.db", tmp_path / "server.log") as server:
        requests.post(f"{server.url}/logs", json={"logs": [record("warm up")]}, timeout=30)
        before = server.memory_kib()
        for _ in range(5):
            response = requests.post(f"{server.url}/logs", data=bomb, headers=GZIP, timeout=60)
            assert 413 == response.status_code
            assert response.json()["detail"].startswith("decompressed body is over the limit")
        # Peak: the body and the decompressed limit once, not 5 GiB.
        assert server.memory_kib("VmHWM") - before < 150 * 1024
        for _ in range(3):
            response = requests.post(f"{server.url}/logs", data=not_json, headers=GZIP, timeout=60)
            assert 400 == response.status_code
        # What a refused body held is freed with its answer: refused exceptions
        # kept it alive in reference cycles, 64 MiB more per bomb (now fixed).
        assert server.memory_kib() - before < 100 * 1024
        server.assert_healthy()
        ok = requests.post(f"{server.url}/logs", json={"logs": [record("after")]}, timeout=30)
        assert 200 == ok.status_code


# slow and lying clients

SLOW = Limits(body_timeout=2.0)


@pytest.fixture
def slow_limit_server(sqlite_url, serve) -> str:
    return serve(create_app(sqlite_url, limits=SLOW))


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def _request_head(content_length: int | str, extra: str = "") -> bytes:
    return (
        "POST /logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {content_length}\r\n{extra}\r\n"
    ).encode("latin-1")


def _read_until_closed(sock: socket.socket, within: float) -> bytes:
    """Everything the server sends until it closes the connection; fails the test
    if it is still open after ``within`` seconds."""
    deadline = time.monotonic() + within
    received = b""
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"connection still open after {within} s; got {received!r}"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def _post_ok(url: str, message: str) -> None:
    response = requests.post(f"{url}/logs", json={"logs": [record(message)]}, timeout=10)
    assert 200 == response.status_code


def test_a_body_trickled_a_byte_a_second_is_cut_off_with_408_without_stalling_others(
    slow_limit_server, sqlite_url
):
    stop = threading.Event()
    sock = _connect(slow_limit_server)

    def trickle() -> None:
        # At most 10 s: the server's limit is 2 s. Sending stops once the answer
        # is in, so no byte lands on a closed socket and resets the connection.
        with contextlib.suppress(OSError):
            sock.sendall(_request_head(1000))
            for _ in range(10):
                if select.select([sock], [], [], 0)[0]:
                    return
                sock.sendall(b" ")
                if stop.wait(1.0):
                    return

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        # The trickling connection does not hold up another client.
        _post_ok(slow_limit_server, "meanwhile")
        answer = _read_until_closed(sock, within=15)
    finally:
        stop.set()
        sender.join()
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"connection: close" in answer.lower()
    assert b"body not received within 2 seconds" in answer
    assert ["meanwhile"] == [row["message"] for row in stored_rows(sqlite_url)]


def test_a_content_length_longer_than_the_body_is_a_408_not_a_hang(slow_limit_server):
    with _connect(slow_limit_server) as sock:
        sock.sendall(_request_head(100) + b'{"logs": []}')
        answer = _read_until_closed(sock, within=15)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    _post_ok(slow_limit_server, "after")


def test_a_content_length_shorter_than_the_body_is_a_400_and_the_rest_is_not_a_request(
    slow_limit_server,
):
    body = json.dumps({"logs": [record("cut")]}).encode()
    with _connect(slow_limit_server) as sock:
        sock.sendall(_request_head(10) + body)
        answer = _read_until_closed(sock, within=15)
    # The first 10 bytes are not JSON; the rest is not an HTTP request, and the
    # connection is closed when it does not become one (keep-alive timeout).
    assert [b"400"] == re.findall(rb"^HTTP/1.1 (\d+) ", answer, re.MULTILINE), answer
    _post_ok(slow_limit_server, "after")


def test_a_client_leaving_in_the_middle_of_its_body_leaves_no_error_behind(hostile_server):
    for _ in range(3):
        with _connect(hostile_server.url) as sock:
            sock.sendall(_request_head(1000) + b'{"logs": [')
            time.sleep(0.2)  # let the server start reading the body before the close
    hostile_server.assert_healthy()  # no 500 traceback for the abandoned requests


def test_the_default_body_timeout_is_thirty_seconds_and_must_be_positive():
    assert 30.0 == Limits().body_timeout
    for bad in (0, -1, math.nan):
        with pytest.raises(ValueError, match="Limits.body_timeout must be positive"):
            Limits(body_timeout=bad)


def test_a_connection_trickling_its_headers_does_not_stall_other_clients(slow_limit_server):
    # uvicorn sets no deadline for the request head (only between requests):
    # a proxy in front bounds that; the event loop itself stays free.
    with _connect(slow_limit_server) as sock:
        sock.sendall(b"POST /logs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for index in range(3):
            sock.sendall(f"X-Slow-{index}: 1\r\n".encode())
            _post_ok(slow_limit_server, f"meanwhile {index}")


# header abuse

_BODY = b'{"logs": []}'


@pytest.mark.parametrize(
    ("head", "body"),
    [
        pytest.param(
            _request_head(len(_BODY), "X-Big: " + "a" * 100_000 + "\r\n"), _BODY, id="huge-header"
        ),
        pytest.param(
            _request_head(len(_BODY), "".join(f"X-H{i}: {i}\r\n" for i in range(5000))),
            _BODY,
            id="many-headers",
        ),
        pytest.param(_request_head("-1"), _BODY, id="negative-length"),
        pytest.param(_request_head("abc"), _BODY, id="text-length"),
        pytest.param(_request_head(99999999999999999999999), _BODY, id="enormous-length"),
        pytest.param(
            _request_head(len(_BODY), f"Content-Length: {len(_BODY) + 1}\r\n"),
            _BODY,
            id="two-lengths",
        ),
        pytest.param(
            _request_head(len(_BODY), "Transfer-Encoding: chunked\r\n"),
            _BODY,
            id="length-and-chunked",
        ),
        pytest.param(
            b"POST /logs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"",
            id="bad-chunk",
        ),
        pytest.param(
            _request_head(len(_BODY), "Content-Encoding: " + "gzip," * 5000 + "\r\n"),
            _BODY,
            id="long-encoding",
        ),
        pytest.param(
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64), b"", id="tls-hello"
        ),
        pytest.param(
            b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"", id="huge-path"
        ),
    ],
)
def test_abusive_request_heads_get_a_4xx_or_a_close_never_a_5xx_or_a_hang(
    slow_limit_server, head, body
):
    with _connect(slow_limit_server) as sock:
        with contextlib.suppress(OSError):  # the server may close while we still send
            sock.sendall(head + body)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        answer = _read_until_closed(sock, within=15)
    statuses = [int(s) for s in re.findall(rb"^HTTP/1.1 (\d+) ", answer, re.MULTILINE)]
    assert all(status < 500 for status in statuses), answer[:300]
    _post_ok(slow_limit_server, "after")


# API keys

KEYS = ["secret-1", "a-longer-second-secret"]


@pytest.fixture
def keyed_server(db_url, serve) -> str:
    return serve(create_app(db_url, api_keys=KEYS))


# Printable latin-1: what an HTTP header can carry.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60
).filter(lambda text: not text[:1].isspace())
authorizations = st.one_of(
    header_text,
    st.builds(lambda t: f"Bearer {t}", header_text),
    st.sampled_from(
        [
            "Bearer",
            "Bearer ",
            "Bearer secret-",
            "Bearer secret-12",
            "Bearer secret-2",
            "Bearer SECRET-1",
            "Bearer a-longer-second-secre",
            "Bearer a-longer-second-secrets",
            "Bearer secret-1,a-longer-second-secret",
            "Basic c2VjcmV0LTE6",
            "Token secret-1",
            "secret-1",
            "Bearer\tsecret-1x",
            "Bearer '; DROP TABLE logs; --",
            "Bearer " + "x" * 8000,
        ]
    ),
).filter(lambda header: header.split(" ", 1)[-1].strip() not in KEYS)


def test_without_a_valid_key_nothing_is_stored_and_stats_are_refused(keyed_server, db_url):
    @settings(max_examples=100, **FUZZ_SETTINGS)
    @given(st.one_of(st.none(), authorizations))
    def refused(authorization: str | None) -> None:
        headers = {} if authorization is None else {"Authorization": authorization}
        post = requests.post(
            f"{keyed_server}/logs", json={"logs": [record("no")]}, headers=headers, timeout=10
        )
        assert 401 == post.status_code
        assert "Bearer" == post.headers["WWW-Authenticate"]
        stats = requests.get(f"{keyed_server}/stats", headers=headers, timeout=10)
        assert 401 == stats.status_code

    refused()
    assert [] == stored_rows(db_url)
    # A refused request is refused before its body is read: a bomb costs nothing.
    bomb = requests.post(f"{keyed_server}/logs", data=_bomb(1), headers=GZIP, timeout=30)
    assert 401 == bomb.status_code
    good = {"Authorization": "Bearer a-longer-second-secret"}
    response = requests.post(
        f"{keyed_server}/logs", json={"logs": [record("yes")]}, headers=good, timeout=10
    )
    assert 200 == response.status_code
    assert ["yes"] == [row["message"] for row in stored_rows(db_url)]
