"""What the anomaly pipeline does to a metric series before its statistics: rounding and
counts, the log transform, the season, a learned trend and the AR pre-whitening.

Every step is decided on the learning period (or, for the season, at fixed checkpoints from
past data only), so a point's result depends only on the points up to it.

* **Rounding** (:func:`snap_rounding`): values closer than :data:`ROUNDING` times the largest
  learning value are one reading; a constant that carries floating-point noise stays a constant.
* **Counts** (:func:`dequantise`): a series of whole numbers (errors, retries, events per
  interval) takes a fixed uniform jitter in ``[-0.5, 0.5)``, the randomised version of a count
  that makes its distribution continuous (as randomised quantile residuals do, Dunn & Smyth
  1996). Without it the robust scales of a low count are 0 or one step, every statistic takes a
  handful of values, and a tail fitted to those is no tail: i.i.d. Poisson(0.5) counts raised 8.2
  false runs per 1,000 points, Poisson(10) 1.7 (``benchmarks/anomaly_counts.py``).
* **Transform**, **season** and **pre-whitening**: see
  :mod:`~allele.analytics.anomaly.series`.
* **Skewed noise** (:func:`lognormal_bound`): when the pre-whitened learning residuals are
  clearly right-skewed and a shifted lognormal fits them, its lower bound ``c``; the spike-up
  statistic is then read through ``log(. - c)``, where the noise is close to Gaussian (see
  :mod:`~allele.analytics.anomaly.series`).
* **Trend** (:func:`learned_trend`): when the learning period rises or falls clearly (the slope
  of a regression of the series on time and its own AR lags is more than :data:`TREND_T`
  standard errors from 0), the trend is part of the normal behaviour. It is removed from the
  pre-whitened series, and the drift statistic's standard error grows with the slope's
  uncertainty extrapolated to each point. Without it a trending series (co2: weekly, rising
  for 44 years) drifted away from its learning level for good, and 87 % of its points were
  flagged.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from allele.analytics._common import FloatArray
from allele.analytics._season import _fourier_design, seasonal_period
from allele.errors import AnalyticsError

__all__ = ["ROUNDING", "SKEW_FIT_LEVEL", "SKEW_MIN", "SKEW_SIGMA_MIN", "TREND_SIZE", "TREND_T",
           "LearnedTrend", "apply_transform", "dequantise", "deseasonalise", "is_count",
           "learned_trend", "lognormal_bound", "prewhiten", "snap_rounding"]

ROUNDING = 1e-12
"""Relative resolution below which two values of a series are the same reading: differences
this small are floating-point rounding, not measurement (a timer's nanoseconds on seconds are
1e-9)."""

SEASON_HELD_OUT = 0.2
"""The share of the learning period's variance a season must explain out of sample (one half
predicted from the other, :func:`~allele.analytics._season.held_out_strength`) besides 30 %
in-sample: autocorrelated noise and a slow hump pass the in-sample test alone."""

TREND_T = 3.5
"""How many standard errors from 0 the learning period's slope must be to count as a trend
(two-sided p about 5e-4 on 150 points, were the errors independent). Over 640 clean synthetic
series of each noise it fired on none of the Gaussian, Student-t(3) and lognormal ones and on
none of the 74 recorded benchmark histories; see :data:`TREND_SIZE` for AR(0.8)."""

TREND_SIZE = 4.0
"""And how far the trend must move the level over the learning period, in units of the spread
around it: a trend one would see by eye. Autocorrelated noise wanders, and a regression on its
own lags does not always tell a wander from a trend (the slope's t statistic is not Student's
near a unit root): over 640 clean AR(0.8) series the t test alone fired on 7 (1.1 %), whose
lines moved 2.2 to 3.7 spreads; co2's moves 4.8. With both tests none of the 640 fired."""

