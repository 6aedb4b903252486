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
   checkpoints ``2 L, 4 L, ...``) is removed; a period counts only when one half of the data
   predicts the other (:data:`~allele.analytics.anomaly.prepare.SEASON_HELD_OUT`).
4. **Pre-whitening.** An AR(p) filter (p <= 3 by BIC, least squares on the learning period) turns
   the series into its one-step residuals: autocorrelated noise no longer looks like shifts,
   and a level shift shows at its onset as a jump of its full size. A clear trend in the
   learning period is fitted with the AR lags, removed, and taken as normal: the drift
   statistic then measures departures from it.
5. **Statistics** per point, from rolling windows that end at the point, each signed and scored
   on both sides (a skewed noise has two different tails): ``spike`` (robust z of the point
   against the median/MAD of the previous ``window``), ``shift`` (z of the mean of the last
   ``short`` points against the window before them), ``variance`` (Wilson-Hilferty z of the
   recent mean square deviation; where the noise is judged heavy-tailed, of the squared mean
   absolute deviation instead), ``drift`` (the rolling median against the learning level;
   once it has alarmed for two windows, against a line fitted to the points up to then, or
   the reference before, whichever is nearer: :mod:`~allele.analytics.anomaly.rebase`).
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
   that weighs heavy a firmer shape prior (:data:`_WEIGHED_COLUMNS`; not for a count); while
   one weighs heavy, the variance score is that of the mean absolute deviation
   (:data:`_HEAVY_VARIANCE`), whose tail learns alongside from the start.

``method="robust"`` (the default) takes, for each point, the strongest statistic.
``"iforest"`` and ``"ocsvm"`` fit the scikit-learn detector on the learning-period statistic
vectors and turn its raw score into a robust z against the learning rows (fence ``ml_fence``);
``"ensemble"`` is ``max(robust, min(iforest, ocsvm))``. The harness
(``benchmarks/analytics_real.py``) did not show the learned detectors adding anything, so they
are opt-in. The statistics are computed in :mod:`~allele.analytics.anomaly.rolling`, where
:func:`robust_statistics_reference` is the per-point loop the vectorised statistics
are tested against.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from allele.analytics._common import (
    FloatArray,
    as_series,
    as_timestamps,
    mad_sigma,
)
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
from allele.analytics.anomaly.rebase import DriftRebase
from allele.analytics.anomaly.rolling import robust_statistics
from allele.analytics.anomaly.tail import spot_scores
from allele.errors import AnalyticsError

__all__ = [
    "DEFAULT_LEARN",
    "STATISTICS",
    "Method",
    "SeriesDetection",
    "detect_series",
    "score_series",
    "signed_statistics",
]

Method = Literal["robust", "iforest", "ocsvm", "ensemble"]
STATISTICS = ("spike", "shift", "variance", "drift")
DEFAULT_LEARN = 150
"""Default learning-period length in points (a fixed length: see the module docstring)."""


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
    rebased: tuple[int, ...] = ()
    """The points at which the drift statistic's reference was fitted again, after it had
    alarmed for long enough (:mod:`~allele.analytics.anomaly.rebase`); empty: never."""

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
                      ar_order, ml_fence, seed, weigh, rebase=False)
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
            ml_fence: float | None, seed: int, weigh: bool = True,
            rebase: bool = True) -> SeriesDetection:
    """The pipeline on a series without a point mass (scores, flags at 0.5); ``rebase``:
    whether the drift statistic is re-baselined (not for the other points of a point mass)."""
    w = window if window is not None else _default_window(learn)
    if learn < w + 2 * short + 10:
        raise AnalyticsError(
            f"the learning period ({learn} points) needs at least {w + 2 * short + 10}; "
            "pass a longer one (--learn)")
    cols, used_transform, used_period, phi, trend, skewed, e = _columns(
        y, learn, period, w, short, transform, ar_order)
    rebaser = DriftRebase(e, w, _level_sigma(e[:learn])[1]) if rebase else None
    col_scores = spot_scores(cols, w + 2 * short, learn, risk, gated=_GATED_COLUMNS,
                             zhang_stephens=_ZS_COLUMNS, normal=(0,) if skewed else (),
                             normal_risk=SKEW_RISK_FACTOR * risk,
                             weighed=_WEIGHED_COLUMNS if weigh else (),
                             alternate=_HEAVY_VARIANCE, rebase=rebaser)[:, :7]
    cols = cols[:, :7]
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
                           transform=used_transform, ar=phi, trend=trend, skewed=skewed,
                           rebased=tuple(rebaser.rows) if rebaser else ())


