"""Description of a metric series: trend, seasonality, level shifts and a threshold crossing.

:func:`theil_sen_trend` (Theil-Sen slope with a Mann-Kendall test, :func:`mann_kendall`),
:func:`detect_seasonality`, the level shifts of :mod:`allele.analytics.shifts` (re-exported here)
and :func:`time_to_threshold`; :class:`PredictiveAnalyzer` runs them all on one series and
returns a :class:`SeriesAnalysis`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from allele.analytics._common import (
    FloatArray,
    as_series,
    as_timestamps,
    format_value,
    humanize_duration,
    median_step,
)
from allele.analytics._season import seasonal_periods
from allele.analytics.shifts import (
    LevelShift,
    SlopeChange,
    beyond_curvature,
    detect_level_shifts,
    lag1_correlation,
    slope_change,
    trend_scale,
)

__all__ = [
    "THEIL_SEN_PAIRS",
    "LevelShift",
    "PredictiveAnalyzer",
    "Seasonality",
    "SeriesAnalysis",
    "ThresholdCrossing",
    "Trend",
    "beyond_curvature",
    "detect_level_shifts",
    "detect_seasonality",
    "mann_kendall",
    "persistence_factor",
    "theil_sen_trend",
    "time_to_threshold",
    "trend_persistence",
    "trend_scale",
]


@dataclass(frozen=True)
class Trend:
    """Theil-Sen slope (per step) with its confidence band and a Mann-Kendall test."""

    slope: float
    intercept: float
    slope_low: float
    slope_high: float
    tau: float
    mk_z: float
    p_value: float
    direction: str
    """'increasing', 'decreasing' or 'none' (not significant at ``alpha``, or not practically
    significant: see :func:`theil_sen_trend`)."""
    change: float = 0.0
    """The slope times the window (``slope * (n - 1)``): how much the trend moved the series."""
    practical: bool = True
    """Whether ``change`` is large enough to matter (False: a trend of floating-point noise or
    of a fraction of a percent is not reported)."""
    persistence: float = 0.0
    """The lag-1 autocorrelation of the noise that the test and the band allowed for (0:
    independent points; see :func:`theil_sen_trend`)."""


def mann_kendall(y: ArrayLike) -> tuple[float, float, float, float]:
    """Mann-Kendall trend test: ``(S, z, two-sided p-value, Kendall tau)`` with tie correction.

    ``S`` (concordant minus discordant pairs of (index, value)) comes from Kendall's tau-b of
    :func:`scipy.stats.kendalltau`, which counts the pairs by merge sort in O(n log n): a million
    points take a second, where the pair loop this replaced took hours.
    """
    arr = as_series(y, name="y", min_length=3)
    n = arr.size
    n0 = n * (n - 1) / 2.0
    ties = _tie_counts(arr)
    n2 = float(np.sum(ties * (ties - 1) / 2.0))
    var = (n * (n - 1) * (2 * n + 5) - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))) / 18.0
    if var <= 0 or n2 >= n0:
        return 0.0, 0.0, 1.0, 0.0
    tau_b = float(stats.kendalltau(np.arange(n), arr).statistic)
    s = float(round(tau_b * math.sqrt(n0 * (n0 - n2))))
    z = (s - np.sign(s)) / math.sqrt(var)
    p = float(2.0 * stats.norm.sf(abs(z)))
    return s, float(z), p, float(s / n0)


def _tie_counts(arr: FloatArray) -> FloatArray:
    """The sizes of the groups of equal values of ``arr`` (groups of 2 or more), as floats."""
    _, counts = np.unique(arr, return_counts=True)
    return counts[counts > 1].astype(np.float64)


PERSISTENCE_CAP = 0.9
"""The largest ``phi`` :func:`theil_sen_trend` allows for. A smooth curve (a warm-up that levels
off) leaves residuals around a line as persistent as any noise (0.97 for a clean warm-up of 20
points, whose p then rises from 0.017 at this cap to 0.035); on AR(0.9) noise the cap cost
nothing measurable (false trends 13 of 100 on 100 points either way)."""
THEIL_SEN_PAIRS = 2_000_000
"""Pairs :func:`theil_sen_trend` takes the slopes of: all of them up to 2,000 points (2,000 x
1,999 / 2 pairs), a seeded random sample of this many beyond (16 MB of slopes, whatever the
length; the exact median of all pairs needs every pair held at once, 7 TiB at a million)."""


def theil_sen_trend(y: ArrayLike, alpha: float = 0.05, min_change: float = 0.01,
                    max_pairs: int = THEIL_SEN_PAIRS, persistence: float | None = None,
                    period: int | None = None) -> Trend:
    """Robust linear trend of ``y`` against its index, tested with Mann-Kendall at ``alpha``.

    The slope is the median of the pairwise slopes, the band Sen's (1968) ``1 - alpha``
    confidence interval (the same ranks of the sorted slopes as :func:`scipy.stats.theilslopes`,
    whose result it reproduces). With more than ``max_pairs`` pairs, the slopes of ``max_pairs``
    pairs drawn at random (seeded: the same series gives the same answer) stand for all of them:
    the median is that of the sample, and each end of the band is the sample quantile at Sen's
    rank fraction moved outwards by ``z * sqrt(p (1 - p) / max_pairs)``, the sampling error of a
    quantile, so the band covers the exact one with 95% probability per end (at a million
    points it is about twice as wide as the exact band; at 20,000, 15% wider).

    A trend is reported (``direction`` not ``'none'``) only when it is statistically significant
    *and* practically significant: the change it makes over the window, ``|slope| * (n - 1)``,
    is at least ``min_change`` times :func:`trend_scale` (1% of the level by default) and at
    least 1000 floating-point epsilons of the largest value. A best-fitness series flat at 1.0
    with rounding noise of 1e-16 used to be "a significant upward trend (+6.5e-18 per step,
    p=5e-49)"; it is now no trend.

    Persistent noise (a metric that wanders: AR(1) noise with ``phi`` 0.5 to 0.9) makes runs of
    high and low values that the plain test reads as a trend: on 400 points of AR(0.5) noise
    and no trend it reported one in 31 % of series, on AR(0.9) in 60 %. The variance of the
    Mann-Kendall statistic is therefore multiplied by the factor of Hamed and Rao (1998) for the
    rank autocorrelations of AR(1) noise (:func:`persistence_factor`), and Sen's band is widened
    by its square root. ``persistence`` is that ``phi``; None reads it from the series
    (:func:`trend_persistence`, with the seasonal profile of ``period`` taken out first when
    one is given), 0 gives the test for independent points.
    """
    arr = as_series(y, name="y", min_length=3)
    if np.ptp(arr) == 0:
        return Trend(0.0, float(arr[0]), 0.0, 0.0, 0.0, 0.0, 1.0, "none", 0.0, False)
    slopes, exact = _pair_slopes(arr, max_pairs)
    slope = _median(slopes)
    phi = (trend_persistence(arr, slope, period) if persistence is None
           else min(max(persistence, 0.0), PERSISTENCE_CAP))
    factor = persistence_factor(arr.size, phi)
    low, high = _sen_band(slopes, arr, alpha, factor, exact)
    intercept = float(np.median(arr)) - slope * (arr.size - 1) / 2.0
    _, z, p, tau = mann_kendall(arr)
    if factor > 1.0:
        z /= math.sqrt(factor)
        p = float(2.0 * stats.norm.sf(abs(z)))
    change = slope * (arr.size - 1)
    floor = max(min_change * trend_scale(arr),
                1000.0 * float(np.finfo(np.float64).eps) * float(np.max(np.abs(arr))))
    practical = abs(change) >= floor and change != 0.0
    direction = "none"
    if p < alpha and practical:
        direction = "increasing" if z > 0 else "decreasing"
    return Trend(slope, intercept, low, high, tau, z, p, direction, change, practical, phi)


def trend_persistence(y: FloatArray, slope: float, period: int | None = None) -> float:
    """The ``phi`` :func:`theil_sen_trend` allows for: the robust lag-1 autocorrelation
    (:func:`allele.analytics.shifts.lag1_correlation`) of ``y`` around the line of ``slope``
    (less its seasonal profile, the median of each phase, with a ``period``), plus its
    small-sample bias ``(1 + 3 phi) / n`` (Kendall), capped at :data:`PERSISTENCE_CAP`. Read
    from the residuals: the differences (:func:`allele.analytics.shifts.noise_persistence`)
    give it with about four times the variance, which cost power (on AR(0.9) noise, 100
    points, a trend of 5 sd over the window found in 64 % of series against 96 %). A series
    whose differences are mostly exactly 0 (a quantised or stepwise metric) gives no robust
    estimate and gets 0."""
    d = np.diff(y)
    if d.size < 10 or np.median(np.abs(d - np.median(d))) == 0.0:
        return 0.0
    r = y - slope * np.arange(y.size)
    if period is not None and 2 <= period <= y.size // 2:
        r = r - _phase_medians(r, period)
    raw = lag1_correlation(r)
    return min(max(raw + (1.0 + 3.0 * raw) / y.size, 0.0), PERSISTENCE_CAP)


def _phase_medians(r: FloatArray, period: int) -> FloatArray:
    """The seasonal profile of ``r`` at each of its points: the median of its phase."""
    phase = np.arange(r.size) % period
    return np.array([np.median(r[phase == k]) for k in range(period)])[phase]


def persistence_factor(n: int, phi: float) -> float:
    """``Var(S) / Var(S | independent points)`` of the Mann-Kendall statistic on ``n`` points of
    AR(1) noise with lag-1 autocorrelation ``phi`` (Hamed and Rao 1998):
    ``1 + 2 / (n (n-1) (n-2)) * sum_k (n-k) (n-k-1) (n-k-2) r_k`` over the lags ``k``, with
    ``r_k = (6 / pi) asin(phi^k / 2)`` the rank (Spearman) autocorrelation of Gaussian noise
    whose autocorrelation is ``phi^k``. 1 for ``phi <= 0`` or fewer than 4 points."""
    if phi <= 0.0 or n < 4:
        return 1.0
    last = min(n - 3, max(1, math.ceil(math.log(1e-9) / math.log(phi))))
    k = np.arange(1, last + 1, dtype=np.float64)
    r = 6.0 / math.pi * np.arcsin(np.power(phi, k) / 2.0)
    total = float(np.sum((n - k) * (n - k - 1) * (n - k - 2) * r))
    return 1.0 + 2.0 * total / (n * (n - 1.0) * (n - 2.0))


def _pair_slopes(arr: FloatArray, max_pairs: int) -> tuple[FloatArray, bool]:
    """The pairwise slopes of ``arr`` against its index, and whether they are all of them (up to
    ``max_pairs`` pairs) or a seeded sample of ``max_pairs`` (see :func:`theil_sen_trend`)."""
    n = arr.size
    if n * (n - 1) // 2 <= max_pairs:
        return np.concatenate([(arr[k:] - arr[:-k]) / k for k in range(1, n)]), True
    rng = np.random.default_rng(0)
    i = rng.integers(0, n, size=max_pairs, dtype=np.int64)
    j = rng.integers(0, n - 1, size=max_pairs, dtype=np.int64)
    j = np.where(j >= i, j + 1, j)  # uniform over ordered pairs i != j
    return (arr[j] - arr[i]) / (j - i).astype(np.float64), False


def _median(slopes: FloatArray) -> float:
    mid = slopes.size // 2
    part = np.partition(slopes, sorted({mid, max(mid - 1, 0)}))
    return float(part[mid]) if slopes.size % 2 else float((part[mid - 1] + part[mid]) / 2.0)


def _sen_band(slopes: FloatArray, arr: FloatArray, alpha: float, factor: float,
              exact: bool) -> tuple[float, float]:
    """Sen's ``1 - alpha`` band of the slope from the pairwise ``slopes`` of ``arr`` (all of them
    when ``exact``, else a sample: see :func:`theil_sen_trend`); ``factor`` multiplies the
    variance of the rank statistic it is read from."""
    n = arr.size
    total = n * (n - 1) // 2
    ties = _tie_counts(arr)
    sigma = math.sqrt(factor * (n * (n - 1) * (2 * n + 5)
                                - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))) / 18.0)
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    if exact:
        hi_rank = min(round((total + z * sigma) / 2.0), total - 1)
        lo_rank = max(round((total - z * sigma) / 2.0) - 1, 0)
    else:
        m = slopes.size
        p_lo = max((total - z * sigma) / 2.0 / total, 0.0)
        p_hi = min((total + z * sigma) / 2.0 / total, 1.0)
        p_lo -= z * math.sqrt(p_lo * (1.0 - p_lo) / m)
        p_hi += z * math.sqrt(p_hi * (1.0 - p_hi) / m)
        lo_rank = max(math.floor(p_lo * m) - 1, 0)
        hi_rank = min(math.ceil(p_hi * m), m - 1)
    part = np.partition(slopes, sorted({lo_rank, hi_rank}))
    return float(part[lo_rank]), float(part[hi_rank])


@dataclass(frozen=True)
class Seasonality:
    """A detected season: ``period`` in steps (None when there is none) and ACF ``strength``."""

    period: int | None
    strength: float


def detect_seasonality(
    y: ArrayLike, max_period: int | None = None, min_strength: float = 0.3
) -> Seasonality:
    """Find the dominant season.

    The period is the one with the strongest detrended ACF among the seasons
    :func:`allele.analytics._season.seasonal_periods` finds (2..``max_period``, default
    ``n // 3``): the seasons the automatic forecaster models, so a description and a forecast
    of one series name the same season. Before, a 3-harmonic
    Fourier fit chose it, and on a season of 31.4 steps it preferred 63 (two cycles fit a
    non-integer period better) while the forecaster used 31. It is kept when its detrended ACF
    exceeds both ``min_strength`` and the 95% white-noise band ``1.96 / sqrt(n)``;
    ``strength`` is that ACF value.
    """
    arr = as_series(y, name="y")
    n = arr.size
    if n < 8 or np.ptp(arr) == 0:
        return Seasonality(None, 0.0)
    max_lag = min(max_period if max_period is not None else n // 3, n - 2)
    if max_lag < 3:
        return Seasonality(None, 0.0)
    found = seasonal_periods(arr, min_period=2, max_period=max_lag)
    if not found:
        return Seasonality(None, 0.0)
    x = np.arange(n, dtype=np.float64)
    slope, intercept = np.polyfit(x, arr, 1)
    resid = arr - (slope * x + intercept)
    resid = resid - resid.mean()
    denom = float(resid @ resid)
    if not denom > 0:
        return Seasonality(None, 0.0)
    acf = {m: float(resid[m:] @ resid[:-m]) / denom for m in found}
    period = max(found, key=lambda m: acf[m])
    strength = acf[period]
    if strength <= max(min_strength, 1.96 / math.sqrt(n)):
        return Seasonality(None, 0.0)
    return Seasonality(period, strength)


@dataclass(frozen=True)
class ThresholdCrossing:
    """When the trend line reaches ``threshold``: in ``steps`` (and ``seconds`` with timestamps)."""

    threshold: float
    steps: float | None
    seconds: float | None
    already: bool
    message: str
    steps_range: tuple[float, float | None] | None = None
    """The earliest and latest crossing (in steps from the last point) at the ends of the slope's
    band, the band's lines pivoting about the trend line's centre; the latest is None when the
    band reaches a slope that never gets there."""


def time_to_threshold(
    trend: Trend,
    n: int,
    threshold: float,
    *,
    step_seconds: float | None = None,
    metric: str = "value",
    unit: str = "",
    since: int | None = None,
) -> ThresholdCrossing:
    """Extrapolate the Theil-Sen line of a series of ``n`` points to ``threshold`` (``since``:
    the line is that of the points from this index on, after a change of slope).

    Only a significant trend (Mann-Kendall) heading towards the threshold gives a crossing time.
    The message reads like ``"rss reaches 8 GiB in about 2 h (between 1.5 h and 3 h within the
    slope's band)"``, the range from the ends of Sen's band (which allows for persistent noise,
    see :func:`theil_sen_trend`), pivoting about the line's centre; without such a trend it says on
    which side of the threshold the series is: ``"co2 is already above 300 (at 366 on its trend
    line) and not expected to fall to it (no significant downward trend)"``.
    """
    current = trend.intercept + trend.slope * (n - 1)
    thr_txt = format_value(threshold, unit)
    up = threshold > current
    if (up and current >= threshold) or (not up and current <= threshold) or current == threshold:
        return ThresholdCrossing(threshold, 0.0, 0.0, True,
                                 f"{metric} is already at {thr_txt}")
    heading = (trend.direction == "increasing" and up) or (trend.direction == "decreasing"
                                                           and not up)
    if not heading or trend.slope == 0:
        side, move, word = ("below", "rise", "upward") if up else ("above", "fall", "downward")
        return ThresholdCrossing(threshold, None, None, False,
                                 f"{metric} is already {side} {thr_txt} (at "
                                 f"{format_value(current, unit)} on its trend line) and not "
                                 f"expected to {move} to it (no significant {word} trend"
                                 f"{'' if since is None else f' since point {since}'})")
    steps = (threshold - current) / trend.slope
    # The band's slopes pivot about the line's centre (where Theil-Sen's line passes through the
    # median), so that a steeper slope also moves the current level, as it does in the data.
    half = (n - 1) / 2.0
    centre = trend.intercept + trend.slope * half

    def at(slope: float) -> float | None:
        return (threshold - centre) / slope - half if slope * trend.slope > 0 else None

    fast, slow = (trend.slope_high, trend.slope_low) if up else (trend.slope_low,
                                                                 trend.slope_high)
    quick = at(fast)
    earliest = max(min(steps, steps if quick is None else quick), 0.0)
    latest = at(slow)
    if latest is not None:
        latest = max(latest, steps)

    def say(k: float) -> str:
        if step_seconds is None:
            return f"{round(k)} steps"
        return humanize_duration(k * step_seconds)

    if latest is None:
        band = f" (not before {say(earliest)}: the slope's band reaches no trend)"
    elif say(earliest) == say(latest):
        band = ""
    else:
        band = f" (between {say(earliest)} and {say(latest)} within the slope's band)"
    secs = None if step_seconds is None else steps * step_seconds
    return ThresholdCrossing(threshold, steps, secs, False,
                             f"{metric} reaches {thr_txt} in about {say(steps)}{band}",
                             (earliest, latest))


@dataclass(frozen=True)
class SeriesAnalysis:
    """Everything :class:`PredictiveAnalyzer` found in one series."""

    n: int
    trend: Trend
    seasonality: Seasonality
    level_shifts: list[LevelShift]
    """Each with ``before`` and ``after`` in the metric's units: the level of the joint fit
    (:func:`beyond_curvature`: trend and steps, the season taken out) at the shift without and
    with its step, and that fit's z."""
    crossing: ThresholdCrossing | None
    adjusted: tuple[str, ...] = ()
    """What was taken out of the series before the level shifts were looked for."""
    unit: str = ""
    """The metric's unit: with one, the summary prints slopes and levels in it ('bytes' scaled
    to KiB..TiB)."""
    bend: SlopeChange | None = None
    """The one change of slope, if there is a real one (:func:`slope_change`); the threshold
    crossing then follows the trend of the points since it."""

    def summary(self) -> list[str]:
        """Human-readable findings, one per line."""
        lines = []
        t = self.trend
        # a wandering noise widens the band and weakens the test: say so where it mattered
        persist = (f", allowing for noise persistence {t.persistence:.2f}"
                   if t.persistence >= 0.1 else "")
        if t.direction == "none" and t.p_value < 0.05 and not t.practical:
            lines.append(f"no practically significant trend: {self._signed(t.change, '+.3g')} "
                         f"over the window (Mann-Kendall p={t.p_value:.3g}, but too small "
                         "against the level to matter)")
        elif t.direction == "none":
            lines.append(f"no significant trend (Mann-Kendall p={t.p_value:.3g}{persist})")
        else:
            slope = self._signed(t.slope, "+.4g")
            low, high = self._signed(t.slope_low, "+.3g"), self._signed(t.slope_high, "+.3g")
            lines.append(f"{t.direction} trend: {slope} per step "
                         f"(Theil-Sen, band {low}..{high}; "
                         f"Mann-Kendall p={t.p_value:.3g}{persist})")
        if self.seasonality.period is not None:
            lines.append(f"seasonal with period {self.seasonality.period} "
                         f"(ACF {self.seasonality.strength:.2f})")
        how = f"{' and '.join(self.adjusted)}-adjusted, " if self.adjusted else ""
        for s in self.level_shifts:
            levels = (f"{format_value(s.before, self.unit)} -> {format_value(s.after, self.unit)}"
                      if self.unit else f"{s.before:.4g} -> {s.after:.4g}")
            lines.append(f"level shift at {s.index}: {levels} ({how}step "
                         f"{self._signed(s.size, '+.3g')}, z={s.z:.1f}{_clock(s.timestamp)})")
        if self.bend is not None:
            b = self.bend
            lines.append(f"slope changed at {b.index}: {self._signed(b.before, '+.3g')} -> "
                         f"{self._signed(b.after, '+.3g')} per step (z={b.z:.1f}"
                         f"{_clock(b.timestamp)})")
        if self.crossing is not None:
            lines.append(self.crossing.message)
        return lines

    def _signed(self, value: float, spec: str) -> str:
        """``value`` with its sign: in the unit when there is one, else formatted by ``spec``
        (a format with a sign, such as ``+.3g``)."""
        if not self.unit:
            return format(value, spec)
        return ("-" if value < 0 else "+") + format_value(abs(value), self.unit)


