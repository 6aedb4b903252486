"""Many scrapers at once against ``/metrics`` and the dashboard's API, on loopback only.

Three endpoints, each served as in production and scraped by ``C`` concurrent clients (threads
with keep-alive-free ``urllib`` requests, the way Prometheus opens one request per scrape) for
``--seconds`` per level, ``C`` in ``--levels`` (bounded: at most 256):

* Telemetry's ``/metrics`` (``allele observe serve``: prometheus-client's threading WSGI server)
  over a Telemetry fed by 4 components at 20,000 events/s in all while it is scraped;
* the web dashboard's ``/metrics`` (uvicorn) and ``/api/runs`` over a copy of the golden store,
  the dashboard tailing points written at 2 flushes/s meanwhile.

Printed per endpoint and level: requests/s, latency p50 / p95 / p99, errors (any non-200 or
invalid answer counts), and the p99 against one scraper's (the baseline, same invocation).
Everything binds 127.0.0.1.

Usage::

    python benchmarks/scrapers_load.py                     # levels 1, 8, 32, 64; 5 s each
    python benchmarks/scrapers_load.py --levels 1,16 --seconds 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from allele.core.observer import GenerationStats, SequenceStats
from allele.observe import Telemetry
from allele.observe.export import make_registry, serve
from allele.store import open_store
from allele.store.points import MetricPoint

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden" / "store.db"
MAX_SCRAPERS = 256


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def dashboard(store_url: str) -> Iterator[str]:
    import uvicorn

    from allele.config import load_settings
    from allele.dashboard.web.app import create_app
    from allele.dashboard.web.context import DashboardConfig

    app = create_app(DashboardConfig(store_url=store_url, deliver=False,
                                     settings=load_settings(notify={})))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", backlog=MAX_SCRAPERS * 2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _feed(stop: threading.Event, fn: Callable[[], None], every_s: float) -> threading.Thread:
    def loop() -> None:
        while not stop.wait(every_s):
            fn()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def scrape(url: str, clients: int, seconds: float, valid: Callable[[bytes], bool]
           ) -> tuple[float, np.ndarray, int]:
    lat: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=30) as resp:
                    body = resp.read()
                    ok = resp.status == 200 and valid(body)
            except OSError:
                ok = False
            lat[i].append(time.perf_counter() - t0)
            errors[i] += not ok

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    flat = np.concatenate([np.asarray(x) for x in lat])
    return len(flat) / wall, flat, sum(errors)


def report(name: str, url: str, levels: list[int], seconds: float,
           valid: Callable[[bytes], bool]) -> None:
    print(f"{name}: {url}")
    print(f"  {'scrapers':>8} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'errors':>7} {'p99 / 1 scraper':>16}")
    base = None
    for c in levels:
        rate, lat, errors = scrape(url, c, seconds, valid)
        p50, p95, p99 = (float(np.percentile(lat, q)) * 1e3 for q in (50, 95, 99))
        base = base or p99
        print(f"  {c:>8} {rate:>8.0f} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f} {errors:>7} "
              f"{p99 / base:>16.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="1,8,32,64")
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    levels = [min(MAX_SCRAPERS, int(x)) for x in args.levels.split(",")]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.1f}")
    stop = threading.Event()

    tel = Telemetry(system=False)
    gen = GenerationStats(generation=1, best=0.5, mean=0.1, std=0.1, diversity=0.3,
                          evaluations=10, seconds=0.01)
    seq = SequenceStats(steps=100, seconds=1e-4, state_norm=1.0, saturated_fraction=0.0,
                        memory_fill=10, memory_capacity=100)

    def burst() -> None:  # 4 components, 200 events every 10 ms: 20,000 events/s
        for _ in range(50):
            tel.on_generation("evolution-0", gen)
            tel.on_generation("evolution-1", gen)
            tel.on_sequence("kraken-0", seq)
            tel.on_sequence("kraken-1", seq)

    _feed(stop, burst, 0.01)
    server = serve(make_registry(tel), port=0)
    try:
        report("Telemetry /metrics (observe serve)", server.url, levels, args.seconds,
               lambda b: b"allele_evolution_generations_total" in b)
    finally:
        server.close()
        tel.close()

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "store.db"
        shutil.copyfile(GOLDEN, path)
        url = f"sqlite:///{path}"
        store = open_store(url)
        n = [0]

        def write() -> None:
            n[0] += 1
            store.write_metric_points([MetricPoint("allele_kraken_steps_total", f"k{j}", (),
                                                   time.time(), float(n[0])) for j in range(8)])

        _feed(stop, write, 0.5)
        with dashboard(url) as base:
            time.sleep(1.0)
            report("dashboard /metrics", f"{base}/metrics", levels, args.seconds,
                   lambda b: b"allele_dashboard_events" in b)
            report("dashboard /api/runs", f"{base}/api/runs?limit=20", levels, args.seconds,
                   lambda b: b'"runs"' in b)
        stop.set()
        store.close()


if __name__ == "__main__":
    main()
