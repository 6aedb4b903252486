"""Reports of a run: one self-contained HTML file (Plotly, JavaScript inlined) or Markdown.

The HTML holds, per target: heatmaps of time and of quality over pairs of matrix parameters,
scaling curves (time against a size parameter on log-log axes, with the fitted slope); then the
comparison against a baseline (verdict table and a ratio/CI chart), the change points found in the
history, failed cells, and the environment with its differences from the baseline. Nothing is
fetched at view time: no CDN, no fonts, no images.

The Markdown version is made for a pull-request comment: verdict counts, the cells that moved,
regressions in the history, failures and the environment differences.

Modules: ``charts`` (what is drawn, computed: pure and separately tested), ``data`` (the report's
content, gathered from the store once), ``html`` and ``markdown`` (rendering).
:func:`build_report` is the one call that reads a store and renders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from allele.bench.history import HISTORY_RUNS
from allele.bench.report.charts import (
    Grid,
    ScalingSeries,
    heatmap_grid,
    pick_quality_metric,
    pick_time_metric,
    scaling_fit,
    scaling_series,
    size_param,
    varying_params,
)
from allele.bench.report.data import ReportData, load_report_data, report_data
from allele.bench.report.html import render_html, shared_scripts
from allele.bench.report.markdown import render_markdown

if TYPE_CHECKING:
    from allele.store import ResultStore

ReportFormat = Literal["html", "markdown"]

__all__ = ["Grid", "ReportData", "ReportFormat", "ScalingSeries", "build_report", "heatmap_grid",
           "load_report_data", "pick_quality_metric", "pick_time_metric", "render_html",
           "render_markdown", "report_data", "scaling_fit", "scaling_series", "shared_scripts",
           "size_param",
           "varying_params"]


def build_report(store: ResultStore, run_ref: str, baseline_ref: str | None = None, *,
                 fmt: ReportFormat = "html", q: float = 0.05, floor: float = 0.05,
                 seed: int = 0, history_runs: int = HISTORY_RUNS,
                 scripts_url: str | None = None) -> str:
    """Load the runs from ``store`` and render the report of ``run_ref`` (HTML with plotly.js
    inline, or loaded from ``scripts_url``: see :func:`shared_scripts`)."""
    data = load_report_data(store, run_ref, baseline_ref, q=q, floor=floor, seed=seed,
                            history_runs=history_runs)
    return (render_markdown(data) if fmt == "markdown"
            else render_html(data, scripts_url=scripts_url))