def _clock(ts: float | None) -> str:
    """``, at 2026-12-06 22:41:05 UTC`` for a timestamp that reads as a time (after 1973): a
    point's index alone could not be found on a chart's time axis."""
    if ts is None or not ts > 1e8:
        return ""
    from datetime import UTC, datetime

    return f", at {datetime.fromtimestamp(ts, UTC):%Y-%m-%d %H:%M:%S} UTC"


class PredictiveAnalyzer:
    """Describes a metric series: trend, seasonality, level shifts and a threshold crossing.

    ``analyze`` removes the detected seasonal profile (and a significant trend) before looking
    for level shifts, so that a season or a ramp is not mistaken for a shift; the shifts found
    are then judged in one fit with a curved trend (:func:`beyond_curvature`), so that an
    accelerating series is not split either, and a trend that was only a step goes (the trend
    reported is that of the series with its steps taken out). The one change of slope, if a
    real one (:func:`slope_change`), is reported too, and a threshold crossing follows the
    trend since it.
    """

    def __init__(self, alpha: float = 0.05, max_period: int | None = None,
                 shift_min_size: int = 8, min_change: float = 0.01) -> None:
        self.alpha = alpha
        self.min_change = min_change
        self.max_period = max_period
        self.shift_min_size = shift_min_size

    def analyze(
        self,
        y: ArrayLike,
        timestamps: ArrayLike | None = None,
        *,
        threshold: float | None = None,
        metric: str = "value",
        unit: str = "",
    ) -> SeriesAnalysis:
        """Analyse ``y`` (at least 3 points) and optionally when it crosses ``threshold``."""
        arr = as_series(y, name="y", min_length=3)
        ts = as_timestamps(timestamps, arr.size)
        season = detect_seasonality(arr, self.max_period)
        trend = theil_sen_trend(arr, self.alpha, self.min_change, period=season.period)
        n = arr.size
        line = trend.slope * np.arange(n) if trend.direction != "none" else np.zeros(n)
        resid = arr - line
        if season.period is not None:
            profile = _phase_medians(resid, season.period)
            resid = resid - profile + float(np.median(profile[:season.period]))
        scale = trend_scale(arr)
        # Level shifts are looked for in the straight-detrended residual and, with a trend, in
        # the series itself (a step can pass for a trend, which then hides it); a joint fit
        # with a curved trend judges them all.
        candidates = detect_level_shifts(resid, ts, min_size=self.shift_min_size,
                                         min_change=self.min_change, scale=scale)
        if trend.direction != "none":
            near = [s.index for s in candidates]
            candidates += [s for s in detect_level_shifts(
                resid + line, ts, min_size=self.shift_min_size, min_change=self.min_change,
                scale=scale) if all(abs(s.index - j) >= self.shift_min_size for j in near)]
        shifts = beyond_curvature(resid + line, candidates, min_step=self.min_change * scale)
        stepped = np.zeros(n)
        for s in shifts:
            stepped[s.index:] += s.size
        if shifts:
            trend = _trend_after_steps(arr, stepped, self.alpha, self.min_change, season.period)
        bend = slope_change(resid + line - stepped, ts, self.min_change, scale)
        adjusted = ["trend"] + (["season"] if season.period is not None else [])
        crossing = None
        if threshold is not None:
            # after a change of slope, the line of the points since then is the one to follow
            h = 0 if bend is None else bend.index
            recent = trend if h == 0 else _trend_after_steps(arr[h:], stepped[h:], self.alpha,
                                                             self.min_change, season.period)
            crossing = time_to_threshold(recent, n - h, threshold, step_seconds=median_step(ts),
                                         metric=metric, unit=unit, since=h or None)
        return SeriesAnalysis(n, trend, season, shifts, crossing, tuple(adjusted), unit, bend)


def _trend_after_steps(arr: FloatArray, stepped: FloatArray, alpha: float,
                       min_change: float, period: int | None = None) -> Trend:
    """The Theil-Sen trend of ``arr`` with its level shifts' steps (``stepped``: their sum at
    each point) taken out, its line moved to the level after the last step (where the series
    is now); ``period`` as in :func:`theil_sen_trend`."""
    t = theil_sen_trend(arr - stepped, alpha, min_change, period=period)
    return replace(t, intercept=t.intercept + float(stepped[-1]))
