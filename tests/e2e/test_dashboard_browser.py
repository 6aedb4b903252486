"""The web dashboard in Debian's chromium: every page loads without a console error (a
screenshot of each is written), the Live page follows a running matrix, and hostile run and
parameter names render as text.

Screenshots go to ``ALLELE_SCREENSHOT_DIR`` (default ``/tmp/allele-dashboard-screens``);
``docs/dashboard.md`` shows the ones written with ``ALLELE_SCREENSHOT_DIR=docs/images``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from allele.store import CellResult, Sample, cell_key, open_store
from allele.store.points import MetricPoint

from .dashboard_server import chromium, run_matrix_in_background, serve_dashboard

pytestmark = [pytest.mark.slow, pytest.mark.browser]

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "store.db"
SCREENSHOT_DIR = Path(os.environ.get("ALLELE_SCREENSHOT_DIR", "/tmp/allele-dashboard-screens"))
HOSTILE = "<img src=x onerror=alert(1)>"
EVO = 'evolution|{"generations":20,"population_size":250}'
LIVE_SPEC = """
name: e2e-live
benchmarks:
  - name: um
    target: tests.bench.live_targets:user_metrics
    matrix: {x: [1, 2, 3, 4, 5, 6]}
    fixed: {sleep_s: 0.05}
    seeds: 2
    repeats: 2
"""


def _hostile_run(url: str) -> str:
    with open_store(url) as st:
        run_id = st.create_run(HOSTILE, HOSTILE, "evil", {}, {})
        params = {"name": HOSTILE, "n": 1}
        st.save_cell(run_id, CellResult(cell_key("evil", params), "evil", params, "ok",
                                        [Sample("wall_s", 0.1 + i / 100, i, 0) for i in range(5)]
                                        + [Sample(HOSTILE, 1.0, i, 0) for i in range(5)],
                                        started_at=1.0, finished_at=2.0))
        st.finish_run(run_id, "finished")
        return run_id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    path = tmp_path_factory.mktemp("dash") / "store.db"
    shutil.copyfile(GOLDEN, path)
    url = f"sqlite:///{path}"
    evil = _hostile_run(url)
    noise = np.random.default_rng(3).normal(0.0, 0.01, 240)
    with open_store(url) as st:  # a telemetry series with a dip, for the Analytics page
        st.write_metric_points([MetricPoint("allele_kraken_steps_per_second", "9:kraken-0", (),
                                            1.79e9 + 5 * i, 2e4 * (1 + float(noise[i]))
                                            * (0.6 if i == 170 else 1.0)) for i in range(240)])
    with serve_dashboard(url) as base:
        yield base, url, evil


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


class Page:
    """A browser page that records console errors, page errors and dialogs."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text)
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.page.close()


PAGES = {
    "live": "/",
    "runs": "/runs?run=golden-08&cell=" + EVO.replace('"', "%22"),
    "history": "/history?key=" + EVO.replace('"', "%22") + "&metric=wall_s",
    "compare": "/compare?base=golden-04&head=golden-08",
    "alerts": "/alerts",
    "analytics": "/analytics?metric=allele_kraken_steps_per_second&component=9:kraken-0"
                 "&base=golden-04&head=golden-08&run=golden-08",
}


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_loads_without_console_errors(site: tuple[str, str, str], browser: Any,
                                                 name: str) -> None:
    base, url, _ = site
    if name == "alerts":  # something to show: the regressions of the fixture store
        from allele.bench.alerting import comparison_alerts, raise_regressions
        from allele.bench.views import run_comparison
        from allele.config import load_settings

        with open_store(url) as st:
            raise_regressions(st, comparison_alerts(run_comparison(st, "golden-04",
                                                                   "golden-08")),
                              load_settings(notify={}))
    with Page(browser) as p:
        p.page.goto(base + PAGES[name])
        p.page.wait_for_load_state("networkidle" if name != "live" else "load")
        if name == "analytics":
            p.page.click("#rca-form button")
            p.page.wait_for_selector("#rca table td")
            assert "anomalies" in p.page.locator("#anomaly-chart").inner_text()
        p.page.wait_for_timeout(700)
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        p.page.screenshot(path=str(SCREENSHOT_DIR / f"dashboard-{name}.png"), full_page=True)
        assert p.errors == []
        assert p.page.locator("#error").is_hidden()
        if name == "compare":
            assert p.page.locator("#verdicts td.v-regressed").count() == 2
            axis = p.page.evaluate("(() => { const a = document.getElementById('forest')"
                                   "._fullLayout; return [a.xaxis.range, a.yaxis._categories]; })()")
            (lo, hi), rows = axis
            assert lo < 0 < hi and hi - lo < 1000  # the changes' scale, not the widest interval's
            assert all(" · " in r for r in rows)  # metric first, then target and parameters
        if name == "history":
            assert "1 change points" in p.page.locator("#history-table").inner_text()
        if name == "alerts":
            assert p.page.locator(".group").count() >= 1
            assert "BenchmarkRegression" in p.page.locator("#alert-groups").inner_text()


def test_live_page_follows_a_running_matrix(site: tuple[str, str, str], browser: Any) -> None:
    base, url, _ = site
    with Page(browser) as p:
        p.page.goto(base + "/")
        p.page.wait_for_function("document.getElementById('conn').classList.contains('on')")
        worker = run_matrix_in_background(url, LIVE_SPEC, "e2e-live-run")
        chart = p.page.locator("#chart-progress")
        # a point per stored cell, each drawn from the live stream
        p.page.wait_for_function(
            "Number(document.getElementById('chart-progress').dataset.points) >= 6",
            timeout=60_000)
        worker.join(timeout=60)
        assert chart.get_attribute("data-points") == "6"
        card = p.page.locator(".card", has_text="e2e-live-run")
        p.page.wait_for_function("document.body.innerText.includes('6/6 cells done')")
        assert "6/6 cells done, 0 failed" in card.inner_text()
        latencies = p.page.evaluate("window.alleleLatencies")
        assert len(latencies) >= 6
        print(f"event -> chart latency: median {sorted(latencies)[len(latencies) // 2]:.2f} s, "
              f"max {max(latencies):.2f} s (informative; benchmarks/dashboard_speed.py)")
        user = p.page.locator("#charts")
        p.page.wait_for_function("document.getElementById('charts').innerText.includes("
                                 "'livetest_requests_total')")
        assert "User metrics" in user.inner_text()
        p.page.wait_for_timeout(500)
        p.page.screenshot(path=str(SCREENSHOT_DIR / "dashboard-live-run.png"), full_page=True)
        assert p.errors == []


def test_hostile_names_render_as_text(site: tuple[str, str, str], browser: Any) -> None:
    base, _, evil = site
    for path in (f"/runs?run={evil}", "/"):
        with Page(browser) as p:
            p.page.goto(base + path)
            p.page.wait_for_function(f"document.body.innerText.includes({HOSTILE!r})")
            time.sleep(0.3)
            assert p.dialogs == []
            assert p.page.locator("img[src='x']").count() == 0
            assert HOSTILE in p.page.locator("main").inner_text()
            assert p.errors == []
