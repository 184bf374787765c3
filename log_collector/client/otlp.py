"""The OTLP wire (``AsyncLogClient(..., wire="otlp")``): the spool's records sent to any
OTLP/HTTP logs endpoint (``{server_url}/v1/logs``: the OpenTelemetry Collector, this project's
server, other backends) as a gzip'd protobuf ``ExportLogsServiceRequest``, with the same
spool, acknowledgements, retries and dead letters as the default wire.

A record's fields go where the semantic conventions put them
(https://opentelemetry.io/docs/specs/semconv/), the reverse of the server's
``ingest/otlp.py``:

=====================================  ============================================
record                                 OTLP
=====================================  ============================================
service, service_version, environment  resource ``service.name``, ``service.version``,
                                       ``deployment.environment.name``
level                                  ``severity_number`` (TRACE 1, DEBUG 5, INFO 9,
                                       WARN 13, ERROR 17, FATAL 21), ``severity_text``
message                                ``body`` (a string)
created_at                             ``time_unix_nano``
trace_id (32 hex digits)               ``trace_id``
event_id                               ``log.record.uid``
function_name, file_path, line_no      ``code.function.name``, ``code.file.path``,
                                       ``code.line.number``
error_type, stack_trace                ``exception.type``, ``exception.stacktrace``
method, path                           ``http.request.method``, ``url.path``
user_id, session_id                    ``user.id``, ``session.id``
every other field                      an attribute of its own name
=====================================  ============================================

The answer: a 2xx whose body is an ``ExportLogsServiceResponse`` acknowledges the batch. Its
``partial_success`` counts the records the endpoint refused; when its ``error_message`` names
each of them as ``log record N: reason`` (this project's server does), those are
dead-lettered with the reason, as the default wire's ``rejected`` are; when it does not, the
endpoint has still taken the batch, so the rows are acknowledged and the refusals are counted
(``stats()["rejected_unnamed"]``) and warned about: resending could only duplicate the rest.
Every other status is read as on the default wire (``transport.classify``).

Requires the ``otlp`` extra (``opentelemetry-proto``, ``googleapis-common-protos`` for the
error answers); only this wire imports it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

from .._version import __version__
from .transport import (
    DEFLATED,
    GZIP_LEVEL,
    GZIP_WBITS,
    Kind,
    Outcome,
    Response,
    classify,
    compressobj,
)

CONTENT_TYPE = "application/x-protobuf"
PATH = "/v1/logs"

_SEVERITY = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}
_RESOURCE = (
    ("service", "service.name"),
    ("service_version", "service.version"),
    ("environment", "deployment.environment.name"),
)
_ATTRIBUTES = {
    "event_id": "log.record.uid",
    "function_name": "code.function.name",
    "file_path": "code.file.path",
    "line_no": "code.line.number",
    "error_type": "exception.type",
    "stack_trace": "exception.stacktrace",
    "method": "http.request.method",
    "path": "url.path",
    "user_id": "user.id",
    "session_id": "session.id",
}
_OWN = {"level", "message", "created_at", "trace_id", *(key for key, _ in _RESOURCE)}
_INT64 = range(-(2**63), 2**63)
_NAMED = re.compile(r"log record (\d+): ")


def encode(bodies: list[str], *, compress: bool) -> bytes:
    """The records (the spool's JSON texts) as one ``ExportLogsServiceRequest``, in their
    order, one ``ResourceLogs`` per (service, service_version, environment)."""
    resources: dict[tuple[Any, ...], logs_pb2.ScopeLogs] = {}
    request = logs_service_pb2.ExportLogsServiceRequest()
    for body in bodies:
        record = orjson.loads(body)
        if type(record) is not dict:
            record = {"message": body}
        key = tuple(record.get(field) for field, _ in _RESOURCE)
        scope = resources.get(key)
        if scope is None:
            resource_logs = request.resource_logs.add()
            for (_, name), value in zip(_RESOURCE, key, strict=True):
                if value is not None:
                    _set(resource_logs.resource.attributes.add(key=name).value, value)
            scope = resources[key] = resource_logs.scope_logs.add()
            scope.scope.name, scope.scope.version = "log_collector", __version__
        _log_record(scope.log_records.add(), record)
    data = request.SerializeToString()
    if not compress:
        return data
    deflate = compressobj(GZIP_LEVEL, DEFLATED, GZIP_WBITS)
    return deflate.compress(data) + deflate.flush()


def _log_record(out: logs_pb2.LogRecord, record: Mapping[str, Any]) -> None:
    level = record.get("level")
    if isinstance(level, str):
        out.severity_text = level
        out.severity_number = _SEVERITY.get(level.upper(), 0)
    message = record.get("message")
    if message is not None:
        _set(out.body, message)
    created_at = record.get("created_at")
    if type(created_at) in (int, float) and created_at > 0:
        out.time_unix_nano = int(created_at * 1e9)
    trace_id = record.get("trace_id")
    trace = _trace_bytes(trace_id)
    if trace is not None:
        out.trace_id = trace
    elif trace_id is not None:
        _set(out.attributes.add(key="trace_id").value, trace_id)
    for key, value in record.items():
        if key in _OWN or value is None:
            continue
        _set(out.attributes.add(key=_ATTRIBUTES.get(key, key)).value, value)


def _trace_bytes(value: Any) -> bytes | None:
    if type(value) is not str or len(value) != 32:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if any(raw) else None


def _set(out: common_pb2.AnyValue, value: Any) -> None:
    """``value`` (decoded JSON) as an AnyValue."""
    kind = type(value)
    if kind is str:
        out.string_value = value
    elif kind is bool:
        out.bool_value = value
    elif kind is int:
        if value in _INT64:
            out.int_value = value
        else:
            out.string_value = str(value)
    elif kind is float:
        out.double_value = value
    elif kind is list:
        values = out.array_value.values
        for item in value:
            _set(values.add(), item)
    elif kind is dict:
        pairs = out.kvlist_value.values
        for key, item in value.items():
            _set(pairs.add(key=str(key)).value, item)
    elif value is not None:
        out.string_value = str(value)


def classify_otlp(
    response: Response | None, error: BaseException | None = None, *, count: int = 0
) -> Outcome:
    """What an OTLP endpoint's answer (or the exception instead of one) means for a batch."""
    if response is None or not 200 <= response.status_code < 300:
        outcome = classify(response, error, count=count)
        detail = _status_message(response)
        if detail and outcome.status is not None:
            return Outcome(outcome.kind, outcome.status, outcome.retry_after, detail=detail)
        return outcome
    kind = (response.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    content = getattr(response, "content", b"")
    try:
        if kind == CONTENT_TYPE or (not kind and not content):
            answer = logs_service_pb2.ExportLogsServiceResponse.FromString(content)
            rejected = answer.partial_success.rejected_log_records
            message = answer.partial_success.error_message
        elif kind == "application/json":
            partial = (orjson.loads(content) or {}).get("partialSuccess") or {}
            rejected = int(partial.get("rejectedLogRecords") or 0)
            message = str(partial.get("errorMessage") or "")
        else:
            raise ValueError(kind or "no Content-Type")
    except (ValueError, TypeError, AttributeError) as exc:
        return Outcome(
            Kind.MISDIRECTED,
            response.status_code,
            detail=f"not an OTLP endpoint: the answer is not an ExportLogsServiceResponse ({exc})",
        )
    if not rejected:
        return Outcome(Kind.ACKED, response.status_code)
    named = _named(message, count)
    if len(named) == rejected:
        return Outcome(Kind.ACKED, response.status_code, rejected=named)
    return Outcome(Kind.ACKED, response.status_code, unnamed=rejected, detail=message[:500])


def _named(message: str, count: int) -> tuple[tuple[int, str], ...]:
    """``(index, reason)`` of each ``log record N: reason`` in ``message`` (``; ``-separated)."""
    found: dict[int, str] = {}
    for part in message.split("; "):
        match = _NAMED.match(part)
        if match and int(match.group(1)) < count:
            found.setdefault(int(match.group(1)), part[match.end() :])
    return tuple(sorted(found.items()))


def _status_message(response: Response | None) -> str:
    """The message of a ``google.rpc.Status`` error body, protobuf or JSON; "" if none."""
    if response is None:
        return ""
    content = getattr(response, "content", b"")
    kind = (response.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    try:
        if kind == CONTENT_TYPE:
            return status_pb2.Status.FromString(content).message[:500]
        if kind == "application/json":
            doc = orjson.loads(content)
            return str(doc.get("message") or doc.get("detail") or "")[:500]
    except Exception:  # a body that says nothing readable: the status says enough
        return ""
    return ""
