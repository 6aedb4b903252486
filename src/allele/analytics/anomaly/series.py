"""Univariate, causal, streaming scoring of a metric series.

:func:`score_series` / :func:`detect_series` score every point of a metric series using only the
values up to that point. The first ``learn_fraction`` (15%) of the series is the learning period:
it is not scored (score 0) and it calibrates everything else (seasonal profile, noise scale, and
the alarm fences of each statistic). Statistics per point, from rolling windows that end at the
point:

* ``spike``: robust z of the point against the median/MAD of the previous ``window`` points;
* ``shift``: z of the mean of the last ``short`` points against the window before them;
* ``variance``: log ratio of the RMS deviation (from the rolling median) of the last ``short``
  points to the reference spread before them (positive part);
* ``drift``: distance of the recent window mean from the learning-period level.

Each statistic is z-like under Gaussian noise; the learning period supplies the noise scale and
an inflation factor (upper quartile of the statistic over its null upper quartile, never below
1), and a statistic scores ``logistic((z / inflation - fence) / 0.5)``, so 0.5 sits at the fence.
``method="robust"`` takes, for each point, the strongest of the four calibrated statistics;
``"iforest"`` and ``"ocsvm"`` fit the scikit-learn detector on the learning-period statistic
vectors and turn its raw score into a robust z against the learning rows (fence ``ml_fence``,
default ``fence`` alone and 8 inside the ensemble: about a hundred learning rows cannot
calibrate a tiny false-alarm rate empirically);
``"ensemble"`` is ``max(robust, min(iforest, ocsvm))``: the robust statistics may flag on their
own, the learned detectors only when both agree. The robust path is fully vectorised (rolling
windows through ``sliding_window_view``); :func:`robust_statistics_reference` is the per-point
loop it is tested against.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
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
from allele.analytics._season import _fourier_design, seasonal_period
from allele.analytics.anomaly.detectors import (
    BaseDetector,
    IsolationForestDetector,
    OneClassSVMDetector,
    _logistic,
)
from allele.errors import AnalyticsError

__all__ = [
    "STATISTICS",
    "Method",
    "SeriesDetection",
    "detect_series",
    "robust_statistics",
    "robust_statistics_reference",
    "score_series",
]

Method = Literal["robust", "iforest", "ocsvm", "ensemble"]
_MEDIAN_VAR = math.pi / 2.0  # variance of a sample median relative to a mean (Gaussian)

STATISTICS = ("spike", "shift", "variance", "drift")


def _rolling_median_mad(r: FloatArray, w: int) -> tuple[FloatArray, FloatArray]:
    """Median and MAD of the ``w`` points *before* each index (NaN where unavailable)."""
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


def _wilson_hilferty(ratio: FloatArray | float, k: int) -> Any:
    """z of a mean of ``k`` squared standard normals (chi2 / k) by the Wilson-Hilferty cube root."""
    c = 2.0 / (9.0 * k)
    return (np.cbrt(ratio) - (1.0 - c)) / math.sqrt(c)


def robust_statistics(
    r: ArrayLike, window: int, short: int, level: float, sigma: float, learn_n: int
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

    Rows before ``window + 2 * short`` are NaN.
    """
    x = np.asarray(r, dtype=np.float64)
    n = x.size
    kv = 2 * short
    med, mad = _rolling_median_mad(x, window)
    sref = np.maximum(MAD_TO_SIGMA * mad, sigma)
    out = np.full((n, 4), np.nan)
    out[:, 0] = np.abs(x - med) / sref

    def lagged(a: FloatArray, lag: int) -> FloatArray:
        res = np.full(n, np.nan)
        res[lag:] = a[: n - lag]
        return res

    recent = _trailing_mean(x, short)
    med_s, sref_s = lagged(med, short - 1), lagged(sref, short - 1)
    out[:, 1] = np.abs(recent - med_s) / (sref_s / math.sqrt(short))
    dev2 = np.nan_to_num((x - med) ** 2, nan=0.0)
    ms = _trailing_mean(dev2, kv)
    sref_v = lagged(sref, kv - 1)
    out[:, 2] = np.maximum(_wilson_hilferty(ms / sref_v**2, kv), 0.0)
    out[:, 3] = np.abs(med - level) / (sref * math.sqrt(_MEDIAN_VAR * (1.0 / window
                                                                       + 1.0 / learn_n)))
    out[: window + kv] = np.nan
    return out


