"""The HEAD/BASE chart of a comparison: a log-ratio scale, and a range that follows the rows.

The compare interval is a t interval on the log-ratio, so on a log scale it is symmetric and a
halving sits as far from 1 as a doubling. The chart draws ``ln(ratio)`` on a linear axis with its
ticks labelled as changes (``-50%``, ``+10%``, ``×5``): the same picture on every Plotly
version, whatever its log axes do with ranges and annotations.

The range holds every point, the intervals up to twice the farthest kept point's distance from 1,
and the practical floor's lines. A point far beyond all the others (one ``×67`` row among changes
of a few percent) is left out of the range, else it would flatten the rest onto the line at 1:
its row ends in an arrow at the edge and the table has its value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from allele.bench.compare import MetricComparison
from allele.bench.format import pct

OUTLIER_FACTOR = 5.0
"""A point is cut from the range when it is this many times farther from 1 (in log-ratio) than
the farthest point kept (or than the floor); at most a fifth of the points are cut (one of
two to four)."""

_TICKS = (1.0, 2.0, 0.5, 1.1, 0.9, 10.0, 0.1, 1.25, 0.8, 1.05, 0.95, 5.0, 0.2, 1.5, 0.75,
          1.02, 0.98, 100.0, 0.01, 20.0, 0.05, 50.0, 0.02, 1.01, 0.99, 3.0, 1000.0, 0.001)
"""Tick candidates in the order they are preferred (an even spread is kept from them)."""


def _finite(rows: Sequence[MetricComparison]) -> list[MetricComparison]:
    return [r for r in rows
            if all(math.isfinite(v) and v > 0 for v in (r.estimate.ratio, r.estimate.ci_low,
                                                        r.estimate.ci_high))]


def ratio_axis(rows: Sequence[MetricComparison], floor: float = 0.05
               ) -> tuple[float, float] | None:
    """The chart's range as ratios ``(lo, hi)`` (None when no row has a finite ratio and
    interval): every point but the far outliers, the intervals up to twice the farthest kept
    point's log-distance from 1, and the floor lines ``1 - floor`` and ``1 + floor``."""
    ests = [r.estimate for r in _finite(rows)]
    if not ests:
        return None
    logs = [math.log(e.ratio) for e in ests]
    dist = sorted((abs(v) for v in logs), reverse=True)
    floor_dist = math.log1p(floor)
    keep = dist[0]
    for i in range(max(1, len(dist) // 5) if len(dist) > 1 else 0):  # a fifth at most (or 1)
        rest = max(dist[i + 1], floor_dist)
        if dist[i] <= OUTLIER_FACTOR * rest:
            break
        keep = dist[i + 1]
    kept = [v for v in logs if abs(v) <= keep]
    reach = 2.0 * max(keep, floor_dist) + 0.1
    lows = [*kept, *(math.log(e.ci_low) for e in ests)]
    highs = [*kept, *(math.log(e.ci_high) for e in ests)]
    lo = min(max(min(lows), -reach), math.log(1.0 - floor))
    hi = max(min(max(highs), reach), math.log1p(floor))
    pad = 0.05 * (hi - lo)
    return math.exp(lo - pad), math.exp(hi + pad)


def tick_label(ratio: float) -> str:
    """A tick's text: a change in percent (``-50%``, ``+10%``), a factor from 3 times on."""
    if ratio >= 3.0:
        return f"×{ratio:g}"
    return "0%" if ratio == 1.0 else f"{(ratio - 1.0) * 100:+.3g}%"


def ratio_ticks(x_range: tuple[float, float], most: int = 9) -> list[float]:
    """Up to ``most`` tick ratios inside ``x_range``, spread evenly on the log scale, rounder
    values first; in increasing order."""
    lo, hi = (math.log(v) for v in x_range)
    gap = (hi - lo) / (most + 1)
    chosen: list[float] = []
    for t in _TICKS:
        v = math.log(t)
        if lo <= v <= hi and all(abs(v - math.log(c)) >= gap for c in chosen):
            chosen.append(t)
        if len(chosen) == most:
            break
    return sorted(chosen)


def apply_ratio_axis(fig: Any, x_range: tuple[float, float], title: str) -> None:
    """Set the figure's x axis to ``x_range`` (ratios) on the log-ratio scale it is drawn on."""
    ticks = ratio_ticks(x_range)
    fig.update_xaxes(range=[math.log(x_range[0]), math.log(x_range[1])], zeroline=False,
                     tickvals=[math.log(t) for t in ticks],
                     ticktext=[tick_label(t) for t in ticks], title_text=title)


def cut_marks(fig: Any, rows: Sequence[MetricComparison], labels: Sequence[str],
              x_range: tuple[float, float]) -> int:
    """An arrow at the chart's edge on every row whose interval (or point) runs past the axis,
    so a cut bar does not read as one that ends there; returns how many rows are cut."""
    lo, hi = x_range
    cut = 0
    for r, label in zip(rows, labels, strict=True):
        e = r.estimate
        if not all(math.isfinite(v) and v > 0 for v in (e.ratio, e.ci_low, e.ci_high)):
            continue
        sides = [(hi, "▶", "right")] if max(e.ci_high, e.ratio) > hi else []
        sides += [(lo, "◀", "left")] if min(e.ci_low, e.ratio) < lo else []
        for x, arrow, anchor in sides:
            fig.add_annotation(x=math.log(x), y=label, text=arrow, showarrow=False,
                               xanchor=anchor, font={"color": "#57606a", "size": 13})
        cut += bool(sides)
    return cut


VERDICT_COLOURS = (("regressed", "#b3261e"), ("improved", "#1b7f3a"),
                   ("inconclusive", "#c08a00"), ("unchanged", "#8a9099"))


def ratio_figure(rows: Sequence[MetricComparison], labels: Sequence[str], floor: float) -> Any:
    """The chart: a row per comparison (``labels``), its change and 95% interval on the
    log-ratio scale, coloured by verdict, with the practical floor's lines."""
    import plotly.graph_objects as go

    fig = go.Figure()
    drawn = {id(r) for r in _finite(rows)}
    for verdict, colour in VERDICT_COLOURS:
        idx = [i for i, r in enumerate(rows) if r.verdict == verdict and id(r) in drawn]
        if not idx:
            continue
        est = [rows[i].estimate for i in idx]
        fig.add_trace(go.Scatter(
            x=[math.log(e.ratio) for e in est], y=[labels[i] for i in idx],
            mode="markers", name=verdict, marker={"color": colour, "size": 9},
            customdata=[f"{pct(e.ratio)} [{pct(e.ci_low)}, {pct(e.ci_high)}]" for e in est],
            hovertemplate="%{y}<br>%{customdata}<extra>" + verdict + "</extra>",
            error_x={"type": "data", "symmetric": False,
                     "array": [math.log(e.ci_high / e.ratio) for e in est],
                     "arrayminus": [math.log(e.ratio / e.ci_low) for e in est]}))
    for xv in (1.0 - floor, 1.0, 1.0 + floor):
        fig.add_vline(x=math.log(xv), line_dash="dot" if xv != 1.0 else "solid",
                      line_color="#8a9099")
    fig.update_layout(title_text="HEAD against BASE with 95% CI (dotted: practical floor)",
                      height=max(380, 24 * len(rows) + 120))
    fig.update_yaxes(autorange="reversed", dtick=1)  # a label on every row
    x_range = ratio_axis(rows, floor)
    if x_range is not None:
        title = "HEAD against BASE (log scale)"
        cut = cut_marks(fig, rows, labels, x_range)
        if cut:
            title += (f": {cut} row{'s run' if cut > 1 else ' runs'} past the axis "
                      "(▶ ◀; the table has the values)")
        apply_ratio_axis(fig, x_range, title)
    return fig
