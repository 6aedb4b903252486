"""Change points in the history of a matrix: every cell's series of runs, the run-wide shifts
of the machine, false-discovery control over the series, grouping and attribution.

Pure functions over :class:`~allele.bench.history.History` values (or runs in memory); no I/O.
The detector on one series is :mod:`allele.bench.changepoint` (rank-based, aware of
autocorrelation, with a search over both the split and the segment end). On top:

* **run-wide shifts**: for a time metric measured in at least 3 cells, each run's shift common
  to all cells (median polish of the cells x runs log medians) is taken out of every cell's
  series before detection, and the series of shifts is analysed on its own: a step there is
  one *environment* change ("every cell moved at run X"), not 50 regressions. A busy run that
  slowed every cell is one point of that series, not an outlier in each;
* **false-discovery control across the series of a matrix**: each series gets the p-value of
  "has a change point" (its first segment test); Benjamini-Hochberg at ``q`` over all series of
  the history picks the series to segment, at the level BH applied;
* :func:`find_changes` turns change points into :class:`CellChange` (regression or
  improvement, by the metric's direction), groups the cells that changed at the same run and
  explains the group over the matrix parameters (:func:`attribute`, e.g. "population_size >=
  500").

A change point's ``index`` is the first affected run.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from allele.bench.changepoint import (
    DEFAULT_MIN_MAGNITUDE,
    DEFAULT_MIN_SIZE,
    ChangePoint,
    ChangePointState,
    SegmentStats,
    detect_change_points,
    pooled_phi,
    series_pvalue,
    spikes,
)
from allele.bench.format import value_text
from allele.bench.history import History, as_history
from allele.bench.metrics import Direction, metric_info
from allele.bench.runlevel import MIN_SHIFT_CELLS, environment_sensitive
from allele.bench.stats import bh
from allele.errors import ValidationError
from allele.store.model import RunInfo, RunRecord

ChangeKind = Literal["regression", "improvement", "environment"]

DEFAULT_Q = 0.05
"""False-discovery rate over the series of a history."""
ENVIRONMENT = "(every cell)"
"""The target name of an environment change."""

__all__ = [
    "CellChange",
    "ChangeGroup",
    "ChangePoint",
    "ChangePointState",
    "RegressionReport",
    "SegmentStats",
    "analyse_runs",
    "attribute",
    "build_series",
    "detect_change_points",
    "find_changes",
]


# --------------------------------------------------------------------------------------------
# attribution over matrix parameters


@dataclass(frozen=True, slots=True)
class Attribution:
    """The parameter condition that best separates affected from unaffected cells."""

    description: str
    param: str | None
    op: str | None
    value: Any
    precision: float
    """Share of the cells matching the condition that are affected."""
    recall: float
    """Share of the affected cells that match the condition."""
    affected: int
    total: int


def _holds(x: Any, op: str, val: Any) -> bool:
    if op == "==":
        return bool(x == val)
    if x is None or isinstance(x, bool) or not isinstance(x, int | float):
        return False
    return bool(x >= val) if op == ">=" else bool(x <= val)


def attribute(params: Sequence[Mapping[str, Any]], affected: Sequence[bool]) -> Attribution:
    """Find the single condition over one parameter (``p == v``, ``p >= v``, ``p <= v``) whose
    matching cells best coincide with ``affected`` (highest F1; simpler and broader conditions win
    ties). ``all cells`` when every cell is affected."""
    if len(params) != len(affected):
        raise ValidationError("params and affected need the same length")
    flags = np.asarray(affected, dtype=bool)
    total, n_aff = len(flags), int(flags.sum())
    if n_aff == 0:
        return Attribution("no cells", None, None, None, 0.0, 0.0, 0, total)
    if n_aff == total:
        return Attribution("all cells", None, None, None, 1.0, 1.0, n_aff, total)
    names = sorted({k for p in params for k in p})
    best: tuple[tuple[float, int, int], Attribution] | None = None
    for name in names:
        col = [p.get(name) for p in params]
        values = sorted({v for v in col if v is not None}, key=lambda v: (str(type(v)), v))
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        conds: list[tuple[str, Any, int]] = []
        for val in values:
            conds.append(("==", val, 0))
            if numeric and len(values) > 2:
                conds.extend([(">=", val, 1), ("<=", val, 1)])
        for op, val, complexity in conds:
            match = np.array([_holds(x, op, val) for x in col], dtype=bool)
            hit = int((match & flags).sum())
            if hit == 0:
                continue
            precision = hit / int(match.sum())
            recall = hit / n_aff
            f1 = 2 * precision * recall / (precision + recall)
            score = (f1, -complexity, int(match.sum()))
            if best is None or score > best[0]:
                desc = f"{name} {op} {value_text(val)}"
                best = (score, Attribution(desc, name, op, val, precision, recall, n_aff, total))
    if best is None:
        return Attribution("no single parameter explains it", None, None, None, 0.0, 0.0,
                           n_aff, total)
    return best[1]


# --------------------------------------------------------------------------------------------
# histories of runs


@dataclass(frozen=True, slots=True)
class CellSeries:
    """One cell's metric through the runs that measured it ``ok`` (oldest first)."""

    key: str
    target: str
    params: dict[str, Any]
    metric: str
    runs: list[RunInfo]
    values: NDArray[np.float64]
    """Per run: the median of the cell's samples of this metric."""


