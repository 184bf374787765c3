"""OTLP/HTTP logs (``POST /v1/logs``): an ``ExportLogsServiceRequest``, as protobuf
(``application/x-protobuf``) or OTLP/JSON (``application/json``), turned into the records
``batch.normalise_all`` takes, so the rules of ``validate`` apply to them as to ``POST /logs``.

What goes where (https://opentelemetry.io/docs/specs/otel/logs/data-model/ and the semantic
conventions https://opentelemetry.io/docs/specs/semconv/); the first attribute present wins:

============================================  =====================================
OTLP                                          column (or metadata key)
============================================  =====================================
resource ``service.name``                     service
resource ``service.version``                  service_version
resource ``deployment.environment.name``,     environment
``deployment.environment``
``severity_number`` 1-4, 5-8, 9-12, 13-16,    level TRACE, DEBUG, INFO, WARN, ERROR,
17-20, 21-24 (0: ``severity_text``, else      FATAL
INFO)
``body``                                      message (a structured body: its JSON text,
                                              and the value in metadata ``body``)
``time_unix_nano``, else                      created_at (Unix seconds); neither: the
``observed_time_unix_nano``                   time the server received it
``trace_id``                                  trace_id (32 hex digits)
``span_id``, ``flags``                        metadata ``span_id`` (hex), ``trace_flags``
``exception.type``                            error_type
``exception.stacktrace``                      stack_trace
``code.function.name``, ``code.function``     function_name
``code.file.path``, ``code.filepath``         file_path
``code.line.number``, ``code.lineno``         metadata ``line_no`` (as the client sends it)
``http.request.method``, ``http.method``      method
``url.path``, ``http.route``,                 path
``http.target``
``user.id``, ``enduser.id``                   user_id
``session.id``                                session_id
``log.record.uid`` (a UUID)                   event_id
``log_type``, ``duration_ms``,                log_type, duration_ms, action_type
``action_type`` (this project's client)
other attributes                              metadata, under their own names
other resource attributes, the scope          metadata ``resource``, ``scope``
``severity_text`` other than the level,       metadata ``severity_text``, ``event_name``
``event_name``
============================================  =====================================

``event_id`` is the record's ``log.record.uid`` attribute when that is a UUID (the client's
``wire="otlp"`` sends its event_id there); otherwise it is derived from the record: a UUID
(version 8, RFC 9562) made of the SHA-256 of the mapped record and its exact nanosecond times.
An SDK or a Collector that sends the same records again (a retry) gets the same ids, and the
server stores them once; two records alike in every field and time are one record.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import uuid
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from ..limits import Limits
from .decode import Body, IngestError, decode_json, inflated, json_values

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_TEXT_LEVELS = {
    **{name: name for name in _LEVELS},
    "WARNING": "WARN",
    "CRITICAL": "FATAL",
    "ERR": "ERROR",
}
_RESOURCE_COLUMNS = (
    ("service", ("service.name",)),
    ("service_version", ("service.version",)),
    ("environment", ("deployment.environment.name", "deployment.environment")),
)
_ATTRIBUTE_COLUMNS = (
    ("error_type", ("exception.type",)),
    ("stack_trace", ("exception.stacktrace",)),
    ("function_name", ("code.function.name", "code.function")),
    ("file_path", ("code.file.path", "code.filepath")),
    ("method", ("http.request.method", "http.method")),
    ("path", ("url.path", "http.route", "http.target")),
    ("user_id", ("user.id", "enduser.id")),
    ("session_id", ("session.id",)),
    # This project's own fields, as the client's wire="otlp" sends them.
    ("log_type", ("log_type",)),
    ("duration_ms", ("duration_ms",)),
    ("action_type", ("action_type",)),
)
_LINE_KEYS = ("code.line.number", "code.lineno")
# A record's own unique id (semantic conventions, log.record.uid): the client's event_id
# travels in it, so a record keeps its id whichever wire carried it.
_UID = "log.record.uid"
_MAPPED_RESOURCE = {key for _, keys in _RESOURCE_COLUMNS for key in keys}
_MAPPED_ATTRIBUTES = {key for _, keys in _ATTRIBUTE_COLUMNS for key in keys} | {
    *_LINE_KEYS,
    _UID,
}


def media_type(content_type: str | None) -> str | None:
    """``PROTOBUF`` or ``JSON`` for a Content-Type OTLP/HTTP allows (parameters aside);
    None for any other."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind if kind in (PROTOBUF, JSON) else None


