"""Real servers for fault injection, each in its own process so that a test can kill it:
``mlflow server`` (one worker, job execution off) and a webhook receiver that records every
delivery before answering."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

MLFLOW = str(Path(sys.executable).with_name("mlflow"))
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url}: the server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s")


class Server:
    """``mlflow server`` in its own process group (killing it kills its worker too)."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> None:
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 (kept open for the process)
        self.proc = subprocess.Popen(
            [MLFLOW, "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{self.root / 'server.db'}",
             "--artifacts-destination", str(self.root / "artifacts")],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root,
            start_new_session=True)
        try:
            _wait_http(self.proc, f"{self.url}/health", self.root / "server.log", timeout)
        except AssertionError:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None


_RECEIVER = r'''
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

out = open(sys.argv[2], "a", encoding="utf-8")
die_after = int(sys.argv[3]) if len(sys.argv) > 3 else 0
seen = 0

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        line = json.dumps({"key": self.headers.get("Idempotency-Key"),
                           "body": json.loads(body)}, sort_keys=True)
        out.write(line + "\n")  # recorded before the answer: a kill now means a resend
        out.flush()
        os.fsync(out.fileno())
        seen += 1
        if seen == die_after:  # the kill point: recorded, never answered
            os._exit(1)
        self.send_response(200)
        self.end_headers()

    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass

ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''


class Receiver:
    """A webhook receiver process: every POST becomes a line of ``received.jsonl``."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.url = f"http://127.0.0.1:{port}/hook"
        self.path = root / "received.jsonl"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, die_after: int = 0) -> None:
        """Serve; with ``die_after`` k, exit right after recording the k-th POST, unanswered."""
        log = self.root / "receiver.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _RECEIVER, str(self.port), str(self.path), str(die_after)],
            stdout=open(log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
            start_new_session=True)
        _wait_http(self.proc, f"http://127.0.0.1:{self.port}/", log, 60.0)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None

    def received(self) -> list[dict[str, object]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


_PROXY = r"""
import asyncio, sys

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()

async def handle(client_reader, client_writer):
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1",
                                                                     int(sys.argv[2]))
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]),
                                        reuse_address=True)
    print("ready", flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


class Proxy:
    """A TCP proxy process in front of a server: killing it (SIGKILL: open connections are
    reset, new ones refused) is what a client sees of a server killed with ``kill -9``, and
    starting it again on the same port is the server's restart, in a fraction of a second."""

    def __init__(self, root: Path, port: int, target_port: int) -> None:
        self.root, self.port, self.target_port = root, port, target_port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PROXY, str(self.port), str(self.target_port)],
            stdout=subprocess.PIPE, stderr=open(self.root / "proxy.log", "ab"),  # noqa: SIM115
            start_new_session=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            raise AssertionError(f"the proxy did not start: {(self.root / 'proxy.log').read_text()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None
