"""Allele with the tools teams already run, all started by the test on loopback:

* Debian's Prometheus 2.42 scrapes ``allele bench run --metrics-port`` while a matrix runs and
  answers PromQL over the matrix's metrics, a user target's own metric among them;
* an injected regression (``allele bench compare`` on the golden store) with the dashboard open
  reaches the Alerts page, a local webhook receiver, a local SMTP server (aiosmtpd) and a real
  Alertmanager 0.25 (queried through its v2 API), each under one stable id; asking again alerts
  nobody again.
"""

from __future__ import annotations

import email
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .dashboard_server import chromium, free_port, serve_dashboard

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "store.db"
SPEC = """
name: prom
benchmarks:
  - name: um
    target: tests.bench.live_targets:user_metrics
    matrix: {x: [1, 2, 3, 4, 5, 6, 7, 8]}
    fixed: {sleep_s: 0.4}
    seeds: 2
    repeats: 3
"""


def _wait(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        p.terminate()
    for p in started:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "MLFLOW_DISABLE_TELEMETRY": "true"}


def test_prometheus_scrapes_a_running_matrix(tmp_path: Path,
                                             procs: list[subprocess.Popen[bytes]]) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC)
    mport, pport = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n  - job_name: allele\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{mport}']}}]\n")
    prom = subprocess.Popen(["/usr/bin/prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{pport}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(prom)
    _wait(f"http://127.0.0.1:{pport}/-/ready", timeout=90)  # first start on a fresh machine is slow
    # the matrix starts only once Prometheus is ready, so it is scraped while it runs (~10 s)
    run = subprocess.Popen([sys.executable, "-m", "allele.cli", "bench", "run", "spec.yaml",
                            "--store", f"sqlite:///{tmp_path / 'r.db'}", "-w", "2", "-q",
                            "--metrics-port", str(mport)], cwd=tmp_path, env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    procs.append(run)
    found: dict[str, float] = {}
    deadline = time.monotonic() + 90
    queries = {"user": 'sum(livetest_requests_total{job="allele"})',
               "done": 'max(allele_bench_cells{state="done"})',
               "rate": "sum(rate(livetest_requests_total[10s]))"}
    while time.monotonic() < deadline and len(found) < len(queries):
        for name, q in queries.items():
            r = httpx.get(f"http://127.0.0.1:{pport}/api/v1/query", params={"query": q}).json()
            result = r["data"]["result"]
            if r["status"] == "success" and result and float(result[0]["value"][1]) > 0:
                found[name] = float(result[0]["value"][1])
        time.sleep(0.5)
    assert set(found) == set(queries), (found, run.poll())
    assert found["user"] >= 1 and found["done"] >= 1
    run.wait(timeout=120)
    assert run.returncode == 0, run.stdout.read() if run.stdout else ""


class Webhook:
    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[tuple[str, dict[str, Any]]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.requests.append((self.headers.get("Idempotency-Key", ""), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_regression_reaches_every_receiver_under_one_id(
        tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    from aiosmtpd.controller import Controller

    store = tmp_path / "store.db"
    shutil.copyfile(GOLDEN, store)
    url = f"sqlite:///{store}"
    mails: list[email.message.Message] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            mails.append(email.message_from_bytes(envelope.content))
            return "250 OK"

    smtp = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    hook = Webhook()
    aport = free_port()
    (tmp_path / "am.yml").write_text("route: {receiver: blackhole}\n"
                                     "receivers: [{name: blackhole}]\n")
    am = subprocess.Popen(["/usr/bin/prometheus-alertmanager",
                           f"--config.file={tmp_path / 'am.yml'}",
                           f"--storage.path={tmp_path / 'am'}",
                           f"--web.listen-address=127.0.0.1:{aport}",
                           "--cluster.listen-address="],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(am)
    try:
        _wait(f"http://127.0.0.1:{aport}/-/ready")
        env = {**_env(), "ALLELE_NOTIFY__WEBHOOK_URL": hook.url,
               "ALLELE_NOTIFY__SMTP_HOST": "127.0.0.1",
               "ALLELE_NOTIFY__SMTP_PORT": str(smtp.port),
               "ALLELE_NOTIFY__SMTP_TO": '["ops@example.org"]',
               "ALLELE_NOTIFY__ALERTMANAGER_URL": f"http://127.0.0.1:{aport}"}
        from allele.config import load_settings

        settings = load_settings(notify={"webhook_url": hook.url})
        with serve_dashboard(url, settings=settings) as base, chromium() as browser:
            page = browser.new_page()
            page.goto(base + "/alerts")
            cmd = [sys.executable, "-m", "allele.cli", "bench", "compare", "golden-04",
                   "golden-08", "--store", url]
            first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
            # the command delivers what it can at once; the dashboard's outbox worker (it has
            # the webhook channel too) may take some of the rows: at least once, either way
            assert "2 regression alerts raised;" in first.stderr
            deadline = time.monotonic() + 20
            while httpx.get(base + "/api/outbox").json()["stats"]["delivered"] < 6:
                assert time.monotonic() < deadline, httpx.get(base + "/api/outbox").json()
                time.sleep(0.2)
            page.wait_for_function("document.getElementById('alert-groups').innerText"
                                   ".includes('wall_s of evolution')", timeout=20_000)
            text = page.locator("#alert-groups").inner_text()
            assert "regressed: +" in text and "BenchmarkRegression" in text
            alerts = httpx.get(base + "/api/alerts", params={"source": "regression"}).json()
            fps = sorted(a["fingerprint"] for a in alerts["alerts"])
            assert len(fps) == 2
            ids = sorted(f"regression:{fp}" for fp in fps)
            assert sorted(k for k, _ in hook.requests) == ids
            assert sorted(m["X-Allele-Notification-Id"] for m in mails) == ids
            assert sorted(m["Message-ID"] for m in mails) == sorted(
                f"<regression.{fp}@allele>" for fp in fps)
            got = httpx.get(f"http://127.0.0.1:{aport}/api/v2/alerts").json()
            assert sorted(a["labels"]["allele_fingerprint"] for a in got) == fps
            assert all(a["annotations"]["allele_notification_id"] in ids for a in got)
            again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
            assert "0 regression alerts raised, 2 already raised before" in again.stderr
            time.sleep(1.0)
            assert len(hook.requests) == 2 and len(mails) == 2
            assert len(httpx.get(f"http://127.0.0.1:{aport}/api/v2/alerts").json()) == 2
            page.close()
    finally:
        hook.close()
        smtp.stop()
