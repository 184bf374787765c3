"""``POST /v1/logs`` (log_collector/server/ingest/otlp.py, routes/otlp.py): OTLP/HTTP logs
from the OpenTelemetry Python SDK's own exporter, through the stdlib logging bridge it ships,
into a real server on both stores; OTLP/JSON written by hand as the specification spells it;
retries stored once; the OTLP answers for what is refused."""

from __future__ import annotations

import copy
import gzip
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from server_helpers import stored_rows

from log_collector.server.app import create_app

PROTOBUF = {"Content-Type": "application/x-protobuf"}
T0 = 1_733_400_000_123_456_789  # ns


# The SDK's own bridge, which the SDK marks deprecated in favour of a handler in
# opentelemetry-instrumentation-logging; it is the one the SDK ships and documents.
pytestmark = pytest.mark.filterwarnings("ignore:`LoggingHandler` in `opentelemetry-sdk`")


@pytest.fixture
def sdk_logger(server_url: str) -> Iterator[logging.Logger]:
    """A stdlib logger whose records go through the SDK's LoggingHandler and its OTLP/HTTP
    exporter (protobuf, sent as each record is emitted) to the server under test."""
    resource = Resource.create(
        {
            "service.name": "checkout",
            "service.version": "2.4.1",
            "deployment.environment.name": "staging",
            "host.name": "web-7",
        }
    )
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{server_url}/v1/logs", timeout=10))
    )
    logger = logging.getLogger(f"otlp-test-{id(provider)}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        provider.shutdown()


def by_message(db_url: str) -> dict[str, dict[str, Any]]:
    return {row["message"]: row for row in stored_rows(db_url)}


def test_the_sdks_exporter_lands_every_field_in_its_column(sdk_logger, db_url):
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("pay") as span:
        sdk_logger.warning("card declined", extra={"order_id": 42, "user.id": "u-7"})
        context = span.get_span_context()
    try:
        raise ValueError("amount must be positive")
    except ValueError:
        sdk_logger.exception("payment failed")
    sdk_logger.debug("details")
    sdk_logger.critical("down")

    rows = by_message(db_url)

    declined = rows["card declined"]
    assert ("checkout", "2.4.1", "staging", "WARN") == (
        declined["service"],
        declined["service_version"],
        declined["environment"],
        declined["level"],
    )
    assert format(context.trace_id, "032x") == declined["trace_id"]
    assert format(context.span_id, "016x") == declined["metadata"]["span_id"]
    assert (42, "u-7") == (declined["metadata"]["order_id"], declined["user_id"])
    assert "test_the_sdks_exporter_lands_every_field_in_its_column" == declined["function_name"]
    assert declined["file_path"].endswith("test_otlp.py")
    assert isinstance(declined["metadata"]["line_no"], int)
    assert "web-7" == declined["metadata"]["resource"]["host.name"]
    failed = rows["payment failed"]
    assert ("ERROR", "ValueError") == (failed["level"], failed["error_type"])
    assert "Traceback" in failed["stack_trace"]
    assert "amount must be positive" in failed["stack_trace"]
    assert "amount must be positive" == failed["metadata"]["exception.message"]
    assert ("DEBUG", "FATAL") == (rows["details"]["level"], rows["down"]["level"])
    assert all(row["event_id"] for row in rows.values())


def request_of(*records: logs_pb2.LogRecord, service: str = "billing") -> bytes:
    resource = logs_pb2.ResourceLogs()
    resource.resource.attributes.add(key="service.name").value.string_value = service
    scope = resource.scope_logs.add()
    scope.scope.name = "billing.invoices"
    scope.log_records.extend(records)
    return logs_service_pb2.ExportLogsServiceRequest(resource_logs=[resource]).SerializeToString()


def record(body: str, *, nanos: int = T0, severity: int = 9) -> logs_pb2.LogRecord:
    return logs_pb2.LogRecord(
        time_unix_nano=nanos,
        severity_number=severity,
        body=common_pb2.AnyValue(string_value=body),
    )


def test_a_retried_request_is_stored_once(server_url, db_url):
    body = request_of(record("first"), record("second", nanos=T0 + 1))

    answers = [
        requests.post(f"{server_url}/v1/logs", data=body, headers=PROTOBUF, timeout=10)
        for _ in range(2)
    ]

    assert [200, 200] == [a.status_code for a in answers]
    assert ["first", "second"] == [row["message"] for row in stored_rows(db_url)]
    response = logs_service_pb2.ExportLogsServiceResponse.FromString(answers[1].content)
    assert not response.HasField("partial_success")


def test_a_uuid_in_log_record_uid_is_the_event_id(server_url, db_url):
    uid = "01939a4e-7c1a-7b3e-9f00-0123456789ab"
    with_uid = record("mine")
    with_uid.attributes.add(key="log.record.uid").value.string_value = uid
    not_a_uuid = record("theirs", nanos=T0 + 1)
    not_a_uuid.attributes.add(key="log.record.uid").value.string_value = "not-a-uuid"

    requests.post(
        f"{server_url}/v1/logs", data=request_of(with_uid, not_a_uuid), headers=PROTOBUF, timeout=10
    )

    mine, theirs = stored_rows(db_url)
    assert uid == mine["event_id"] and "log.record.uid" not in (mine["metadata"] or {})
    assert theirs["event_id"] not in (None, uid)


def test_a_gzipped_protobuf_body_is_read(server_url, db_url):
    body = gzip.compress(request_of(record("zipped")))

    answer = requests.post(
        f"{server_url}/v1/logs",
        data=body,
        headers={**PROTOBUF, "Content-Encoding": "gzip"},
        timeout=10,
    )

    assert 200 == answer.status_code
    assert ["zipped"] == [row["message"] for row in stored_rows(db_url)]


OTLP_JSON = {
    "resourceLogs": [
        {
            "resource": {
                "attributes": [
                    {"key": "service.name", "value": {"stringValue": "orders"}},
                    {"key": "deployment.environment", "value": {"stringValue": "production"}},
                ]
            },
            "scopeLogs": [
                {
                    "scope": {"name": "orders.api", "version": "1.0"},
                    "logRecords": [
                        {
                            "timeUnixNano": str(T0),
                            "severityNumber": 17,
                            "severityText": "Error",
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "flags": 1,
                            "body": {"stringValue": "order failed"},
                            "attributes": [
                                {"key": "http.request.method", "value": {"stringValue": "POST"}},
                                {"key": "url.path", "value": {"stringValue": "/orders"}},
                                {"key": "session.id", "value": {"stringValue": "s-1"}},
                                {"key": "retries", "value": {"intValue": "3"}},
                                {"key": "ratio", "value": {"doubleValue": 0.5}},
                                {
                                    "key": "tags",
                                    "value": {
                                        "arrayValue": {
                                            "values": [{"stringValue": "a"}, {"boolValue": True}]
                                        }
                                    },
                                },
                            ],
                        },
                        {
                            "observedTimeUnixNano": str(T0 + 5),
                            "body": {
                                "kvlistValue": {
                                    "values": [{"key": "event", "value": {"stringValue": "x"}}]
                                }
                            },
                        },
                    ],
                }
            ],
        }
    ]
}


def test_an_otlp_json_body_maps_like_protobuf(server_url, db_url):
    answer = requests.post(f"{server_url}/v1/logs", json=OTLP_JSON, timeout=10)

    assert (200, {}) == (answer.status_code, answer.json())
    failed, structured = stored_rows(db_url)
    assert ("orders", "production", "ERROR", "POST", "/orders", "s-1") == (
        failed["service"],
        failed["environment"],
        failed["level"],
        failed["method"],
        failed["path"],
        failed["session_id"],
    )
    assert "5b8efff798038103d269b633813fc60c" == failed["trace_id"]
    assert {"span_id": "eee19b7ec3c1b174", "trace_flags": 1, "retries": 3, "ratio": 0.5} == {
        k: failed["metadata"][k] for k in ("span_id", "trace_flags", "retries", "ratio")
    }
    assert ["a", True] == failed["metadata"]["tags"]
    assert {"name": "orders.api", "version": "1.0"} == failed["metadata"]["scope"]
    assert T0 / 1e9 == pytest.approx(failed["created_at"], abs=1e-5)
    assert {"event": "x"} == json.loads(structured["message"]) == structured["metadata"]["body"]
    assert (T0 + 5) / 1e9 == pytest.approx(structured["created_at"], abs=1e-5)
    assert "INFO" == structured["level"]


def test_the_same_records_get_the_same_event_ids_whatever_the_encoding(server_url, db_url):
    requests.post(f"{server_url}/v1/logs", json=OTLP_JSON, timeout=10)
    requests.post(f"{server_url}/v1/logs", json=OTLP_JSON, timeout=10)

    assert 2 == len(stored_rows(db_url))


def test_a_record_over_the_value_limit_is_refused_alone_in_partial_success(server_url, db_url):
    doc = copy.deepcopy(OTLP_JSON)
    values = [{"intValue": str(i)} for i in range(100_001)]
    doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["attributes"].append(
        {"key": "many", "value": {"arrayValue": {"values": values}}}
    )

    answer = requests.post(f"{server_url}/v1/logs", json=doc, timeout=10)

    assert 200 == answer.status_code
    partial = answer.json()["partialSuccess"]
    assert "1" == partial["rejectedLogRecords"]
    assert partial["errorMessage"].startswith("log record 0: metadata holds more than")
    assert ["INFO"] == [row["level"] for row in stored_rows(db_url)]


def test_a_body_that_is_not_a_request_is_400_with_a_status_and_nothing_stored(server_url, db_url):
    answer = requests.post(
        f"{server_url}/v1/logs", data=b"\xff\xff\xff garbage", headers=PROTOBUF, timeout=10
    )

    assert 400 == answer.status_code
    status = status_pb2.Status.FromString(answer.content)
    assert "ExportLogsServiceRequest" in status.message
    assert [] == stored_rows(db_url)


def test_another_content_type_is_415(server_url, db_url):
    answer = requests.post(
        f"{server_url}/v1/logs", data=b"{}", headers={"Content-Type": "text/plain"}, timeout=10
    )

    assert 415 == answer.status_code
    assert "application/x-protobuf" in answer.json()["message"]


def test_the_ingest_key_guards_it_like_post_logs(sqlite_url, serve):
    url = serve(create_app(sqlite_url, api_keys=["k-ingest"]))
    body = request_of(record("guarded"))

    refused = requests.post(f"{url}/v1/logs", data=body, headers=PROTOBUF, timeout=10)
    allowed = requests.post(
        f"{url}/v1/logs",
        data=body,
        headers={**PROTOBUF, "Authorization": "Bearer k-ingest"},
        timeout=10,
    )

    assert (401, 200) == (refused.status_code, allowed.status_code)
    assert ["guarded"] == [row["message"] for row in stored_rows(sqlite_url)]


def test_more_records_than_the_limit_is_413(server_url, db_url):
    body = request_of(*[record(f"r{i}", nanos=T0 + i) for i in range(10_001)])

    answer = requests.post(f"{server_url}/v1/logs", data=body, headers=PROTOBUF, timeout=30)

    assert 413 == answer.status_code
    assert "split the batch" in status_pb2.Status.FromString(answer.content).message
    assert [] == stored_rows(db_url)


def test_text_no_store_can_hold_is_replaced_and_duration_lands_in_its_column(server_url, db_url):
    nul = record("before\x00after")
    nul.attributes.add(key="note").value.string_value = "x\x00y"
    timed = record("timed", nanos=T0 + 1)
    timed.attributes.add(key="duration_ms").value.double_value = 12.5
    timed.attributes.add(key="action_type").value.string_value = "click"

    answer = requests.post(
        f"{server_url}/v1/logs", data=request_of(nul, timed), headers=PROTOBUF, timeout=10
    )

    assert 200 == answer.status_code
    first, second = stored_rows(db_url)
    assert ("before\ufffdafter", "x\ufffdy") == (first["message"], first["metadata"]["note"])
    assert (12.5, "click") == (second["duration_ms"], second["action_type"])
