"""The rolling, causal statistics of a prepared (deseasonalised, pre-whitened) metric series.

:func:`robust_statistics` computes, for every point and from the points up to it only, the
spike, shift, variance, drift and heavy-tail variance statistics that
:func:`~allele.analytics.anomaly.series.detect_series` calibrates and scores, vectorised;
:func:`robust_statistics_reference` is the per-point loop they are tested against (and the
baseline of ``benchmarks/anomaly_speed.py``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike

from allele.analytics._common import MAD_TO_SIGMA, FloatArray, mad_sigma
from allele.analytics.anomaly._kernels import rolling_median_mad

__all__ = ["MEDIAN_VAR", "robust_statistics", "robust_statistics_reference", "trailing_median_mad"]

MEDIAN_VAR = math.pi / 2.0  # variance of a sample median relative to a mean (Gaussian)
_ABS_MEAN = math.sqrt(2.0 / math.pi)  # E|Z| of a standard normal Z


def trailing_median_mad(r: FloatArray, w: int) -> tuple[FloatArray, FloatArray]:
    """Median and MAD of the ``w`` points *before* each index (NaN where unavailable): the numba
    kernel of :mod:`~allele.analytics.anomaly._kernels`, bit-identical to
    :func:`_rolling_median_mad_numpy` and about 20 times faster."""
    med, mad = rolling_median_mad(np.ascontiguousarray(r, dtype=np.float64), int(w))
    return med, mad


def _rolling_median_mad_numpy(r: FloatArray, w: int) -> tuple[FloatArray, FloatArray]:
    """The numpy reference of :func:`trailing_median_mad` (two medians over a strided view)."""
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
    """The causal z-like statistics (spike, shift, variance, drift, heavy-tail variance) per
    point, vectorised (n x 5).

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
    * heavy-tail variance: the same z of ``(mean|r - med| / (s' sqrt(2/pi)))^2``, as if it were
      a mean of as many squared standard normals. Under a heavy tail a mean of squares is ruled
      by its largest term and a wider noise hides in it; the mean absolute deviation is not.
      Under Gaussian noise it is a little less efficient (88 %), and it reads the large terms
      that make a real variance change in a short series less (docs/analytics.md), so the
      detector uses it only where the noise is judged heavy-tailed;
    * drift: ``|med - level| / (s * sqrt(pi/2 * (1/window + 1/learn_n)))``: the rolling median
      against the learning-period level, over the standard error of a difference of two
      medians under the current noise level ``s`` (a median forgets a temporary shift twice as
      fast as a mean and ignores spikes).

    Rows before ``window + 2 * short`` are NaN. With ``signed``, spike, shift and drift keep
    their sign (up positive) instead of their absolute value, and the shift and both variances
    leave out their window's extremes (shift: both; variance: the largest term).
    """
    x = np.asarray(r, dtype=np.float64)
    n = x.size
    kv = 2 * short
    mag = (lambda a: a) if signed else np.abs
    med, mad = trailing_median_mad(x, window)
    sref = np.maximum(MAD_TO_SIGMA * mad, sigma)
    out = np.full((n, 5), np.nan)
    out[:, 0] = mag(x - med) / sref

    def lagged(a: FloatArray, lag: int) -> FloatArray:
        res = np.full(n, np.nan)
        res[lag:] = a[: n - lag]
        return res

    recent = _trailing_trimmed(x, short, both=True) if signed else _trailing_mean(x, short)
    med_s, sref_s = lagged(med, short - 1), lagged(sref, short - 1)
    out[:, 1] = mag(recent - med_s) / (sref_s / math.sqrt(short))
    dev = np.nan_to_num(np.abs(x - med), nan=0.0)
    ms = _trailing_trimmed(dev * dev, kv, both=False) if signed else _trailing_mean(dev * dev, kv)
    md = _trailing_trimmed(dev, kv, both=False) if signed else _trailing_mean(dev, kv)
    sref_v = lagged(sref, kv - 1)
    out[:, 2] = np.maximum(_wilson_hilferty(ms / sref_v**2, kv), 0.0)
    out[:, 4] = np.maximum(_wilson_hilferty((md / (_ABS_MEAN * sref_v)) ** 2, kv), 0.0)
    dscale = sref * math.sqrt(MEDIAN_VAR * (1.0 / window + 1.0 / learn_n))
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
    out = np.full((n, 5), np.nan)
    med = np.full(n, np.nan)
    sref = np.full(n, np.nan)
    for t in range(window, n):
        win = x[t - window:t]
        m = float(np.median(win))
        med[t] = m
        sref[t] = max(mad_sigma(win, m), sigma)
    drift_scale = math.sqrt(MEDIAN_VAR * (1.0 / window + 1.0 / learn_n))
    for t in range(window + kv, n):
        t0 = t - short + 1
        tv = t - kv + 1
        block = np.sort(x[t0:t + 1])
        dev = np.sort(np.abs(x[tv:t + 1] - med[tv:t + 1]))
        dev2 = dev * dev
        recent = float(np.mean(block[1:-1] if signed else block))
        ms = float(np.mean(dev2[:-1] if signed else dev2))
        md = float(np.mean(dev[:-1] if signed else dev))
        spike = (x[t] - med[t]) / sref[t]
        shift = (recent - med[t0]) / (sref[t0] / math.sqrt(short))
        var = max(float(_wilson_hilferty(ms / sref[tv] ** 2, kv)), 0.0)
        var_heavy = max(float(_wilson_hilferty((md / (_ABS_MEAN * sref[tv])) ** 2, kv)), 0.0)
        drift = (med[t] - level) / (sref[t] * drift_scale)
        if not signed:
            spike, shift, drift = abs(spike), abs(shift), abs(drift)
        out[t] = (spike, shift, var, drift, var_heavy)
    return out
