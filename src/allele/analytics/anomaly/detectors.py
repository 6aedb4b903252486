"""Multivariate detectors over rows of metric vectors.

Configuration in ``__init__``, ``fit(X)``, ``score(X)``, ``predict(X)``:
:class:`IsolationForestDetector`, :class:`OneClassSVMDetector` (scikit-learn),
:class:`RobustZScoreDetector` (per-feature median and MAD) and :class:`EnsembleDetector`.
Features are robust-scaled (median / IQR) before the scikit-learn models see them. Every detector
maps its raw outlyingness to a score in [0, 1] with a logistic calibrated on the training scores:
the median training score maps to 0.1 and the ``1 - contamination`` training quantile to 0.5, so
``threshold_ = 0.5`` flags about a ``contamination`` share of data like the training data.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from allele.analytics._common import MAD_TO_SIGMA, FloatArray, as_matrix
from allele.errors import AnalyticsError, NotFittedError

__all__ = [
    "BaseDetector",
    "EnsembleDetector",
    "IsolationForestDetector",
    "OneClassSVMDetector",
    "RobustZScoreDetector",
]

_LN9 = math.log(9.0)


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
        mad = MAD_TO_SIGMA * np.median(np.abs(self._buffer - med), axis=0)
        mad = np.where(mad > 0, mad, self.mad_)
        raw = np.array([float(np.max(np.abs(row - med) / mad))])
        if self._buffer.shape[0] >= self.window:
            self._buffer = np.vstack([self._buffer[1:], row])
        else:
            self._buffer = np.vstack([self._buffer, row])
        return float(self._to_unit(raw)[0])

    def _fit_raw(self, X: FloatArray) -> FloatArray:
        self.median_ = np.median(X, axis=0)
        mad = MAD_TO_SIGMA * np.median(np.abs(X - self.median_), axis=0)
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
