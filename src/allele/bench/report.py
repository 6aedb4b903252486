"""Reports of a run: one self-contained HTML file (Plotly, JavaScript inlined) or Markdown.

The HTML holds, per target: heatmaps of time and of quality over pairs of matrix parameters,
scaling curves (time against a size parameter on log-log axes, with the fitted slope); then the
comparison against a baseline (verdict table and a ratio/CI chart), the change points found in the
history, failed cells, and the environment with its differences from the baseline. Nothing is
fetched at view time: no CDN, no fonts, no images.

The Markdown version is made for a pull-request comment: verdict counts, the cells that moved,
regressions in the history, failures and the environment differences.

The data preparation (:func:`heatmap_grid`, :func:`scaling_series`, ...) is pure and separately
tested; :func:`build_report` is the only function that reads a store.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from allele.bench.compare import (
    VERDICT_RANK,
    Comparison,
    MetricComparison,
    compare_runs,
    environment_diff,
    row_params,
    run_to_run_noise,
    split_params,
)
from allele.bench.format import number, param_variation, params_text, pct, when
from allele.bench.history import HISTORY_RUNS, History, as_history, load_history
from allele.bench.metrics import (
    QUALITY_METRICS,
    RESOURCE_METRICS,
    TIME_METRICS,
    direction_of,
)
from allele.bench.regress import ChangeGroup, find_changes
from allele.errors import ValidationError
from allele.store.model import CellResult, RunRecord

if TYPE_CHECKING:
    from allele.store import ResultStore

ReportFormat = Literal["html", "markdown"]

SIZE_HINTS = ("population", "size", "length", "steps", "n_", "genomes", "tokens")
MAX_PAIRS = 3
MAX_ROWS_MD = 40


# --------------------------------------------------------------------------------------------
# data preparation (pure)


def _ok(cells: Sequence[CellResult]) -> list[CellResult]:
    return [c for c in cells if c.status == "ok" and c.metrics()]


def pick_time_metric(metrics: Sequence[str]) -> str | None:
    """The metric that stands for speed: the first present of :data:`TIME_METRICS`."""
    return next((m for m in TIME_METRICS if m in metrics), None)


def pick_quality_metric(metrics: Sequence[str]) -> str | None:
    """The metric that stands for quality: a known one, else any non-time, non-resource one."""
    known = next((m for m in QUALITY_METRICS if m in metrics), None)
    if known is not None:
        return known
    rest = sorted(m for m in metrics if m not in TIME_METRICS and m not in RESOURCE_METRICS)
    return rest[0] if rest else None


def varying_params(cells: Sequence[CellResult]) -> list[str]:
    """Parameters with more than one value among ``cells``, most values first."""
    counts = param_variation(c.params for c in cells)
    return sorted((k for k, n in counts.items() if n > 1), key=lambda k: (-counts[k], k))


def _sort_values(values: set[Any]) -> list[Any]:
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return sorted(values)
    return sorted(values, key=lambda v: json.dumps(v, sort_keys=True, default=str))


def _hashable(v: Any) -> Any:
    return v if isinstance(v, int | float | str | bool) or v is None else json.dumps(
        v, sort_keys=True, default=str)


@dataclass(frozen=True, slots=True)
class Grid:
    """A heatmap: median of ``metric`` for each (x, y) parameter pair, over all other params."""

    metric: str
    x: str
    y: str
    xs: list[Any]
    ys: list[Any]
    z: list[list[float | None]]
    """``z[i][j]`` belongs to ``ys[i]``, ``xs[j]``; None where no cell measured it."""


def heatmap_grid(cells: Sequence[CellResult], metric: str, x: str, y: str) -> Grid:
    """Median of every sample of ``metric`` in the cells sharing each (x, y) value pair."""
    pool: dict[tuple[Any, Any], list[float]] = {}
    for c in _ok(cells):
        if x not in c.params or y not in c.params:
            continue
        vals = c.values(metric)
        if vals:
            pool.setdefault((_hashable(c.params[x]), _hashable(c.params[y])), []).extend(vals)
    xs = _sort_values({k[0] for k in pool})
    ys = _sort_values({k[1] for k in pool})
    z: list[list[float | None]] = [[float(np.median(pool[(xv, yv)])) if (xv, yv) in pool
                                    else None for xv in xs] for yv in ys]
    return Grid(metric, x, y, xs, ys, z)


def scaling_fit(sizes: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """Least-squares line through ``(log sizes, log values)``: ``(slope, intercept)``."""
    s = np.asarray(sizes, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    keep = (s > 0) & (v > 0)
    if int(np.unique(s[keep]).size) < 2:
        raise ValidationError("a scaling fit needs positive values at two or more sizes")
    slope, intercept = np.polyfit(np.log(s[keep]), np.log(v[keep]), 1)
    return float(slope), float(intercept)


def size_param(cells: Sequence[CellResult]) -> str | None:
    """The numeric parameter to draw scaling curves over: >= 3 positive values, size-like name
    preferred."""
    candidates = []
    for name in varying_params(cells):
        vals = {c.params.get(name) for c in cells if name in c.params}
        if len(vals) >= 3 and all(isinstance(v, int | float) and not isinstance(v, bool)
                                  and v > 0 for v in vals):
            hinted = any(h in name.lower() for h in SIZE_HINTS)
            candidates.append((not hinted, -len(vals), name))
    return min(candidates)[2] if candidates else None


@dataclass(frozen=True, slots=True)
class ScalingSeries:
    """One curve: the median metric at each size, for one combination of the other params."""

    label: str
    sizes: list[float]
    values: list[float]
    slope: float | None


def scaling_series(cells: Sequence[CellResult], metric: str, size: str,
                   max_series: int = 8) -> list[ScalingSeries]:
    """Curves of ``metric`` against ``size``, one per value of the most varying other param
    (or a single curve pooling everything)."""
    ok = [c for c in _ok(cells) if size in c.params and c.values(metric)]
    others = [p for p in varying_params(ok) if p != size]
    split = others[0] if others else None
    groups: dict[Any, dict[float, list[float]]] = {}
    for c in ok:
        label = _hashable(c.params.get(split)) if split else None
        groups.setdefault(label, {}).setdefault(float(c.params[size]), []).extend(
            c.values(metric))
    out = []
    for label in _sort_values(set(groups))[:max_series]:
        by_size = groups[label]
        xs = sorted(by_size)
        ys = [float(np.median(by_size[s])) for s in xs]
        try:
            slope: float | None = scaling_fit(xs, ys)[0]
        except ValidationError:
            slope = None
        name = f"{split}={label}" if split else "all cells"
        out.append(ScalingSeries(name, xs, ys, slope))
    return out


def _by_target(cells: Sequence[CellResult]) -> dict[str, list[CellResult]]:
    out: dict[str, list[CellResult]] = {}
    for c in cells:
        out.setdefault(c.target, []).append(c)
    return dict(sorted(out.items()))


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k in sorted(d, key=str):
        v = d[k]
        if isinstance(v, dict) and v:
            out.extend(_flatten(v, f"{prefix}{k}."))
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _params_text(params: dict[str, Any]) -> str:
    return params_text(params, empty="(no params)")


class _ShownParams:
    """A comparison's rows show the parameters that vary within their target; the ones every
    cell of a target shares are said once (:func:`allele.bench.compare.split_params`)."""

    def __init__(self, comp: Comparison) -> None:
        self.split = split_params(comp.rows)

    def text(self, r: MetricComparison) -> str:
        return _params_text(row_params(self.split, r))

    def fixed_lines(self) -> list[str]:
        return [f"{target}, in every cell: {_params_text(fixed)}"
                for target, (_, fixed) in self.split.items() if fixed]


def _sorted_rows(comp: Comparison) -> list[MetricComparison]:
    return sorted(comp.rows, key=lambda r: (VERDICT_RANK[r.verdict],
                                            -abs(math.log(r.estimate.ratio))
                                            if r.estimate.ratio > 0
                                            and math.isfinite(r.estimate.ratio) else -math.inf,
                                            r.key, r.metric))


# --------------------------------------------------------------------------------------------
# the report's content


@dataclass(slots=True)
class ReportData:
    """Everything a report shows; built by :func:`build_report` or by hand in tests."""

    run: RunRecord
    baseline: RunRecord | None = None
    comparison: Comparison | None = None
    changes: list[ChangeGroup] = field(default_factory=list)
    history_runs: int = 0
    generated_at: float = field(default_factory=time.time)


def report_data(run: RunRecord, baseline: RunRecord | None = None, *,
                history: History | Sequence[RunRecord] = (), q: float = 0.05,
                floor: float = 0.05, seed: int = 0) -> ReportData:
    """Compare ``run`` with ``baseline`` (if any) and look for change points in ``history``
    (runs up to and including ``run``)."""
    past = as_history(history)
    noise = run_to_run_noise(past) if baseline is not None else {}
    comparison = (compare_runs(baseline, run, q=q, floor=floor, seed=seed, noise=noise)
                  if baseline is not None else None)
    changes = find_changes(past) if len(past) >= 6 else []
    return ReportData(run, baseline, comparison, changes, len(past))


def build_report(store: ResultStore, run_ref: str, baseline_ref: str | None = None, *,
                 fmt: ReportFormat = "html", q: float = 0.05, floor: float = 0.05,
                 seed: int = 0, history_runs: int = HISTORY_RUNS) -> str:
    """Load the runs from ``store`` and render the report of ``run_ref``."""
    data = load_report_data(store, run_ref, baseline_ref, q=q, floor=floor, seed=seed,
                            history_runs=history_runs)
    return render_markdown(data) if fmt == "markdown" else render_html(data)


def load_report_data(store: ResultStore, run_ref: str, baseline_ref: str | None = None, *,
                     q: float = 0.05, floor: float = 0.05, seed: int = 0,
                     history_runs: int = HISTORY_RUNS) -> ReportData:
    """The runs :func:`build_report` needs from ``store``, compared and analysed."""
    run = store.load_run(run_ref)
    baseline = store.load_run(baseline_ref) if baseline_ref is not None else None
    history = load_history(store, run.info, history_runs)
    return report_data(run, baseline, history=history, q=q, floor=floor, seed=seed)


# --------------------------------------------------------------------------------------------
# HTML


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;
background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c5cad6;font-size:14px}
main{padding:10px 28px 40px}section{background:#fff;border:1px solid #e2e5ea;border-radius:8px;
padding:14px 18px;margin:16px 0}h2{font-size:18px;margin:4px 0 10px}h3{font-size:15px}
table{border-collapse:collapse;font-size:13px;width:100%}th,td{border-bottom:1px solid #eceef2;
padding:4px 8px;text-align:left;vertical-align:top}th{background:#f0f2f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.v-regressed{color:#b3261e;font-weight:600}.v-improved{color:#1b7f3a;font-weight:600}
.v-inconclusive{color:#9a6700}.v-unchanged{color:#57606a}
.badge{display:inline-block;border-radius:10px;padding:2px 10px;margin-right:6px;font-size:13px;
background:#eceef2}.diff{background:#fff4d6}.charts{display:flex;flex-wrap:wrap;gap:12px}
.chart{flex:1 1 460px;min-width:420px}
.warning{background:#fff4d6;border-left:4px solid #c08a00;padding:6px 10px}
.muted{color:#6a7280}code{font-size:12px}
"""


