"""Anomaly detection over metric vectors and metric series.

Multivariate detectors (configuration in ``__init__``, ``fit(X)``, ``score(X)``, ``predict(X)``):
:class:`IsolationForestDetector`, :class:`OneClassSVMDetector` (scikit-learn),
:class:`RobustZScoreDetector` (per-feature median and MAD) and :class:`EnsembleDetector`.
Features are robust-scaled (median / IQR) before the scikit-learn models see them. Every detector
maps its raw outlyingness to a score in [0, 1] with a logistic calibrated on the training scores:
the median training score maps to 0.1 and the ``1 - contamination`` training quantile to 0.5, so
``threshold_ = 0.5`` flags about a ``contamination`` share of data like the training data.

Series (univariate, causal, streaming): :func:`score_series` / :func:`detect_series` score every
point of a metric series using only the values up to that point. The first ``learn_fraction``
(15%) of the series is the learning period: it is not scored (score 0) and it calibrates
everything else (seasonal profile, noise scale, and the alarm fences of each statistic).
Statistics per point, from rolling windows that end at the point:

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

Persistence: :func:`save_detector` / :func:`load_detector` use skops (no pickle, no lambdas)
with a format and scikit-learn version check on load.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

from allele.analytics._common import FloatArray, as_matrix, as_series, as_timestamps
from allele.analytics._season import _fourier_design, seasonal_period
from allele.errors import AnalyticsError, NotFittedError

__all__ = [
    "EnsembleDetector",
    "IsolationForestDetector",
    "OneClassSVMDetector",
    "RobustZScoreDetector",
    "SeriesDetection",
    "detect_series",
    "load_detector",
    "robust_statistics",
    "robust_statistics_reference",
    "save_detector",
    "score_series",
    "seasonal_period",
]

Method = Literal["robust", "iforest", "ocsvm", "ensemble"]
_LN9 = math.log(9.0)
_MEDIAN_VAR = math.pi / 2.0  # variance of a sample median relative to a mean (Gaussian)
_MAD_TO_SIGMA = 1.4826


def _logistic(x: FloatArray) -> FloatArray:
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out


class _Calibrated:
    """Raw outlyingness -> [0, 1]: training median -> 0.1, (1 - contamination) quantile -> 0.5."""

    center_: float
    scale_: float

    def _calibrate(self, raw: FloatArray, contamination: float) -> None:
        center = float(np.quantile(raw, 1.0 - contamination))
        spread = center - float(np.median(raw))
        if not spread > 0:
            spread = float(np.std(raw)) or 1.0
        self.center_ = center
        self.scale_ = spread / _LN9

    def _to_unit(self, raw: FloatArray) -> FloatArray:
        return _logistic((raw - self.center_) / self.scale_)


class BaseDetector(_Calibrated, ABC):
    """fit / score / predict over rows of metric vectors (n_samples x n_features)."""

    threshold_: float = 0.5
    n_features_in_: int

    def __init__(self, contamination: float = 0.01, seed: int = 0) -> None:
        self.contamination = contamination
        self.seed = seed

    def fit(self, X: ArrayLike) -> Self:
        """Learn what normal rows look like."""
        if not 0.0 < self.contamination < 0.5:
            raise AnalyticsError(f"contamination must be in (0, 0.5), got {self.contamination}")
        arr = as_matrix(X, min_rows=3)
        self.n_features_in_ = int(arr.shape[1])
        raw = self._fit_raw(arr)
        self._calibrate(raw, self.contamination)
        self.threshold_ = 0.5
        return self

    def score(self, X: ArrayLike) -> FloatArray:
        """Anomaly score in [0, 1] per row (higher is more anomalous)."""
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(f"{type(self).__name__}.score called before fit")
        arr = as_matrix(X)
        if arr.shape[1] != self.n_features_in_:
            raise AnalyticsError(
                f"expected {self.n_features_in_} features, got {arr.shape[1]}")
        return self._to_unit(self._raw(arr))

    def predict(self, X: ArrayLike) -> NDArray[np.bool_]:
        """True for rows whose score exceeds ``threshold_``."""
        flags: NDArray[np.bool_] = self.score(X) > self.threshold_
        return flags

    @abstractmethod
    def _fit_raw(self, X: FloatArray) -> FloatArray: ...

    @abstractmethod
    def _raw(self, X: FloatArray) -> FloatArray: ...


def _robust_scaler(X: FloatArray) -> Any:
    from sklearn.preprocessing import RobustScaler

    return RobustScaler().fit(X)


class IsolationForestDetector(BaseDetector):
    """scikit-learn IsolationForest on robust-scaled features; seeded."""

    def __init__(self, n_estimators: int = 100, contamination: float = 0.01, seed: int = 0,
                 max_samples: int | str = "auto") -> None:
        super().__init__(contamination, seed)
        self.n_estimators = n_estimators
        self.max_samples = max_samples

    def _fit_raw(self, X: FloatArray) -> FloatArray:
        from sklearn.ensemble import IsolationForest

        self.scaler_ = _robust_scaler(X)
        xs = self.scaler_.transform(X)
        self.model_ = IsolationForest(n_estimators=self.n_estimators,
                                      max_samples=self.max_samples, random_state=self.seed)
        self.model_.fit(xs)
        return self._raw(X)

    def _raw(self, X: FloatArray) -> FloatArray:
        return -np.asarray(self.model_.score_samples(self.scaler_.transform(X)), dtype=np.float64)


class OneClassSVMDetector(BaseDetector):
    """scikit-learn One-Class SVM (RBF) on robust-scaled features.

    Training is O(n^2); at most ``max_train`` rows (chosen with ``seed``) are used.
    """

    def __init__(self, nu: float = 0.05, gamma: float | str = "scale",
                 contamination: float = 0.01, seed: int = 0, max_train: int = 2000) -> None:
        super().__init__(contamination, seed)
        self.nu = nu
        self.gamma = gamma
        self.max_train = max_train

    def _fit_raw(self, X: FloatArray) -> FloatArray:
        from sklearn.svm import OneClassSVM

        self.scaler_ = _robust_scaler(X)
        xs = self.scaler_.transform(X)
        if xs.shape[0] > self.max_train:
            rng = np.random.default_rng(self.seed)
            xs = xs[np.sort(rng.choice(xs.shape[0], self.max_train, replace=False))]
        self.model_ = OneClassSVM(nu=self.nu, gamma=self.gamma).fit(xs)
        return self._raw(X)

    def _raw(self, X: FloatArray) -> FloatArray:
        return -np.asarray(self.model_.decision_function(self.scaler_.transform(X)),
                           dtype=np.float64)


class RobustZScoreDetector(BaseDetector):
    """Largest per-feature robust z score ``|x - median| / (1.4826 * MAD)``.

    A feature with zero MAD uses its standard deviation, and 1 if that is zero too.

    Streaming: after ``fit``, :meth:`update` scores one new row against the median and MAD of a
    rolling window of the previous ``window`` rows (seeded with the last training rows), then
    adds the row to the window, so the reference follows slow changes while each score uses only
    the past. The calibration learned in ``fit`` maps the z to [0, 1].
    """

    def __init__(self, contamination: float = 0.01, seed: int = 0, window: int = 256) -> None:
        super().__init__(contamination, seed)
        self.window = window

    def fit(self, X: ArrayLike) -> Self:
        """Learn medians, MADs and the calibration; seed the streaming window."""
        super().fit(X)
        arr = as_matrix(X)
        self._buffer = np.array(arr[-self.window:], dtype=np.float64)
        return self

    def update(self, x: ArrayLike) -> float:
        """Score one new row causally (see the class docstring) and append it to the window."""
        if not hasattr(self, "_buffer"):
            raise NotFittedError("RobustZScoreDetector.update called before fit")
        row = np.asarray(x, dtype=np.float64).reshape(-1)
        if row.size != self.n_features_in_ or not np.all(np.isfinite(row)):
            raise AnalyticsError(f"expected {self.n_features_in_} finite features")
        med = np.median(self._buffer, axis=0)
        mad = _MAD_TO_SIGMA * np.median(np.abs(self._buffer - med), axis=0)
        mad = np.where(mad > 0, mad, self.mad_)
        raw = np.array([float(np.max(np.abs(row - med) / mad))])
        if self._buffer.shape[0] >= self.window:
            self._buffer = np.vstack([self._buffer[1:], row])
        else:
            self._buffer = np.vstack([self._buffer, row])
        return float(self._to_unit(raw)[0])

    def _fit_raw(self, X: FloatArray) -> FloatArray:
        self.median_ = np.median(X, axis=0)
        mad = _MAD_TO_SIGMA * np.median(np.abs(X - self.median_), axis=0)
        std = np.std(X, axis=0)
        self.mad_ = np.where(mad > 0, mad, np.where(std > 0, std, 1.0))
        return self._raw(X)

    def _raw(self, X: FloatArray) -> FloatArray:
        out: FloatArray = np.max(np.abs(X - self.median_) / self.mad_, axis=1)
        return out


class EnsembleDetector(BaseDetector):
    """Weighted mean of the calibrated scores of several detectors, calibrated once more.

    Default members: isolation forest, one-class SVM and robust z (all seeded with ``seed``).
    """

    def __init__(self, detectors: Sequence[BaseDetector] | None = None,
                 weights: Sequence[float] | None = None, contamination: float = 0.01,
                 seed: int = 0) -> None:
        super().__init__(contamination, seed)
        self.detectors = list(detectors) if detectors is not None else None
        self.weights = list(weights) if weights is not None else None

    def _fit_raw(self, X: FloatArray) -> FloatArray:
        members = self.detectors if self.detectors is not None else [
            IsolationForestDetector(contamination=self.contamination, seed=self.seed),
            OneClassSVMDetector(contamination=self.contamination, seed=self.seed),
            RobustZScoreDetector(contamination=self.contamination, seed=self.seed),
        ]
        if not members:
            raise AnalyticsError("EnsembleDetector needs at least one detector")
        w = np.ones(len(members)) if self.weights is None else np.asarray(self.weights, float)
        if w.shape != (len(members),) or np.any(w < 0) or w.sum() <= 0:
            raise AnalyticsError("weights must be non-negative, one per detector, not all zero")
        self.members_ = [m.fit(X) for m in members]
        self.weights_ = w / w.sum()
        return self._raw(X)

    def _raw(self, X: FloatArray) -> FloatArray:
        scores = np.stack([m.score(X) for m in self.members_])
        out: FloatArray = self.weights_ @ scores
        return out


# ---------------------------------------------------------------------------------------------
# Persistence (skops; no pickle)
# ---------------------------------------------------------------------------------------------

_FORMAT = "allele-anomaly-detector"
_FORMAT_VERSION = 1
_TRUSTED_PREFIXES = ("allele.analytics.", "sklearn.", "numpy.", "builtins.")


def save_detector(detector: BaseDetector, path: str | Path) -> Path:
    """Write a fitted detector with skops (a safe, non-pickle format) and version metadata."""
    import sklearn
    import skops.io as sio

    if not hasattr(detector, "n_features_in_"):
        raise NotFittedError("only a fitted detector can be saved")
    target = Path(path)
    payload = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "sklearn_version": sklearn.__version__,
        "detector": detector,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(payload, target)
    return target


def load_detector(path: str | Path) -> BaseDetector:
    """Read a detector written by :func:`save_detector`.

    Only types from allele.analytics, scikit-learn and numpy are trusted; the file must carry our
    format tag, and the scikit-learn major.minor version must match the one that wrote it.
    """
    import sklearn
    import skops.io as sio

    target = Path(path)
    if not target.is_file():
        raise AnalyticsError(f"no detector file at {target}")
    try:
        untrusted = sio.get_untrusted_types(file=target)
    except Exception as exc:
        raise AnalyticsError(f"{target} is not a skops file: {exc}") from exc
    foreign = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
    if foreign:
        raise AnalyticsError(f"{target} contains untrusted types: {', '.join(sorted(foreign))}")
    payload = sio.load(target, trusted=untrusted)
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise AnalyticsError(f"{target} is not an Allele anomaly detector")
    if payload.get("format_version") != _FORMAT_VERSION:
        raise AnalyticsError(f"unsupported detector format version {payload.get('format_version')}")
    saved = str(payload.get("sklearn_version", ""))
    if saved.split(".")[:2] != sklearn.__version__.split(".")[:2]:
        raise AnalyticsError(
            f"detector was saved with scikit-learn {saved}, this is {sklearn.__version__}; "
            "refit it")
    det = payload["detector"]
    if not isinstance(det, BaseDetector):
        raise AnalyticsError(f"{target} does not hold a detector")
    return det


# ---------------------------------------------------------------------------------------------
# Univariate, causal series scoring
# ---------------------------------------------------------------------------------------------

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
    sref = np.maximum(_MAD_TO_SIGMA * mad, sigma)
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
        sref[t] = max(_MAD_TO_SIGMA * float(np.median(np.abs(win - m))), sigma)
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
    if method not in ("robust", "iforest", "ocsvm", "ensemble"):
        raise AnalyticsError(f"unknown method {method!r}; use robust, iforest, ocsvm or ensemble")
    if not 0.0 < learn_fraction < 1.0:
        raise AnalyticsError(f"learn_fraction must be in (0, 1), got {learn_fraction}")
    n = y.size
    learn_end = math.ceil(learn_fraction * n)
    w = window if window is not None else max(8, min(48, learn_end // 3))
    if learn_end < w + 2 * short + 10:
        raise AnalyticsError(
            f"series of {n} points is too short: the learning period ({learn_end} points) needs "
            f"at least {w + 2 * short + 10}")
    r, used_period = _deseasonalise(y, learn_end, period)
    learn = r[:learn_end]
    level = float(np.median(learn))
    sigma = _MAD_TO_SIGMA * float(np.median(np.abs(learn - level)))
    if sigma == 0.0:
        sigma = float(np.std(learn)) or max(abs(level) * 1e-6, 1e-12)
    feats = robust_statistics(r, w, short, level, sigma, learn_end)
    calib = feats[w + 2 * short:learn_end]
    inflation = np.maximum(np.quantile(calib, 0.75, axis=0) / _NULL_Q75, 1.0)
    z = np.nan_to_num(feats, nan=0.0) / inflation
    stat_scores = _logistic((z - fence) / 0.5)
    stat_scores[:learn_end] = 0.0
    robust = np.max(stat_scores, axis=1)
    if method == "robust":
        scores = robust
    else:
        x_learn = z[w + 2 * short:learn_end]
        parts: list[FloatArray] = []
        models: list[BaseDetector] = []
        if method in ("iforest", "ensemble"):
            models.append(IsolationForestDetector(contamination=0.01, seed=seed))
        if method in ("ocsvm", "ensemble"):
            models.append(OneClassSVMDetector(nu=0.05, contamination=0.01, seed=seed))
        # Alone, a learned detector uses the statistics' fence; inside the ensemble (where the
        # robust statistics already flag) it must be far more certain to add a flag.
        mlf = ml_fence if ml_fence is not None else (8.0 if method == "ensemble" else fence)
        for det in models:
            det.fit(x_learn)
            # A learning period of ~100 rows cannot calibrate a 1e-4 false-alarm quantile
            # empirically; the raw score is turned into a robust z against its learning values
            # and put through the same fence as the statistics.
            raw_learn = det._raw(x_learn)
            mid = float(np.median(raw_learn))
            spread = _MAD_TO_SIGMA * float(np.median(np.abs(raw_learn - mid)))
            spread = spread or float(np.std(raw_learn)) or 1.0
            parts.append(_logistic(((det._raw(z) - mid) / spread - mlf) / 0.5))
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
