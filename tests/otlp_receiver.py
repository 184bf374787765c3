"""A bare OTLP/HTTP logs receiver on 127.0.0.1 for the client's ``wire="otlp"`` tests: it
decodes each ``POST /v1/logs`` with opentelemetry-proto (gzip or not) and keeps what it got,
as any OpenTelemetry backend would see it, and can be scripted to answer otherwise (a
partial success, an error status with Retry-After, an HTML page).
"""

from __future__ import annotations

import collections
import gzip
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2


def any_value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


@dataclass
class Received:
    """One log record as it arrived: its resource's attributes, its own fields."""

    resource: dict[str, Any]
    scope: str
    time_unix_nano: int
    severity_number: int
    severity_text: str
    body: Any
    trace_id: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Answer:
    status: int = 200
    rejected: int = 0
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    html: bool = False


class OtlpReceiver:
    def __init__(self) -> None:
        self.records: list[Received] = []
        self.requests: list[dict[str, str]] = []  # each request's headers
        self._script: collections.deque[Answer] = collections.deque()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = receiver._take(dict(self.headers.items()), body)
                if answer.html:
                    payload, kind = b"<html><body>Sign in</body></html>", "text/html"
                elif answer.status == 200:
                    response = logs_service_pb2.ExportLogsServiceResponse()
                    if answer.rejected:
                        response.partial_success.rejected_log_records = answer.rejected
                        response.partial_success.error_message = answer.message
                    payload, kind = response.SerializeToString(), "application/x-protobuf"
                else:
                    payload, kind = b"", "application/x-protobuf"
                self.send_response(answer.status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def answer_next(self, n: int = 1, **answer: Any) -> None:
        with self._lock:
            self._script.extend(Answer(**answer) for _ in range(n))

    def _take(self, headers: dict[str, str], body: bytes) -> Answer:
        with self._lock:
            self.requests.append(headers)
            answer = self._script.popleft() if self._script else Answer()
            if answer.status != 200 or answer.html:
                return answer
            if headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
            for resource_logs in request.resource_logs:
                resource = {kv.key: any_value(kv.value) for kv in resource_logs.resource.attributes}
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        self.records.append(
                            Received(
                                resource=resource,
                                scope=scope_logs.scope.name,
                                time_unix_nano=record.time_unix_nano,
                                severity_number=record.severity_number,
                                severity_text=record.severity_text,
                                body=any_value(record.body),
                                trace_id=record.trace_id.hex(),
                                attributes={
                                    kv.key: any_value(kv.value) for kv in record.attributes
                                },
                            )
                        )
            return answer

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
