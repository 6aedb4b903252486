"""The run-level model of a comparison of two runs measured apart.

Every sample of a run shares that run's conditions: its worker processes, what else the machine
was doing. Two runs of identical code therefore differ by more than their samples say, in two
ways this module estimates:

* a **run-wide shift** common to every cell of an environment-sensitive metric (time, rates):
  the machine was 10% slower. It is the median over the cells of their log-ratios, taken out of
  every cell and reported once (:class:`Shift`): "the whole run moved +10%; relative to that,
  cell X moved +12%". Two runs cannot tell a shift of the machine from a change of the code that
  slows every cell alike; ``allele bench ab`` can (both versions share every round);
* a **run-level variance** per cell, beyond its within-run sampling: from the cell's *history*
  of earlier runs (never the runs being compared), as the robust mean square of its changes
  from one run to the next (each estimated as a comparison estimates one: the winsorized mean of
  the seed-paired log differences, after the run's shift is taken out; a real step in the
  history moves one change, not all of them), moderated across the cells of the metric, less
  what sampling explains of those changes. A pair whose own sampling variance is below
  half of what its history's changes had (:data:`FLOOR_SHARE`) is held to the history's
  whole variance of a change: six winsorized pairs of a cell that switches between a fast and a
  slow mode can look precise. Without enough history, from the *cross-section* of the
  comparison itself: the spread of the cells' shift-free log-ratios beyond their sampling
  variances (a median-based random-effects estimate, which a few real changes do not inflate).

The history also keeps a record of how far identical code moved (:attr:`HistoryNoise.null`):
the changes that stood out from their cell's own noise, by size. A change no larger than one of
those is no more certain than their frequency (:func:`allele.bench.estimate.judge`): on a shared
machine a cell sometimes runs twice as slow for a whole run, which no normal reference allows.

A verdict must beat both the within-run and the run-level noise (:func:`allele.bench.estimate.
judge`). Quality and memory metrics are not shifted; with neither history nor enough cells
their run-level variance is taken as 0, that of a time metric as unknown.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from allele.bench.estimate import Between
from allele.bench.history import History
from allele.bench.metrics import TIME_METRICS, MetricInfo, metric_info
from allele.bench.stats import (
    FloatArray,
    fence_k,
    robust_between,
    robust_mean_var,
    squeeze_var,
)
from allele.bench.within import Within
from allele.store.model import MetricHistory

MIN_HISTORY_RUNS = 4
"""Earlier runs of a cell its own run-level variance needs (3 successive differences)."""
MIN_SHIFT_CELLS = 3
"""Cells of a metric a run-wide shift needs (with fewer, a shift and a cell's change are one)."""
FLOOR_SHARE = 0.5
"""A compared pair whose own sampling variance is below this share of what its cell's history
showed is held to the history's whole variance of a change, or to its sampling part when that is
larger (:func:`run_level`)."""
_TIME_UNITS = ("s", "ms", "us", "µs", "ns", "1/s", "/s", "hz", "ops/s")
_TIME_HINTS = ("_s", "_ms", "_us", "_ns", "per_s", "time", "latency", "throughput")


def environment_sensitive(info: MetricInfo) -> bool:
    """Whether a busier or quieter machine moves ``info``'s metric for every cell alike: times
    and rates, not quality, memory or deterministic counts."""
    if info.deterministic:
        return False
    if info.unit:
        return info.unit.lower() in _TIME_UNITS
    name = info.name.lower()
    return (info.name in TIME_METRICS or name == "cpu_sys_s"
            or any(name.endswith(h) or h in name for h in _TIME_HINTS if h[0] != "_")
            or any(name.endswith(h) for h in _TIME_HINTS if h[0] == "_"))


@dataclass(frozen=True, slots=True)
class Shift:
    """A run-wide shift of one metric between two runs."""

    metric: str
    ratio: float
    """HEAD/BASE common to the cells (1.10: the whole run 10% higher)."""
    ci_low: float
    ci_high: float
    cells: int

    @property
    def significant(self) -> bool:
        return self.ci_low > 1.0 or self.ci_high < 1.0


def locations(logs: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per row of log samples (``... x n``, NaN-padded): the location a comparison estimates
    (the winsorized mean) and its sampling variance (NaN below 2 samples)."""
    mean, var, n = robust_mean_var(logs)
    with np.errstate(invalid="ignore", divide="ignore"):
        return mean, np.where(n > 1, var / n, np.nan)


def run_locations(series: MetricHistory) -> tuple[FloatArray, FloatArray]:
    """:func:`locations` of every run of a series; NaN for a run with a non-positive sample."""
    k = len(series)
    counts = np.diff(series.offsets)
    arr = np.full((k, max(int(counts.max()) if k else 0, 1)), np.nan)
    for i in range(k):
        v = series.run_values(i)
        arr[i, :v.size] = np.log(v) if v.size and np.all(v > 0) else np.nan
    return locations(arr)


def steps(logs: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per run of aligned log samples (``... x runs x n``: sample ``k`` of every run is the same
    seed and repeat, NaN-padded), its paired change from the run before, estimated as a
    comparison estimates a change (the winsorized mean of the paired differences), and that
    estimate's sampling variance; NaN for the first run. Seed effects cancel in both, as they
    do in the comparison of two runs."""
    est = np.full(logs.shape[:-1], np.nan)
    var = np.full(logs.shape[:-1], np.nan)
    if logs.shape[-2] > 1:
        est[..., 1:], var[..., 1:] = locations(np.diff(logs, axis=-2))
    return est, var


def run_steps(series: MetricHistory) -> tuple[FloatArray, FloatArray]:
    """:func:`steps` of a series' runs, samples paired by seed and repeat with the series' run
    before (the difference of the two runs' locations, and the sum of their sampling variances,
    when fewer than 2 samples pair). A run with a non-positive sample has none."""
    k = len(series)
    if k == 0:
        return np.zeros(0), np.zeros(0)
    run_of = np.repeat(np.arange(k), np.diff(series.offsets))
    keys = series.seeds.astype(np.int64) * (1 << 32) + series.repeats.astype(np.int64)
    uniq, col = np.unique(keys, return_inverse=True)
    logs = np.full((k, uniq.size), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs[run_of, col] = np.log(series.values)
    positive = np.ones(k, dtype=bool)
    np.logical_and.at(positive, run_of, series.values > 0)
    logs[~positive] = np.nan
    est, var = steps(logs)
    paired = np.zeros(k, dtype=np.int64)
    paired[1:] = np.sum(np.isfinite(np.diff(logs, axis=0)), axis=-1)
    apart = (np.arange(k) > 0) & (paired < 2)
    if apart.any():
        own, own_var = run_locations(series)
        est[apart] = own[1:][apart[1:]] - own[:-1][apart[1:]]
        var[apart] = own_var[1:][apart[1:]] + own_var[:-1][apart[1:]]
    return est, var


def median_variance(d: FloatArray) -> FloatArray:
    """The variance of ``d`` about 0 along the last axis, read from the median of its squares
    (a normal's is 0.4549 of its variance), which a few large values barely move; NaN for a row
    without values."""
    if d.shape[-1] == 0:
        return np.full(d.shape[:-1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without any value
        return np.asarray(np.nanmedian(d * d, axis=-1) / 0.45493642311957283)


def robust_square_mean(d: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The mean square of ``d`` about 0 along the last axis, robust to a few large values (a
    real step in a history makes one large successive difference): values beyond the robust
    fences are pulled in and the result is divided by the share of a normal's variance that
    winsorizing at ``k`` keeps. Returns ``(mean square, count)``."""
    n = np.sum(np.isfinite(d), axis=-1).astype(np.float64)
    scale = np.sqrt(median_variance(d))
    k = fence_k(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        lim = np.where(scale > 0, k * scale, np.inf)[..., None]
        clipped = np.clip(d, -lim, lim)
        ms = np.nansum(clipped * clipped, axis=-1) / n
        kept = ((2.0 * stats.norm.cdf(k) - 1.0) - 2.0 * k * stats.norm.pdf(k)
                + 2.0 * k * k * stats.norm.sf(k))
    return np.where(n > 0, ms / kept, np.nan), n


@dataclass(frozen=True, slots=True)
class HistoryNoise:
    """What a metric's history says about a change from one run to the next, per cell (``...
    x cells``; NaN for a cell with fewer than :data:`MIN_HISTORY_RUNS` runs in a row)."""

    var: FloatArray
    """Run-level variance of a change, beyond sampling."""
    df: FloatArray
    total: FloatArray
    """Whole variance of a change, sampling included."""
    sampling: FloatArray
    """Its sampling part."""
    null: FloatArray
    """``... x values``: the metric's own record of how far identical code moved
    (:func:`_null`; pooled over the cells, NaN-padded; :func:`allele.bench.estimate.judge`)."""


def history_variance(step: FloatArray, w: FloatArray, shifted: bool) -> HistoryNoise:
    """Per cell, from its history's paired changes from one run to the next (``... x cells x
    earlier runs``, :func:`steps`, with their sampling variances ``w``; NaN where a cell was
    absent from a run or the run before): :class:`HistoryNoise`. ``shifted``: take each run's
    shift (the median change over the cells) out first."""
    d = step
    if shifted and step.shape[-2] >= MIN_SHIFT_CELLS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # runs no cell has a change for
            col = np.nanmedian(step, axis=-2, keepdims=True)
        d = step - np.where(np.isfinite(col), col, 0.0)
    v, nd = robust_square_mean(d)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = nd + 1.0
        df = 2.0 * (k - 1.0) ** 2 / (3.0 * k - 4.0)  # a successive-difference variance's df
    enough = nd >= MIN_HISTORY_RUNS - 1
    v_post, df_post = squeeze_var(np.where(enough, v, np.nan), np.where(enough, df, np.nan))
    wv = np.where(np.isfinite(d), w, np.nan)
    wbar = np.nansum(wv, axis=-1) / np.maximum(np.sum(np.isfinite(wv), axis=-1), 1)
    excess = np.maximum(0.0, v_post - wbar)
    nan = np.nan
    return HistoryNoise(np.where(enough, excess, nan), np.where(enough, df_post, nan),
                        np.where(enough, v_post, nan), np.where(enough, wbar, nan),
                        _null(d, enough))


OUTLYING_CHANGE = 4.0
"""A history's change counts as one identical code should not have made (:func:`_null`) beyond
this many robust standard deviations of its cell's changes."""


def _null(d: FloatArray, enough: NDArray[np.bool_]) -> FloatArray:
    """:attr:`HistoryNoise.null`: every change of the cells with enough history, as its absolute
    log size where it stood out from its cell's own changes (beyond :data:`OUTLYING_CHANGE`
    robust standard deviations: a median-based scale, which the outlier itself barely moves,
    moderated across the cells) and as 0 where it did not. Each cell's largest change is left
    out: a real step in its history is one large change, a run that went wrong for one cell two
    (into it and out of it). Sizes, not standardised values: a run that goes wrong slows a cell
    by a factor, whatever that cell's noise."""
    if d.shape[-1] == 0:
        return np.full((*d.shape[:-2], 0), np.nan)
    n = np.sum(np.isfinite(d), axis=-1)
    scale, _ = squeeze_var(np.where(enough, median_variance(d), np.nan), 0.37 * n)
    size = np.abs(np.where(enough[..., None], d, np.nan))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(size > OUTLYING_CHANGE * np.sqrt(scale)[..., None], size, 0.0)
    out = np.where(np.isfinite(size), out, np.nan)
    top = np.argmax(np.where(np.isfinite(size), size, -1.0), axis=-1)[..., None]
    np.put_along_axis(out, top, np.nan, axis=-1)
    return out.reshape(*out.shape[:-2], -1)


SRC_HISTORY, SRC_MATRIX, SRC_ZERO, SRC_UNKNOWN = range(4)
SOURCES = ("history", "matrix", "assumed 0", "unknown")


@dataclass(frozen=True, slots=True)
class RunLevel:
    """The run-level part of rows (arrays over ``... x rows``): shift (log, per matrix), its
    variance, each row's run-level variance with its df and source (:data:`SOURCES`)."""

    shift: FloatArray
    var_shift: FloatArray
    var: FloatArray
    df: FloatArray
    source: NDArray[np.int64]
    null: FloatArray
    """``... x values``: :attr:`HistoryNoise.null` (no values without a history)."""


def run_level(est: FloatArray, var: FloatArray, step: FloatArray, w: FloatArray, *,
              sensitive: bool) -> RunLevel:
    """The run-level part of a metric's rows in two-run comparisons (``... x rows``): ``est``
    and ``var`` the within estimates, ``step`` / ``w`` each row's changes between its earlier
    runs (:func:`steps`, ``... x rows x runs``, may have 0 runs). Vectorised over leading axes,
    so a simulation runs the very procedure a comparison does."""
    finite = np.isfinite(est)
    g = np.sum(finite, axis=-1)
    shifted = sensitive and bool(np.all(g >= MIN_SHIFT_CELLS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        shift = np.nanmedian(est, axis=-1) if shifted else np.zeros(est.shape[:-1])
    hist = history_variance(step, w, shifted)
    tau2, df, total, sampling = hist.var, hist.df, hist.total, hist.sampling
    # the history's changes from run to run are the statistic itself, every source of noise
    # included: a pair whose own sampling variance is far below its history's (6 winsorized
    # pairs of a bimodal cell can look precise) is no more certain than they were
    low = np.isfinite(var) & (var < FLOOR_SHARE * sampling)
    tau2 = np.where(low, np.maximum(tau2, np.fmax(total, sampling) - var), tau2)
    source = np.where(np.isfinite(tau2), SRC_HISTORY, SRC_UNKNOWN)
    cross, cross_df = robust_between(est - shift[..., None], var)
    missing = ~np.isfinite(tau2)
    use = missing & np.isfinite(cross)[..., None]
    tau2 = np.where(use, cross[..., None], tau2)
    df = np.where(use, cross_df[..., None], df)
    source = np.where(use, SRC_MATRIX, source)
    if not sensitive:
        zero = ~np.isfinite(tau2)
        tau2, df = np.where(zero, 0.0, tau2), np.where(zero, np.inf, df)
        source = np.where(zero, SRC_ZERO, source)
    var_shift = np.zeros(est.shape[:-1])
    if shifted:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            typical = np.nanmedian(var + np.where(np.isfinite(tau2), tau2, 0.0), axis=-1)
        var_shift = math.pi / 2.0 * typical / np.maximum(g, 1)
    return RunLevel(shift, var_shift, tau2 + var_shift[..., None], df, source, hist.null)


@dataclass
class RunLevelModel:
    """The run-level part of a two-run comparison's rows (an
    :data:`allele.bench.estimate.BetweenModel`).

    ``keys[i]`` is row ``i``'s cell key; ``history`` holds earlier runs (the compared ones are
    left out here, whatever the caller passed). After use, ``shifts`` holds the run-wide shift of
    each metric that had one and ``sources`` where each row's run-level variance came from."""

    keys: Sequence[str]
    history: History | None = None
    exclude: frozenset[str] = frozenset()
    declared: Mapping[str, MetricInfo] | None = None
    shifts: dict[str, Shift] = field(default_factory=dict)
    sources: dict[int, str] = field(default_factory=dict)

    def _history_arrays(self, metric: str, keys: list[str]) -> tuple[FloatArray, FloatArray]:
        g = len(keys)
        if self.history is None or g == 0:
            return np.full((g, 0), np.nan), np.full((g, 0), np.nan)
        runs = [r.id for r in self.history.runs if r.id not in self.exclude]
        pos = {rid: j for j, rid in enumerate(runs)}
        step = np.full((g, len(runs)), np.nan)
        w = np.full((g, len(runs)), np.nan)
        by_key = {s.key: s for s in self.history.series if s.metric == metric}
        for i, key in enumerate(keys):
            series = by_key.get(key)
            if series is None:
                continue
            m, v = run_steps(series)
            for j in range(1, len(series)):
                now, before = series.run_ids[j], series.run_ids[j - 1]
                # a change from the series' run before counts when no history run lies between
                if now in pos and before in pos and pos[before] == pos[now] - 1:
                    step[i, pos[now]], w[i, pos[now]] = m[j], v[j]
        return step, w

    def __call__(self, metric: str, within: Within, idx: list[int]) -> Between:
        info = metric_info(metric, self.declared)
        step, w = self._history_arrays(metric, [self.keys[i] for i in idx])
        part = run_level(within.est, within.var, step, w,
                         sensitive=environment_sensitive(info) and not _exact(within))
        if float(part.var_shift) > 0 or float(part.shift) != 0.0:  # every shift taken out
            shift, half = float(part.shift), 1.959963984540054 * math.sqrt(float(part.var_shift))
            self.shifts[metric] = Shift(metric, math.exp(shift), math.exp(shift - half),
                                        math.exp(shift + half),
                                        int(np.sum(np.isfinite(within.est))))
        for n, i in enumerate(idx):
            self.sources[i] = SOURCES[int(part.source[n])]
        return Between(float(part.shift), part.var, part.df, part.null)


def _exact(within: Within) -> bool:
    """Whether every row's paired samples moved by exactly one ratio (no sampling variance): a
    busier machine never moves a metric so, so it is not taken for the environment's shift. A
    model output declared in seconds with seeded noise, 30 % lower in every cell, was taken out
    as the run's shift and read "unchanged [+0.0 %, +0.0 %]"."""
    var = within.var[np.isfinite(within.est) & np.isfinite(within.var)]
    return var.size > 0 and bool(np.all(var == 0.0))