SKEW_MIN = 0.2
"""The quantile skewness ``(q95 + q05 - 2 q50) / (q95 - q05)`` the learning residuals must
exceed before a shifted lognormal is fitted to them. Over 300 clean synthetic series of each
noise (learning period 150) it is above 0.2 for 291 lognormal ones and for 9 Student-t(3), 2
Gaussian and 2 AR(0.8) ones."""

SKEW_SIGMA_MIN = 0.25
"""The smallest log-scale of the fitted shifted lognormal that counts: under it (skewness
about 0.8) the fit is close to a normal, and the few symmetric series that pass
:data:`SKEW_MIN` by chance fit 0.1 to 0.2 there (lognormal ones 0.31 to 0.57, 5 % to 95 %)."""

SKEW_FIT_LEVEL = 0.01
"""The fit must hold at its extremes: the learning residuals' smallest and largest values, in
the fitted log scale, within the range that ``n`` Gaussian values leave with probability
``1 - SKEW_FIT_LEVEL``. A Student-t(3) learning period that looks skewed fails here, by its long
lower tail."""

_JITTER_SEED = 20261206


def snap_rounding(y: FloatArray, learn: int) -> FloatArray:
    """``y`` rounded to a grid of :data:`ROUNDING` times the largest learning value (a power of
    two, so the rounding is exact): a constant metric that carries floating-point noise (1.0
    give or take an ulp) is scored as the constant it is, instead of as a series of ulps."""
    top = float(np.max(np.abs(y[:learn]))) if learn else 0.0
    if not top > 0.0 or not math.isfinite(top):
        return y
    step = 2.0 ** math.floor(math.log2(ROUNDING * top))
    out: FloatArray = np.round(y / step) * step
    return out


def is_count(y: FloatArray, learn: int) -> bool:
    """Whether ``y`` is a count: its learning values are whole numbers, not all equal."""
    lv = y[:learn]
    return bool(lv.size) and bool(np.all(lv == np.round(lv))) and float(np.ptp(lv)) != 0.0


def dequantise(y: FloatArray, learn: int) -> FloatArray:
    """A count made continuous: ``y`` plus a fixed uniform jitter in ``[-0.5, 0.5)`` when every
    learning value is a whole number and they are not all equal (a constant learning period
    keeps its own rule: any departure is news). The jitter of point ``i`` is the ``i``-th draw of
    one seeded generator, so it never changes when the series grows."""
    if not is_count(y, learn):
        return y
    jitter = np.random.default_rng(_JITTER_SEED).uniform(-0.5, 0.5, y.size)
    out: FloatArray = y + jitter
    return out


