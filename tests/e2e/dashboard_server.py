"""Shared pieces of the dashboard's end-to-end tests: a real uvicorn server in a thread, Debian's
chromium through Playwright, and a small live matrix run in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_dashboard(store_url: str, settings: Any = None, token: str | None = None,
                    deliver: bool = True) -> Iterator[str]:
    """``allele dashboard`` on a free loopback port; yields its base URL (``deliver``: whether
    it delivers queued notifications, as ``--deliver/--no-deliver``)."""
    import uvicorn

    from allele.config import load_settings
    from allele.dashboard.web.app import create_app
    from allele.dashboard.web.context import DashboardConfig

    app = create_app(DashboardConfig(store_url=store_url, token=token,
                                     settings=settings or load_settings(notify={}),
                                     escalate_every_s=1.0, deliver=deliver))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the dashboard did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def run_matrix_in_background(store_url: str, spec_text: str, name: str) -> threading.Thread:
    """A live matrix run (inline executor) into ``store_url``, in a thread."""
    from allele.bench.live import RunLive
    from allele.bench.runner import Runner
    from allele.bench.spec import loads_suite
    from allele.store import open_store

    def work() -> None:
        with open_store(store_url) as st:
            live = RunLive(st, interval_s=0.5, sample_workers=False)
            try:
                Runner(st, executor="inline", environment={"test": True}, live=live).run(
                    loads_suite(spec_text), name=name)
            finally:
                live.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread
