"""The HTML report: one self-contained file (Plotly, JavaScript inlined; no CDN, no fonts, no
images fetched at view time)."""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from allele.bench.compare import (
    Comparison,
    MetricComparison,
    change_legend,
    environment_diff,
    mde_text,
    metric_label,
    verdict_label,
)
from allele.bench.format import number, pct, quantity, when
from allele.bench.metrics import direction_of, measurements
from allele.bench.report.charts import (
    _hashable,
    _ok,
    _sort_values,
    finite_values,
    heatmap_grid,
    pick_quality_metric,
    pick_time_metric,
    plotted_metrics,
    scaling_series,
    size_param,
    varying_params,
)
from allele.bench.report.data import (
    ReportData,
    _by_target,
    _failures,
    _flatten,
    _params_text,
    _ShownParams,
    _sorted_rows,
)
from allele.bench.report.ratio_axis import ratio_figure
from allele.store.model import CellResult

MAX_PAIRS = 3


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
.chart{flex:1 1 460px;min-width:min(420px,100%)}
@media (max-width:700px){header,main{padding-left:8px;padding-right:8px}section{padding:10px 8px}
table{display:block;overflow-x:auto}}
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
    metrics = sorted({m for c in ok for m in measurements(c.metrics())})
    parts = [f"<h2>Target <code>{html.escape(target)}</code></h2>",
             f"<p class='muted'>{len(cells)} cells, {len(ok)} ok; metrics: "
             f"{html.escape(', '.join(metrics))}</p>"]
    charts: list[str] = []
    params = varying_params(ok)
    drawable = plotted_metrics(ok, metrics)  # a metric without a finite value has no chart
    chosen = [m for m in (pick_time_metric(drawable), pick_quality_metric(drawable)) if m]
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
                pool.setdefault(_hashable(c.params.get(p)), []).extend(
                    finite_values(c, metric))
            xs = _sort_values(set(pool))
            fig = go.Figure(go.Scatter(x=[_label(v) for v in xs],
                                       y=[float(np.median(pool[v])) if pool[v] else None
                                          for v in xs], mode="lines+markers", name=metric))
            fig.update_layout(title_text=f"{metric} by {p} (median; {better} is better)")
            fig.update_xaxes(title_text=p, type="category")
            fig.update_yaxes(title_text=metric)
            charts.append(figs.div(fig))
    time_metric = pick_time_metric(drawable)
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


def _design(comp: Comparison) -> str:
    if comp.mode == "ab":
        return "rounds of an A/B session as the blocks"
    return "two runs, with their run-level noise"


def _comparison_section(comp: Comparison, figs: _Figures) -> str:
    counts = comp.counts()
    badges = "".join(f"<span class='badge v-{v}'>{v}: {n}</span>" for v, n in counts.items())
    rows = _sorted_rows(comp)
    shown = _ShownParams(comp)
    moved = [r for r in rows if r.verdict != "unchanged"][:40] or rows[:20]
    parts = [f"<h2>Comparison with {html.escape(comp.base.name)}</h2>",
             f"<p>{badges}</p><p class='muted' id='change-legend'>HEAD = "
             f"{html.escape(comp.head.name)}; {html.escape(change_legend(comp))}; 95% t "
             f"interval on the log-ratio ({_design(comp)}); FDR q = {comp.q}, "
             f"practical floor {comp.floor:.0%}.</p>"]
    parts.extend(f"<p class='warning'>Warning: {html.escape(w)}.</p>" for w in comp.warnings)
    parts.extend(f"<p class='muted' id='noise-note'>{html.escape(note)}.</p>"
                 for note in comp.notes())
    if moved:
        fig = ratio_figure(moved, [f"{shown.text(r)} · {r.metric}" for r in moved], comp.floor)
        parts.append(figs.div(fig))
    headers = ["target", "params", "metric", "base", "head", "change",
               "95% CI", "p", "q (BH)", "MDE", "test", "verdict"]

    def comparison_table(selected: list[MetricComparison]) -> str:
        table_rows = []
        for r in selected:
            e = r.estimate
            table_rows.append([
                _td(r.target), _td(shown.text(r)), _td(metric_label(r)),
                _td(quantity(e.base, r.unit), "num"), _td(quantity(e.head, r.unit), "num"),
                _td(pct(e.ratio), "num"),
                _td(e.interval_text, "num"),
                _td(number(e.p_value, 2), "num"), _td(number(e.q_value, 2), "num"),
                _td(mde_text(e), "num"),
                _td(e.test), f"<td class='v-{r.verdict}'>{html.escape(verdict_label(e))}</td>"])
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


