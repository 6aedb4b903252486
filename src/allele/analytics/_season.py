"""Season-length estimation shared by forecasting and anomaly detection."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from allele.analytics._common import FloatArray, as_series


def _fourier_design(t: FloatArray, period: int, harmonics: int) -> FloatArray:
    cols = [np.ones_like(t), t / max(t.size, 1)]
    for k in range(1, harmonics + 1):
        ang = 2.0 * np.pi * k * t / period
        cols += [np.sin(ang), np.cos(ang)]
    return np.stack(cols, axis=1)


def seasonal_period(y: ArrayLike, min_period: int = 4, max_period: int | None = None,
                    harmonics: int = 3, min_r2: float = 0.3, max_points: int = 4096,
                    shortlist: int = 5) -> int | None:
    """The integer period whose Fourier fit (``harmonics`` terms plus a line) explains ``y`` best.

    Candidates run from ``min_period`` to ``max_period`` (default ``n // 2``, so at least two
    cycles are seen): the ``shortlist`` highest local peaks of the autocorrelation and their
    neighbours (+-2) are refined by the Fourier fit, which is sharper than an ACF peak on short
    series. Only the last ``max_points`` points are used. Returns None when the best fit explains
    less than ``min_r2`` of the variance left after the line.
    """
    arr = as_series(y, name="y")[-max_points:]
    n = arr.size
    hi = min(max_period if max_period is not None else n // 2, n // 2)
    if hi < min_period or np.ptp(arr) == 0:
        return None
    t = np.arange(n, dtype=np.float64)
    line = np.stack([np.ones(n), t / n], axis=1)
    base_res = arr - line @ np.linalg.lstsq(line, arr, rcond=None)[0]
    sst = float(base_res @ base_res)
    if sst == 0.0:
        return None
    spec = np.fft.rfft(base_res, 2 * n)
    acf = np.fft.irfft(spec * np.conj(spec))[: hi + 2]
    acf = acf / acf[0]
    peaks = [m for m in range(max(2, min_period), hi + 1)
             if acf[m] >= acf[m - 1] and acf[m] >= acf[m + 1] and acf[m] > 0]
    peaks.sort(key=lambda m: -acf[m])
    cands = {c for m in peaks[:shortlist] for c in range(m - 2, m + 3) if min_period <= c <= hi}
    cands |= {m // k for m in list(cands) for k in (2, 3) if m % k == 0 and m // k >= min_period}
    r2s: dict[int, float] = {}
    for m in sorted(cands):
        h = min(harmonics, m // 2)
        design = _fourier_design(t, m, h)
        coef = np.linalg.lstsq(design, arr, rcond=None)[0]
        res = arr - design @ coef
        r2s[m] = 1.0 - float(res @ res) / sst
    if not r2s:
        return None
    best_m = max(r2s, key=lambda m: r2s[m])
    if r2s[best_m] < min_r2:
        return None
    # A multiple of the true period fits as well: prefer the smallest divisor that fits nearly as
    # well as the best.
    for m in sorted(r2s):
        if m < best_m and best_m % m == 0 and r2s[m] >= r2s[best_m] - 0.02:
            return m
    return best_m