def level_of(number: int, text: str) -> str:
    """The level of a severity number (1-24), else of its text, else INFO."""
    if 1 <= number <= 24:
        return _LEVELS[(number - 1) // 4]
    return _TEXT_LEVELS.get(text.strip().upper(), "INFO")


def decode_otlp(body: bytes, gzipped: bool, kind: str, limits: Limits) -> Body:
    """The records of an ``ExportLogsServiceRequest`` body (``kind``: PROTOBUF or JSON),
    within the same limits as ``POST /logs``; IngestError (400, 413) otherwise."""
    data = inflated(body, gzipped, limits)
    if kind == PROTOBUF:
        request = logs_service_pb2.ExportLogsServiceRequest()
        try:
            request.ParseFromString(bytes(data))
        except (DecodeError, RecursionError) as exc:
            raise IngestError(400, f"body is not an ExportLogsServiceRequest: {exc}") from None
        reader = _ProtoReader(limits.max_values_per_request)
        records = reader.records(request)
        values = reader.values
    else:
        values = json_values(data, limits)
        records = _JsonReader().records(decode_json(data)[0])
    if len(records) > limits.max_records:
        raise IngestError(
            413,
            f"{len(records)} log records in one request, over the limit of "
            f"{limits.max_records}: split the batch",
        )
    return Body(
        records,
        check_text=_holds_bad_text(records),
        values=values,
        max_values_per_record=limits.max_values_per_record,
    )


def _holds_bad_text(records: list[dict[str, Any]]) -> bool:
    """Whether some string of the records holds what no store can (NUL, a lone surrogate),
    so that each record goes through ``validate``'s text check; most batches take the
    columnar path instead. orjson writes NUL as ``\\u0000`` and refuses a lone surrogate
    (an integer past 64 bits too, which ``validate`` also handles)."""
    try:
        return b"\\u0000" in orjson.dumps(records, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError
        return True


def answer(kind: str, rejected: int, message: str) -> bytes:
    """An ``ExportLogsServiceResponse`` body: ``partial_success`` when records were refused."""
    if kind == PROTOBUF:
        response = logs_service_pb2.ExportLogsServiceResponse()
        if rejected:
            response.partial_success.rejected_log_records = rejected
            response.partial_success.error_message = message
        return response.SerializeToString()
    doc: dict[str, Any] = {}
    if rejected:
        # OTLP/JSON writes 64-bit integers as decimal strings.
        doc["partialSuccess"] = {"rejectedLogRecords": str(rejected), "errorMessage": message}
    return orjson.dumps(doc)


def status(kind: str | None, code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` body, as the OTLP/HTTP specification asks of an error answer:
    protobuf for a protobuf request, JSON otherwise."""
    if kind == PROTOBUF:
        return status_pb2.Status(code=code, message=message).SerializeToString()
    return orjson.dumps({"code": code, "message": message})


class _Reader:
    """The walk shared by both encodings; a subclass reads one encoding's values."""

    def records(self, request: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for resource_logs in self.resource_logs(request):
            resource = self.attributes(self.resource_attributes(resource_logs))
            common: dict[str, Any] = {}
            for column, keys in _RESOURCE_COLUMNS:
                found = _first(resource, keys)
                if found is not None:
                    common[column] = found
            rest = {k: v for k, v in resource.items() if k not in _MAPPED_RESOURCE}
            for scope_logs in self.scope_logs(resource_logs):
                scope = self.scope(scope_logs)
                for record in self.log_records(scope_logs):
                    out.append(self.record(record, common, rest, scope))
        return out

    def record(
        self, record: Any, common: dict[str, Any], resource: dict[str, Any], scope: dict[str, Any]
    ) -> dict[str, Any]:
        fields = self.fields(record)
        attributes = self.attributes(fields["attributes"])
        mapped: dict[str, Any] = dict(common)
        metadata: dict[str, Any] = {}
        number, text = fields["severity_number"], fields["severity_text"]
        mapped["level"] = level = level_of(number, text)
        if text and text.strip().upper() != level:
            metadata["severity_text"] = text
        body = fields["body"]
        if isinstance(body, str) or body is None:
            mapped["message"] = body or ""
        else:
            mapped["message"] = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS).decode()
            metadata["body"] = body
        nanos = fields["time_unix_nano"] or fields["observed_time_unix_nano"]
        if nanos:
            mapped["created_at"] = nanos / 1e9
        if fields["trace_id"]:
            mapped["trace_id"] = fields["trace_id"]
        if fields["span_id"]:
            metadata["span_id"] = fields["span_id"]
        if fields["flags"]:
            metadata["trace_flags"] = fields["flags"]
        if fields["event_name"]:
            metadata["event_name"] = fields["event_name"]
        for column, keys in _ATTRIBUTE_COLUMNS:
            found = _first(attributes, keys)
            if found is not None:
                mapped[column] = found
        line = _first(attributes, _LINE_KEYS)
        if line is not None:
            metadata["line_no"] = line
        for key, value in attributes.items():
            if key not in _MAPPED_ATTRIBUTES:
                metadata[key] = value
        if resource:
            metadata["resource"] = resource
        if scope:
            metadata["scope"] = scope
        if metadata:
            mapped["metadata"] = metadata
        uid = _uuid(attributes.get(_UID))
        mapped["event_id"] = uid or _event_id(
            mapped, fields["time_unix_nano"], fields["observed_time_unix_nano"]
        )
        return mapped

    # One encoding's structure: implemented by _ProtoReader and _JsonReader.
    def resource_logs(self, request: Any) -> list[Any]: ...  # pragma: no cover
    def resource_attributes(self, resource_logs: Any) -> list[Any]: ...  # pragma: no cover
    def scope_logs(self, resource_logs: Any) -> list[Any]: ...  # pragma: no cover
    def scope(self, scope_logs: Any) -> dict[str, Any]: ...  # pragma: no cover
    def log_records(self, scope_logs: Any) -> list[Any]: ...  # pragma: no cover
    def fields(self, record: Any) -> dict[str, Any]: ...  # pragma: no cover
    def attributes(self, pairs: Any) -> dict[str, Any]: ...  # pragma: no cover


class _ProtoReader(_Reader):
    """Protobuf, decoded by upb. The values turned into Python objects are counted: a body
    of millions of tiny values would otherwise cost gigabytes (``decode`` counts a JSON
    body's values before decoding it, for the same reason)."""

    def __init__(self, max_values: int) -> None:
        self._max = self._left = max_values

    @property
    def values(self) -> int:
        """The values turned into Python objects so far."""
        return self._max - self._left

    def resource_logs(self, request: Any) -> list[Any]:
        return request.resource_logs

    def resource_attributes(self, resource_logs: Any) -> list[Any]:
        return resource_logs.resource.attributes

    def scope_logs(self, resource_logs: Any) -> list[Any]:
        return resource_logs.scope_logs

    def scope(self, scope_logs: Any) -> dict[str, Any]:
        scope = scope_logs.scope
        return _scope(scope.name, scope.version, self.attributes(scope.attributes))

    def log_records(self, scope_logs: Any) -> list[Any]:
        return scope_logs.log_records

    def fields(self, record: Any) -> dict[str, Any]:
        return {
            "time_unix_nano": record.time_unix_nano,
            "observed_time_unix_nano": record.observed_time_unix_nano,
            "severity_number": record.severity_number,
            "severity_text": record.severity_text,
            "body": self.value(record.body) if record.HasField("body") else None,
            "attributes": record.attributes,
            "trace_id": _hex_id(record.trace_id),
            "span_id": _hex_id(record.span_id),
            "flags": record.flags,
            "event_name": record.event_name,
        }

    def attributes(self, pairs: Any) -> dict[str, Any]:
        return {pair.key: self.value(pair.value) for pair in pairs}

    def value(self, value: common_pb2.AnyValue) -> Any:
        self._left -= 1
        if self._left < 0:
            raise IngestError(413, "body holds too many values: split the batch")
        kind = value.WhichOneof("value")
        if kind is None:
            return None
        if kind == "array_value":
            return [self.value(v) for v in value.array_value.values]
        if kind == "kvlist_value":
            return self.attributes(value.kvlist_value.values)
        if kind == "bytes_value":
            return base64.b64encode(value.bytes_value).decode("ascii")
        return _finite(getattr(value, kind))


class _JsonReader(_Reader):
    """OTLP/JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): field
    names in lowerCamelCase (snake_case is read too), trace and span ids as hex, enums as
    numbers, 64-bit integers as numbers or decimal strings."""

    def resource_logs(self, request: Any) -> list[Any]:
        if type(request) is not dict:
            raise IngestError(400, "body must be a JSON object (an ExportLogsServiceRequest)")
        return _list(request, "resourceLogs", "resource_logs")

    def resource_attributes(self, resource_logs: Any) -> list[Any]:
        return _list(_object(resource_logs, "resource"), "attributes")

    def scope_logs(self, resource_logs: Any) -> list[Any]:
        return _list(resource_logs, "scopeLogs", "scope_logs")

    def scope(self, scope_logs: Any) -> dict[str, Any]:
        scope = _object(scope_logs, "scope")
        return _scope(
            _string(scope.get("name")),
            _string(scope.get("version")),
            self.attributes(_list(scope, "attributes")),
        )

    def log_records(self, scope_logs: Any) -> list[Any]:
        return _list(scope_logs, "logRecords", "log_records")

    def fields(self, record: Any) -> dict[str, Any]:
        if type(record) is not dict:
            raise IngestError(400, "a logRecord must be a JSON object")
        get = lambda *names: next((record[n] for n in names if n in record), None)  # noqa: E731
        body = get("body")
        return {
            "time_unix_nano": _integer(get("timeUnixNano", "time_unix_nano"), "timeUnixNano"),
            "observed_time_unix_nano": _integer(
                get("observedTimeUnixNano", "observed_time_unix_nano"), "observedTimeUnixNano"
            ),
            "severity_number": _integer(get("severityNumber", "severity_number"), "severityNumber"),
            "severity_text": _string(get("severityText", "severity_text")),
            "body": _json_value(body) if body is not None else None,
            "attributes": _list(record, "attributes"),
            "trace_id": _json_id(get("traceId", "trace_id"), 16, "traceId"),
            "span_id": _json_id(get("spanId", "span_id"), 8, "spanId"),
            "flags": _integer(get("flags"), "flags"),
            "event_name": _string(get("eventName", "event_name")),
        }

    def attributes(self, pairs: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pair in pairs:
            if type(pair) is not dict or type(pair.get("key")) is not str:
                raise IngestError(400, 'an attribute must be {"key": string, "value": AnyValue}')
            value = pair.get("value")
            out[pair["key"]] = _json_value(value) if value is not None else None
        return out


_JSON_SCALARS = {
    "stringValue": str,
    "string_value": str,
    "boolValue": bool,
    "bool_value": bool,
    "doubleValue": float,
    "double_value": float,
}


def _json_value(value: Any) -> Any:
    if type(value) is not dict:
        raise IngestError(400, 'an AnyValue must be a JSON object such as {"stringValue": ...}')
    for key, item in value.items():
        if key in _JSON_SCALARS:
            kind = _JSON_SCALARS[key]
            if kind is float and type(item) in (int, float, str):
                return _finite(_number(item, key))
            if type(item) is not kind:
                raise IngestError(400, f"{key} must be a JSON {kind.__name__}")
            return item
        if key in ("intValue", "int_value"):
            return _integer(item, key)
        if key in ("arrayValue", "array_value"):
            items = item.get("values", []) if type(item) is dict else None
            if type(items) is not list:
                raise IngestError(400, f'{key} must be {{"values": [AnyValue, ...]}}')
            return [_json_value(v) for v in items]
        if key in ("kvlistValue", "kvlist_value"):
            items = item.get("values", []) if type(item) is dict else None
            if type(items) is not list:
                raise IngestError(400, f'{key} must be {{"values": [KeyValue, ...]}}')
            return _JsonReader().attributes(items)
        if key in ("bytesValue", "bytes_value"):
            if type(item) is not str:
                raise IngestError(400, f"{key} must be a base64 string")
            return item
    return None  # an empty AnyValue


def _list(doc: Any, *names: str) -> list[Any]:
    if type(doc) is not dict:
        raise IngestError(400, f"expected a JSON object holding {names[0]}")
    value = next((doc[n] for n in names if n in doc), None)
    if value is None:
        return []
    if type(value) is not list:
        raise IngestError(400, f"{names[0]} must be a JSON array")
    return value


def _object(doc: Any, name: str) -> dict[str, Any]:
    value = doc.get(name) if type(doc) is dict else None
    if value is None:
        return {}
    if type(value) is not dict:
        raise IngestError(400, f"{name} must be a JSON object")
    return value


def _string(value: Any) -> str:
    if value is None:
        return ""
    if type(value) is not str:
        raise IngestError(400, f"expected a string, got {type(value).__name__}")
    return value


def _integer(value: Any, name: str) -> int:
    """An OTLP/JSON integer: a number or a decimal string (64-bit values are strings)."""
    if value is None:
        return 0
    if type(value) is int:
        return value
    if type(value) is str and value.lstrip("-").isdigit() and len(value) <= 20:
        return int(value)
    raise IngestError(400, f"{name} must be an integer or a decimal string")


def _number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise IngestError(400, f"{name} must be a number") from None


def _json_id(value: Any, size: int, name: str) -> str | None:
    """A trace or span id: ``size`` bytes as hex (OTLP/JSON); empty or all zeros: none."""
    if value in (None, ""):
        return None
    try:
        raw = bytes.fromhex(value) if type(value) is str else b""
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise IngestError(400, f"{name} must be {2 * size} hex digits")
    return _hex_id(raw)


def _hex_id(raw: bytes) -> str | None:
    return binascii.hexlify(raw).decode("ascii") if raw and any(raw) else None


def _finite(value: Any) -> Any:
    """NaN and infinities (a double AnyValue may hold them) as their text, as metadata
    keeps them."""
    if type(value) is float and not math.isfinite(value):
        return str(value).replace("inf", "Infinity").replace("nan", "NaN")
    return value


def _first(values: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = values.get(key)
        if value is not None:
            return value
    return None


def _scope(name: str, version: str, attributes: dict[str, Any]) -> dict[str, Any]:
    scope: dict[str, Any] = {}
    if name:
        scope["name"] = name
    if version:
        scope["version"] = version
    if attributes:
        scope["attributes"] = attributes
    return scope


def _uuid(value: Any) -> str | None:
    if type(value) is not str:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _event_id(mapped: dict[str, Any], nanos: int, observed: int) -> str:
    canonical = orjson.dumps(
        [mapped, nanos, observed], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    )
    digest = hashlib.sha256(canonical).digest()
    raw = bytearray(digest[:16])
    raw[6] = (raw[6] & 0x0F) | 0x80  # version 8: custom
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 9562 variant
    return str(uuid.UUID(bytes=bytes(raw)))
