"""Small helpers shared by the analytics modules: input validation and human-readable phrasing."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from allele.errors import AnalyticsError
from allele.units import BYTES_PER, size_ladder

FloatArray = NDArray[np.float64]

MAD_TO_SIGMA = 1.4826
"""Median absolute deviation -> standard deviation of a Gaussian (``1 / Phi^-1(3/4)``)."""


def as_series(values: ArrayLike, *, name: str = "y", min_length: int = 1) -> FloatArray:
    """A finite 1-D float64 copy of ``values``; AnalyticsError when that is impossible."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AnalyticsError(f"{name} must be numeric: {exc}") from exc
    if arr.ndim != 1:
        raise AnalyticsError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size < min_length:
        raise AnalyticsError(f"{name} needs at least {min_length} value(s), got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise AnalyticsError(f"{name} contains NaN or infinite values")
    return arr.copy()


def as_matrix(values: ArrayLike, *, name: str = "X", min_rows: int = 1) -> FloatArray:
    """A finite 2-D float64 array (a 1-D input becomes one column)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AnalyticsError(f"{name} must be numeric: {exc}") from exc
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise AnalyticsError(f"{name} must be two-dimensional, got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise AnalyticsError(f"{name} needs at least {min_rows} row(s), got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise AnalyticsError(f"{name} contains NaN or infinite values")
    return arr


def as_timestamps(timestamps: ArrayLike | None, n: int) -> FloatArray | None:
    """Timestamps (seconds) as float64, checked for length and strict increase."""
    if timestamps is None:
        return None
    ts = as_series(timestamps, name="timestamps")
    if ts.size != n:
        raise AnalyticsError(f"timestamps has {ts.size} values but the series has {n}")
    if ts.size > 1 and np.any(np.diff(ts) <= 0):
        raise AnalyticsError("timestamps must be strictly increasing")
    return ts


def mad_sigma(x: FloatArray, center: float | None = None) -> float:
    """Robust noise scale: ``1.4826 * median(|x - center|)`` (``center`` defaults to the median).

    It stays bounded until half the points are outliers (breakdown point 50%), where one outlier
    alone can move a standard deviation without bound.
    """
    c = np.median(x) if center is None else center
    return MAD_TO_SIGMA * float(np.median(np.abs(x - c)))


def median_step(timestamps: FloatArray | None) -> float | None:
    """The typical spacing of ``timestamps`` in seconds, or None without timestamps."""
    if timestamps is None or timestamps.size < 2:
        return None
    return float(np.median(np.diff(timestamps)))


def humanize_duration(seconds: float) -> str:
    """'45 s', '12 min', '2 h', '3 days' (one significant unit, rounded)."""
    s = abs(seconds)
    if s < 90:
        return f"{max(1, round(s))} s"
    if s < 90 * 60:
        return f"{round(s / 60)} min"
    if s < 36 * 3600:
        hours = s / 3600
        text = f"{hours:.1f}".removesuffix(".0") if hours < 10 else f"{round(hours)}"
        return f"{text} h"
    return f"{round(s / 86400)} days"


def format_value(value: float, unit: str = "") -> str:
    """A value with its unit; a size in bytes or a binary unit scales through KiB/MiB/GiB/TiB
    (``'MiB'`` to GiB when large), one in a decimal unit through KB/MB/GB/TB
    (:func:`allele.units.size_ladder`)."""
    steps = size_ladder(unit)
    if steps is not None:
        b = value * BYTES_PER[unit]
        if b == 0 or not math.isfinite(b):
            return f"{_short(value)} {unit}"
        for label, size in steps:
            if abs(b) >= size * 0.9995:
                return f"{_short(b / size)} {label}"
        return f"{_short(b)} B"
    return f"{_short(value)} {unit}".rstrip()


def _short(x: float) -> str:
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}".rstrip("0").rstrip(".")
    return f"{x:.3g}"


def check_level(level: float) -> float:
    """A confidence level strictly between 0 and 1."""
    if not 0.0 < level < 1.0:
        raise AnalyticsError(f"level must be in (0, 1), got {level}")
    return float(level)


def check_positive_int(value: int, name: str, minimum: int = 1) -> int:
    """An integer of at least ``minimum``."""
    if int(value) != value or value < minimum:
        raise AnalyticsError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def stable_fingerprint(parts: Sequence[str]) -> str:
    """A short, process-independent hex digest (never Python's salted ``hash()``)."""
    import hashlib

    h = hashlib.sha1()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:12]
