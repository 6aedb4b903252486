"""Array statistics behind a comparison: rank tests, bootstrap intervals of a ratio of means,
far-out clipping and Benjamini-Hochberg, vectorised over many comparisons at once.

Pure functions over ``m x n`` arrays (one row per comparison); no I/O and no verdicts (those are
:mod:`allele.bench.estimate`'s).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

EXACT_MAX_N = 50
"""Up to this many samples a rank test's p-value is exact; beyond, the normal approximation."""
_CHUNK = 256  # comparisons per bootstrap block (bounds memory at chunk x n_boot floats)


@dataclass(frozen=True, slots=True)
class Batch:
    """Raw statistics of a batch of comparisons sharing sample sizes and pairing."""

    median_base: NDArray[np.float64]
    median_head: NDArray[np.float64]
    mean_base: NDArray[np.float64]
    mean_head: NDArray[np.float64]
    ratio: NDArray[np.float64]
    ci_low: NDArray[np.float64]
    ci_high: NDArray[np.float64]
    se: NDArray[np.float64]
    p_value: NDArray[np.float64]
    min_p: float


def rel_ratio(head: NDArray[np.float64], base: NDArray[np.float64]) -> NDArray[np.float64]:
    """``1 + (head - base) / |base|``; 1 when both are 0, +-inf when only base is 0."""
    if np.all(base > 0):
        return np.asarray(head / base, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 1.0 + (head - base) / np.abs(base)
    both_zero = (base == 0) & (head == 0)
    if np.any(both_zero):
        r[both_zero] = 1.0
    return np.asarray(r, dtype=np.float64)


def _boot_counts(rng: np.random.Generator, n: int, n_boot: int) -> NDArray[np.float64]:
    """``n_boot`` x ``n`` multinomial resample weights (each row sums to 1)."""
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)
    return np.asarray(counts, dtype=np.float64) / n


def _min_p_mwu(n1: int, n2: int) -> float:
    if max(n1, n2) <= EXACT_MAX_N:
        return min(1.0, 2.0 / math.comb(n1 + n2, n1))
    # asymptotic: complete separation
    u = n1 * n2 / 2.0
    sd = math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0)
    return float(2.0 * stats.norm.sf((u - 0.5) / sd))


def _min_p_wilcoxon(n: int) -> float:
    if n <= EXACT_MAX_N:
        return min(1.0, 2.0 / 2.0**n)
    mean = n * (n + 1) / 4.0
    sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)
    return float(2.0 * stats.norm.sf(mean / sd))


def pvalues(base: NDArray[np.float64], head: NDArray[np.float64],
             paired: bool) -> NDArray[np.float64]:
    m = base.shape[0]
    p = np.ones(m, dtype=np.float64)
    if base.shape[1] < 2 or head.shape[1] < 2:
        return np.full(m, np.nan)
    if paired:
        diff = head - base
        nonzero = np.any(diff != 0, axis=1)
        # The exact null distribution holds without zero or tied differences; otherwise the
        # normal approximation with tie correction. (scipy's method="auto" would run a
        # permutation test for those rows: 20+ s for a hundred rows of twelve pairs.)
        mag = np.sort(np.abs(diff), axis=1)
        clean = ~np.any(mag == 0, axis=1) & ~np.any(mag[:, 1:] == mag[:, :-1], axis=1)
        for rows, method in ((nonzero & clean & (diff.shape[1] <= EXACT_MAX_N), "exact"),
                             (nonzero & ~(clean & (diff.shape[1] <= EXACT_MAX_N)), "approx")):
            if np.any(rows):
                with np.errstate(divide="ignore", invalid="ignore"):
                    res = stats.wilcoxon(head[rows], base[rows], axis=1,
                                         zero_method="wilcox", method=method)
                p[rows] = np.asarray(res.pvalue, dtype=np.float64)
        return np.nan_to_num(p, nan=1.0)
    pooled = np.concatenate([base, head], axis=1)
    constant = np.all(pooled == pooled[:, :1], axis=1)
    srt = np.sort(pooled, axis=1)
    ties = np.any(srt[:, 1:] == srt[:, :-1], axis=1)
    exact = ~ties & ~constant & (max(base.shape[1], head.shape[1]) <= EXACT_MAX_N)
    asym = ~exact & ~constant
    if np.any(exact):
        p[exact] = stats.mannwhitneyu(head[exact], base[exact], axis=1,
                                      method="exact").pvalue
    if np.any(asym):
        p[asym] = stats.mannwhitneyu(head[asym], base[asym], axis=1,
                                     method="asymptotic").pvalue
    return np.nan_to_num(p, nan=1.0)


