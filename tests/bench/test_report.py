"""Reports: data preparation against known values, HTML structure, valid Markdown."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest
from markdown_it import MarkdownIt

from allele.bench.report import (
    heatmap_grid,
    pick_quality_metric,
    pick_time_metric,
    render_html,
    render_markdown,
    report_data,
    scaling_fit,
    scaling_series,
    size_param,
    varying_params,
)
from allele.errors import ValidationError
from allele.store.model import CellResult, RunInfo, RunRecord, Sample, cell_key

POPS = (50, 100, 250, 500, 1000)


def make_run(name: str, t: float, rng: np.random.Generator, *, slow: float = 1.0,
             fail: bool = False, repeats: int = 6, commit: str = "abc") -> RunRecord:
    """An evolution-like run: wall_s ~ population^1 (x ``slow`` for population >= 500)."""
    cells = []
    for pop in POPS:
        for mr in (0.05, 0.2):
            for sel in ("rank", "tournament"):
                params = {"population_size": pop, "mutation_rate": mr, "selection": sel}
                key = cell_key("evolution", params)
                if fail and pop == 50 and mr == 0.05 and sel == "rank":
                    cells.append(CellResult(key, "evolution", params, "failed", [],
                                            error="Traceback ...\nValueError: boom"))
                    continue
                factor = slow if pop >= 500 else 1.0
                samples = []
                for r in range(repeats):
                    samples.append(Sample("wall_s", 0.001 * pop * factor
                                          * (1 + 0.02 * rng.standard_normal()), 0, r))
                    samples.append(Sample("best_fitness", 0.9 - 0.1 * mr
                                          + 0.001 * rng.standard_normal(), 0, r))
                cells.append(CellResult(key, "evolution", params, "ok", samples))
    env = {"python": "3.11.2", "cpu": {"model": "x", "logical": 2}, "git": {"commit": commit}}
    info = RunInfo(id=name, name=name, spec_name="seed-matrix", target="evolution",
                   status="finished", created_at=1000.0 + t, environment=env,
                   cell_count=len(cells), failed_count=int(fail))
    return RunRecord(info, cells)


def history(n: int = 10, step: int = 6, seed: int = 0) -> list[RunRecord]:
    """``n`` runs; from run ``step`` on, population >= 500 is 20% slower; the last one has a
    failed cell and another commit."""
    rng = np.random.default_rng(seed)
    runs = [make_run(f"run-{i}", i, rng, slow=1.2 if i >= step else 1.0) for i in range(n - 1)]
    runs.append(make_run(f"run-{n - 1}", n - 1, rng, slow=1.2, fail=True, commit="def"))
    return runs


def test_metric_choice_and_varying_params() -> None:
    assert pick_time_metric(["best_fitness", "wall_s", "cpu_user_s"]) == "wall_s"
    assert pick_quality_metric(["wall_s", "peak_rss_mb", "nrmse", "diversity"]) == "nrmse"
    assert pick_quality_metric(["wall_s", "peak_rss_mb", "accuracy"]) == "accuracy"
    assert pick_quality_metric(["wall_s", "peak_rss_mb"]) is None
    run = make_run("r", 0, np.random.default_rng(0))
    assert varying_params(run.cells) == ["population_size", "mutation_rate", "selection"]
    assert size_param(run.cells) == "population_size"


def test_heatmap_grid_medians() -> None:
    run = make_run("r", 0, np.random.default_rng(1))
    g = heatmap_grid(run.cells, "wall_s", "population_size", "selection")
    assert g.xs == list(POPS) and g.ys == ["rank", "tournament"]
    for i, sel in enumerate(g.ys):
        for j, pop in enumerate(g.xs):
            pooled = [v for c in run.cells if c.params["population_size"] == pop
                      and c.params["selection"] == sel for v in c.values("wall_s")]
            assert g.z[i][j] == pytest.approx(float(np.median(pooled)))
    sparse = heatmap_grid(run.cells[:3], "wall_s", "population_size", "selection")
    assert any(v is None for row in sparse.z for v in row) or len(sparse.xs) == 1


def test_scaling_fit_recovers_known_exponent() -> None:
    sizes = [10, 20, 40, 80, 160]
    slope, intercept = scaling_fit(sizes, [3.0 * s**1.5 for s in sizes])
    assert slope == pytest.approx(1.5) and intercept == pytest.approx(np.log(3.0))
    with pytest.raises(ValidationError):
        scaling_fit([10, 10], [1.0, 2.0])
    run = make_run("r", 0, np.random.default_rng(2))
    series = scaling_series(run.cells, "wall_s", "population_size")
    assert [s.label for s in series] == ["mutation_rate=0.05", "mutation_rate=0.2"]
    for s in series:
        assert s.sizes == [float(p) for p in POPS]
        assert s.slope == pytest.approx(1.0, abs=0.03)  # wall_s ~ population


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_html_is_self_contained_with_all_sections() -> None:
    runs = history()
    data = report_data(runs[-1], runs[0], history=runs)
    assert data.comparison is not None and data.changes
    doc = render_html(data)
    parser = _Collect()
    parser.feed(doc)
    # no external resource of any kind
    for tag, attrs in parser.tags:
        assert not (tag == "script" and attrs.get("src")), attrs
        assert not (tag == "link" and attrs.get("href")), attrs
        assert not (tag == "img" and attrs.get("src", "").startswith("http"))
    from plotly.offline import get_plotlyjs

    plotlyjs = get_plotlyjs()
    assert doc.count(plotlyjs) == 1 and len(plotlyjs) > 3_000_000  # inlined once
    # (plotly.js itself names a topojson CDN, used by geo maps only, which we never draw)
    rest = doc.replace(plotlyjs, "")
    assert "cdn." not in rest and "http://" not in rest and "https://" not in rest
    divs = [a for t, a in parser.tags if t == "div" and "plotly-graph-div" in (a.get("class") or "")]
    # 3 heatmaps x (time, quality) + scaling + comparison chart
    assert len(divs) == 8
    for heading in ("Comparison with run-0", "Change points in the history",
                    "Target <code>evolution</code>", "Failures", "Environment",
                    "Differences from run-0"):
        assert heading in doc
    assert "population_size &gt;= 500" in doc
    assert "ValueError: boom" in doc
    assert re.search(r"git\.commit</td><td>abc</td><td>def</td>", doc)
    assert "median slope 1.0" in doc or "median slope 0.9" in doc
    # the comparison table shows what moved; the unchanged rows are folded into <details>
    rows = data.comparison.rows
    flagged = sum(r.verdict != "unchanged" for r in rows)
    steady = len(rows) - flagged
    assert flagged and steady
    section = doc[doc.index("Comparison with run-0"):doc.index("Change points in the history")]
    visible, folded = section.split("<details id='unchanged-comparisons'>")
    assert f"<summary>{steady} unchanged comparisons</summary>" in folded
    assert visible.count("<tr><td>") == flagged and "'v-unchanged'" not in visible
    assert folded.count("<tr><td>") == steady
    assert folded.count("<td class='v-unchanged'>") == steady


def test_html_without_baseline_or_history() -> None:
    run = make_run("solo", 0, np.random.default_rng(3))
    doc = render_html(report_data(run))
    assert "Comparison with" not in doc
    assert "Only 0 runs in the history" in doc
    assert doc.count("plotly-graph-div") == 7
    # a single varying parameter: line charts instead of heatmaps
    for c in run.cells:
        c.params = {"population_size": c.params["population_size"]}
    doc = render_html(report_data(run))
    assert doc.count("plotly-graph-div") == 3  # time line, quality line, scaling


def test_markdown_is_valid_and_lists_what_moved() -> None:
    runs = history()
    text = render_markdown(report_data(runs[-1], runs[0], history=runs))
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    tables = [t for t in tokens if t.type == "table_open"]
    assert len(tables) == 4  # moved cells, environment diff, change points, failures
    rows_per_table = []
    depth_rows = 0
    for t in tokens:
        if t.type == "table_open":
            depth_rows = 0
        elif t.type == "tr_open":
            depth_rows += 1
        elif t.type == "table_close":
            rows_per_table.append(depth_rows - 1)  # minus the header row
    data = report_data(runs[-1], runs[0], history=runs)
    assert data.comparison is not None
    moved = [r for r in data.comparison.rows if r.verdict != "unchanged"]
    assert rows_per_table == [len(moved), 1, len(data.changes), 1]
    assert sum(r.verdict == "regressed" for r in moved) == 8  # 2 pops x 2 rates x 2 selections
    assert "**regressions found**" in text
    assert "| regression | evolution | wall_s | run-6 |" in text
    html_out = MarkdownIt("commonmark").enable("table").render(text)
    assert html_out.count("<tr>") == sum(rows_per_table) + len(rows_per_table)


def test_markdown_pipes_escaped() -> None:
    rng = np.random.default_rng(4)
    run = make_run("r", 0, rng, fail=True)
    failed = next(c for c in run.cells if c.status == "failed")
    failed.error = "ValueError: a|b"
    text = render_markdown(report_data(run))
    assert "ValueError: a\\|b" in text
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    header_cells = 0
    in_head = False
    for t in tokens:
        if t.type == "thead_open":
            in_head = True
        elif t.type == "thead_close":
            in_head = False
        elif t.type == "th_open" and in_head:
            header_cells += 1
    assert header_cells == 4  # the failures table keeps its 4 columns


def test_busier_machine_warning_in_html_and_markdown() -> None:
    runs = history()
    base, head = runs[0], runs[-1]
    base.info.environment["load"] = {"1m": 0.2, "5m": 0.2, "15m": 0.2}
    head.info.environment["load"] = {"1m": 2.4, "5m": 1.1, "15m": 0.6}
    data = report_data(head, base, history=runs)
    assert data.comparison is not None
    (warning,) = data.comparison.warnings
    assert warning.startswith(f"the machine was busier when {head.info.name} started")
    doc = render_html(data)
    assert f"<p class='warning'>Warning: {warning}.</p>" in doc
    text = render_markdown(data)
    assert f"> **Warning:** {warning}." in text
    MarkdownIt("commonmark").enable("table").parse(text)  # still valid
    head.info.environment["load"] = {"1m": 0.3, "5m": 0.3, "15m": 0.3}
    calm = report_data(head, base, history=runs)
    assert calm.comparison is not None and calm.comparison.warnings == []
    assert "class='warning'" not in render_html(calm)


def test_ratio_axis_keeps_every_point_and_not_one_huge_interval() -> None:
    import dataclasses

    from allele.bench.compare import MetricComparison
    from allele.bench.estimate import compare_samples
    from allele.bench.report.ratio_axis import ratio_axis

    rng = np.random.default_rng(9)
    base = [rng.normal(1.0, 0.01, 12) for _ in range(3)]
    head = [base[0] * 1.3, base[1] * 0.9, base[2] * 1.02]
    rows = [MetricComparison(f"k{i}", "evolution", {}, "wall_s", e)
            for i, e in enumerate(compare_samples(base, head, paired=True))]
    # one row with a CI reaching +1800% (a tiny sys time that jumped in one sample)
    wild = rows[2].estimate
    rows[2] = MetricComparison("k2", "evolution", {}, "cpu_sys_s",
                               dataclasses.replace(wild, ci_high=19.0))
    lo, hi = ratio_axis(rows, 0.05)
    assert lo < 0.9 < 1.3 < hi < 2.0  # every point shown, the wild CI cut at the edge
    assert lo <= 0.95 and hi >= 1.05  # the floor lines stay in view
    assert ratio_axis([], 0.05) is None
    # the cut interval gets an arrow at the right edge on its own row, and only it
    import plotly.graph_objects as go

    from allele.bench.report.ratio_axis import cut_marks

    fig = go.Figure()
    assert cut_marks(fig, rows, ["a", "b", "c"], (lo, hi)) == 1
    marks = [(a.x, a.y, a.text) for a in fig.layout.annotations]
    assert marks == [(pytest.approx(np.log(hi)), "c", "▶")]  # drawn on the log-ratio scale
    fig = go.Figure()
    assert cut_marks(fig, rows, ["a", "b", "c"], (0.95, 1.25)) == 3  # 0.9 and 1.3 too
    assert sorted(a.y + a.text for a in fig.layout.annotations) == ["a▶", "b◀", "c▶"]


def test_one_far_row_does_not_flatten_the_others() -> None:
    """A x67 row among changes of a few percent: the axis follows the others (a halving as far
    from 1 as a doubling), the far row ends in an arrow, and the ticks read as changes."""
    import dataclasses

    import plotly.graph_objects as go

    from allele.bench.compare import MetricComparison
    from allele.bench.estimate import compare_samples
    from allele.bench.report.ratio_axis import cut_marks, ratio_axis, ratio_ticks, tick_label

    rng = np.random.default_rng(3)
    base = [rng.normal(1.0, 0.01, 12) for _ in range(4)]
    head = [base[0] * 67.0, base[1] * 1.08, base[2] * 0.94, base[3] * 1.01]
    rows = [MetricComparison(f"k{i}", "evolution", {}, "wall_s", e)
            for i, e in enumerate(compare_samples(base, head, paired=True))]
    lo, hi = ratio_axis(rows, 0.05)
    assert lo < 0.94 and 1.08 < hi < 2.0  # the x67 row is not in the range
    fig = go.Figure()
    assert cut_marks(fig, rows, ["a", "b", "c", "d"], (lo, hi)) == 1
    assert [(a.y, a.text) for a in fig.layout.annotations] == [("a", "▶")]
    # two far rows of five are both far: the axis keeps them (only a fifth is ever cut)
    rows2 = [*rows, dataclasses.replace(rows[0], key="k4")]
    assert ratio_axis(rows2, 0.05)[1] > 67.0
    ticks = ratio_ticks((lo, hi))
    assert 1.0 in ticks and all(lo <= t <= hi for t in ticks) and 3 <= len(ticks) <= 9
    assert [tick_label(t) for t in (0.5, 1.0, 1.1, 2.0, 10.0)] == [
        "-50%", "0%", "+10%", "+100%", "×10"]
