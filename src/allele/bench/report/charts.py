"""What a report draws, computed without drawing: heatmap grids, scaling curves and their
log-log slopes, the parameters worth plotting, the metrics that stand for speed and quality.

Pure functions over cells; separately tested.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from allele.bench.format import varying_params as format_varying
from allele.bench.metrics import QUALITY_METRICS, RESOURCE_METRICS, TIME_METRICS, measurements
from allele.errors import ValidationError
from allele.store.model import CellResult

SIZE_HINTS = ("population", "size", "length", "steps", "n_", "genomes", "tokens")


def _ok(cells: Sequence[CellResult]) -> list[CellResult]:
    return [c for c in cells if c.status == "ok" and c.metrics()]


def finite_values(cell: CellResult, metric: str) -> list[float]:
    """A cell's finite samples of ``metric``: what a chart's medians are taken over (a target
    that returned NaN for one seed still has a median of the others)."""
    return [v for v in cell.values(metric) if np.isfinite(v)]


def plotted_metrics(cells: Sequence[CellResult], metrics: Sequence[str]) -> list[str]:
    """The ``metrics`` with at least one finite sample in ``cells``: the ones a chart can
    draw (a metric that is always inf or NaN would be an empty plot)."""
    return [m for m in metrics if any(finite_values(c, m) for c in cells)]


def pick_time_metric(metrics: Sequence[str]) -> str | None:
    """The metric that stands for speed: the first present of :data:`TIME_METRICS`."""
    return next((m for m in TIME_METRICS if m in metrics), None)


def pick_quality_metric(metrics: Sequence[str]) -> str | None:
    """The metric that stands for quality: a known one, else any non-time, non-resource one
    (never the runner's inner-loop count)."""
    known = next((m for m in QUALITY_METRICS if m in metrics), None)
    if known is not None:
        return known
    rest = sorted(m for m in measurements(metrics)
                  if m not in TIME_METRICS and m not in RESOURCE_METRICS)
    return rest[0] if rest else None


def varying_params(cells: Sequence[CellResult]) -> list[str]:
    """Parameters with more than one value among ``cells``, most values first."""
    return format_varying(c.params for c in cells)


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
        vals = finite_values(c, metric)
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
    ok = [c for c in _ok(cells) if size in c.params and finite_values(c, metric)]
    others = [p for p in varying_params(ok) if p != size]
    split = others[0] if others else None
    groups: dict[Any, dict[float, list[float]]] = {}
    for c in ok:
        label = _hashable(c.params.get(split)) if split else None
        groups.setdefault(label, {}).setdefault(float(c.params[size]), []).extend(
            finite_values(c, metric))
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