FAR_OUT = 3.0
"""Tukey's far-out fences: values beyond ``Q1 - 3 IQR`` / ``Q3 + 3 IQR`` are clipped."""


def clip_far_outliers(x: NDArray[np.float64], k: float = FAR_OUT) -> NDArray[np.float64]:
    """Each row with its far-out values clipped to the row's fences (Tukey, ``k`` IQRs).

    Timing samples have heavy right tails (a page fault, a busy neighbour): one 100x round
    moves a mean by 10% in a sample of 1000. Clipping only what lies beyond the far-out
    fences leaves well-behaved samples (nearly) untouched - for normal data a fence is 4.7
    standard deviations from the median, though with 10 samples the quartiles are rough and
    about 1% of values get clipped by a fraction of a standard deviation - and makes the mean
    robust against gross outliers.
    """
    if x.shape[1] < 4:
        return x
    q1, q3 = np.percentile(x, [25.0, 75.0], axis=1, keepdims=True)
    iqr = q3 - q1
    return np.clip(x, q1 - k * iqr, q3 + k * iqr)


def batch_stats(base: NDArray[np.float64], head: NDArray[np.float64], *, paired: bool,
                 n_boot: int, rng: np.random.Generator) -> Batch:
    """Statistics for ``m`` comparisons: ``base`` is m x n1, ``head`` m x n2."""
    m, n1 = base.shape
    n2 = head.shape[1]
    medians = np.median(base, axis=1), np.median(head, axis=1)
    pv = pvalues(base, head, paired)  # rank tests on the raw samples
    base = clip_far_outliers(base)
    head = clip_far_outliers(head)
    mean_b = base.mean(axis=1)
    mean_h = head.mean(axis=1)
    ratio = rel_ratio(mean_h, mean_b)
    # n x n_boot weights; einsum rather than BLAS: the products are small, and threaded BLAS
    # spends more time synchronising its threads than multiplying
    cb = np.ascontiguousarray(_boot_counts(rng, n1, n_boot).T)
    ch = cb if paired else np.ascontiguousarray(_boot_counts(rng, n2, n_boot).T)
    lo_i = math.floor(0.025 * (n_boot - 1))
    hi_i = math.ceil(0.975 * (n_boot - 1))
    ci_low = np.empty(m)
    ci_high = np.empty(m)
    se = np.empty(m)
    for start in range(0, m, _CHUNK):
        sl = slice(start, min(m, start + _CHUNK))
        rb = np.einsum("ij,jk->ik", base[sl], cb)  # (chunk, n_boot) resample means
        rh = np.einsum("ij,jk->ik", head[sl], ch)
        r = np.partition(rel_ratio(rh, rb), (lo_i, hi_i), axis=1)
        ci_low[sl] = r[:, lo_i]
        ci_high[sl] = r[:, hi_i]
        finite = np.isfinite(r)
        if np.all(finite):
            se[sl] = r.std(axis=1)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-inf rows give NaN
                se[sl] = np.nanstd(np.where(finite, r, np.nan), axis=1)
    min_p = _min_p_wilcoxon(n1) if paired else _min_p_mwu(n1, n2)
    if n1 < 2 or n2 < 2:
        min_p = 1.0
    return Batch(medians[0], medians[1], mean_b, mean_h, ratio, ci_low, ci_high, se, pv, min_p)


def bh(p: NDArray[np.float64]) -> NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values; NaN p-values stay NaN and are not counted."""
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if np.any(ok):
        q[ok] = stats.false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    return q
