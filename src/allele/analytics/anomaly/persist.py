"""Persistence of fitted detectors with skops (no pickle, no lambdas), with a format and
scikit-learn version check on load."""

from __future__ import annotations

from pathlib import Path

from allele.analytics.anomaly.detectors import BaseDetector
from allele.errors import AnalyticsError, NotFittedError

__all__ = ["load_detector", "save_detector"]

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
