"""Numba kernels of the series detector: the rolling median and MAD of a sliding window, and the
merge of two sorted arrays (the growing peaks-over-threshold pools of
:mod:`~allele.analytics.anomaly.tail`).

The numpy reference (:func:`allele.analytics.anomaly.rolling._rolling_median_mad_numpy`) takes a
median of every window twice over a (n x w) strided view: two partitions of ``n * w`` values
and a temporary of that size, about 60% of the whole scoring time on 200,000 points. The kernel
keeps the window sorted (one binary search and a shift of at most ``w`` values per step) and
reads the MAD off it: the deviations ``|x - median|`` of the values below the middle grow going
left and those of the values above it grow going right, so their ``w // 2 + 1`` smallest come
from merging the two runs outwards from the middle, ``O(w)`` per step with no sort. The same
values go through the same arithmetic as ``np.median`` (the mean of the two middle order
statistics is ``(a + b) / 2``), so the results are bit-identical; the tests compare the two.

Every compiled function lives in this file: numba's on-disk cache (``cache=True``) is
invalidated by this file's modification time only.
"""

from __future__ import annotations

import numba
import numpy as np

from allele.analytics._common import FloatArray

__all__ = ["merge_sorted", "rolling_median_mad"]


@numba.njit(cache=True)
def _slide(win: FloatArray, old: float, new: float) -> None:  # pragma: no cover - compiled
    """Replace one occurrence of ``old`` in the sorted ``win`` by ``new``, keeping it sorted."""
    i = np.searchsorted(win, old)  # win[i] == old: old is in the window
    j = np.searchsorted(win, new)
    if j > i:
        for k in range(i, j - 1):
            win[k] = win[k + 1]
        win[j - 1] = new
    else:
        for k in range(i, j, -1):
            win[k] = win[k - 1]
        win[j] = new


@numba.njit(cache=True)
def _mad_sorted(win: FloatArray, m: float) -> float:  # pragma: no cover - compiled
    """Median of ``|win - m|`` for a sorted ``win`` whose median is ``m``."""
    w = win.size
    h = w // 2
    left = h - 1  # win[:h] <= m: deviations grow going left
    right = h  # win[h:] >= m: deviations grow going right
    prev = 0.0
    cur = 0.0
    for _ in range(h + 1):  # the order statistics 0 .. h of the deviations
        prev = cur
        if left < 0:
            cur = abs(win[right] - m)
            right += 1
        elif right >= w:
            cur = abs(win[left] - m)
            left -= 1
        else:
            dl = abs(win[left] - m)
            dr = abs(win[right] - m)
            if dl <= dr:
                cur = dl
                left -= 1
            else:
                cur = dr
                right += 1
    if w % 2 == 0:
        return (prev + cur) / 2.0
    return cur


@numba.njit(cache=True)
def rolling_median_mad(r: FloatArray, w: int) -> tuple[FloatArray, FloatArray]:  # pragma: no cover
    """Median and MAD (unscaled) of ``r[t - w : t]`` for each ``t >= w`` (NaN before)."""
    n = r.size
    med = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    if n <= w:
        return med, mad
    win = np.sort(r[:w])
    h = w // 2
    for t in range(w, n):
        if t > w:
            _slide(win, r[t - w - 1], r[t - 1])
        m = (win[h - 1] + win[h]) / 2.0 if w % 2 == 0 else win[h]
        med[t] = m
        mad[t] = _mad_sorted(win, m)
    return med, mad


@numba.njit(cache=True)
def merge_sorted(a: FloatArray, b: FloatArray) -> FloatArray:  # pragma: no cover - compiled
    """The sorted union of the sorted ``a`` and ``b`` (a linear merge: ``np.insert`` at
    ``np.searchsorted`` positions costs ten times more on a pool of 200,000 values)."""
    out = np.empty(a.size + b.size)
    i = 0
    j = 0
    for k in range(out.size):
        if j >= b.size or (i < a.size and a[i] <= b[j]):
            out[k] = a[i]
            i += 1
        else:
            out[k] = b[j]
            j += 1
    return out