def robust_statistics_reference(
    r: ArrayLike, window: int, short: int, level: float, sigma: float, learn_n: int
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
        spike = abs(x[t] - med[t]) / sref[t]
        t0 = t - short + 1
        shift = abs(float(np.mean(x[t0:t + 1])) - med[t0]) / (sref[t0] / math.sqrt(short))
        tv = t - kv + 1
        ms = float(np.mean((x[tv:t + 1] - med[tv:t + 1]) ** 2))
        var = max(float(_wilson_hilferty(ms / sref[tv] ** 2, kv)), 0.0)
        drift = abs(med[t] - level) / (sref[t] * drift_scale)
        out[t] = (spike, shift, var, drift)
    return out


# Upper quartiles of the statistics under the Gaussian null: |N(0,1)| for spike, shift, drift;
# max(N(0,1), 0) for variance. The learning period can only make a statistic less sensitive
# (inflation factor >= 1), never more.
_NULL_Q75 = np.array([1.1503, 1.1503, 0.6745, 1.1503])


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
    """Per-point calibrated score of each statistic (n x 4: spike, shift, variance, drift)."""

    def anomalies(self) -> list[int]:
        """Indices of flagged points."""
        return [int(i) for i in np.flatnonzero(self.flags)]


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


def _deseasonalise(y: FloatArray, learn_end: int, period: int | None) -> tuple[FloatArray,
                                                                               int | None]:
    """Remove the season causally.

    The season (and, when ``period`` is None, its period) is estimated on the learning period and
    re-estimated at checkpoints that double the data seen so far (``2 L, 4 L, ...``); the points
    between two checkpoints use the estimate made from the data before the first of them only.
    """
    fixed = period
    n = y.size
    first = fixed if fixed is not None else seasonal_period(y[:learn_end],
                                                            max_period=learn_end // 2)
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
            used = seasonal_period(y[:seen], max_period=min(seen // 2, 4 * first)) or used
        season[lo:hi] = _season_fit(y, seen, used, hi)[lo:hi]
    return y - season, used


def detect_series(
    values: ArrayLike,
    timestamps: ArrayLike | None = None,
    method: Method = "ensemble",
    *,
    learn_fraction: float = 0.15,
    period: int | None = None,
    window: int | None = None,
    short: int = 5,
    fence: float = 4.5,
    ml_fence: float | None = None,
    threshold: float = 0.5,
    seed: int = 0,
) -> SeriesDetection:
    """Causally score and flag a metric series (see the module docstring for the statistics).

    ``period`` is the season to remove (detected on the learning period when None); ``window``
    the rolling reference length (default ``min(48, learn_len // 3)``, at least 8). The
    learning period needs at least ``window + short + 10`` points, otherwise AnalyticsError.
    ``threshold`` applies to the final score; 0.5 is where the calibrated fences sit.
    ``timestamps`` are checked (same length, increasing) but the statistics work in sample
    units: resample irregular series before scoring.
    """
    y = as_series(values, name="values")
    as_timestamps(timestamps, y.size)
    learn_end, w = _learning_period(y.size, method, learn_fraction, window, short)
    r, used_period = _deseasonalise(y, learn_end, period)
    z, stat_scores = _calibrated_statistics(r, learn_end, w, short, fence)
    robust = np.max(stat_scores, axis=1)
    if method == "robust":
        scores = robust
    else:
        # Alone, a learned detector uses the statistics' fence; inside the ensemble (where the
        # robust statistics already flag) it must be far more certain to add a flag.
        mlf = ml_fence if ml_fence is not None else (8.0 if method == "ensemble" else fence)
        parts = [_learned_score(det, z, z[w + 2 * short:learn_end], mlf)
                 for det in _learned_detectors(method, seed)]
        if method == "ensemble":
            # The robust statistics flag on their own; the two learned detectors must agree.
            scores = np.maximum(robust, np.minimum(parts[0], parts[1]))
        else:
            scores = parts[0]
        scores[:learn_end] = 0.0
    scores = np.clip(scores, 0.0, 1.0)
    flags: NDArray[np.bool_] = scores > threshold
    return SeriesDetection(scores=scores, flags=flags, threshold=threshold, learn_end=learn_end,
                           period=used_period, method=method, statistics=stat_scores)


def _learning_period(n: int, method: str, learn_fraction: float, window: int | None,
                     short: int) -> tuple[int, int]:
    """The checked options: ``(learn_end, window)``; AnalyticsError when the series is too short."""
    if method not in ("robust", "iforest", "ocsvm", "ensemble"):
        raise AnalyticsError(f"unknown method {method!r}; use robust, iforest, ocsvm or ensemble")
    if not 0.0 < learn_fraction < 1.0:
        raise AnalyticsError(f"learn_fraction must be in (0, 1), got {learn_fraction}")
    learn_end = math.ceil(learn_fraction * n)
    w = window if window is not None else max(8, min(48, learn_end // 3))
    if learn_end < w + 2 * short + 10:
        raise AnalyticsError(
            f"series of {n} points is too short: the learning period ({learn_end} points) needs "
            f"at least {w + 2 * short + 10}")
    return learn_end, w


def _calibrated_statistics(r: FloatArray, learn_end: int, w: int, short: int,
                           fence: float) -> tuple[FloatArray, FloatArray]:
    """The statistics as z over their learning-period inflation, and their scores (0 while
    learning): ``(z, scores)``, both n x 4."""
    learn = r[:learn_end]
    level = float(np.median(learn))
    sigma = mad_sigma(learn, level)
    if sigma == 0.0:
        sigma = float(np.std(learn)) or max(abs(level) * 1e-6, 1e-12)
    feats = robust_statistics(r, w, short, level, sigma, learn_end)
    calib = feats[w + 2 * short:learn_end]
    inflation = np.maximum(np.quantile(calib, 0.75, axis=0) / _NULL_Q75, 1.0)
    z = np.nan_to_num(feats, nan=0.0) / inflation
    stat_scores = _logistic((z - fence) / 0.5)
    stat_scores[:learn_end] = 0.0
    return z, stat_scores


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
    the raw score is turned into a robust z against its learning values and put through the same
    fence as the statistics.
    """
    det.fit(x_learn)
    raw_learn = det._raw(x_learn)
    mid = float(np.median(raw_learn))
    spread = mad_sigma(raw_learn, mid) or float(np.std(raw_learn)) or 1.0
    return _logistic(((det._raw(z) - mid) / spread - fence) / 0.5)


def score_series(
    values: ArrayLike,
    timestamps: ArrayLike | None = None,
    method: Method = "ensemble",
    **options: Any,
) -> FloatArray:
    """Anomaly scores in [0, 1] for every point, each using only values up to that point.

    The first 15% of the series is the learning period (score 0). Options are those of
    :func:`detect_series`; flag with ``scores > 0.5`` or use :func:`detect_series`.
    """
    return detect_series(values, timestamps, method, **options).scores
