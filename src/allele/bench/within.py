"""Within-block evidence of comparison rows: how far HEAD is from BASE inside the blocks that
share conditions, on the scale of the estimate (:mod:`allele.bench.estimate` explains the whole).

Pure statistics over arrays; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from allele.bench.stats import (
    FloatArray,
    mean_var,
    robust_mean_var,
    sandwich,
    satterthwaite,
    squeeze_var,
    winsorize,
)

EXACT_SD = 1e-9
"""Spread below this (log scale) is rounding, not noise: the row is exact."""


@dataclass(frozen=True, slots=True)
class Within:
    """Per-row evidence from within blocks (arrays over rows, leading axes broadcast):
    estimate ``est`` of the log-ratio, unit variance ``s2`` with ``df``, and ``n_eff`` such that
    the estimate's variance is ``s2 / n_eff``."""

    est: FloatArray
    s2: FloatArray
    df: FloatArray
    n_eff: FloatArray

    @property
    def var(self) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(self.s2 / self.n_eff)

    def moderated(self) -> Within:
        """The same evidence with its variances moderated across the rows (last axis); a row
        without spread stays exact (:func:`judge`): the noisy rows' prior says nothing of it."""
        s2, df = squeeze_var(self.s2, self.df)
        exact = np.asarray(self.s2) <= EXACT_SD ** 2
        return Within(self.est, np.where(exact, 0.0, s2), np.where(exact, self.df, df),
                      self.n_eff)


def paired_within(d: ArrayLike) -> Within:
    """Rows of paired log-differences ``d`` (``... x rows x n``, NaN-padded): the winsorized
    mean and its variance."""
    mean, var, n = robust_mean_var(d)
    return Within(mean, var, n - 1.0, n)


def unpaired_within(base: ArrayLike, head: ArrayLike) -> Within:
    """Rows of unpaired log values (``... x rows x n``): Welch's difference of winsorized means,
    as a unit variance over ``n_eff = 1 / (1/n_b + 1/n_h)`` with Welch's degrees of freedom."""
    mb, vb, nb = robust_mean_var(base)
    mh, vh, nh = robust_mean_var(head)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = vb / nb + vh / nh
        n_eff = 1.0 / (1.0 / nb + 1.0 / nh)
        df = satterthwaite((vb / nb, nb - 1.0), (vh / nh, nh - 1.0))
    return Within(mh - mb, var * n_eff, np.where(np.isfinite(var), df, np.nan), n_eff)


def block_within(d: ArrayLike) -> Within:
    """Rows of paired log-differences by block (``... x rows x blocks x m``, NaN-padded): the
    mean of block means (each block a round of an A/B session) and their spread.

    Differences are winsorized over the whole row first (the variance of the mean then gets the
    sandwich factor of :func:`allele.bench.stats.sandwich`), then averaged per block; the blocks,
    not the pairs, are the units, so whatever a round shares (its two worker processes, the
    machine's mood at the time) counts once. With ``m`` pairs in each of ``R`` blocks, the
    estimate has ``R - 1`` degrees of freedom before moderation."""
    a = np.asarray(d, dtype=np.float64)
    w, f = winsorize(a, axis=(-2, -1))
    with np.errstate(invalid="ignore"):
        counts = np.sum(np.isfinite(w), axis=-1)
        sums = np.nansum(w, axis=-1)
        blocks = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    mean, var, r = mean_var(blocks)
    return Within(mean, sandwich(var, f), r - 1.0, r)


def log_scale(values: Sequence[NDArray[np.float64]]) -> bool:
    """Whether a row's samples (all sides) are all positive, so that it is judged on logs."""
    return all(v.size == 0 or bool(np.all(v > 0)) for v in values)


def to_scale(x: NDArray[np.float64], logs: bool, scale: float) -> NDArray[np.float64]:
    """Samples on the scale of the estimate: logs, or values relative to ``scale`` (the base
    location) when some sample is 0 or negative (then ``ratio = 1 + estimate``)."""
    if logs:
        return np.log(x)
    return x / scale if scale != 0 else x


def location(x: NDArray[np.float64], logs: bool) -> float:
    """The location a table shows: geometric mean of the winsorized samples (arithmetic when
    a sample is not positive)."""
    if x.size == 0:
        return math.nan
    if logs:
        return float(np.exp(np.mean(winsorize(np.log(x))[0])))
    return float(np.mean(winsorize(x)[0]))
