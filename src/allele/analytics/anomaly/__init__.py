"""Anomaly detection over metric vectors and metric series.

* :mod:`~allele.analytics.anomaly.detectors`: multivariate detectors over rows of metric
  vectors (:class:`IsolationForestDetector`, :class:`OneClassSVMDetector`,
  :class:`RobustZScoreDetector`, :class:`EnsembleDetector`), each calibrated to a score in
  [0, 1] where 0.5 flags about a ``contamination`` share of data like the training data.
* :mod:`~allele.analytics.anomaly.series`: univariate, causal, streaming scoring of a metric
  series (:func:`score_series` / :func:`detect_series`): a fixed learning period, the series
  prepared by :mod:`~allele.analytics.anomaly.prepare` (rounding, counts, logs for positive
  skewed metrics, the season, AR pre-whitening, a learned trend), four robust statistics
  (spike, shift, variance, drift; both sides; :mod:`~allele.analytics.anomaly.rolling`) whose
  tails are calibrated by peaks over threshold (:mod:`~allele.analytics.anomaly.tail`, SPOT);
  the learned detectors are opt-in.
* :mod:`~allele.analytics.anomaly.persist`: :func:`save_detector` / :func:`load_detector` use
  skops (no pickle, no lambdas) with a format and scikit-learn version check on load.
"""

from allele.analytics._season import seasonal_period
from allele.analytics.anomaly.detectors import (
    BaseDetector,
    EnsembleDetector,
    IsolationForestDetector,
    OneClassSVMDetector,
    RobustZScoreDetector,
)
from allele.analytics.anomaly.persist import load_detector, save_detector
from allele.analytics.anomaly.rolling import robust_statistics, robust_statistics_reference
from allele.analytics.anomaly.series import (
    DEFAULT_LEARN,
    STATISTICS,
    Method,
    SeriesDetection,
    detect_series,
    score_series,
    signed_statistics,
)

__all__ = [
    "DEFAULT_LEARN",
    "STATISTICS",
    "BaseDetector",
    "EnsembleDetector",
    "IsolationForestDetector",
    "Method",
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
    "signed_statistics",
]