def _columns(y: FloatArray, learn: int, period: int | None, w: int, short: int, transform_: str,
             ar_order: int | None, read_skewed: bool = True
             ) -> tuple[FloatArray, str, int | None, tuple[float, ...], LearnedTrend | None,
                        bool, FloatArray]:
    """Transform, deseasonalise, pre-whiten (with the learned trend, if any), then the eight
    one-sided statistics; the sixth item says whether the spike-up column was read in logs
    (:func:`_skewed_spike_up`), the last is the prepared (pre-whitened) series."""
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
    return cols, used_transform, used_period, phi, trend, skewed, e


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
    """The raw statistics :func:`detect_series` turns into scores (n x 8: spike up/down, shift
    up/down, variance, drift up/down, heavy-tail variance; NaN before ``window + 2 * short``),
    for a series without a point mass. Options as in :func:`detect_series`. For diagnostics of
    the tail calibration (``benchmarks/anomaly_tail_calibration.py``). The spike-up column is
    the raw statistic even where the detector reads it in logs (``SeriesDetection.skewed``)."""
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

_GATED_COLUMNS = (4, 5, 6, 7)  # both variances and the drifts: the slow statistics (tail.py notes)
# Spike and shift up / down: the fast statistics, whose tails take their shape from the
# Zhang-Stephens estimator (on Student-t(3) noise, probability-weighted moments put their 1e-4
# thresholds far too low). The slow ones keep the moments: with Zhang-Stephens there, the
# real series' false alarms rose (co2 0.47 -> 1.22 per 1,000 points; docs/analytics.md).
_ZS_COLUMNS = (0, 1, 2, 3)
# Spike up / down: a half-t tail with its degrees of freedom unknown (a predictive probability),
# until 300 values are seen and where they weigh heavy; a light tail then takes a normal fit
# (tail.py notes). Their values are nearly independent from point to point; the other
# statistics are rolling windows whose quantiles say little about a single tail. On
# Student-t(3) noise the half-t cut the false alarms from 0.93 to 0.73 per 1,000 points over
# 20 seeds, and the spike F1 from 0.30 to 0.19 (docs/analytics.md).
# Not for a count: jittered, it is a mixture of uniform bumps one unit apart, whose 1 %
# quantiles can look light while a rarer bump lies far out (a 2 in a Poisson(0.05) count is
# 7 sd of the jitter above the zeros, once in 800 points; weighed, 1.18 false runs per 1,000
# points instead of 0.31: benchmarks/anomaly_counts.py).
_WEIGHED_COLUMNS = (0, 1)
# The variance column (4) is scored by the heavy-tail variance (7) in the blocks where a weighed
# column's tail weighs heavy (spot_scores' ``alternate``). On Student-t(3) noise the mean square
# missed a wider noise that the mean absolute deviation finds (variance F1 0.80 -> 0.86 on seed
# 42); used everywhere, it lost on the real series (public F1 0.60 -> 0.48: there a spike and
# its AR echo, or a real variance change, are a few large terms, which the mean square reads
# and the mean absolute deviation does not). Where it is used now, the real-data harness
# printed the same figures as before (co2 and the hourly demand weigh heavy in some blocks).
_HEAVY_VARIANCE = {4: 7}


def _signed_columns(e: FloatArray, learn: int, w: int, short: int,
                    drift_var: FloatArray | None = None) -> FloatArray:
    """The eight one-sided statistics (spike up/down, shift up/down, variance, drift up/down,
    heavy-tail variance)."""
    level, sigma = _level_sigma(e[:learn])
    f = robust_statistics(e, w, short, level, sigma, learn, signed=True, drift_var=drift_var)
    return np.stack([f[:, 0], -f[:, 0], f[:, 1], -f[:, 1], f[:, 2], f[:, 3], -f[:, 3], f[:, 4]],
                    axis=1)


def _level_sigma(lv: FloatArray) -> tuple[float, float]:
    """The learning level (median) and robust noise scale of the prepared series."""
    level = float(np.median(lv))
    sigma = mad_sigma(lv, level)
    if sigma == 0.0:
        sigma = float(np.std(lv)) or max(abs(level) * 1e-6, 1e-12)
    return level, sigma


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
