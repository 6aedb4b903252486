"""Change points in a cell's history of runs, the way Hunter / Apache Otava find them.

Pure functions over arrays and :class:`~allele.store.model.RunRecord` values; no I/O.

The detector is **E-divisive means** (Matteson & James 2014) with a Student/Welch t-test as the
significance test of each candidate, run in two passes as Otava describes:

1. *weak pass*: over overlapping windows of the series, split recursively at the point that
   maximises the energy-distance statistic, keeping a split while its t-test between the two
   sides of the current segment gives ``p < weak_pvalue``;
2. *strong pass*: recompute every candidate's t-test between its neighbouring candidates and drop
   the weakest one (largest p-value, or a relative change below ``min_magnitude``) until every
   remaining candidate has ``p <= max_pvalue`` and a large enough magnitude.

A change point's ``index`` is the first point of the new level: the first affected run.

On top, :func:`find_changes` follows every cell and metric through a list of runs, turns change
points into :class:`CellChange` (regression or improvement, by the metric's direction), groups the
cells that changed at the same run and explains the group over the matrix parameters
(:func:`attribute`, e.g. "population_size >= 500").
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from allele.bench.format import value_text
from allele.bench.history import History, as_history
from allele.bench.metrics import Direction, direction_of
from allele.errors import ValidationError
from allele.store.model import RunInfo, RunRecord

ChangeKind = Literal["regression", "improvement"]

DEFAULT_WINDOW = 50
DEFAULT_MAX_PVALUE = 0.001
DEFAULT_WEAK_PVALUE = 0.05
DEFAULT_MIN_MAGNITUDE = 0.05
DEFAULT_MIN_SIZE = 3


@dataclass(frozen=True, slots=True)
class SegmentStats:
    """The two segments either side of a change point and the t-test between them."""

    mean_before: float
    mean_after: float
    std_before: float
    std_after: float
    n_before: int
    n_after: int
    p_value: float

    @property
    def rel_change(self) -> float:
        """``(after - before) / |before|``; +-inf when ``before`` is 0 and ``after`` is not."""
        if self.mean_before == 0.0:
            return 0.0 if self.mean_after == 0.0 else math.copysign(math.inf, self.mean_after)
        return (self.mean_after - self.mean_before) / abs(self.mean_before)


@dataclass(frozen=True, slots=True)
class ChangePoint:
    """A change point: ``index`` is the first point of the new level."""

    index: int
    stats: SegmentStats

    @property
    def magnitude(self) -> float:
        return self.stats.rel_change


# --------------------------------------------------------------------------------------------
# the detector on one series


def energy_statistic(x: ArrayLike, min_size: int = 1) -> NDArray[np.float64]:
    """E-divisive's ``Q(tau)`` for every split ``tau`` (size of the left part), ``alpha = 1``.

    Returns an array of length ``n + 1``; entries for splits that leave a side shorter than
    ``min_size`` are ``-inf``. Computed for all splits at once from 2-D prefix sums of the
    pairwise distance matrix (O(n^2)).
    """
    v = np.asarray(x, dtype=np.float64).ravel()
    n = v.size
    q = np.full(n + 1, -np.inf)
    if n < 2 * max(1, min_size):
        return q
    d = np.abs(v[:, None] - v[None, :])
    p = np.zeros((n + 1, n + 1))
    p[1:, 1:] = d.cumsum(axis=0).cumsum(axis=1)
    tau = np.arange(max(1, min_size), n - max(1, min_size) + 1)
    m1 = tau.astype(np.float64)
    m2 = (n - tau).astype(np.float64)
    left = p[tau, tau]
    cross = p[tau, n] - left
    right = p[n, n] - 2.0 * p[tau, n] + left
    with np.errstate(divide="ignore", invalid="ignore"):
        within_l = np.where(m1 > 1, left / (m1 * (m1 - 1.0)), 0.0)
        within_r = np.where(m2 > 1, right / (m2 * (m2 - 1.0)), 0.0)
    e = 2.0 * cross / (m1 * m2) - within_l - within_r
    q[tau] = m1 * m2 / n * e
    return q


def segment_stats(before: NDArray[np.float64], after: NDArray[np.float64]) -> SegmentStats:
    """Means, standard deviations and a Welch t-test p-value of two segments.

    Two constant segments give p = 0 when their levels differ (a deterministic change is
    certain) and p = 1 when they are equal.
    """
    mb, ma = float(before.mean()), float(after.mean())
    sb = float(before.std(ddof=1)) if before.size > 1 else 0.0
    sa = float(after.std(ddof=1)) if after.size > 1 else 0.0
    if before.size < 2 or after.size < 2:
        p = 1.0
    elif sb == 0.0 and sa == 0.0:
        p = 1.0 if mb == ma else 0.0
    else:
        with warnings.catch_warnings():  # nearly constant segments: scipy warns, p is fine
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_ind(before, after, equal_var=False).pvalue)
        if not math.isfinite(p):
            p = 1.0
    return SegmentStats(mb, ma, sb, sa, int(before.size), int(after.size), p)


def _edivisive(v: NDArray[np.float64], offset: int, min_size: int, pvalue: float) -> list[int]:
    """Recursive E-divisive splitting of one window; global indices of accepted splits."""
    out: list[int] = []
    segments = [(0, v.size)]
    while segments:
        best: tuple[float, int, int, int] | None = None
        for lo, hi in segments:
            q = energy_statistic(v[lo:hi], min_size)
            tau = int(np.argmax(q))
            if np.isfinite(q[tau]) and (best is None or q[tau] > best[0]):
                best = (float(q[tau]), lo, hi, tau)
        if best is None:
            break
        _, lo, hi, tau = best
        segments.remove((lo, hi))
        st = segment_stats(v[lo:lo + tau], v[lo + tau:hi])
        if st.p_value < pvalue:
            out.append(offset + lo + tau)
            segments.extend([(lo, lo + tau), (lo + tau, hi)])
    return out


def _passes(st: SegmentStats, max_pvalue: float, min_magnitude: float) -> bool:
    return st.p_value <= max_pvalue and abs(st.rel_change) >= min_magnitude


def detect_change_points(series: ArrayLike, *, window: int = DEFAULT_WINDOW,
                         max_pvalue: float = DEFAULT_MAX_PVALUE,
                         weak_pvalue: float = DEFAULT_WEAK_PVALUE,
                         min_magnitude: float = DEFAULT_MIN_MAGNITUDE,
                         min_size: int = DEFAULT_MIN_SIZE) -> list[ChangePoint]:
    """Change points of ``series`` (ordered oldest first), sorted by index."""
    v = np.asarray(series, dtype=np.float64).ravel()
    if not np.all(np.isfinite(v)):
        raise ValidationError("series must contain finite numbers only")
    if window < 2 * min_size or min_size < 2:
        raise ValidationError(f"need min_size >= 2 and window >= 2 * min_size "
                              f"(window={window}, min_size={min_size})")
    if not 0.0 < max_pvalue <= weak_pvalue < 1.0:
        raise ValidationError("need 0 < max_pvalue <= weak_pvalue < 1")
    n = v.size
    if n < 2 * min_size:
        return []
    # weak pass over overlapping windows
    candidates: set[int] = set()
    step = max(1, window // 2)
    starts = list(range(0, max(1, n - window + step), step))
    for s in starts:
        e = min(n, s + window)
        if e - s >= 2 * min_size:
            candidates.update(_edivisive(v[s:e], s, min_size, weak_pvalue))
    # strong pass: merge until every candidate holds between its neighbours
    cps = sorted(candidates)
    while cps:
        bounds = [0, *cps, n]
        sts = [segment_stats(v[bounds[i]:bounds[i + 1]], v[bounds[i + 1]:bounds[i + 2]])
               for i in range(len(cps))]
        failing = [i for i, st in enumerate(sts) if not _passes(st, max_pvalue, min_magnitude)]
        if not failing:
            return [ChangePoint(c, st) for c, st in zip(cps, sts, strict=True)]
        worst = max(failing, key=lambda i: (sts[i].p_value, -abs(sts[i].rel_change)))
        del cps[worst]
    return []


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


def find_changes(runs: History | Sequence[RunRecord], *,
                 cell_filter: Callable[[str], bool] | None = None,
                 metrics: Sequence[str] | None = None, since: float | None = None,
                 window: int = DEFAULT_WINDOW, max_pvalue: float = DEFAULT_MAX_PVALUE,
                 weak_pvalue: float = DEFAULT_WEAK_PVALUE,
                 min_magnitude: float = DEFAULT_MIN_MAGNITUDE,
                 min_size: int = DEFAULT_MIN_SIZE) -> list[ChangeGroup]:
    """Change points of every cell and metric over ``runs``, grouped and attributed.

    ``since`` (a timestamp) keeps only changes whose first affected run was created at or after
    it; the detector still sees the whole history. Groups are ordered newest run first,
    regressions before improvements.
    """
    series = [s for s in build_series(runs)
              if (cell_filter is None or cell_filter(s.key))
              and (metrics is None or s.metric in metrics)]
    changes: list[CellChange] = []
    for s in series:
        for cp in detect_change_points(s.values, window=window, max_pvalue=max_pvalue,
                                       weak_pvalue=weak_pvalue, min_magnitude=min_magnitude,
                                       min_size=min_size):
            run = s.runs[cp.index]
            if since is not None and run.created_at < since:
                continue
            direction = direction_of(s.metric)
            changes.append(CellChange(
                s.key, s.target, s.params, s.metric, direction,
                _kind(direction, cp.magnitude), run, cp.index, cp.magnitude,
                cp.stats.p_value, cp.stats.mean_before, cp.stats.mean_after))
    return _group(changes, series)


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
    groups.sort(key=lambda g: (-run_order[g.run.id], g.kind != "regression", g.target, g.metric))
    return groups


@dataclass(slots=True)
class RegressionReport:
    """What :func:`find_changes` found, with the scope it looked at."""

    groups: list[ChangeGroup] = field(default_factory=list)
    runs: int = 0
    series: int = 0

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
                "cells_changed": len(g.changes), "cells_checked": g.cells_checked,
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
    n_series = sum(1 for s in build_series(history)
                   if (cell_filter is None or cell_filter(s.key))
                   and (metrics is None or s.metric in metrics))
    return RegressionReport(find_changes(history, **kwargs), runs=len(history),
                            series=n_series)
