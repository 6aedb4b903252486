"""The HTML report in a real browser: headless Debian chromium driven by Playwright.

Two reports: one of two real runs of a small evolution matrix made by the runner, written through
``allele bench report``; one of a synthetic ten-run history with a known regression (so the
change-point and failure sections are populated). For each: no console error or page error, every
Plotly chart drew its SVG, the page works offline (every non-file request is refused), and a
full-page screenshot is saved.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from allele.bench.report import render_html, report_data
from allele.bench.runner import Runner
from allele.bench.spec import load_suite
from allele.cli.bench_analysis import register
from allele.store import open_store
from tests.bench.test_report import history

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]
SCREENSHOT_DIR = Path(os.environ.get("ALLELE_SCREENSHOT_DIR", "/tmp/allele-report-screens"))


def _open_in_chromium(html_path: Path, shot: Path) -> dict[str, Any]:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian chromium is missing: apt-get install -y chromium"
    errors: list[str] = []
    external: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))

            def block(route: Any) -> None:
                url = route.request.url
                if url.startswith(("file:", "data:", "blob:", "about:")):
                    route.continue_()
                else:
                    external.append(url)
                    route.abort()

            page.route("**/*", block)
            page.goto(html_path.resolve().as_uri(), wait_until="load")
            page.wait_for_function(
                "() => { const d = document.querySelectorAll('.plotly-graph-div');"
                " return d.length > 0 && [...d].every(x => x.querySelector('svg.main-svg')); }",
                timeout=60_000)
            fits = ("() => [...document.querySelectorAll('.chart')].every(c => {"
                    " const svg = c.querySelector('svg.main-svg');"
                    " return svg && svg.getBoundingClientRect().width"
                    " <= c.getBoundingClientRect().width + 1; })")
            # every chart refitted to its box (ResizeObserver after layout); a chart that never
            # fits is counted below
            with contextlib.suppress(PlaywrightTimeout):
                page.wait_for_function(fits, timeout=10_000)
            overflowing = page.evaluate(
                "() => [...document.querySelectorAll('.chart')].filter(c => {"
                " const svg = c.querySelector('svg.main-svg');"
                " return !svg || svg.getBoundingClientRect().width"
                " > c.getBoundingClientRect().width + 1; }).length")
            result: dict[str, Any] = page.evaluate(
                """() => {
                  const divs = [...document.querySelectorAll('.plotly-graph-div')];
                  return {
                    charts: divs.length,
                    drawn: divs.filter(d => d.querySelector('svg.main-svg')).length,
                    withData: divs.filter(d => d.data && d.data.length > 0).length,
                    heatmaps: document.querySelectorAll('g.hm, image').length,
                    tables: document.querySelectorAll('table').length,
                    title: document.title,
                  };
                }""")
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            folded = page.locator("#unchanged-comparisons")
            if folded.count():  # unchanged rows: folded until the summary is clicked
                first = folded.locator("tbody tr").first
                hidden = not first.is_visible()
                folded.locator("summary").click()
                result["unchanged_toggle"] = (hidden, first.is_visible())
        finally:
            browser.close()
    result["overflowing"] = overflowing
    result["errors"] = errors
    result["external"] = external
    return result


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register(app)
    return app


def test_report_of_real_runs_renders(tmp_path: Path) -> None:
    spec = tmp_path / "evo.yaml"
    spec.write_text(
        "name: evo-e2e\n"
        "target: evolution\n"
        "isolation: inline\n"
        "seeds: 2\n"
        "repeats: 2\n"
        "matrix: {population_size: [20, 40, 80], selection: [tournament, rank]}\n"
        "fixed: {generations: 4}\n")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    suite = load_suite(spec)
    with open_store(url) as st:
        runner = Runner(st, executor="inline")
        base = runner.run(suite, name="e2e-base")
        time.sleep(0.01)
        head = runner.run(suite, name="e2e-head")
    assert base.status == head.status == "finished" and head.failed == 0
    out = tmp_path / "report.html"
    res = CliRunner().invoke(_app(), ["report", "e2e-head", "--baseline", "e2e-base", "-o",
                                      str(out), "--store", url])
    assert res.exit_code == 0, res.output
    seen = _open_in_chromium(out, SCREENSHOT_DIR / "real-runs.png")
    assert seen["errors"] == []
    assert seen["external"] == []
    assert seen["overflowing"] == 0  # no chart wider than its box (none clipped)
    # heatmaps (time, quality) over the one parameter pair, scaling curve, comparison chart
    assert seen["charts"] == 4
    assert seen["drawn"] == seen["charts"] == seen["withData"]
    assert seen["title"] == "Allele report e2e-head"
    assert seen["unchanged_toggle"] == (True, True)
    assert (SCREENSHOT_DIR / "real-runs.png").stat().st_size > 20_000
    page = out.read_text(encoding="utf-8")
    env = page[page.index("<h2>Environment</h2>"):]
    assert "[{" not in env and "{'" not in env and "None" not in env  # a table, not a repr

    # --assets shared: a second report in the same folder loads plotly.js from one shared copy
    shared = tmp_path / "shared.html"
    res = CliRunner().invoke(_app(), ["report", "e2e-head", "-o", str(shared), "--assets",
                                      "shared", "--store", url])
    assert res.exit_code == 0, res.output
    assets = list((tmp_path / "allele-report-assets").glob("plotly-*.min.js"))
    assert len(assets) == 1 and assets[0].stat().st_size > 1_000_000
    assert shared.stat().st_size < out.stat().st_size / 10
    seen = _open_in_chromium(shared, SCREENSHOT_DIR / "real-runs-shared.png")
    assert seen["errors"] == [] and seen["external"] == []
    assert seen["drawn"] == seen["charts"] == 4  # default baseline: the previous run (e2e-base)


def test_report_of_history_with_regression_renders(tmp_path: Path) -> None:
    runs = history()
    data = report_data(runs[-1], runs[0], history=runs)
    assert data.changes and data.comparison is not None and data.comparison.regressed
    out = tmp_path / "history.html"
    out.write_text(render_html(data), encoding="utf-8")
    seen = _open_in_chromium(out, SCREENSHOT_DIR / "history.png")
    assert seen["errors"] == []
    assert seen["external"] == []
    assert seen["overflowing"] == 0  # no chart wider than its box (none clipped)
    assert seen["charts"] == 8 and seen["drawn"] == 8 and seen["withData"] == 8
    assert seen["heatmaps"] >= 6
    assert seen["tables"] >= 5  # comparison, change points, failures, env diff, environment