def _changes_section(data: ReportData) -> str:
    parts = ["<h2>Change points in the history</h2>"]
    if not data.changes:
        parts.append(f"<p class='muted'>No change point in the last {data.history_runs} runs"
                     " (robust scores, search over split and segment end, FDR 5% over the series, "
                     "magnitude ≥ 5%; run-wide shifts reported as environment changes)."
                     "</p>" if data.history_runs >= 6 else
                     f"<p class='muted'>Only {data.history_runs} runs in the history: change "
                     "points need at least 6.</p>")
        return "<section>" + "".join(parts) + "</section>"
    rows = []
    for g in data.changes:
        rows.append([_td(g.kind, {"regression": "v-regressed", "improvement": "v-improved"}.get(
            g.kind, "v-inconclusive")),
                     _td(g.target), _td(g.metric), _td(g.run.name),
                     _td(f"{g.magnitude:+.1%}" if math.isfinite(g.magnitude) else "∞", "num"),
                     _td(number(g.p_value, 2), "num"),
                     _td(f"{g.cells_changed} of {g.cells_checked}", "num"),
                     _td(g.attribution.description)])
    parts.append(_table(["kind", "target", "metric", "first affected run", "magnitude",
                         "p", "cells", "where"], rows))
    return "<section>" + "".join(parts) + "</section>"




def _explain_section(data: ReportData) -> str:
    """Why the instruction counts of regressed cells changed (``allele bench explain``)."""
    if not data.explanations:
        return ""
    parts = ["<h2>Why instruction counts regressed</h2>",
             "<p class='muted'>Python functions whose call counts changed (the likeliest cause "
             "first) and the C functions whose self instructions changed most, summed over the "
             "counted seeds; <code>allele bench explain</code> lists more.</p>"]
    for c in data.explanations:
        parts.append(f"<h3>{html.escape(c.target)} {html.escape(_params_text(c.params))}: "
                     f"{c.base:,.0f} → {c.head:,.0f} instructions "
                     f"<span class='v-regressed'>({(c.ratio - 1.0) * 100:+.2f}%)</span></h3>")
        if c.note:
            parts.append(f"<p class='muted'>{html.escape(c.note)}</p>")
        if c.calls:
            parts.append(_table(["Python function", "calls base", "calls head", "change"], [
                [_td(d.name), _td(f"{d.base_calls:,}", "num"), _td(f"{d.head_calls:,}", "num"),
                 _td(f"{d.delta:+,d}", "num")] for d in c.calls]))
        if c.self_costs:
            parts.append(_table(["C function", "self base", "self head", "change"], [
                [_td(d.name), _td(f"{d.base_self:,}", "num"), _td(f"{d.head_self:,}", "num"),
                 _td(f"{d.self_delta:+,d}", "num")] for d in c.self_costs]))
    return "<section>" + "".join(parts) + "</section>"


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


ASSETS_DIR = "allele-report-assets"


def shared_scripts(folder: Path) -> str:
    """Write plotly.js once into ``folder``/allele-report-assets (kept when already there) and
    return its URL relative to a report in ``folder``: what ``--assets shared`` reports load
    instead of carrying their own 4.6 MB copy."""
    import plotly
    from plotly.offline import get_plotlyjs

    name = f"plotly-{plotly.__version__}.min.js"
    target = folder / ASSETS_DIR / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".part")
        tmp.write_text(get_plotlyjs(), encoding="utf-8")
        tmp.replace(target)  # a crash mid-write never leaves a truncated script behind
    return f"{ASSETS_DIR}/{name}"


def render_html(data: ReportData, *, scripts_url: str | None = None) -> str:
    """The whole report as one HTML document: self-contained (plotly.js inline, the default),
    or loading plotly.js from ``scripts_url`` (see :func:`shared_scripts`)."""
    from plotly.offline import get_plotlyjs

    info = data.run.info
    figs = _Figures()
    sections = []
    if data.comparison is not None:
        sections.append(_comparison_section(data.comparison, figs))
        sections.append(_explain_section(data))
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
            f"<style>{_CSS}</style>" + (
                f"<script type='text/javascript' src='{html.escape(scripts_url)}'></script>"
                if scripts_url else f"<script type='text/javascript'>{get_plotlyjs()}</script>")
            +
            f"</head><body>{head}<main>{''.join(sections)}</main>"
            f"<script type='text/javascript'>{_FIT_CHARTS_JS}</script></body></html>")


