"""Univariate, causal, streaming scoring of a metric series, with a tail-calibrated null.

:func:`score_series` / :func:`detect_series` score every point of a metric series using only the
values up to that point. The first ``learn`` points (150 by default: a fixed length, never a share
of the series, so scoring a longer series never rewrites an earlier score) are the learning
period: not scored (score 0), they fix the transform, the season, the AR filter and the first
tails. The pipeline:

1. **Point mass.** When one value (typically 0) holds at least 30% of the learning period, the
   series is zero-inflated: points at that value score 0 and the others are scored as their
   own series (a share of zeros is not a spread to measure them against; with too few of them
   in the learning period to learn from, they score 0). One exception keeps an episode whole:
   points at the mass value that follow a point whose shift, variance or drift alarmed hold
   those scores until the next other point (in the other points' own time the episode has
   not ended yet, and only that point can say whether it has). A spike is one point and is
   not held. When the mass bounds the learning period (its smallest value, like the zeros of a
   count, or its largest), a later point beyond it is an alarm scored by its depth: that side
   never held a single value. A learning period that is constant makes every later departure
   an alarm, scored by its size.
   Before anything else, values within a rounding grid of each other are one value, and a
   count (whole numbers) takes a fixed jitter that makes it continuous
   (:mod:`~allele.analytics.anomaly.prepare`).
2. **Transform.** A positive metric whose learning period is right-skewed (skewness above 1,
   and less skewed after the log) is scored in logs: wall times and sizes vary by ratios.
3. **Season** (Fourier profile, estimated on the learning period and re-estimated at fixed
   checkpoints ``2 L, 4 L, ...``) is removed.
4. **Pre-whitening.** An AR(p) filter (p <= 3 by BIC, least squares on the learning period) turns
   the series into its one-step residuals: autocorrelated noise no longer looks like shifts,
   and a level shift shows at its onset as a jump of its full size. A clear trend in the
   learning period is fitted with the AR lags, removed, and taken as normal: the drift
   statistic then measures departures from it.
5. **Statistics** per point, from rolling windows that end at the point, each signed and scored
   on both sides (a skewed noise has two different tails): ``spike`` (robust z of the point
   against the median/MAD of the previous ``window``), ``shift`` (z of the mean of the last
   ``short`` points against the window before them), ``variance`` (Wilson-Hilferty z of the
   recent mean square deviation), ``drift`` (the rolling median against the learning level).
6. **Tails** (:mod:`~allele.analytics.anomaly.tail`): each statistic's upper tail is fitted by
   peaks over threshold (a generalised Pareto above its 90% quantile, as in SPOT, Siffer et al.
   KDD 2017) on the learning rows and then on every later row that was not an alarm, refitted
   at fixed checkpoints. The spike and shift tails take their shape from the Zhang-Stephens
   estimator, the others from probability-weighted moments. The variance and drift tails
   learn through an excursion gate: a run
   of values above the tail's threshold joins only once it has ended, and not at all if it
   alarmed, so a slow excursion building toward an alarm does not raise the threshold ahead
   of itself; a point's score is ``a / (1 + a)`` with ``a = log p / log risk`` for its
   tail probability ``p``: 0.5 exactly where ``p = risk`` (default 1e-4 per statistic), higher
   for rarer values, so scores rank events. A right-skewed noise (a shifted lognormal fits
   the learning residuals) has its spike-up statistic read in logs and fitted with a normal
   upper tail at twice the risk (:func:`_skewed_spike_up`, :data:`SKEW_RISK_FACTOR`). Once
   300 values are seen, a spike column whose tail weighs light takes a normal fit, and one
   that weighs heavy a firmer shape prior (:data:`_WEIGHED_COLUMNS`; not for a count).

``method="robust"`` (the default) takes, for each point, the strongest statistic.
``"iforest"`` and ``"ocsvm"`` fit the scikit-learn detector on the learning-period statistic
vectors and turn its raw score into a robust z against the learning rows (fence ``ml_fence``);
``"ensemble"`` is ``max(robust, min(iforest, ocsvm))``. The harness
(``benchmarks/analytics_real.py``) did not show the learned detectors adding anything, so they
are opt-in. :func:`robust_statistics_reference` is the per-point loop the vectorised statistics
are tested against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

from allele.analytics._common import (
    MAD_TO_SIGMA,
    FloatArray,
    as_series,
    as_timestamps,
    mad_sigma,
)
from allele.analytics.anomaly._kernels import rolling_median_mad
from allele.analytics.anomaly.detectors import (
    BaseDetector,
    IsolationForestDetector,
    OneClassSVMDetector,
    _logistic,
)
from allele.analytics.anomaly.mass import hold_episodes, past_bound, point_mass
from allele.analytics.anomaly.prepare import (
    LearnedTrend,
    apply_transform,
    dequantise,
    deseasonalise,
    is_count,
    learned_trend,
    lognormal_bound,
    prewhiten,
    snap_rounding,
)
from allele.analytics.anomaly.tail import spot_scores
from allele.errors import AnalyticsError

__all__ = [
    "DEFAULT_LEARN",
    "STATISTICS",
    "Method",
    "SeriesDetection",
    "detect_series",
    "robust_statistics",
    "robust_statistics_reference",
    "score_series",
    "signed_statistics",
]

Method = Literal["robust", "iforest", "ocsvm", "ensemble"]
_MEDIAN_VAR = math.pi / 2.0  # variance of a sample median relative to a mean (Gaussian)

STATISTICS = ("spike", "shift", "variance", "drift")
DEFAULT_LEARN = 150
"""Default learning-period length in points (a fixed length: see the module docstring)."""


def _rolling_median_mad(r: FloatArray, w: int) -> tuple[FloatArray, FloatArray]:
    """Median and MAD of the ``w`` points *before* each index (NaN where unavailable): the numba
    kernel of :mod:`~allele.analytics.anomaly._kernels`, bit-identical to
    :func:`_rolling_median_mad_numpy` and about 20 times faster."""
    med, mad = rolling_median_mad(np.ascontiguousarray(r, dtype=np.float64), int(w))
    return med, mad


def _rolling_median_mad_numpy(r: FloatArray, w: int) -> tuple[FloatArray, FloatArray]:
    """The numpy reference of :func:`_rolling_median_mad` (two medians over a strided view)."""
    n = r.size
    med = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    if n > w:
        win = sliding_window_view(r[:-1], w)  # row j covers r[j : j + w] -> index j + w
        m = np.median(win, axis=1)
        med[w:] = m
        mad[w:] = np.median(np.abs(win - m[:, None]), axis=1)
    return med, mad


def _trailing_mean(r: FloatArray, k: int) -> FloatArray:
    """Mean of r[t-k+1 .. t] (NaN for t < k - 1)."""
    out = np.full(r.size, np.nan)
    if r.size >= k:
        c = np.concatenate(([0.0], np.cumsum(r)))
        out[k - 1:] = (c[k:] - c[:-k]) / k
    return out


def _window_sum(r: FloatArray, k: int) -> FloatArray:
    """Sums of ``r[j : j + k]`` for each ``j``, added in the order numpy's ``add.reduce`` uses
    along a row of ``k`` values (one by one under 8; eight partial sums paired, then the rest,
    under 16), so the result is bit-identical to ``sliding_window_view(r, k).sum(axis=1)``
    without a strided reduction of ``k`` values per row; longer windows use that reduction."""
    m = r.size - k + 1
    if k >= 16:
        out: FloatArray = sliding_window_view(r, k).sum(axis=1)
        return out
    parts = [r[j:j + m] for j in range(k)]
    if k < 8:
        total = parts[0].copy()
        rest = parts[1:]
    else:
        p = parts
        total = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]))
        rest = parts[8:]
    for part in rest:
        total += part
    return total


def _window_extreme(r: FloatArray, k: int, ufunc: np.ufunc) -> FloatArray:
    """``ufunc`` (np.maximum or np.minimum) over each ``r[j : j + k]``, one pass per lag."""
    m = r.size - k + 1
    out = r[:m].copy()
    for j in range(1, k):
        ufunc(out, r[j:j + m], out=out)
    return out


def _trailing_trimmed(r: FloatArray, k: int, both: bool) -> FloatArray:
    """Mean of r[t-k+1 .. t] without its largest value (and its smallest with ``both``): one
    outlier is a spike, not a shift or a change of variance."""
    out = np.full(r.size, np.nan)
    if r.size >= k:
        total = _window_sum(r, k) - _window_extreme(r, k, np.maximum)
        if both:
            total -= _window_extreme(r, k, np.minimum)
        out[k - 1:] = total / (k - 2 if both else k - 1)
    return out


def _wilson_hilferty(ratio: FloatArray | float, k: int) -> Any:
    """z of a mean of ``k`` squared standard normals (chi2 / k) by the Wilson-Hilferty cube root."""
    c = 2.0 / (9.0 * k)
    return (np.cbrt(ratio) - (1.0 - c)) / math.sqrt(c)


def robust_statistics(
    r: ArrayLike, window: int, short: int, level: float, sigma: float, learn_n: int,
    signed: bool = False, drift_var: FloatArray | None = None,
) -> FloatArray:
    """The four causal z-like statistics (spike, shift, variance, drift) per point, vectorised.

    ``r`` is the (deseasonalised) series; ``level``/``sigma`` are the learning-period median and
    robust noise scale, ``learn_n`` its length. Each statistic is scaled so that, for Gaussian
    noise, it is about a standard normal in absolute value (variance: its positive part):

    * spike: ``|r_t - med| / s`` with med, s the rolling median and 1.4826 MAD of the previous
      ``window`` points (s floored at ``sigma``: the noise is never judged smaller than in the
      learning period);
    * shift: ``|mean(r[t-short+1..t]) - med'| / (s' / sqrt(short))`` with med', s' those of the
      window before the recent block;
    * variance: Wilson-Hilferty z of ``mean((r - med)^2) / s'^2`` over the last ``2 * short``
      points (positive part: only increases);
    * drift: ``|med - level| / (s * sqrt(pi/2 * (1/window + 1/learn_n)))``: the rolling median
      against the learning-period level, over the standard error of a difference of two
      medians under the current noise level ``s`` (a median forgets a temporary shift twice as
      fast as a mean and ignores spikes).

    Rows before ``window + 2 * short`` are NaN. With ``signed``, spike, shift and drift keep
    their sign (up positive) instead of their absolute value.
    """
    x = np.asarray(r, dtype=np.float64)
    n = x.size
    kv = 2 * short
    mag = (lambda a: a) if signed else np.abs
    med, mad = _rolling_median_mad(x, window)
    sref = np.maximum(MAD_TO_SIGMA * mad, sigma)
    out = np.full((n, 4), np.nan)
    out[:, 0] = mag(x - med) / sref

    def lagged(a: FloatArray, lag: int) -> FloatArray:
        res = np.full(n, np.nan)
        res[lag:] = a[: n - lag]
        return res

    recent = _trailing_trimmed(x, short, both=True) if signed else _trailing_mean(x, short)
    med_s, sref_s = lagged(med, short - 1), lagged(sref, short - 1)
    out[:, 1] = mag(recent - med_s) / (sref_s / math.sqrt(short))
    dev2 = np.nan_to_num((x - med) ** 2, nan=0.0)
    ms = _trailing_trimmed(dev2, kv, both=False) if signed else _trailing_mean(dev2, kv)
    sref_v = lagged(sref, kv - 1)
    out[:, 2] = np.maximum(_wilson_hilferty(ms / sref_v**2, kv), 0.0)
    dscale = sref * math.sqrt(_MEDIAN_VAR * (1.0 / window + 1.0 / learn_n))
    if drift_var is not None:
        dscale = np.sqrt(dscale**2 + drift_var)
    out[:, 3] = mag(med - level) / dscale
    out[: window + kv] = np.nan
    return out


def robust_statistics_reference(
    r: ArrayLike, window: int, short: int, level: float, sigma: float, learn_n: int,
    signed: bool = False,
) -> FloatArray:
    """Per-point Python loop computing exactly what :func:`robust_statistics` computes.

    The straightforward streaming implementation; kept as the reference for tests and as the
    baseline of ``benchmarks/anomaly_speed.py``.
    """
    x = np.asarray(r, dtype=np.float64)
    n = x.size
    kv = 2 * short
    out = np.full((n, 4), np.nan)
    med = np.full(n, np.nan)
    sref = np.full(n, np.nan)
    for t in range(window, n):
        win = x[t - window:t]
        m = float(np.median(win))
        med[t] = m
        sref[t] = max(mad_sigma(win, m), sigma)
    drift_scale = math.sqrt(_MEDIAN_VAR * (1.0 / window + 1.0 / learn_n))
    for t in range(window + kv, n):
        t0 = t - short + 1
        tv = t - kv + 1
        block = np.sort(x[t0:t + 1])
        dev2 = np.sort((x[tv:t + 1] - med[tv:t + 1]) ** 2)
        recent = float(np.mean(block[1:-1] if signed else block))
        ms = float(np.mean(dev2[:-1] if signed else dev2))
        spike = (x[t] - med[t]) / sref[t]
        shift = (recent - med[t0]) / (sref[t0] / math.sqrt(short))
        var = max(float(_wilson_hilferty(ms / sref[tv] ** 2, kv)), 0.0)
        drift = (med[t] - level) / (sref[t] * drift_scale)
        if not signed:
            spike, shift, drift = abs(spike), abs(shift), abs(drift)
        out[t] = (spike, shift, var, drift)
    return out


@dataclass(frozen=True)
class SeriesDetection:
    """Scores and flags of one series, and how they were obtained."""

    scores: FloatArray
    flags: NDArray[np.bool_]
    threshold: float
    learn_end: int
    period: int | None
    method: str
    statistics: FloatArray
    """Per-point score of each statistic (n x 4: spike, shift, variance, drift; the stronger
    side of the signed ones)."""
    transform: str = "none"
    """``"log"`` when the series was scored in logs, else ``"none"``."""
    ar: tuple[float, ...] = ()
    """The AR pre-whitening coefficients (empty: none)."""
    mass: float | None = None
    """The point-mass value of a zero-inflated series (its points score 0), else None."""
    trend: LearnedTrend | None = None
    """The trend learned on the learning period and taken as normal (None: no clear trend)."""
    skewed: bool = False
    """Whether the spike-up statistic was read in logs, through the shifted lognormal fitted to
    the learning residuals, with a normal tail (a right-skewed noise)."""

    def anomalies(self) -> list[int]:
        """Indices of flagged points."""
        return [int(i) for i in np.flatnonzero(self.flags)]


def detect_series(
    values: ArrayLike,
    timestamps: ArrayLike | None = None,
    method: Method = "robust",
    *,
    learn: int = DEFAULT_LEARN,
    period: int | None = None,
    window: int | None = None,
    short: int = 5,
    risk: float = 1e-4,
    transform: Literal["auto", "log", "none"] = "auto",
    ar_order: int | None = None,
    ml_fence: float | None = None,
    threshold: float = 0.5,
    seed: int = 0,
) -> SeriesDetection:
    """Causally score and flag a metric series (see the module docstring for the pipeline).

    ``learn`` is the learning-period length in points (fixed: the score of a point depends only
    on the points up to it, whatever follows). ``period`` is the season to remove (detected on
    the learning period when None); ``window`` the rolling reference length (default
    ``min(48, learn // 3)``, at least 8); ``risk`` the tail probability per statistic at which a
    point scores 0.5; ``transform`` ``"auto"`` (logs for a positive right-skewed metric),
    ``"log"`` or ``"none"``; ``ar_order`` the pre-whitening order (None: chosen by BIC).
    ``threshold`` applies to the final score. ``timestamps`` are checked (same length,
    increasing) but the statistics work in sample units: resample irregular series first.
    AnalyticsError when the series is shorter than the learning period or the learning period
    is too short for the windows.
    """
    y = as_series(values, name="values")
    as_timestamps(timestamps, y.size)
    _check_options(y.size, method, learn, risk, window, short)
    if period is not None and period < 2:  # 0 and -3 ran as "no season", silently
        raise AnalyticsError(f"period must be an integer >= 2 (or none), got {period}")
    y = snap_rounding(y, learn)
    weigh = not is_count(y, learn)  # a count (jittered) keeps GPD tails: _WEIGHED_COLUMNS notes
    y = dequantise(y, learn)
    mass = point_mass(y[:learn])
    if mass is None:
        det = _detect(y, method, learn, period, window, short, risk, transform, ar_order,
                      ml_fence, seed, weigh)
        flags: NDArray[np.bool_] = det.scores > threshold
        return replace(det, flags=flags, threshold=threshold)
    other = np.flatnonzero(y != mass)
    learn_other = int(np.sum(other < learn))
    scores = np.zeros(y.size)
    stats = np.zeros((y.size, 4))
    sub_period: int | None = None
    sub = None
    if learn_other == 0 and other.size:
        # A learning period that never moved: every departure is news, ranked by its size.
        a = 1.0 + np.log10(1.0 + np.abs(y[other] - mass) / (abs(mass) * 1e-3 + 1e-12))
        scores[other[other >= learn]] = (a / (1.0 + a))[other >= learn]
    elif learn_other >= _min_learn(window, short) and other.size > learn_other:
        sub = _detect(y[other], method, learn_other, None, window, short, risk, transform,
                      ar_order, ml_fence, seed, weigh)
        scores[other] = sub.scores
        stats[other] = sub.statistics
        hold_episodes(scores, stats, other, sub.statistics)
        sub_period = sub.period
    past = past_bound(y, learn, mass)
    scores = np.maximum(scores, past)
    stats[:, 0] = np.maximum(stats[:, 0], past)
    flags = scores > threshold
    return SeriesDetection(scores=scores, flags=flags, threshold=threshold, learn_end=learn,
                           period=sub_period, method=method, statistics=stats,
                           transform=sub.transform if sub else "none",
                           ar=sub.ar if sub else (), mass=mass,
                           trend=sub.trend if sub else None,
                           skewed=sub.skewed if sub else False)


def _default_window(learn: int) -> int:
    return max(8, min(48, learn // 3))


def _min_learn(window: int | None, short: int) -> int:
    """The shortest learning period :func:`_detect` accepts (its default window grows with it)."""
    if window is not None:
        return window + 2 * short + 10
    learn = 8 + 2 * short + 10
    while learn < _default_window(learn) + 2 * short + 10:
        learn += 1
    return learn


def _check_options(n: int, method: str, learn: int, risk: float, window: int | None = None,
                   short: int = 5) -> None:
    if method not in ("robust", "iforest", "ocsvm", "ensemble"):
        raise AnalyticsError(f"unknown method {method!r}; use robust, iforest, ocsvm or ensemble")
    if not 0.0 < risk < 0.1:
        raise AnalyticsError(f"risk must be in (0, 0.1), got {risk}")
    if n < learn:
        least = _min_learn(window, short)
        if n <= least:
            raise AnalyticsError(
                f"series of {n} points is too short to score: the learning period needs at "
                f"least {least} points, so a series needs at least {least + 1}")
        raise AnalyticsError(
            f"series of {n} points is shorter than the learning period ({learn} points); "
            f"pass a learning period of at most {n - 1} points (--learn)")


def _detect(y: FloatArray, method: str, learn: int, period: int | None, window: int | None,
            short: int, risk: float, transform: str, ar_order: int | None,
            ml_fence: float | None, seed: int, weigh: bool = True) -> SeriesDetection:
    """The pipeline on a series without a point mass (scores, flags at 0.5)."""
    w = window if window is not None else _default_window(learn)
    if learn < w + 2 * short + 10:
        raise AnalyticsError(
            f"the learning period ({learn} points) needs at least {w + 2 * short + 10}; "
            "pass a longer one (--learn)")
    cols, used_transform, used_period, phi, trend, skewed = _columns(y, learn, period, w,
                                                                     short, transform, ar_order)
    col_scores = spot_scores(cols, w + 2 * short, learn, risk, gated=_GATED_COLUMNS,
                             zhang_stephens=_ZS_COLUMNS, normal=(0,) if skewed else (),
                             normal_risk=SKEW_RISK_FACTOR * risk,
                             weighed=_WEIGHED_COLUMNS if weigh else ())
    stat_scores = np.stack([np.maximum(col_scores[:, 0], col_scores[:, 1]),
                            np.maximum(col_scores[:, 2], col_scores[:, 3]), col_scores[:, 4],
                            np.maximum(col_scores[:, 5], col_scores[:, 6])], axis=1)
    robust = np.max(col_scores, axis=1)
    if method == "robust":
        scores = robust
    else:
        mlf = ml_fence if ml_fence is not None else (8.0 if method == "ensemble" else 4.5)
        z = np.nan_to_num(cols, nan=0.0)
        parts = [_learned_score(det, z, z[w + 2 * short:learn], mlf)
                 for det in _learned_detectors(method, seed)]
        scores = (np.maximum(robust, np.minimum(parts[0], parts[1])) if method == "ensemble"
                  else parts[0])
        scores[:learn] = 0.0
    scores = np.clip(scores, 0.0, 1.0)
    return SeriesDetection(scores=scores, flags=scores > 0.5, threshold=0.5, learn_end=learn,
                           period=used_period, method=method, statistics=stat_scores,
                           transform=used_transform, ar=phi, trend=trend, skewed=skewed)


def _columns(y: FloatArray, learn: int, period: int | None, w: int, short: int, transform_: str,
             ar_order: int | None, read_skewed: bool = True
             ) -> tuple[FloatArray, str, int | None, tuple[float, ...], LearnedTrend | None,
                        bool]:
    """Transform, deseasonalise, pre-whiten (with the learned trend, if any), then the seven
    one-sided statistics; the last item says whether the spike-up column was read in logs
    (:func:`_skewed_spike_up`)."""
    x, used_transform = apply_transform(y, learn, transform_)
    r, used_period = deseasonalise(x, learn, period)
    e, phi = prewhiten(r, learn, ar_order)
    drift_var = None
    found = learned_trend(r, learn, len(phi))
    trend = None
    if found is not None:
        e, phi, trend = found
        drift_var = trend.drift_var(y.size)
    cols = _signed_columns(e, learn, w, short, drift_var)
    skewed = read_skewed and _skewed_spike_up(cols, e[:learn])
    return cols, used_transform, used_period, phi, trend, skewed


def _skewed_spike_up(cols: FloatArray, lv: FloatArray) -> bool:
    """For a right-skewed noise, the spike-up column (``cols[:, 0]``) read in logs, in place.

    When a shifted lognormal fits the learning residuals ``lv`` (:func:`lognormal_bound`, lower
    bound ``c``), a point ``s`` local noise scales above the local median lies
    ``s * sigma + (level - c)`` above that bound in learning units (``level`` and ``sigma``
    the learning median and robust scale), and the log of that is close to Gaussian. The
    column becomes that log: monotone in ``s``, so it ranks the points as before, but its
    upper tail is light and is then fitted as a normal one (:func:`~allele.analytics.anomaly.
    tail.normal_scores`) instead of a GPD on a dozen peaks of a skewed tail. Values at or under
    the bound (far down, which the spike-down column judges) read as the log of
    ``1e-3 * (level - c)``. Returns whether it did."""
    c = lognormal_bound(lv)
    if c is None:
        return False
    level = float(np.median(lv))
    sigma = mad_sigma(lv, level)
    room = level - c
    if not (sigma > 0.0 and room > 0.0):
        return False
    with np.errstate(invalid="ignore"):
        cols[:, 0] = np.log(np.maximum(cols[:, 0] * sigma + room, 1e-3 * room))
    return True


def signed_statistics(values: ArrayLike, *, learn: int = DEFAULT_LEARN, period: int | None = None,
                      window: int | None = None, short: int = 5,
                      transform: Literal["auto", "log", "none"] = "auto",
                      ar_order: int | None = None) -> FloatArray:
    """The raw statistics :func:`detect_series` turns into scores (n x 7: spike up/down, shift
    up/down, variance, drift up/down; NaN before ``window + 2 * short``), for a series without a
    point mass. Options as in :func:`detect_series`. For diagnostics of the tail calibration
    (``benchmarks/anomaly_tail_calibration.py``). The spike-up column is the raw statistic even
    where the detector reads it in logs (``SeriesDetection.skewed``)."""
    y = as_series(values, name="values")
    _check_options(y.size, "robust", learn, 1e-4, window, short)
    y = dequantise(snap_rounding(y, learn), learn)
    w = window if window is not None else _default_window(learn)
    return _columns(y, learn, period, w, short, transform, ar_order, read_skewed=False)[0]


SKEW_RISK_FACTOR = 2.0
"""The risk of the spike-up column, in units of ``risk``, when it is read in logs: the noise
has a lower bound there, so its spike-down column has (almost) no false alarms to spend and its
share goes to the up side. On the synthetic lognormal series (64 per kind, seeds 11 / 0 / 42)
spike F1 0.82 / 0.81 / 0.79 with the factor 1 and 0.86 / 0.83 / 0.82 with 2, at 0.33 / 0.53 /
0.42 and 0.40 / 0.70 / 0.59 false alarms per 1,000 points (see docs/analytics.md)."""

_GATED_COLUMNS = (4, 5, 6)  # variance, drift up, drift down: the slow statistics (tail.py notes)
# Spike and shift up / down: the fast statistics, whose tails take their shape from the
# Zhang-Stephens estimator (on Student-t(3) noise, probability-weighted moments put their 1e-4
# thresholds far too low). The slow ones keep the moments: with Zhang-Stephens there, the
# real series' false alarms rose (co2 0.47 -> 1.22 per 1,000 points; docs/analytics.md).
_ZS_COLUMNS = (0, 1, 2, 3)
# Spike up / down: once 300 values are seen, a light tail takes a normal fit, a heavy one a
# firmer shape prior (tail.py notes). Their values are nearly independent from point to point;
# the other statistics are rolling windows whose quantiles say little about a single tail.
# Not for a count: jittered, it is a mixture of uniform bumps one unit apart, whose 1 %
# quantiles can look light while a rarer bump lies far out (a 2 in a Poisson(0.05) count is
# 7 sd of the jitter above the zeros, once in 800 points; weighed, 1.18 false runs per 1,000
# points instead of 0.31: benchmarks/anomaly_counts.py).
_WEIGHED_COLUMNS = (0, 1)


def _signed_columns(e: FloatArray, learn: int, w: int, short: int,
                    drift_var: FloatArray | None = None) -> FloatArray:
    """The seven one-sided statistics (spike up/down, shift up/down, variance, drift up/down)."""
    lv = e[:learn]
    level = float(np.median(lv))
    sigma = mad_sigma(lv, level)
    if sigma == 0.0:
        sigma = float(np.std(lv)) or max(abs(level) * 1e-6, 1e-12)
    f = robust_statistics(e, w, short, level, sigma, learn, signed=True, drift_var=drift_var)
    return np.stack([f[:, 0], -f[:, 0], f[:, 1], -f[:, 1], f[:, 2], f[:, 3], -f[:, 3]], axis=1)


def _learned_detectors(method: str, seed: int) -> list[BaseDetector]:
    models: list[BaseDetector] = []
    if method in ("iforest", "ensemble"):
        models.append(IsolationForestDetector(contamination=0.01, seed=seed))
    if method in ("ocsvm", "ensemble"):
        models.append(OneClassSVMDetector(nu=0.05, contamination=0.01, seed=seed))
    return models


def _learned_score(det: BaseDetector, z: FloatArray, x_learn: FloatArray,
                   fence: float) -> FloatArray:
    """``det`` fitted on the learning rows, its raw score of every row through ``fence``.

    A learning period of ~100 rows cannot calibrate a 1e-4 false-alarm quantile empirically;
    the raw score is turned into a robust z against its learning values and put through the
    fence.
    """
    det.fit(x_learn)
    raw_learn = det._raw(x_learn)
    mid = float(np.median(raw_learn))
    spread = mad_sigma(raw_learn, mid) or float(np.std(raw_learn)) or 1.0
    return _logistic(((det._raw(z) - mid) / spread - fence) / 0.5)


def score_series(
    values: ArrayLike,
    timestamps: ArrayLike | None = None,
    method: Method = "robust",
    **options: Any,
) -> FloatArray:
    """Anomaly scores in [0, 1] for every point, each using only values up to that point.

    The first ``learn`` points (150) are the learning period (score 0). Options are those of
    :func:`detect_series`; flag with ``scores > 0.5`` or use :func:`detect_series`.
    """
    return detect_series(values, timestamps, method, **options).scores