def _season_fit(y: FloatArray, end: int, period: int, upto: int) -> FloatArray:
    """The Fourier seasonal profile (no level, no line) fitted on ``y[:end]``, for ``[0, upto)``."""
    h = min(3, period // 2)
    t_fit = np.arange(end, dtype=np.float64)
    coef = np.linalg.lstsq(_fourier_design(t_fit, period, h), y[:end], rcond=None)[0]
    t_all = np.arange(upto, dtype=np.float64)
    # Only the seasonal terms are used (not level and line): the rolling windows track the level,
    # and extrapolating a line fitted on the past would invent drifts.
    out: FloatArray = _fourier_design(t_all, period, h)[:, 2:] @ coef[2:]
    return out


def deseasonalise(y: FloatArray, learn_end: int, period: int | None) -> tuple[FloatArray,
                                                                               int | None]:
    """Remove the season causally.

    The season (and, when ``period`` is None, its period) is estimated on the learning period and
    re-estimated at checkpoints that double the data seen so far (``2 L, 4 L, ...``); the points
    between two checkpoints use the estimate made from the data before the first of them only.
    """
    fixed = period
    n = y.size
    first = fixed if fixed is not None else seasonal_period(
        y[:learn_end], max_period=learn_end // 2, held_out=SEASON_HELD_OUT)
    if first is None or first < 2 or learn_end < 2 * first:
        return y.copy(), None
    season = np.empty(n)
    bounds = [0, learn_end]
    while bounds[-1] < n:
        bounds.append(min(2 * bounds[-1], n))
    used = first
    for lo, hi in itertools.pairwise(bounds):
        seen = max(lo, learn_end)  # data available before the segment starts
        if fixed is None and seen > learn_end:
            used = seasonal_period(y[:seen], max_period=min(seen // 2, 4 * first),
                                   held_out=SEASON_HELD_OUT) or used
        season[lo:hi] = _season_fit(y, seen, used, hi)[lo:hi]
    return y - season, used


def _skewness(x: FloatArray) -> float:
    sd = float(np.std(x))
    return float(np.mean((x - np.mean(x)) ** 3)) / sd**3 if sd > 0 else 0.0


def apply_transform(y: FloatArray, learn: int, transform: str) -> tuple[FloatArray, str]:
    """Logs for a positive, right-skewed metric (decided on the learning period alone); later
    values at or below 0 are floored at half the smallest learning value."""
    lv = y[:learn]
    if transform == "none" or float(np.min(lv)) <= 0.0:
        if transform == "log":
            raise AnalyticsError("transform='log' needs a positive learning period")
        return y, "none"
    if transform == "auto":
        sk = _skewness(lv)
        if not (sk > 1.0 and abs(_skewness(np.log(lv))) < sk):
            return y, "none"
    floor = 0.5 * float(np.min(lv))
    return np.log(np.maximum(y, floor)), "log"


def _quantile_skewness(x: FloatArray) -> float:
    lo, mid, hi = np.quantile(x, [0.05, 0.5, 0.95])
    return float((hi + lo - 2.0 * mid) / (hi - lo)) if hi > lo else 0.0


def lognormal_bound(lv: FloatArray) -> float | None:
    """The lower bound ``c`` of a shifted lognormal (``log(x - c)`` normal) fitted to the
    learning residuals ``lv`` by profile likelihood, or None when they are not clearly
    right-skewed (:data:`SKEW_MIN`), the fit is nearly a normal (:data:`SKEW_SIGMA_MIN`) or it
    fails at the extremes (:data:`SKEW_FIT_LEVEL`).

    The likelihood of ``log(x - c)`` as a normal sample, with the Jacobian, profiled over its
    mean and scale, is maximised over 400 values of ``c`` from ``min(lv) - 1e-3 sd`` down to
    ``min(lv) - 100 sd`` (log spaced): it grows without bound as ``c`` reaches ``min(lv)``, so
    the grid stops short of it, as usual for this model."""
    if lv.size < 20 or _quantile_skewness(lv) < SKEW_MIN:
        return None
    low = float(np.min(lv))
    sd = float(np.std(lv))
    if not sd > 0.0:
        return None
    cs = low - sd * np.geomspace(1e-3, 100.0, 400)
    logs = np.log(lv[None, :] - cs[:, None])
    sds = logs.std(axis=1)
    k = int(np.argmax(-lv.size * np.log(sds) - logs.sum(axis=1)))
    sig = float(sds[k])
    if sig < SKEW_SIGMA_MIN:
        return None
    z = (logs[k] - logs[k].mean()) / sig
    edge = float(special.ndtri(1.0 - 0.5 * (1.0 - (1.0 - SKEW_FIT_LEVEL) ** (1.0 / lv.size))))
    if float(np.min(z)) < -edge or float(np.max(z)) > edge:
        return None
    return float(cs[k])


def prewhiten(r: FloatArray, learn: int, order: int | None) -> tuple[FloatArray,
                                                                      tuple[float, ...]]:
    """One-step residuals of an AR(p) fitted by least squares on ``r[:learn]`` (p in 0..3 by
    BIC unless ``order`` is given): ``e_t = r_t - sum_i phi_i r_{t-i}``, the level left in (the
    rolling windows track it)."""
    lv = r[:learn]
    orders = [order] if order is not None else [0, 1, 2, 3]
    best: tuple[float, tuple[float, ...]] = (math.inf, ())
    m = learn - 3
    for p in orders:
        if p == 0:
            rss = float(np.sum((lv[3:] - np.mean(lv[3:])) ** 2))
            coef: tuple[float, ...] = ()
        else:
            design = np.column_stack([np.ones(m)] + [lv[3 - i:learn - i] for i in range(1, p + 1)])
            beta, *_ = np.linalg.lstsq(design, lv[3:], rcond=None)
            res = lv[3:] - design @ beta
            rss = float(res @ res)
            coef = tuple(float(b) for b in beta[1:])
        bic = m * math.log(max(rss, 1e-300) / m) + (p + 1) * math.log(m)
        if bic < best[0]:
            best = (bic, coef)
    phi = best[1]
    if not phi:
        return r.copy(), ()
    e = r.copy()
    for i, c in enumerate(phi, start=1):
        e[i:] -= c * r[:-i]
    e[:len(phi)] = r[:len(phi)] * (1.0 - sum(phi))
    return e, phi


def _visible(lv: FloatArray) -> bool:
    """Whether the straight line through ``lv`` moves by at least :data:`TREND_SIZE` times the
    spread of ``lv`` around it."""
    t = np.arange(lv.size, dtype=np.float64)
    slope, icpt = np.polyfit(t, lv, 1)
    spread = float(np.std(lv - (slope * t + icpt)))
    return abs(float(slope)) * lv.size >= TREND_SIZE * spread


@dataclass(frozen=True)
class LearnedTrend:
    """A trend found on the learning period: ``slope`` per point (in the regression on time and
    the AR lags), its standard error, and the mean time of the rows it was fitted on."""

    slope: float
    se: float
    t_mean: float

    def drift_var(self, n: int) -> FloatArray:
        """Per point, the variance the slope's uncertainty adds at that distance from the
        learning period's middle."""
        out: FloatArray = (self.se * (np.arange(n, dtype=np.float64) - self.t_mean)) ** 2
        return out


def learned_trend(r: FloatArray, learn: int, p: int,
                  t_min: float = TREND_T) -> tuple[FloatArray, tuple[float, ...],
                                                     LearnedTrend] | None:
    """The pre-whitened series with the learning period's trend removed, when there is one.

    ``r`` is the deseasonalised series and ``p`` the AR order the pre-whitening chose. On the
    learning period, ``r_t = c + b t + sum_i phi_i r_{t-i} + e_t`` is fitted by least squares;
    when ``|b|`` is more than ``t_min`` standard errors (an AR fit alone takes a trend for
    persistence, so the slope is tested beside the lags, not on its own), the result is
    ``(e, phi, trend)`` with ``e_t = r_t - sum_i phi_i r_{t-i} - b t`` (the level left in, as in
    the plain pre-whitening); else None.
    """
    lv = r[:learn]
    m = learn - 3
    t = np.arange(3, learn, dtype=np.float64)
    design = np.column_stack([np.ones(m), t] + [lv[3 - i:learn - i] for i in range(1, p + 1)])
    beta, *_ = np.linalg.lstsq(design, lv[3:], rcond=None)
    res = lv[3:] - design @ beta
    dof = m - design.shape[1]
    gram = design.T @ design
    if dof < 1 or np.linalg.cond(gram) > 1e12:
        return None
    s2 = float(res @ res) / dof
    b = float(beta[1])
    se = math.sqrt(max(s2 * float(np.linalg.inv(gram)[1, 1]), 0.0))
    if not (se > 0.0 and abs(b) > t_min * se) or not _visible(lv):
        return None
    phi = tuple(float(c) for c in beta[2:])
    tt = np.arange(r.size, dtype=np.float64)
    e = r - b * tt
    for i, c in enumerate(phi, start=1):
        e[i:] -= c * r[:-i]
    if phi:
        e[:len(phi)] = r[:len(phi)] * (1.0 - sum(phi)) - b * tt[:len(phi)]
    return e, phi, LearnedTrend(b, se, float(np.mean(t)))
