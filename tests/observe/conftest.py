"""Shared pieces for the observe tests: a controllable clock, an in-memory metric sink, and a
real webhook receiver (``http.server`` on 127.0.0.1 in a thread) that can be taken down and
brought back on the same port."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from allele.observe import MetricPoint


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class MemorySink:
    """A MetricSink that keeps every batch in memory; ``down`` makes it fail like a dead store."""

    def __init__(self) -> None:
        self.batches: list[list[MetricPoint]] = []
        self.down = False
        self.calls = 0

    def write_metric_points(self, points: Sequence[MetricPoint]) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("store unavailable")
        self.batches.append(list(points))

    @property
    def points(self) -> list[MetricPoint]:
        return [p for b in self.batches for p in b]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Receiver:
    """A webhook receiver: records every POSTed JSON body and its Idempotency-Key header."""

    def __init__(self, port: int | None = None, status: int = 200) -> None:
        self.port = port if port is not None else free_port()
        self.status = status
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                with receiver._lock:
                    receiver.requests.append((self.headers.get("Idempotency-Key", ""), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def keys(self) -> list[str]:
        with self._lock:
            return [k for k, _ in self.requests]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


class ChatServer:
    """A small OpenAI-compatible ``/v1/chat/completions`` server (http.server, 127.0.0.1).

    It answers ``"you said: <last user message>"``, with ``usage`` counted in words, streamed as
    server-sent events when asked; the first ``fail_first`` requests get a 503. Every request
    body is kept so tests can compare the prompts agents sent.
    """

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.bodies: list[dict[str, Any]] = []
        self.port = free_port()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                server.bodies.append(body)
                if server.fail_first > 0:
                    server.fail_first -= 1
                    payload = b'{"error": "overloaded"}'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                messages = body["messages"]
                text = "you said: " + messages[-1]["content"]
                prompt_tokens = sum(len(m["content"].split()) for m in messages)
                usage = {"prompt_tokens": prompt_tokens,
                         "completion_tokens": len(text.split()),
                         "total_tokens": prompt_tokens + len(text.split())}
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for i, word in enumerate(text.split()):
                        piece = word if i == 0 else " " + word
                        event = {"choices": [{"index": 0, "delta": {"content": piece}}],
                                 "model": "echo"}
                        self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                        self.wfile.flush()
                    final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                             "usage": usage, "model": "echo"}
                    self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
                    self.wfile.flush()
                    self.close_connection = True
                    return
                payload = json.dumps({
                    "id": "c1", "object": "chat.completion", "model": "echo",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": usage}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer()
    yield server
    server.stop()
