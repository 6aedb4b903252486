"""The dashboard's pages in Debian's chromium, acting as a user does: silencing an alert group,
what Compare opens on, local times, the Analytics page's defaults, the scaling slope.

Each test works on its own copy of the golden store (8 finished runs of one spec).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from allele.store import open_store

from .dashboard_server import chromium, serve_dashboard

pytestmark = [pytest.mark.slow, pytest.mark.browser]

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "store.db"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def golden_copy(tmp_path: Path) -> str:
    path = tmp_path / "store.db"
    shutil.copyfile(GOLDEN, path)
    return f"sqlite:///{path}"


class Page:
    """A browser page (in a time zone west of UTC) that records console errors and warnings."""

    def __init__(self, browser: Any, timezone: str = "America/New_York") -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000},
                                     timezone_id=timezone)
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}")
                     if m.type in ("error", "warning", "trace") else None)
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.page.close()


def test_silence_button_silences_the_whole_regression_group(tmp_path: Path,
                                                            browser: Any) -> None:
    from allele.bench.alerting import comparison_alerts, raise_regressions
    from allele.bench.views import run_comparison
    from allele.config import load_settings

    url = golden_copy(tmp_path)
    with open_store(url) as st:  # two regressions: one group of two alerts without alertname
        raise_regressions(st, comparison_alerts(run_comparison(st, "golden-04", "golden-08")),
                          load_settings(notify={}))
    with serve_dashboard(url, deliver=False) as base, Page(browser) as p:
        p.page.goto(base + "/alerts")
        counts = p.page.locator("#alert-counts")
        p.page.wait_for_function("document.getElementById('alert-counts').innerText"
                                 ".includes('2 firing')")
        p.page.select_option(".group select", "86400")
        p.page.click(".group button:has-text('silence')")
        p.page.wait_for_function("document.getElementById('alert-counts').innerText"
                                 ".includes('2 silenced')")
        assert "0 firing" in counts.inner_text()
        states = p.page.locator(".group tbody tr td:first-child").all_inner_texts()
        assert states == ["silenced", "silenced"]
        assert p.page.locator("#silences tbody tr").count() == 2
        assert p.page.locator("#error").is_hidden() and p.console == []


def _run_with(url: str, name: str, spec: str, cells: list[Any], finished: bool = True) -> str:
    with open_store(url) as st:
        run_id = st.create_run(name, spec, "t", {}, {})
        for c in cells:
            st.save_cell(run_id, c)
        if finished:
            st.finish_run(run_id, "finished")
    return run_id


def test_compare_and_history_open_on_finished_runs(tmp_path: Path, browser: Any) -> None:
    url = golden_copy(tmp_path)
    with open_store(url) as st:
        cells = list(st.load_run("golden-08").cells)
    _run_with(url, "elsewhere", "other-spec", cells[:1])  # nothing in common with 'partial'
    # the newest finished run of spec golden: 3 of golden-08's 4 cells
    _run_with(url, "partial", "golden", cells[1:])
    _run_with(url, "live2", "slow", [], finished=False)  # newest of all: running, no cells
    with serve_dashboard(url, deliver=False) as base, Page(browser) as p:
        p.page.goto(base + "/compare")
        p.page.wait_for_selector("#compare-only")
        summary = p.page.locator("#compare-summary").inner_text()
        assert summary.startswith("golden-08 → partial: ")
        assert p.page.locator("#compare-only").inner_text() == (
            "1 cells only in golden-08, 0 only in partial (not compared)")
        assert p.page.locator("#verdicts tbody tr").count() > 0

        p.page.select_option("#compare-base", label="elsewhere (finished)")
        p.page.click("#compare-form button")
        p.page.wait_for_function("document.getElementById('compare-summary').innerText"
                                 ".includes('elsewhere')")
        assert p.page.locator("#compare-summary").inner_text() == (
            "elsewhere → partial: no cell in common, nothing was compared "
            "(1 cells only in elsewhere, 3 only in partial)")
        assert p.page.locator("#forest").is_hidden()
        assert p.page.locator("#verdicts tbody tr").count() == 0

        p.page.goto(base + "/history")
        p.page.wait_for_selector("#history-table table")
        keys = p.page.locator("#history-key option").evaluate_all("(os) => os.map((o) => o.value)")
        assert sorted(keys) == sorted(c.key for c in cells)
        texts = p.page.locator("#history-key option").all_inner_texts()
        assert all("{" not in t and "=" in t for t in texts)  # key=value, not the key's JSON
        assert p.page.locator("#history-metric").input_value() == "wall_s"
        assert p.page.locator("#error").is_hidden()
        assert p.console == []


def _local(ts: float, zone: str) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ts, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_tables_show_local_times_as_the_charts_do(tmp_path: Path, browser: Any,
                                                  zone: str) -> None:
    from allele.bench.alerting import comparison_alerts, raise_regressions
    from allele.bench.views import run_comparison
    from allele.config import load_settings

    url = golden_copy(tmp_path)
    with open_store(url) as st:
        created = st.get_run("golden-08").created_at
        rows = comparison_alerts(run_comparison(st, "golden-04", "golden-08"))
        raise_regressions(st, rows, load_settings(notify={}))
    assert _local(created, zone) != _local(created, "UTC")
    with serve_dashboard(url, deliver=False) as base, Page(browser, zone) as p:
        p.page.goto(base + "/runs")
        row = p.page.locator("#run-list tr", has_text="golden-08")
        p.page.wait_for_selector("#run-list table")
        assert row.locator("td").nth(4).inner_text() == _local(created, zone)
        p.page.goto(base + "/alerts")
        p.page.wait_for_selector(".group table")
        since = p.page.locator(".group tbody tr td:last-child").all_inner_texts()
        assert since == [_local(rows[0].starts_at, zone)] * 2


def test_analytics_draws_the_forecast_when_the_series_is_too_short_to_score(
        tmp_path: Path, browser: Any) -> None:
    from allele.store.points import MetricPoint

    url = golden_copy(tmp_path)
    with open_store(url) as st:  # the first series listed, too short for anomaly scores
        st.write_metric_points([MetricPoint("allele_bench_cells_done", "bench", (), 1.79e9 + i,
                                            float(i)) for i in range(25)])
    _run_with(url, "live2", "slow", [], finished=False)
    with serve_dashboard(url, deliver=False) as base, Page(browser) as p:
        p.page.goto(base + "/analytics")
        p.page.wait_for_selector("#forecast-chart .main-svg")
        p.page.wait_for_selector("#anomaly-error:not([hidden])")
        assert p.page.locator("#anomaly-error").inner_text() == (
            "anomaly scores: series of 25 points is too short: the learning period takes half "
            "the series and needs at least 50 points, so 100 points or more")
        assert p.page.locator("#anomaly-chart").is_hidden()
        assert p.page.locator("#forecast-error").is_hidden()
        assert p.page.locator("#error").is_hidden()
        assert "forecast of allele_bench_cells_done" in p.page.locator(
            "#forecast-chart").inner_text()
        # root causes and recommendations open on finished runs, not the running one
        picks = [p.page.locator(f"#{form} select[name={name}] option:checked").inner_text()
                 for form, name in (("rca-form", "base"), ("rca-form", "head"),
                                    ("rec-form", "run"))]
        assert picks == ["golden-07 (finished)", "golden-08 (finished)", "golden-08 (finished)"]

        p.page.fill("input[name=learn]", "30")
        p.page.click("#series-form button")
        p.page.wait_for_function("document.getElementById('anomaly-error').innerText"
                                 ".includes('series of 25 points is too short to score')")
        assert p.page.locator("#anomaly-error").inner_text().endswith(
            "the learning period needs at least 29 points, so a series needs at least 30")
        assert "learn=30" in p.page.url.split("?")[1].split("&")


def test_recommendations_open_on_the_runs_own_quality_metric(tmp_path: Path,
                                                              browser: Any) -> None:
    """A run that measures accuracy, not best_fitness: the form offers the run's metrics and
    opens on accuracy (it opened on best_fitness and answered with an error)."""
    from allele.store import CellResult, Sample, cell_key

    url = golden_copy(tmp_path)
    cells = []
    for lr in (0.01, 0.03, 0.1, 1.0):
        params = {"lr": lr}
        cells.append(CellResult(cell_key("train", params), "train", params, "ok",
                                [s for i in range(4) for s in (
                                    Sample("accuracy", 0.9 - abs(lr - 0.1) / 10 + i / 1000, i, 0),
                                    Sample("wall_s", 0.01 * (1 + i / 100), i, 0))],
                                started_at=1.0, finished_at=2.0))
    run_id = _run_with(url, "trained", "train-spec", cells)
    with serve_dashboard(url, deliver=False) as base, Page(browser) as p:
        p.page.goto(base + f"/analytics?run={run_id}")
        quality = p.page.locator("#rec-form input[name=quality]")
        p.page.wait_for_function(
            "document.querySelector('#rec-form input[name=quality]').value === 'accuracy'")
        options = p.page.locator("#rec-cost option")
        assert sorted(options.evaluate_all("os => os.map((o) => o.value)")) == [
            "accuracy", "wall_s"]
        assert quality.input_value() == "accuracy"
        p.page.click("#rec-form button")
        p.page.wait_for_selector("#recs h3")
        assert p.page.locator("#error").is_hidden()
        assert "train" in p.page.locator("#recs").inner_text()


def test_forest_labels_keep_the_parameters_of_a_long_target(tmp_path: Path,
                                                            browser: Any) -> None:
    """A user's target ``mybench.routines:sort_target`` with two varying parameters: the
    label drops the module path, not the parameters (``n=20000, variant…`` was cut)."""
    from allele.store import CellResult, Sample, cell_key

    url = golden_copy(tmp_path)
    target = "mybench.routines:sort_target"
    for name, slow in (("sorts-a", 1.0), ("sorts-b", 1.3)):
        cells = []
        for n in (20000, 200000):
            for variant in ("numpy", "python"):
                params = {"n": n, "variant": variant}
                f = slow if variant == "python" else 1.0
                cells.append(CellResult(cell_key(target, params), target, params, "ok",
                                        [Sample("wall_s", 1e-7 * n * f * (1 + i / 500), i, 0)
                                         for i in range(6)], started_at=1.0, finished_at=2.0))
        _run_with(url, name, "sorts", cells)
    with serve_dashboard(url, deliver=False) as base, Page(browser) as p:
        p.page.goto(base + "/compare?base=sorts-a&head=sorts-b")
        p.page.wait_for_selector("#forest .main-svg")
        p.page.wait_for_timeout(300)
        order = p.page.evaluate("document.getElementById('forest').layout.yaxis.categoryarray")
        assert order and all("wall_s · sort_target n=" in t and "variant=" in t for t in order)
        assert not any("mybench.routines" in t or t.endswith("…") for t in order)


def test_scaling_curve_shows_its_slope(tmp_path: Path, browser: Any) -> None:
    from allele.store import CellResult, Sample, cell_key

    url = golden_copy(tmp_path)
    cells = []
    for n in (10, 20, 40, 80):  # wall_s grows as n squared: a log-log slope of 2
        params = {"n": n}
        cells.append(CellResult(cell_key("quad", params), "quad", params, "ok",
                                [Sample("wall_s", 1e-6 * n * n * (1 + i / 1000), i, 0)
                                 for i in range(5)], started_at=1.0, finished_at=2.0))
    run_id = _run_with(url, "scaling", "quad-spec", cells)
    with serve_dashboard(url, deliver=False) as base, Page(browser) as p:
        p.page.goto(base + f"/runs?run={run_id}")
        legend = p.page.locator("#run-detail .legend .legendtext")
        legend.first.wait_for()
        assert legend.all_text_contents() == ["all cells (slope 2.00)"]


def test_forest_plot_colours_error_bars_by_verdict_in_the_cli_order(tmp_path: Path,
                                                                    browser: Any) -> None:
    import urllib.request

    url = golden_copy(tmp_path)
    with serve_dashboard(url, deliver=False) as base, Page(browser) as p:
        with urllib.request.urlopen(base + "/api/compare?base=golden-04&head=golden-08") as r:
            rows = [x for x in json.load(r)["rows"] if x["ratio"] is not None]
        rank = {"regressed": 0, "improved": 1, "inconclusive": 2, "unchanged": 3}
        rows.sort(key=lambda x: (rank[x["verdict"]], x["key"], x["metric"]))
        # metric first, then the target and the parameters that vary within it, cut at 60
        values: dict[str, dict[str, set[str]]] = {}
        for x in rows:
            for k, v in x["params"].items():
                values.setdefault(x["target"], {}).setdefault(k, set()).add(json.dumps(v))
        def label(x: dict[str, Any], target: str) -> str:
            varying = [k for k, vs in values[x["target"]].items() if len(vs) > 1]
            params = ", ".join(f"{k}={v if isinstance(v := x['params'][k], str) else json.dumps(v)}"
                               for k in varying)
            return f"{x['metric']} · {target}" + (f" {params}" if params else "")

        # a label that would be cut takes every target's module path first, not the parameters
        long = any(len(label(x, x["target"])) > 60 for x in rows)
        want = []
        for i, x in enumerate(rows):
            text = label(x, re.split(r"[:.]", x["target"])[-1] if long else x["target"])
            want.append(f"{i + 1}. " + (text[:59] + "…" if len(text) > 60 else text))
        p.page.goto(base + "/compare?base=golden-04&head=golden-08")
        p.page.wait_for_selector("#forest .main-svg")
        p.page.wait_for_timeout(300)
        order = p.page.evaluate("document.getElementById('forest').layout.yaxis.categoryarray")
        assert order == want
        traces = p.page.evaluate("document.getElementById('forest').data.map((t) => "
                                 "[t.name, t.marker.color, t.error_x.color, t.y.length])")
        colours = {"regressed": "#cf222e", "improved": "#1a7f37", "inconclusive": "#9a6700",
                   "unchanged": "#8c959f"}
        assert [(n, colours[n], colours[n]) for n, *_ in traces] == [tuple(t[:3])
                                                                    for t in traces]
        assert sum(t[3] for t in traces) == len(rows)
        strokes = set(p.page.evaluate(
            "[...document.querySelectorAll('#forest .errorbar path')]"
            ".map((e) => getComputedStyle(e).stroke)"))
        assert "rgb(0, 0, 0)" not in strokes and "rgb(207, 34, 46)" in strokes
        assert p.console == []


def test_live_cards_wrap_long_cell_keys(tmp_path: Path, browser: Any) -> None:
    from allele.store.live import Event

    url = golden_copy(tmp_path)
    key = "kraken|" + json_params(40)
    with open_store(url) as st:
        st.append_events([
            Event("run_started", "bench:1", ts=1000.0, run_id="wide",
                  data={"name": "wide-run", "spec": "s", "cells": 1, "skipped": 0}),
            Event("cell_stored", "bench:1", ts=1002.0, run_id="wide",
                  data={"key": key, "status": "ok", "done": 1, "failed": 0})])
    with serve_dashboard(url, deliver=False) as base, Page(browser) as p:
        p.page.goto(base + "/")
        card = p.page.locator(".card", has_text="wide-run")
        card.wait_for()
        shown = "kraken " + ", ".join(f"{k}={v}" for k, v in json.loads(key[7:]).items())
        assert shown in card.inner_text().replace("\n", "")  # key=value, not the key's JSON
        sizes = card.evaluate("(c) => [c.scrollWidth, c.clientWidth, "
                              "document.documentElement.scrollWidth, window.innerWidth]")
        assert sizes[0] <= sizes[1] and sizes[2] <= sizes[3]


def json_params(n: int) -> str:
    import json

    return json.dumps({f"parameter_{i}": i * 1000 for i in range(n)}, separators=(",", ":"))


# -- History after a `--filter` run, and Compare on runs it cannot compare ----------------------
# Every cell of the spec's recent runs is offered, and the page says why nothing is compared
# instead of showing a blank result or two other runs.


def test_history_offers_the_cells_a_filtered_run_left_out(tmp_path: Path, browser: Any) -> None:
    url = golden_copy(tmp_path)
    with open_store(url) as st:
        cells = list(st.load_run("golden-08").cells)
        run_id = st.create_run("only-one", "golden", "t", {}, {})  # `--filter`: one cell
        st.save_cell(run_id, cells[0])
        st.finish_run(run_id, "finished")
        left_out = cells[-1].key
    with serve_dashboard(url, deliver=False) as base, Page(browser) as p:
        page = p.page
        page.goto(base + "/history")
        page.wait_for_selector("#history-table table, #history-table p")
        keys = page.locator("#history-key option").evaluate_all("(os) => os.map((o) => o.value)")
        assert sorted(keys) == sorted(c.key for c in cells)
        page.select_option("#history-key", left_out)
        page.select_option("#history-metric", "wall_s")
        page.click("#history-form button")
        title = f"wall_s of {cells[-1].target} " + ", ".join(
            f"{k}={v}" for k, v in cells[-1].params.items())
        page.wait_for_function("(t) => (document.getElementById('history-chart').layout || {})"
                               ".title.text === t", arg=title)
        shown = page.locator("#history-table").inner_text()
        assert int(shown.split(" runs;")[0]) >= 2  # its history, from the spec's earlier runs
        assert page.locator("#error").is_hidden() and p.console == []


def test_compare_says_the_runs_are_the_same(tmp_path: Path, browser: Any) -> None:
    url = golden_copy(tmp_path)
    with serve_dashboard(url, deliver=False) as base, Page(browser) as p:
        page = p.page
        page.goto(base + "/compare?base=golden-08&head=golden-08")
        page.wait_for_selector("#error:not([hidden])")
        assert page.locator("#error").inner_text() == "BASE and HEAD are the same run (golden-08)"
        assert page.locator("#verdicts tbody tr").count() == 0


def test_compare_says_a_run_of_the_url_is_not_in_the_store(tmp_path: Path, browser: Any) -> None:
    url = golden_copy(tmp_path)
    with open_store(url) as st:
        head_id = st.get_run("golden-08").id
    with serve_dashboard(url, deliver=False) as base, Page(browser) as p:
        page = p.page
        page.goto(base + "/compare?base=zzz&head=yyy")
        page.wait_for_selector("#error:not([hidden])")
        hint = " (give an id, a name or 'latest'; `allele bench list` shows them)"
        assert page.locator("#error").inner_text() == (
            f"no run 'zzz' in the store{hint}; no run 'yyy' in the store{hint}")
        # no other run stands in for them
        assert page.locator("#compare-base").input_value() == ""
        assert page.locator("#compare-head").input_value() == ""
        assert page.locator("#verdicts tbody tr").count() == 0

        page.goto(base + "/compare?base=zzz&head=golden-08")
        page.wait_for_selector("#error:not([hidden])")
        assert page.locator("#error").inner_text() == f"no run 'zzz' in the store{hint}"
        assert page.locator("#compare-head").input_value() == head_id
        # the form still works: picking a run compares
        page.select_option("#compare-base", label="golden-07 (finished)")
        page.click("#compare-form button")
        page.wait_for_selector("#verdicts tbody tr")
        assert page.locator("#error").is_hidden()
        assert page.locator("#compare-summary").inner_text().startswith("golden-07 → golden-08")