# Each chart is drawn by its own inline script while the page is still being parsed, so a chart
# that shares a row with a later one is first sized as if it were alone in the row (and then
# clipped). Plotly's "responsive" option follows window resizes only; this refits every chart
# whenever its box changes size, including once right after the page is laid out.
_FIT_CHARTS_JS = (
    "(function(){if(!window.ResizeObserver||!window.Plotly)return;"
    "var ro=new ResizeObserver(function(es){es.forEach(function(e){"
    "var d=e.target.querySelector('[id^=chart-]');if(d)Plotly.Plots.resize(d);});});"
    "document.querySelectorAll('.chart').forEach(function(c){ro.observe(c);});})();")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]],
           classes: Sequence[str] | None = None) -> str:
    """An HTML table; cells are already-escaped HTML fragments; ``classes`` per row."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _td(text: str, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f"<td{c}>{html.escape(text)}</td>"


class _Figures:
    """Collects Plotly figures as HTML divs (JavaScript shared, inlined once)."""

    def __init__(self) -> None:
        self.count = 0

    def div(self, fig: Any) -> str:
        self.count += 1
        fig.update_layout(margin={"l": 60, "r": 20, "t": 50, "b": 50},
                          height=fig.layout.height or 380,  # a chart may need more rows
                          template="plotly_white")
        out: str = fig.to_html(full_html=False, include_plotlyjs=False,
                               div_id=f"chart-{self.count}",
                               config={"displaylogo": False, "responsive": True})
        return f'<div class="chart">{out}</div>'


def _label(v: Any) -> str:
    return str(v)


def _target_section(target: str, cells: list[CellResult], figs: _Figures) -> str:
    import plotly.graph_objects as go

    ok = _ok(cells)
    metrics = sorted({m for c in ok for m in c.metrics()})
    parts = [f"<h2>Target <code>{html.escape(target)}</code></h2>",
             f"<p class='muted'>{len(cells)} cells, {len(ok)} ok; metrics: "
             f"{html.escape(', '.join(metrics))}</p>"]
    charts: list[str] = []
    params = varying_params(ok)
    chosen = [m for m in (pick_time_metric(metrics), pick_quality_metric(metrics)) if m]
    for metric in chosen:
        better = "lower" if direction_of(metric) == "lower" else "higher"
        scale = "Reds" if better == "lower" else "Greens"
        if len(params) >= 2:
            for x, y in list(itertools.combinations(params, 2))[:MAX_PAIRS]:
                g = heatmap_grid(ok, metric, x, y)
                fig = go.Figure(go.Heatmap(
                    x=[_label(v) for v in g.xs], y=[_label(v) for v in g.ys], z=g.z,
                    colorscale=scale, reversescale=better == "higher",
                    colorbar={"title": {"text": metric}},
                    hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}=%{{z:.4g}}"
                                  "<extra></extra>"))
                fig.update_xaxes(title_text=x, type="category")
                fig.update_yaxes(title_text=y, type="category")
                fig.update_layout(title_text=f"{metric} (median; {better} is better)")
                charts.append(figs.div(fig))
        elif len(params) == 1:
            p = params[0]
            pool: dict[Any, list[float]] = {}
            for c in ok:
                pool.setdefault(_hashable(c.params.get(p)), []).extend(c.values(metric))
            xs = _sort_values(set(pool))
            fig = go.Figure(go.Scatter(x=[_label(v) for v in xs],
                                       y=[float(np.median(pool[v])) if pool[v] else None
                                          for v in xs], mode="lines+markers", name=metric))
            fig.update_layout(title_text=f"{metric} by {p} (median; {better} is better)")
            fig.update_xaxes(title_text=p, type="category")
            fig.update_yaxes(title_text=metric)
            charts.append(figs.div(fig))
    time_metric = pick_time_metric(metrics)
    size = size_param(ok)
    if time_metric and size:
        series = scaling_series(ok, time_metric, size)
        fig = go.Figure()
        slopes = []
        for s in series:
            tag = f" (slope {s.slope:.2f})" if s.slope is not None else ""
            if s.slope is not None:
                slopes.append(s.slope)
            fig.add_trace(go.Scatter(x=s.sizes, y=s.values, mode="lines+markers",
                                     name=f"{s.label}{tag}"))
        overall = f"; median slope {np.median(slopes):.2f}" if slopes else ""
        fig.update_xaxes(type="log", title_text=size)
        fig.update_yaxes(type="log", title_text=time_metric)
        fig.update_layout(title_text=f"Scaling: {time_metric} vs {size} (log-log{overall})")
        charts.append(figs.div(fig))
    if charts:
        parts.append(f"<div class='charts'>{''.join(charts)}</div>")
    else:
        parts.append("<p class='muted'>No matrix parameter varies enough to draw a chart.</p>")
    return "<section>" + "".join(parts) + "</section>"


def _comparison_section(comp: Comparison, figs: _Figures) -> str:
    import plotly.graph_objects as go

    counts = comp.counts()
    badges = "".join(f"<span class='badge v-{v}'>{v}: {n}</span>" for v, n in counts.items())
    rows = _sorted_rows(comp)
    shown = _ShownParams(comp)
    moved = [r for r in rows if r.verdict != "unchanged"][:40] or rows[:20]
    parts = [f"<h2>Comparison with {html.escape(comp.base.name)}</h2>",
             f"<p>{badges}</p><p class='muted'>HEAD = {html.escape(comp.head.name)}; "
             f"ratio = HEAD/BASE of the means with a bootstrap 95% CI; FDR q = {comp.q}, "
             f"practical floor {comp.floor:.0%}.</p>"]
    parts.extend(f"<p class='warning'>Warning: {html.escape(w)}.</p>" for w in comp.warnings)
    note = comp.noise_note()
    if note:
        parts.append(f"<p class='muted' id='noise-note'>{html.escape(note)}.</p>")
    if moved:
        fig = go.Figure()
        labels = [f"{shown.text(r)} · {r.metric}" for r in moved]
        for verdict, color in (("regressed", "#b3261e"), ("improved", "#1b7f3a"),
                               ("inconclusive", "#c08a00"), ("unchanged", "#8a9099")):
            idx = [i for i, r in enumerate(moved) if r.verdict == verdict
                   and math.isfinite(r.estimate.ratio) and math.isfinite(r.estimate.ci_low)
                   and math.isfinite(r.estimate.ci_high)]
            if not idx:
                continue
            est = [moved[i].estimate for i in idx]
            fig.add_trace(go.Scatter(
                x=[e.ratio for e in est], y=[labels[i] for i in idx], mode="markers",
                name=verdict, marker={"color": color, "size": 9},
                error_x={"type": "data", "symmetric": False,
                         "array": [e.ci_high - e.ratio for e in est],
                         "arrayminus": [e.ratio - e.ci_low for e in est]}))
        for xv in (1.0 - comp.floor, 1.0, 1.0 + comp.floor):
            fig.add_vline(x=xv, line_dash="dot" if xv != 1.0 else "solid",
                          line_color="#8a9099")
        fig.update_layout(title_text="HEAD/BASE ratio with 95% CI (dotted: practical floor)",
                          height=max(380, 24 * len(moved) + 120))
        fig.update_yaxes(autorange="reversed", dtick=1)  # a label on every row
        x_range = _ratio_axis(moved, comp.floor)
        if x_range is not None:
            fig.update_xaxes(range=list(x_range))
        parts.append(figs.div(fig))
    headers = ["target", "params", "metric", "base median", "head median", "change",
               "95% CI", "p", "q (BH)", "MDE", "test", "verdict"]

    def comparison_table(selected: list[MetricComparison]) -> str:
        table_rows = []
        for r in selected:
            e = r.estimate
            table_rows.append([
                _td(r.target), _td(shown.text(r)), _td(r.metric),
                _td(number(e.median_base), "num"), _td(number(e.median_head), "num"),
                _td(pct(e.ratio), "num"),
                _td(f"[{pct(e.ci_low)}, {pct(e.ci_high)}]", "num"),
                _td(number(e.p_value, 2), "num"), _td(number(e.q_value, 2), "num"),
                _td("n too small" if math.isinf(e.mde) else f"{e.mde:.1%}", "num"),
                _td(e.test), f"<td class='v-{r.verdict}'>{r.verdict}</td>"])
        return _table(headers, table_rows)

    # what moved (or could not be decided) is read first; the unchanged rest stays one click away
    flagged = [r for r in rows if r.verdict != "unchanged"]
    steady = [r for r in rows if r.verdict == "unchanged"]
    if flagged:
        parts.append(comparison_table(flagged))
    parts.extend(f"<p class='muted'>{html.escape(line)}</p>" for line in shown.fixed_lines())
    if steady:
        parts.append(f"<details id='unchanged-comparisons'><summary>{len(steady)} unchanged "
                     f"comparison{'s' if len(steady) != 1 else ''}</summary>"
                     f"{comparison_table(steady)}</details>")
    if comp.only_in_base or comp.only_in_head:
        parts.append(f"<p class='muted'>{len(comp.only_in_base)} cells only in the baseline, "
                     f"{len(comp.only_in_head)} only in this run.</p>")
    return "<section>" + "".join(parts) + "</section>"


def _ratio_axis(rows: Sequence[MetricComparison], floor: float = 0.05
                ) -> tuple[float, float] | None:
    """The ratio chart's x range: every point, and the CIs up to twice the largest point's
    distance from 1. One CI of [0.9, 19] (a sys time of 0.1 ms in a run) would otherwise squeeze
    every other row into a sliver; its bar then runs off the edge of the chart."""
    ests = [r.estimate for r in rows  # the rows the chart draws
            if all(math.isfinite(v) for v in (r.estimate.ratio, r.estimate.ci_low,
                                               r.estimate.ci_high))]
    if not ests:
        return None
    points = [e.ratio for e in ests]
    reach = 2.0 * max(abs(p - 1.0) for p in points) + 0.1
    lows = [*points, *(e.ci_low for e in ests)]
    highs = [*points, *(e.ci_high for e in ests)]
    lo = min(max(min(lows), 1.0 - reach, 0.0), 1.0 - floor)  # the floor lines stay in view
    hi = max(min(max(highs), 1.0 + reach), 1.0 + floor)
    pad = 0.05 * (hi - lo)
    return max(0.0, lo - pad), hi + pad


def _changes_section(data: ReportData) -> str:
    parts = ["<h2>Change points in the history</h2>"]
    if not data.changes:
        parts.append(f"<p class='muted'>No change point in the last {data.history_runs} runs"
                     " (E-divisive, t-test p ≤ 0.001, magnitude ≥ 5%)."
                     "</p>" if data.history_runs >= 6 else
                     f"<p class='muted'>Only {data.history_runs} runs in the history: change "
                     "points need at least 6.</p>")
        return "<section>" + "".join(parts) + "</section>"
    rows = []
    for g in data.changes:
        rows.append([_td(g.kind, "v-regressed" if g.kind == "regression" else "v-improved"),
                     _td(g.target), _td(g.metric), _td(g.run.name),
                     _td(f"{g.magnitude:+.1%}" if math.isfinite(g.magnitude) else "∞", "num"),
                     _td(number(g.p_value, 2), "num"),
                     _td(f"{len(g.changes)} of {g.cells_checked}", "num"),
                     _td(g.attribution.description)])
    parts.append(_table(["kind", "target", "metric", "first affected run", "magnitude",
                         "p", "cells", "where"], rows))
    return "<section>" + "".join(parts) + "</section>"


def _failures(data: ReportData) -> list[CellResult]:
    return [c for c in data.run.cells if c.status != "ok"]


def _failures_section(data: ReportData) -> str:
    failed = _failures(data)
    parts = ["<h2>Failures</h2>"]
    if not failed:
        parts.append("<p class='muted'>Every cell finished ok.</p>")
    else:
        parts.append(_table(["target", "params", "status", "error"], [
            [_td(c.target), _td(_params_text(c.params)), _td(c.status, "v-regressed"),
             _td((c.error or "").strip().splitlines()[-1][:300] if c.error else "")]
            for c in failed]))
    return "<section>" + "".join(parts) + "</section>"


def _environment_section(data: ReportData) -> str:
    env = data.run.info.environment
    base_env = data.baseline.info.environment if data.baseline else None
    parts = ["<h2>Environment</h2>"]
    if base_env is not None and data.baseline is not None:
        diffs = environment_diff(base_env, env)
        if diffs:
            parts.append(f"<h3>Differences from {html.escape(data.baseline.info.name)}</h3>")
            parts.append(_table(["entry", "baseline", "this run"], [
                [_td(k), _td(str(b)), _td(str(h))] for k, b, h in diffs],
                ["diff"] * len(diffs)))
        else:
            parts.append("<p class='muted'>Same environment as the baseline.</p>")
    flat = _flatten(env)
    changed = {k for k, _, _ in environment_diff(base_env, env)} if base_env is not None else set()
    parts.append(_table(["entry", "value"], [[_td(k), _td(str(v))] for k, v in flat],
                        ["diff" if k in changed else "" for k, _ in flat]))
    return "<section>" + "".join(parts) + "</section>"


def render_html(data: ReportData) -> str:
    """The whole report as one self-contained HTML document."""
    from plotly.offline import get_plotlyjs

    info = data.run.info
    figs = _Figures()
    sections = []
    if data.comparison is not None:
        sections.append(_comparison_section(data.comparison, figs))
    sections.append(_changes_section(data))
    for target, cells in _by_target(data.run.cells).items():
        sections.append(_target_section(target, cells, figs))
    sections.append(_failures_section(data))
    sections.append(_environment_section(data))
    baseline = (f" · baseline <b>{html.escape(data.baseline.info.name)}</b>"
                if data.baseline else "")
    head = (f"<header><h1>Allele benchmark report: {html.escape(info.name)}</h1>"
            f"<p>spec {html.escape(info.spec_name)} · target {html.escape(info.target)} · "
            f"{info.status} · {info.cell_count or len(data.run.cells)} cells, "
            f"{len(_failures(data))} failed · started {when(info.created_at)}{baseline} · "
            f"generated {when(data.generated_at)}</p></header>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>Allele report {html.escape(info.name)}</title>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<style>{_CSS}</style><script type='text/javascript'>{get_plotlyjs()}</script>"
            f"</head><body>{head}<main>{''.join(sections)}</main>"
            f"<script type='text/javascript'>{_FIT_CHARTS_JS}</script></body></html>")


# --------------------------------------------------------------------------------------------
# Markdown


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_md_escape(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(data: ReportData) -> str:
    """A compact Markdown summary for a pull-request comment."""
    info = data.run.info
    out = [f"## Allele benchmark: `{info.name}`", ""]
    out.append(f"spec `{info.spec_name}` · {info.status} · "
               f"{info.cell_count or len(data.run.cells)} cells, "
               f"{len(_failures(data))} failed")
    out.append("")
    comp = data.comparison
    if comp is not None:
        counts = comp.counts()
        verdict = ("**regressions found**" if counts["regressed"] else "no regression")
        out.append(f"### Against `{comp.base.name}`: {verdict}")
        out.append("")
        out.append(" · ".join(f"{v}: {n}" for v, n in counts.items()) +
                   f" (FDR q = {comp.q}, floor {comp.floor:.0%})")
        out.append("")
        for warning in comp.warnings:
            out.append(f"> **Warning:** {_md_escape(warning)}.")
            out.append("")
        note = comp.noise_note()
        if note:
            out.append(f"_{_md_escape(note)}._")
            out.append("")
        moved = [r for r in _sorted_rows(comp) if r.verdict != "unchanged"]
        shown = _ShownParams(comp)
        if moved:
            rows = [[r.verdict, r.target, shown.text(r), r.metric,
                     number(r.estimate.median_base), number(r.estimate.median_head),
                     pct(r.estimate.ratio),
                     f"[{pct(r.estimate.ci_low)}, {pct(r.estimate.ci_high)}]",
                     number(r.estimate.q_value, 2),
                     "n too small" if math.isinf(r.estimate.mde) else f"{r.estimate.mde:.1%}"]
                    for r in moved[:MAX_ROWS_MD]]
            out.append(_md_table(["verdict", "target", "params", "metric", "base", "head",
                                  "change", "95% CI", "q", "MDE"], rows))
            if len(moved) > MAX_ROWS_MD:
                out.append("")
                out.append(f"... and {len(moved) - MAX_ROWS_MD} more.")
            out.append("")
            for line in shown.fixed_lines():
                out.append(f"_{_md_escape(line)}_")
                out.append("")
        base_env = data.baseline.info.environment if data.baseline is not None else {}
        diffs = environment_diff(base_env, info.environment)
        if diffs:
            out.append("<details><summary>Environment differences</summary>")
            out.append("")
            out.append(_md_table(["entry", "baseline", "this run"],
                                 [[k, str(b), str(h)] for k, b, h in diffs]))
            out.append("")
            out.append("</details>")
            out.append("")
    if data.changes:
        out.append("### Change points in the history")
        out.append("")
        out.append(_md_table(["kind", "target", "metric", "first affected run", "magnitude",
                              "p", "where"],
                             [[g.kind, g.target, g.metric, g.run.name,
                               f"{g.magnitude:+.1%}" if math.isfinite(g.magnitude) else "∞",
                               number(g.p_value, 2), g.attribution.description]
                              for g in data.changes[:MAX_ROWS_MD]]))
        out.append("")
    failed = _failures(data)
    if failed:
        out.append("### Failures")
        out.append("")
        out.append(_md_table(["target", "params", "status", "error"], [
            [c.target, _params_text(c.params), c.status,
             (c.error or "").strip().splitlines()[-1][:200] if c.error else ""]
            for c in failed[:MAX_ROWS_MD]]))
        out.append("")
    return "\n".join(out).rstrip() + "\n"

