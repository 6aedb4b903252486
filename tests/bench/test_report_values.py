"""What the reports say of a comparison must match what its rows hold: charts of metrics that
have values, a caption that says what the change column is, an MDE cell that fits the row's
reason (the same text as the CLI's)."""

from __future__ import annotations

import math
import re

import numpy as np

from allele.bench.compare import compare_runs, mde_text
from allele.bench.report import heatmap_grid, render_html, render_markdown, report_data
from allele.store.model import CellResult, RunInfo, RunRecord, Sample, cell_key


def _run(name: str, t: float, metrics: dict[str, list[float]], *, scale: float = 1.0,
         modes: tuple[str, ...] = ("a", "b", "c", "d")) -> RunRecord:
    """One cell per mode; ``wall_s`` gets ``scale`` and a per-cell level."""
    cells = []
    for k, mode in enumerate(modes):
        params = {"mode": mode}
        samples = []
        for metric, vs in metrics.items():
            level = (k + 1) * scale if metric == "wall_s" else 1.0
            samples += [Sample(metric, v * level, seed, 0) for seed, v in enumerate(vs)]
        cells.append(CellResult(cell_key("t", params), "t", params, "ok", samples))
    info = RunInfo(id=name, name=name, spec_name="s", target="t", status="finished",
                   created_at=t, environment={})
    return RunRecord(info, cells)


def _chart_titles(doc: str) -> list[str]:
    return re.findall(r'"title":\{"text":"([^"]+)"', doc)


def test_charts_draw_metrics_with_values_and_skip_the_rest() -> None:
    """The review's report drew "inf by mode" (no finite value anywhere) and not ``score``
    (NaN for one seed), whose median over the other seeds exists."""
    wall = [0.010, 0.011, 0.012, 0.0105]
    run = _run("r", 0.0, {"wall_s": wall, "inf": [math.inf] * 4,
                          "score": [math.nan, 1.0, 2.0, 3.0], "loops": [1.0] * 4})
    titles = _chart_titles(render_html(report_data(run)))
    assert "score by mode (median; higher is better)" in titles
    assert "wall_s by mode (median; lower is better)" in titles
    assert not any(t.startswith(("inf ", "loops ")) for t in titles)


def test_heatmap_medians_ignore_non_finite_samples() -> None:
    cells = []
    for x in (1, 2):
        for y in ("p", "q"):
            params = {"x": x, "y": y}
            samples = [Sample("score", v, s, 0) for s, v in enumerate([math.nan, x, x])]
            cells.append(CellResult(cell_key("t", params), "t", params, "ok", samples))
    g = heatmap_grid(cells, "score", "x", "y")
    assert g.z == [[1.0, 2.0], [1.0, 2.0]]


def test_the_change_caption_says_the_run_wide_shift_is_taken_out() -> None:
    """``13.73 ms -> 7.26 ms`` shown as ``+17.3%`` under "change = HEAD/BASE of the geometric
    means": the caption now says what the column is, in HTML and Markdown."""
    rng = np.random.default_rng(0)
    wall = list(0.01 * np.exp(0.01 * rng.standard_normal(6)))
    again = list(0.01 * np.exp(0.01 * rng.standard_normal(6)))  # its own noise: a machine
    base = _run("base", 0.0, {"wall_s": wall})                   # never halves every sample
    head = _run("head", 1.0, {"wall_s": again}, scale=0.5)       # exactly (runlevel._exact)
    data = report_data(head, base)
    assert data.comparison is not None
    (shift,) = data.comparison.shifts
    assert shift.metric == "wall_s" and abs(shift.ratio - 0.5) < 0.02
    said = f"run-wide shift of wall_s ({shift.ratio - 1.0:+.1%}) taken out"
    doc = render_html(data)
    caption = re.search(r"<p class='muted' id='change-legend'>(.*?)</p>", doc)
    assert caption is not None
    assert "geometric means" not in doc
    assert said in caption.group(1) and said.startswith("run-wide shift of wall_s (-5")
    md = render_markdown(data)
    assert said in md


def _mde_cells(doc: str) -> dict[str, str]:
    """metric -> the MDE cell of the comparison tables (column 10 of 12)."""
    out = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", doc, flags=re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
        if len(cells) == 12:
            out[cells[2].split(" (")[0]] = cells[9]
    return out


def test_the_mde_column_fits_each_rows_reason() -> None:
    """Every inconclusive row read "n too small", a row below resolution too; now the reports
    write what the CLI writes (:func:`mde_text`)."""
    rng = np.random.default_rng(1)
    modes = ("a", "b", "c", "d", "e", "f")
    quiet = list(np.exp(0.01 * rng.standard_normal(8)))
    base = _run("base", 0.0, {"wall_s": quiet, "cpu_sys_s": [0.0, 2e-5] * 4,
                              "score": quiet, "lone": [1.0]}, modes=modes)
    head = _run("head", 1.0, {"wall_s": quiet, "cpu_sys_s": [1e-5, 0.0] * 4,
                              "score": list(np.array(quiet) * np.exp(
                                  rng.standard_normal(8))), "lone": [2.0]}, modes=modes)
    comp = compare_runs(base, head)
    reasons = {r.metric: r.estimate.reason for r in comp.rows if r.params["mode"] == "a"}
    assert reasons["cpu_sys_s"] == "below resolution"
    assert reasons["lone"] == "too few samples"
    assert reasons["score"] == "too noisy"
    cells = _mde_cells(render_html(report_data(head, base)))
    assert cells["cpu_sys_s"] == "–" and cells["score"] == "–"
    assert cells["lone"] == "n too small"
    by_metric = {r.metric: r for r in comp.rows if r.params["mode"] == "a"}
    assert mde_text(by_metric["wall_s"].estimate).endswith("%")
    md = render_markdown(report_data(head, base))
    assert md.count("n too small") == sum(r.estimate.reason == "too few samples"
                                          for r in comp.rows)
