"""Stand-in language-model APIs on 127.0.0.1 for the ask engines' tests.

:class:`FakeAnthropic` speaks the Messages API (``POST /v1/messages``,
https://docs.anthropic.com/en/api/messages) and :class:`FakeOpenAI` Chat Completions
(``POST /v1/chat/completions``, https://platform.openai.com/docs/api-reference/chat/create):
each checks the key the way its API does (401 with the API's error body otherwise), checks the
request body against the documented shape (400 ``invalid_request_error`` otherwise), records
every request, and answers in the API's own JSON. What it answers is scripted:

    fake.reply("SELECT 1")                   # the next request gets this text
    fake.fail(429, retry_after=1)            # the next request gets 429 with Retry-After
    fake.stall(5)                            # the next request waits 5 s before answering
    fake.drop()                              # the next request's connection is closed unanswered
    fake.default = lambda request: "SELECT 1"  # once the script is spent

A real HTTP server in a thread (``http.server.ThreadingHTTPServer``), as tests/receiver.py is
for the ingest client; ``stop()`` wakes a stalled answer, so a test never waits for it.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"
ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True)
class Seen:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def text(self) -> str:
        """The body as text, JSON escapes undone: what a model would read."""
        return json.dumps(self.json, ensure_ascii=False)


@dataclass(frozen=True)
class _Step:
    kind: str  # "reply" | "fail" | "stall" | "drop" | "raw"
    text: str = ""
    status: int = 200
    retry_after: str | None = None
    body: dict[str, Any] | None = None
    seconds: float = 0.0
    payload: bytes = b""


@dataclass
class _Fake:
    key: str | None
    default: Callable[[Seen], str] = field(default=lambda request: "SELECT 1")
    requests: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._script: collections.deque[_Step] = collections.deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # scripting

    def reply(self, text: str) -> None:
        self._push(_Step("reply", text=text))

    def fail(
        self, status: int, retry_after: float | str | None = None, message: str = "scripted"
    ) -> None:
        header = None if retry_after is None else str(retry_after)
        self._push(
            _Step("fail", status=status, retry_after=header, body=self.error(status, message))
        )

    def stall(self, seconds: float, text: str = "SELECT 1") -> None:
        self._push(_Step("stall", text=text, seconds=seconds))

    def drop(self) -> None:
        self._push(_Step("drop"))

    def raw(self, status: int, payload: bytes) -> None:
        """The next request gets ``payload`` as its body, whatever the API would send."""
        self._push(_Step("raw", status=status, payload=payload))

    def _push(self, step: _Step) -> None:
        with self._lock:
            self._script.append(step)

    def _next(self) -> _Step | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    # the server

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{HOST}:{self._server.server_address[1]}"

    def bodies(self) -> list[str]:
        return [seen.text for seen in self.requests if seen.raw]

    def start(self) -> _Fake:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                fake._handle(self, raw)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> _Fake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        probe = Seen(handler.command, handler.path, dict(handler.headers.items()), raw)
        self.requests.append(probe)
        status, body, extra = self._answer(probe)
        handler.close_connection = True
        if status is None:
            handler.connection.close()
            return
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(payload)))
            for name, value in extra.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            pass  # the client gave up waiting (a stalled answer past its timeout)

    def _answer(self, probe: Seen) -> tuple[int | None, dict[str, Any] | bytes, dict[str, str]]:
        if probe.path != self.PATH:
            return 404, self.error(404, f"no route {probe.path}"), {}
        refused = self.check_key(probe)
        if refused is not None:
            return 401, self.error(401, refused), {}
        try:
            document = json.loads(probe.raw)
        except ValueError:
            return 400, self.error(400, "the body is not JSON"), {}
        problem = self.check_body(document)
        if problem is not None:
            return 400, self.error(400, problem), {}
        step = self._next()
        if step is None:
            return 200, self.success(self.default(probe), document), {}
        if step.kind == "drop":
            return None, {}, {}
        if step.kind == "raw":
            return step.status, step.payload, {}
        if step.kind == "fail":
            extra = {"retry-after": step.retry_after} if step.retry_after is not None else {}
            return step.status, step.body or {}, extra
        if step.kind == "stall":
            # Wakes early when the fake stops, so no test waits out the stall.
            self._stopping.wait(step.seconds)
        return 200, self.success(step.text, document), {}

    # what differs per API

    PATH = ""

    def check_key(self, request: Seen) -> str | None:
        raise NotImplementedError

    def check_body(self, document: Any) -> str | None:
        raise NotImplementedError

    def success(self, text: str, document: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def error(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError


_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class FakeAnthropic(_Fake):
    PATH = "/v1/messages"

    def check_key(self, request: Seen) -> str | None:
        if request.header("anthropic-version") != ANTHROPIC_VERSION:
            return "anthropic-version header missing or unknown"
        if self.key is not None and request.header("x-api-key") != self.key:
            return "invalid x-api-key"
        return None

    def check_body(self, document: Any) -> str | None:
        if not isinstance(document, dict):
            return "body: expected an object"
        if not isinstance(document.get("model"), str):
            return "model: Field required"
        if not isinstance(document.get("max_tokens"), int):
            return "max_tokens: Field required"
        if "system" in document and not isinstance(document["system"], str):
            return "system: expected a string"
        return _check_turns(document.get("messages"), ("user", "assistant"))

    def success(self, text: str, document: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": document["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 10},
        }

    def error(self, status: int, message: str) -> dict[str, Any]:
        kind = _ANTHROPIC_ERRORS.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}


class FakeOpenAI(_Fake):
    PATH = "/v1/chat/completions"

    def check_key(self, request: Seen) -> str | None:
        if self.key is None:
            return None
        given = request.header("authorization") or ""
        if given != f"Bearer {self.key}":
            # OpenAI's own 401 names part of the key it was given: the engine must not echo it.
            shown = given.removeprefix("Bearer ")
            return f"Incorrect API key provided: {shown}. You can find your API key at ..."
        return None

    def check_body(self, document: Any) -> str | None:
        if not isinstance(document, dict):
            return "body: expected an object"
        if not isinstance(document.get("model"), str):
            return "you must provide a model parameter"
        messages = document.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: expected a non-empty array"
        if not isinstance(messages[0], dict) or messages[0].get("role") != "system":
            return "messages[0]: expected the system message first"
        return _check_turns(messages[1:], ("user", "assistant"))

    def success(self, text: str, document: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": document["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }

    def error(self, status: int, message: str) -> dict[str, Any]:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _check_turns(messages: Any, roles: tuple[str, ...]) -> str | None:
    """Turns alternate user / assistant, starting and ending with user, content text."""
    if not isinstance(messages, list) or not messages:
        return "messages: expected a non-empty array"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            return f"messages.{index}: expected {{role, content}}"
        if message["role"] not in roles or not isinstance(message["content"], str):
            return f"messages.{index}: bad role or content"
        expected = "user" if index % 2 == 0 else "assistant"
        if message["role"] != expected:
            return f"messages.{index}: roles must alternate, starting with user"
    if messages[-1]["role"] != "user":
        return "messages: the last turn must be the user's"
    return None