@dataclass(frozen=True, slots=True)
class CellChange:
    """A change point of one cell and metric."""

    key: str
    target: str
    params: dict[str, Any]
    metric: str
    direction: Direction
    kind: ChangeKind
    run: RunInfo
    """The first affected run."""
    index: int
    magnitude: float
    p_value: float
    before: float
    after: float


@dataclass(slots=True)
class ChangeGroup:
    """Cells of one target whose metric changed the same way at (about) the same run."""

    target: str
    metric: str
    kind: ChangeKind
    run: RunInfo
    changes: list[CellChange]
    attribution: Attribution
    cells_checked: int

    @property
    def magnitude(self) -> float:
        """Median relative change over the group's cells."""
        return float(np.median([c.magnitude for c in self.changes]))

    @property
    def p_value(self) -> float:
        """The smallest p-value in the group."""
        return min(c.p_value for c in self.changes)

    @property
    def cells_changed(self) -> int:
        """How many of the ``cells_checked`` cells moved: every one for an environment change
        (its one change is the run-wide shift series), else the group's cells."""
        return self.cells_checked if self.kind == "environment" else len(self.changes)


def build_series(runs: History | Sequence[RunRecord]) -> list[CellSeries]:
    """Every (cell, metric) series across ``runs`` (sorted by creation time): each run's
    median."""
    history = as_history(runs)
    infos = {info.id: info for info in history.runs}
    return [CellSeries(h.key, h.target, dict(h.params), h.metric,
                       [infos[i] for i in h.run_ids], h.medians())
            for h in history]


def _kind(direction: Direction, magnitude: float) -> ChangeKind:
    worse = magnitude > 0 if direction == "lower" else magnitude < 0
    return "regression" if worse else "improvement"


