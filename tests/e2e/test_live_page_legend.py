"""The Live page in chromium with the store of a user who ran matrices with process workers a
few times and resumed one: the component charts of 15 worker processes keep a readable plot
area (a legend entry per worker squeezed it to nothing at 390 px, the y labels on top of each
other) and a short legend, and the tasks-done curve of the resumed run breaks and goes on from
the tasks kept instead of drawing a line down to them. Screenshots go to
``ALLELE_SCREENSHOT_DIR``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from allele.store import open_store
from allele.store.live import Event
from allele.store.points import MetricPoint

from .dashboard_server import chromium, serve_dashboard

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SCREENSHOT_DIR = Path(os.environ.get("ALLELE_SCREENSHOT_DIR", "/tmp/allele-dashboard-screens"))
WORKERS = 15
CHARTS = ("CPU (% of a core)", "Resident memory (bytes)")


def _seed(url: str) -> None:
    """Five runs of 3 process workers each (15 worker pids) and their runner, sampled every
    0.5 s; a run interrupted after 11 of 24 tasks, none stored, then resumed."""
    now = time.time()
    points = []
    for w in range(WORKERS):
        run, start = w // 3, now - 300 + 60 * (w // 3)
        for i in range(40):
            lab = (("run", f"run-{run}"), ("worker", str(4000 + w)))
            points.append(MetricPoint("allele_bench_worker_cpu_percent", "bench", lab,
                                      start + 0.5 * i, 95.0 + (i % 5)))
            points.append(MetricPoint("allele_bench_worker_rss_bytes", "bench", lab,
                                      start + 0.5 * i, 4.1e8 + 1e6 * (i % 7)))
    for i in range(400):
        lab = (("run", f"run-{i // 80}"), ("worker", "runner"))
        points.append(MetricPoint("allele_bench_worker_cpu_percent", "bench", lab,
                                  now - 300 + 0.75 * i, 3.0))
        points.append(MetricPoint("allele_bench_worker_rss_bytes", "bench", lab,
                                  now - 300 + 0.75 * i, 8.0e7))
    with open_store(url) as st:
        st.write_metric_points(points)
        run_id = st.create_run("resumed-run", "s", "t", {}, {})
        started = {"name": "resumed-run", "spec": "s", "cells": 8, "tasks": 24,
                   "tasks_total": 24, "tasks_skipped": 0, "skipped": 0}
        t0 = now - 120
        st.append_events(
            [Event("run_started", "bench:1", t0, run_id, dict(started))]
            + [Event("cell_finished", "bench:1", t0 + 2 * (i + 1), run_id,
                     {"key": f"k{i % 8}", "round": i // 8, "tasks_done": i + 1})
               for i in range(11)]
            + [Event("run_finished", "bench:1", t0 + 23, run_id, {"status": "interrupted"}),
               Event("run_started", "bench:2", t0 + 30, run_id, dict(started))]
            + [Event("cell_finished", "bench:2", t0 + 30 + 2 * (i + 1), run_id,
                     {"key": f"k{i % 8}", "round": i // 8, "tasks_done": i + 1})
               for i in range(5)])


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('legend') / 'store.db'}"
    _seed(url)
    with serve_dashboard(url, deliver=False) as b:
        yield b


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


CHART_INFO = """(title) => {
  const n = [...document.querySelectorAll('#charts .chart')]
    .find((c) => c._fullLayout && c._fullLayout.title.text === title);
  if (!n) return null;
  const l = n._fullLayout, y = l.yaxis;
  const labels = [...n.querySelectorAll('.ytick text')].map((t) => t.getBoundingClientRect());
  const shown = n.data.filter((t) => t.showlegend !== false);  // in the legend's order
  shown.sort((a, b) => (a.legendrank ?? 1000) - (b.legendrank ?? 1000));
  return {h: l._size.h, w: l._size.w, legend: shown.map((t) => t.name),
          traces: n.data.length, ticks: y._vals.length,
          overlap: labels.some((a, i) => labels.some((b, j) => j !== i
            && a.top < b.bottom - 1 && b.top < a.bottom - 1))};
}"""


@pytest.mark.parametrize("width", [1366, 390])
def test_component_charts_of_many_workers_keep_their_plot_area(base: str, browser: Any,
                                                               width: int) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(base + "/")
        page.wait_for_function("document.querySelectorAll('#charts .chart').length >= 2",
                               timeout=30_000)
        page.wait_for_timeout(500)
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT_DIR / f"live-many-workers-{width}.png"),
                        full_page=True)
        for title in CHARTS:
            info = page.evaluate(CHART_INFO, title)
            assert info is not None, title
            assert info["h"] >= 150 and info["w"] >= 250, (title, info)
            assert info["ticks"] >= 3 and not info["overlap"], (title, info)
            assert info["traces"] == WORKERS + 1  # every worker drawn (the older ones grey)
            keep = 3 if width < 500 else 6
            legend = info["legend"]
            assert len(legend) == keep + 1, legend  # the runner, the newest workers, the rest
            assert legend[0] == "bench worker=runner"
            assert f"{WORKERS + 1 - keep} older workers" in legend
            assert "bench worker=4014" in legend  # the newest worker has its entry
        # the resumed run: 0..11, a break, then from the tasks kept (none: no cell was stored)
        progress = page.evaluate("(() => { const n = document.getElementById('chart-progress');"
                                 " return {y: n.data.map((t) => t.y), h: n._fullLayout._size.h,"
                                 " notes: (n._fullLayout.annotations || []).map((a) => a.text)};"
                                 " })()")
        assert progress["y"] == [[*range(12), None, *range(6)]]
        assert progress["notes"] == ["resumed: kept 0/11"]
        assert progress["h"] >= 150
        assert errors == []
    finally:
        page.close()
