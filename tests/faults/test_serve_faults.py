"""``observe serve`` and the webhook notifier under bad input and signals (issue 16, items 5, 10
and 11): options that cannot work are one line at start-up, SIGTERM ends the service through
its final flush, /metrics beyond loopback needs a token, and the webhook thread outlives any
failure."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from allele.errors import ValidationError
from allele.observe import Telemetry
from allele.observe.alert_model import Alert, load_rules
from allele.observe.alerts import AlertManager
from allele.observe.notify import Notification, WebhookNotifier
from allele.store import open_store
from tests.faults.cli import allele, one_line_error
from tests.faults.processes import Cli


@pytest.mark.parametrize(("args", "fragment"), [
    (("--port", "70000"), "a TCP port is 0-65535"),
    (("--port", "-1"), "--port -1"),
    (("--interval", "0"), "--interval 0.0: must be"),
    (("--interval", "-1"), "--interval -1.0"),
    (("--interval", "nan"), "--interval nan"),
    (("--duration", "inf"), "--duration inf"),
    (("--webhook", "http://127.0.0.1:95OO/hook"), "is not a valid URL"),
    (("--webhook", "ftp://example.com/x"), "scheme must be http or https"),
    (("--host", "0.0.0.0"), "exposes them beyond this machine"),
    (("--host", "::"), "give a token"),
    # the dashboard's minimum, on any address (`allele dashboard --token short` refuses too)
    (("--host", "0.0.0.0", "--token", "short"),
     "the /metrics token must be at least 8 characters long"),
    (("--token", "seven77"), "the /metrics token must be at least 8 characters long"),
])
def test_serve_refuses_what_cannot_work_in_one_line(args: tuple[str, ...], fragment: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALLELE_OBSERVE_TOKEN", raising=False)
    code, out, err = allele("observe", "serve", "--port", "0", "--duration", "0", *args)
    assert one_line_error(code, out, err), (out, err)
    assert fragment in err and "👎" not in err


def test_the_alert_loop_refuses_an_interval_that_would_spin() -> None:
    with Telemetry(system=False) as tel:
        manager = AlertManager(tel, load_rules(), [])
        for bad in (0.0, -1.0, float("nan")):
            with pytest.raises(ValidationError, match="interval_s must be a positive number"):
                manager.start(interval_s=bad)
        manager.close()


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Cli, str]:
    proc = Cli(["observe", "serve", "--port", "0", *args], cwd=tmp_path,
               out=tmp_path / "serve.out", env=env or {})
    deadline = time.monotonic() + 60
    while "serving http" not in proc.output:
        assert time.monotonic() < deadline, proc.output
        assert proc.returncode is None
        time.sleep(0.05)
    url = re.search(r"serving (http://\S+/metrics)", proc.output)
    assert url is not None
    return proc, url.group(1)


def test_sigterm_ends_serve_through_its_final_flush(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'points.db'}"
    open_store(url).close()
    env = {"ALLELE_OBSERVE__SAMPLE_INTERVAL_S": "0.1",  # sample often ...
           "ALLELE_OBSERVE__FLUSH_INTERVAL_S": "3600"}  # ... but never flush on the way
    proc, _ = _serve(tmp_path, "--store", url, "--no-alerts", env=env)
    time.sleep(1.0)
    signalled = time.time()
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, proc.output
    with open_store(url) as st:
        points = st.read_metric_points("allele_process_rss_bytes")
    assert len(points) >= 3  # everything sampled reached the store at the end
    assert max(p.timestamp for p in points) >= signalled - 0.5


def test_beyond_loopback_metrics_need_the_token(tmp_path: Path) -> None:
    proc, url = _serve(tmp_path, "--host", "0.0.0.0", "--no-alerts",
                       env={"ALLELE_OBSERVE_TOKEN": "s3cret-token"})
    local = url.replace("0.0.0.0", "127.0.0.1")
    try:
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(local, timeout=10)
        assert denied.value.code == 401
        wrong = urllib.request.Request(local, headers={"Authorization": "Bearer nope"})
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(wrong, timeout=10)
        right = urllib.request.Request(local, headers={"Authorization": "Bearer s3cret-token"})
        with urllib.request.urlopen(right, timeout=10) as resp:
            assert resp.status == 200 and b"allele_process_rss_bytes" in resp.read()
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, proc.output
    assert "s3cret-token" not in proc.output


class _Receiver(BaseHTTPRequestHandler):
    keys: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.keys.append(str(self.headers.get("Idempotency-Key")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _notification(key: str) -> Notification:
    now = time.time()
    alert = Alert(name="R", labels={"alertname": "R"}, annotations={}, severity="warning",
                  state="firing", value=1.0, fingerprint="f", active_at=now, starts_at=now,
                  ends_at=None)
    return Notification(key=key, status="firing", alert=alert, sent_at=time.time())


def test_the_webhook_thread_outlives_a_notification_it_cannot_send() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        good = f"http://127.0.0.1:{server.server_port}/hook"
        with pytest.raises(ValidationError, match="is not a valid URL"):
            WebhookNotifier("http://127.0.0.1:95OO/hook")
        notifier = WebhookNotifier(good, backoff_initial_s=0.01)
        notifier.url = "http://127.0.0.1:95OO/hook"  # what the start-up check now refuses
        notifier.send(_notification("lost"))
        assert notifier.flush(10)
        notifier.url = good
        notifier.send(_notification("next"))
        assert notifier.flush(10)
        notifier.close()
        assert notifier.given_up == 1 and notifier.delivered == 1
        assert _Receiver.keys == ["next"]
    finally:
        server.shutdown()
        server.server_close()