def run_shifts(series: Sequence[CellSeries], runs: Sequence[RunInfo]
               ) -> tuple[NDArray[np.float64], list[CellSeries]]:
    """The run-wide shift of one metric's series (log, one per run of ``runs``; NaN where no
    cell was measured) and the series with it taken out. Two sweeps of median polish over
    the cells x runs matrix of log medians."""
    pos = {r.id: j for j, r in enumerate(runs)}
    m = np.full((len(series), len(runs)), np.nan)
    for i, s in enumerate(series):
        if np.all(s.values > 0):
            m[i, [pos[r.id] for r in s.runs]] = np.log(s.values)
    cols = np.zeros(len(runs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runs without any cell
        r = m.copy()
        for _ in range(2):
            r = r - np.nanmedian(r, axis=1, keepdims=True)
            c = np.nanmedian(r, axis=0)
            c = np.where(np.isfinite(c), c, 0.0)
            cols += c
            r = r - c
    out = []
    for s in series:
        idx = [pos[x.id] for x in s.runs]
        values = s.values / np.exp(cols[idx]) if np.all(s.values > 0) else s.values
        out.append(CellSeries(s.key, s.target, s.params, s.metric, s.runs, values))
    seen = np.any(np.isfinite(m), axis=0)
    return np.where(seen, cols, np.nan), out


@dataclass(frozen=True, slots=True)
class _Candidate:
    series: CellSeries
    environment: bool
    p: float
    phi: float


MIN_POOLED_SERIES = 3
"""Series of a metric from which their autocorrelation is pooled (:func:`pooled_phi`)."""


def shared_phi(series: Sequence[CellSeries]) -> float | None:
    """The lag-1 autocorrelation pooled over ``series`` (spikes left out), or None with fewer
    than :data:`MIN_POOLED_SERIES` series of at least 10 runs."""
    logs = []
    for s in series:
        if len(s.values) >= 10:
            v = np.log(s.values) if np.all(s.values > 0) else s.values
            logs.append(v[~spikes(v)])
    return pooled_phi(logs) if len(logs) >= MIN_POOLED_SERIES else None


def _candidates(series: list[CellSeries], runs: Sequence[RunInfo],
                min_size: int) -> list[_Candidate]:
    """Every series to test (cells, with run-wide shifts taken out of time metrics, and the
    shift series themselves), with its series-level p-value."""
    out: list[_Candidate] = []
    by_metric: dict[str, list[CellSeries]] = {}
    for s in series:
        by_metric.setdefault(s.metric, []).append(s)
    for metric, group in by_metric.items():
        if environment_sensitive(metric_info(metric)) and len(group) >= MIN_SHIFT_CELLS:
            shifts, group = run_shifts(group, runs)
            ok = np.isfinite(shifts)
            env = CellSeries(ENVIRONMENT, ENVIRONMENT, {}, metric,
                             [r for r, k in zip(runs, ok, strict=True) if k],
                             np.exp(shifts[ok]))
            if len(env.runs) >= 2 * min_size:
                out.append(_Candidate(env, True, series_pvalue(env.values, min_size=min_size),
                                      -1.0))
        shared = shared_phi(group)
        for s in group:
            if len(s.runs) >= 2 * min_size:
                p = series_pvalue(s.values, min_size=min_size, phi=shared)
                out.append(_Candidate(s, False, p, -1.0 if shared is None else shared))
    return out


def find_changes(runs: History | Sequence[RunRecord], *,
                 cell_filter: Callable[[str], bool] | None = None,
                 metrics: Sequence[str] | None = None, since: float | None = None,
                 q: float = DEFAULT_Q, min_magnitude: float = DEFAULT_MIN_MAGNITUDE,
                 min_size: int = DEFAULT_MIN_SIZE) -> list[ChangeGroup]:
    """Change points of every cell and metric over ``runs``, grouped and attributed, with the
    false-discovery rate over the series at ``q``.

    ``since`` (a timestamp) keeps only changes whose first affected run was created at or after
    it; the detector still sees the whole history. Groups are ordered newest run first,
    environment changes, then regressions, then improvements.
    """
    if not 0.0 < q < 1.0:
        raise ValidationError(f"q must be in (0, 1), got {q}")
    history = as_history(runs)
    series = [s for s in build_series(history)
              if (cell_filter is None or cell_filter(s.key))
              and (metrics is None or s.metric in metrics)]
    cands = _candidates(series, history.runs, min_size)
    if not cands:
        return []
    qv = bh(np.array([c.p for c in cands]))
    chosen = [c for c, qq in zip(cands, qv.tolist(), strict=True) if qq <= q]
    if not chosen:
        return []
    alpha = q * len(chosen) / len(cands)  # the level Benjamini-Hochberg applied
    changes: list[CellChange] = []
    for c in chosen:
        s = c.series
        direction = metric_info(s.metric).direction
        for cp in detect_change_points(s.values, alpha=alpha, min_magnitude=min_magnitude,
                                       min_size=min_size, phi=None if c.phi < 0 else c.phi):
            run = s.runs[cp.index]
            if since is not None and run.created_at < since:
                continue
            kind: ChangeKind = "environment" if c.environment else _kind(direction,
                                                                         cp.magnitude)
            changes.append(CellChange(
                s.key, s.target, s.params, s.metric, direction, kind, run, cp.index,
                cp.magnitude, cp.stats.p_value, cp.stats.mean_before, cp.stats.mean_after))
    return _group(changes, [x for x in series])


def _group(changes: list[CellChange], series: list[CellSeries]) -> list[ChangeGroup]:
    run_order = {info.id: i for i, info in enumerate(sorted(
        {r.id: r for s in series for r in s.runs}.values(), key=lambda r: (r.created_at, r.id)))}
    by_family: dict[tuple[str, str, ChangeKind], list[CellChange]] = {}
    for c in changes:
        by_family.setdefault((c.target, c.metric, c.kind), []).append(c)
    groups: list[ChangeGroup] = []
    for (target, metric, kind), items in by_family.items():
        items.sort(key=lambda c: run_order[c.run.id])
        clusters: list[list[CellChange]] = []
        for c in items:  # runs within one position of each other belong together
            if clusters and run_order[c.run.id] - run_order[clusters[-1][-1].run.id] <= 1:
                clusters[-1].append(c)
            else:
                clusters.append([c])
        for cluster in clusters:
            votes = Counter(run_order[c.run.id] for c in cluster)
            top = max(votes.values())
            pos = min(p for p, k in votes.items() if k == top)
            run = next(c.run for c in cluster if run_order[c.run.id] == pos)
            if kind == "environment":
                cells = sum(1 for s in series if s.metric == metric)
                groups.append(ChangeGroup(target, metric, kind, run, cluster, Attribution(
                    "every cell: the machine, or code they all share", None, None, None, 1.0,
                    1.0, cells, cells), cells))
                continue
            first, last = run_order[cluster[0].run.id], run_order[cluster[-1].run.id]
            # the cells that could have shown this change: measured before and after it
            peers = [s for s in series if s.target == target and s.metric == metric
                     and any(run_order[r.id] < first for r in s.runs)
                     and any(run_order[r.id] >= last for r in s.runs)]
            changed = {c.key for c in cluster}
            peers_keys = {s.key for s in peers}
            peers += [s for s in series if s.key in changed - peers_keys and s.metric == metric]
            attribution = attribute([s.params for s in peers], [s.key in changed for s in peers])
            groups.append(ChangeGroup(target, metric, kind, run,
                                      sorted(cluster, key=lambda c: c.key), attribution,
                                      len(peers)))
    rank = {"environment": 0, "regression": 1, "improvement": 2}
    groups.sort(key=lambda g: (-run_order[g.run.id], rank[g.kind], g.target, g.metric))
    return groups


@dataclass(slots=True)
class RegressionReport:
    """What :func:`find_changes` found, with the scope it looked at."""

    groups: list[ChangeGroup] = field(default_factory=list)
    runs: int = 0
    series: int = 0
    longest: int = 0
    """Runs in the longest series looked at."""
    min_runs: int = 2 * DEFAULT_MIN_SIZE
    """Runs a series needs before a change point can be tested in it (two segments)."""

    @property
    def too_short(self) -> bool:
        """Whether no series looked at is long enough to hold a change point: "none found"
        would then be no answer at all."""
        return self.longest < self.min_runs

    @property
    def regressions(self) -> list[ChangeGroup]:
        return [g for g in self.groups if g.kind == "regression"]

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "runs": self.runs,
            "series": self.series,
            "groups": [{
                "target": g.target, "metric": g.metric, "kind": g.kind,
                "run": {"id": g.run.id, "name": g.run.name},
                "magnitude": num(g.magnitude), "p_value": g.p_value,
                "attribution": g.attribution.description,
                "cells_changed": g.cells_changed, "cells_checked": g.cells_checked,
                "changes": [{"key": c.key, "params": c.params, "index": c.index,
                             "magnitude": num(c.magnitude), "p_value": c.p_value,
                             "before": c.before, "after": c.after} for c in g.changes],
            } for g in self.groups],
        }


def analyse_runs(runs: History | Sequence[RunRecord], **kwargs: Any) -> RegressionReport:
    """:func:`find_changes` plus the scope figures, as a :class:`RegressionReport`."""
    history = as_history(runs)
    cell_filter = kwargs.get("cell_filter")
    metrics = kwargs.get("metrics")
    lengths = [len(s.runs) for s in build_series(history)
               if (cell_filter is None or cell_filter(s.key))
               and (metrics is None or s.metric in metrics)]
    return RegressionReport(find_changes(history, **kwargs), runs=len(history),
                            series=len(lengths), longest=max(lengths, default=0),
                            min_runs=2 * kwargs.get("min_size", DEFAULT_MIN_SIZE))
