"""Acceptance scenarios: what a user types and what they see.

Every step runs the real ``allele`` command in a child process (the ``allele`` console script), in a
directory of its own, with a store, an MLflow registry and a webhook receiver that live only for
the scenario. The assertions read what the user would read: the command's output and exit code,
the files it wrote, what arrived at the webhook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    args: list[str]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class User:
    """A user at a terminal in ``home``: ``user.allele("bench", "run", ...)``."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 300, cwd: Path | None = None) -> Result:
        proc = subprocess.run(list(args), cwd=cwd or self.home, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        return Result(list(args), proc.returncode, proc.stdout, proc.stderr)

    def allele_command(self) -> list[str]:
        """The ``allele`` command of this environment (its console script)."""
        return [str(Path(sys.executable).parent / "allele")]

    def allele(self, *args: str, timeout: float = 300, cwd: Path | None = None) -> Result:
        return self.run(*self.allele_command(), *args, timeout=timeout, cwd=cwd)

    def allele_python(self) -> list[str]:
        """The interpreter the user's own scripts run with (Allele importable)."""
        return [sys.executable]

    def ok(self, *args: str, timeout: float = 300, cwd: Path | None = None) -> Result:
        res = self.allele(*args, timeout=timeout, cwd=cwd)
        assert res.code == 0, f"allele {' '.join(args)} exited {res.code}:\n{res.out}\n{res.err}"
        return res


@pytest.fixture
def user(tmp_path: Path) -> User:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLELE_")}
    env.update({
        "ALLELE_STORE_URL": f"sqlite:///{home / 'results.db'}",
        "ALLELE_TRACKING__TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "COLUMNS": "160",
        "NO_COLOR": "1",
        "PYTHONHASHSEED": "0",
    })
    src = str(REPO / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return User(home, env)


class Webhook:
    """A receiver the user points Allele at: it keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with hook.lock:
                    hook.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self) -> list[Any]:
        with self.lock:
            return list(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()
