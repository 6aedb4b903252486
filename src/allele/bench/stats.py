"""Array statistics behind a verdict: robust block means, variance moderation, t-based intervals
and interval-null tests, equivalence tests, Benjamini-Hochberg and the minimum detectable effect.

Pure functions over arrays; no I/O and no verdicts (those are :mod:`allele.bench.estimate`'s and
:mod:`allele.bench.compare`'s). Every function works along the last axis and broadcasts over the
leading ones, so a simulation can judge a thousand matrices in one call; ``NaN`` marks a missing
value (ragged rows are NaN-padded).

Why t on log values and not the bootstrap: the percentile bootstrap of a ratio of means covered
81-87% at 5 samples (it cannot know the tails it never resampled), and a rank test on 12 pairs
cannot go below p = 4.9e-4, which one lone regression needs in a family of more than ~100 rows.
A t interval on the log-ratio of *block* means is exact for normal blocks and close to nominal
after winsorizing; its tail is continuous, and the moderated variance (:func:`squeeze_var`) gives
a row with few blocks the degrees of freedom of the whole matrix.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats

FloatArray = NDArray[np.float64]

WINSOR_K = 1.5
"""Values beyond ``median +- k`` robust standard deviations (1.4826 MAD) are pulled in to that
fence, with ``k = WINSOR_K`` from 25 values on (Huber's choice, 95% efficient on clean normal
data) and wider fences for fewer (:func:`fence_k`). A 2x timing outlier is a log jump of 0.69,
16 standard deviations of a 3%-noise cell: pulled in to the fence, it moves a mean by little.
The variance of the mean is then the M-estimator's sandwich, ``var / (1 - f)^2`` with ``f`` the
share of values clipped (:func:`robust_mean_var`): without it, 5 winsorized pairs gave 95%
intervals that covered 88%."""
MAD_TO_SD = 1.482602218505602
MAX_DF = 1e6
"""Degrees of freedom beyond which the t distribution is taken as normal."""


def fence_k(n: ArrayLike) -> FloatArray:
    """The winsorizing fence (in robust standard deviations) for ``n`` values: 1.5 from 25 on,
    widening by 0.1 per missing value up to 4.0 (the MAD of 5 values varies by half its size,
    and fences that tight clip good data: 95% intervals of 5 pairs covered 89% at 2.0)."""
    return np.asarray(np.clip(WINSOR_K + 0.1 * (25.0 - np.asarray(n, dtype=np.float64)),
                              WINSOR_K, 4.0))


def _nan_median(x: FloatArray, axis: int = -1, keepdims: bool = False) -> FloatArray:
    """NaN-ignoring median along ``axis`` by one sort (NaN sorts last): for the short rows of
    benchmark samples five times faster than ``np.median``'s partition, and than
    ``np.nanmedian`` by far. All-NaN rows give NaN."""
    a = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    if a.shape[-1] == 0:
        med = np.full((*a.shape[:-1], 1), np.nan)
    else:
        srt = np.sort(a, axis=-1)
        n = np.sum(np.isfinite(srt), axis=-1, keepdims=True)
        lo = np.take_along_axis(srt, np.maximum((n - 1) // 2, 0), axis=-1)
        hi = np.take_along_axis(srt, np.minimum(n // 2, a.shape[-1] - 1), axis=-1)
        med = np.where(n > 0, 0.5 * (lo + hi), np.nan)
    med = np.moveaxis(med, -1, axis)
    return np.asarray(med if keepdims else np.squeeze(med, axis=axis), dtype=np.float64)


_MAD_NOISE = 1e-9
"""A MAD under this share of a row's magnitude is floating-point noise (:func:`winsorize`)."""


def winsorize(x: ArrayLike, axis: int | tuple[int, ...] = -1,
              k: float | None = None) -> tuple[FloatArray, FloatArray]:
    """``(clipped, f)``: ``x`` with values beyond its robust fences (median +- ``k`` * 1.4826
    MAD over ``axis``; ``k`` from :func:`fence_k` by default) pulled in to them, and the share
    ``f`` of each row's values that moved. NaN stays NaN. A row whose MAD is 0 (more than half
    its values equal) is left as is: there is no scale to clip by. So is a row whose MAD is
    floating-point noise, under 1e-9 of the larger of ``|median|`` and its largest deviation
    (ulps around one repeated value): clipping by it pulled every other value to within a
    few ulps of the median, the opposite of what an exact 0 does."""
    a = np.asarray(x, dtype=np.float64)
    axes = axis if isinstance(axis, tuple) else (axis,)
    flat = np.moveaxis(a, axes, tuple(range(-len(axes), 0)))
    shape = flat.shape
    flat = flat.reshape(*shape[:a.ndim - len(axes)], -1)
    n = np.sum(np.isfinite(flat), axis=-1, keepdims=True)
    med = _nan_median(flat, keepdims=True)
    dev = np.abs(flat - med)
    mad = _nan_median(dev, keepdims=True) * MAD_TO_SD
    reach = np.fmax(np.abs(med), np.fmax.reduce(dev, axis=-1, keepdims=True, initial=-np.inf))
    kk = fence_k(n) if k is None else k
    with np.errstate(invalid="ignore"):
        half = np.where(mad > _MAD_NOISE * reach, kk * mad, np.inf)
        out = np.clip(flat, med - half, med + half)
        moved = np.sum(np.isfinite(flat) & (out != flat), axis=-1) / np.maximum(n[..., 0], 1)
    out = np.where(np.isnan(flat), np.nan, out).reshape(shape)
    return (np.asarray(np.moveaxis(out, tuple(range(-len(axes), 0)), axes), dtype=np.float64),
            np.asarray(moved, dtype=np.float64))


def sandwich(var: ArrayLike, f: ArrayLike) -> FloatArray:
    """The variance of a winsorized mean from that of its winsorized values: ``var / (1 -
    f)^2`` (the M-estimator's sandwich; ``f`` capped at one half)."""
    return np.asarray(np.asarray(var) / np.maximum(1.0 - np.asarray(f), 0.5) ** 2)


def robust_mean_var(x: ArrayLike, axis: int = -1) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(winsorized mean, sandwich unit variance, count)`` along the last axis: the variance
    of the mean is ``var / count``."""
    w, f = winsorize(x, axis)
    mean, var, n = mean_var(w, axis)
    return mean, sandwich(var, f), n


def mean_var(x: ArrayLike, axis: int = -1) -> tuple[FloatArray, FloatArray, FloatArray]:
    """NaN-aware ``(mean, variance with ddof 1, count)`` along ``axis`` (variance NaN below 2
    values)."""
    a = np.asarray(x, dtype=np.float64)
    n = np.sum(np.isfinite(a), axis=axis).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(a, axis=axis) / n
        dev = a - np.expand_dims(mean, axis)
        var = np.nansum(dev * dev, axis=axis) / (n - 1.0)
    mean = np.where(n > 0, mean, np.nan)
    var = np.where(n > 1, var, np.nan)
    return np.asarray(mean), np.asarray(var), n


# --- moderated variances (empirical Bayes, Smyth 2004) ----------------------------------------


def _trigamma_inverse(y: FloatArray) -> FloatArray:
    """``x`` with ``trigamma(x) = y`` (y > 0), by Newton's method as in limma."""
    x = np.where(y > 1e7, 1.0 / np.sqrt(np.maximum(y, 1e-300)),
                 np.where(y < 1e-6, 1.0 / np.maximum(y, 1e-300), 0.5 + 1.0 / y))
    for _ in range(50):
        tri = special.polygamma(1, x)
        dif = tri * (1.0 - tri / y) / special.polygamma(2, x)
        x = x + dif
        if np.all(np.abs(-dif / x) < 1e-8):
            break
    return np.asarray(x, dtype=np.float64)


MAX_PRIOR_DF = 1000.0
"""The prior's degrees of freedom are capped: rows keep a voice of their own."""


def squeeze_var(s2: ArrayLike, df: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Moderated variances along the last axis: each row's ``s2`` (with ``df``) shrunk towards
    a scaled inverse-chi-square prior fitted to all rows of that axis (limma's ``squeezeVar``).

    Returns ``(s2_post, df_post)`` with ``df_post = df + d0``. A row with 2 blocks alone has 1
    degree of freedom and a 95% t quantile of 12.7; in a matrix of 100 rows of one metric whose
    noise levels agree, the prior adds hundreds. When they disagree, the fitted ``d0`` is small
    and little changes. Rows without a finite positive ``s2`` do not inform the prior; fewer
    than 3 informative rows leave everything as it was.
    """
    s = np.asarray(s2, dtype=np.float64)
    d = np.broadcast_to(np.asarray(df, dtype=np.float64), s.shape)
    ok = np.isfinite(s) & (s > 0) & np.isfinite(d) & (d > 0)
    g = ok.sum(axis=-1, keepdims=True).astype(np.float64)
    half = np.where(ok, d / 2.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.where(ok, np.log(np.where(ok, s, 1.0)) - special.digamma(half) + np.log(half),
                     0.0)
        emean = e.sum(axis=-1, keepdims=True) / g
        evar = (np.where(ok, (e - emean) ** 2, 0.0).sum(axis=-1, keepdims=True) / (g - 1.0)
                - np.where(ok, special.polygamma(1, half), 0.0).sum(axis=-1, keepdims=True) / g)
    usable = g >= 3
    infinite = usable & (evar <= 0)
    d0 = np.where(usable & ~infinite,
                  2.0 * _trigamma_inverse(np.where(evar > 0, evar, 1.0)), 0.0)
    d0 = np.where(infinite, MAX_PRIOR_DF, np.minimum(d0, MAX_PRIOR_DF))
    with np.errstate(divide="ignore", invalid="ignore"):
        s0 = np.exp(emean + special.digamma(np.maximum(d0, 1e-8) / 2.0)
                    - np.log(np.maximum(d0, 1e-8) / 2.0))
        post = np.where(np.isfinite(s) & (d0 > 0), (d0 * s0 + d * np.nan_to_num(s)) / (d0 + d),
                        s)
    post = np.where(np.isfinite(s), post, np.where(d0 > 0, s0, np.nan))
    df_post = np.where(np.isfinite(s), d + d0, np.where(d0 > 0, d0, 0.0))
    return np.asarray(post, dtype=np.float64), np.asarray(df_post, dtype=np.float64)


def satterthwaite(*parts: tuple[ArrayLike, ArrayLike]) -> FloatArray:
    """Welch-Satterthwaite degrees of freedom of a sum of variance estimates ``(var, df)``."""
    total = sum(np.asarray(v, dtype=np.float64) for v, _ in parts)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = sum(np.where(np.asarray(v) > 0, np.asarray(v, dtype=np.float64) ** 2
                             / np.asarray(d, dtype=np.float64), 0.0) for v, d in parts)
        out = np.where(np.asarray(denom) > 0, np.asarray(total) ** 2 / denom, MAX_DF)
    return np.asarray(np.minimum(out, MAX_DF), dtype=np.float64)


def robust_between(y: ArrayLike, w: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """The between-block variance ``tau2`` of estimates ``y`` (centred at 0) with known sampling
    variances ``w``, along the last axis: the ``tau2`` at which the median of ``y^2 / (w +
    tau2)`` equals that of a chi-square with 1 degree of freedom (Paule-Mandel with a median,
    so that a few real changes among the rows do not count as noise). Returns ``(tau2, df)``
    with ``df`` about 37% of the rows (the efficiency of a median-based scale)."""
    yy = np.asarray(y, dtype=np.float64)
    ww = np.asarray(w, dtype=np.float64)
    ok = np.isfinite(yy) & np.isfinite(ww)
    g = ok.sum(axis=-1).astype(np.float64)
    target = stats.chi2.ppf(0.5, 1)

    def med(t2: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(ok, yy * yy / (ww + t2[..., None]), np.nan)
        return _nan_median(np.where(np.isinf(z), 1e300, z))

    lo = np.zeros(yy.shape[:-1])
    hi = np.maximum(np.nan_to_num(_nan_median(np.where(ok, yy * yy, np.nan))) / target * 4.0,
                    1e-300)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        above = med(mid) > target
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    tau2 = np.where(med(np.zeros_like(lo)) > target, 0.5 * (lo + hi), 0.0)
    tau2 = np.where(g >= 3, tau2, np.nan)
    return np.asarray(tau2), np.asarray(np.where(g >= 3, np.maximum(1.0, 0.37 * (g - 1)), 0.0))


# --- tests and intervals ----------------------------------------------------------------------


def t_quantile(p: float | FloatArray, df: ArrayLike) -> FloatArray:
    """The ``p`` quantile of Student's t with ``df`` (normal beyond :data:`MAX_DF`)."""
    d = np.asarray(df, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        q = stats.t.ppf(p, np.clip(d, 1e-9, MAX_DF))
    return np.asarray(np.where(d >= MAX_DF, stats.norm.ppf(p), q), dtype=np.float64)


def _t_sf(x: FloatArray, df: FloatArray) -> FloatArray:
    return np.asarray(stats.t.sf(x, np.clip(df, 1e-9, MAX_DF)), dtype=np.float64)


def interval_pvalue(est: ArrayLike, se: ArrayLike, df: ArrayLike, delta: ArrayLike) -> FloatArray:
    """p-value of ``H0: |theta| <= delta`` against ``|theta| > delta`` for a t statistic.

    The rejection region is ``|est| >= c`` and the largest probability of it under the null is at
    the boundary ``theta = +-delta``: ``P(T >= (c - delta)/se) + P(T <= (-c - delta)/se)``. With
    ``delta = 0`` this is the two-sided t test; with a floor it asks "moved by more than the
    floor", so an A/A row far inside the floor has p near 1. ``se = 0`` gives 0 or 1."""
    e, s, d, dl = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64)
                                        for v in (est, se, df, delta)))
    c = np.abs(e)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = _t_sf((c - dl) / s, d) + _t_sf((c + dl) / s, d)
    p = np.where(s > 0, p, np.where(c > dl, 0.0, 1.0))
    return np.asarray(np.where(np.isfinite(e) & np.isfinite(s), np.minimum(p, 1.0), np.nan))


def t_interval(est: ArrayLike, se: ArrayLike, df: ArrayLike,
               level: float = 0.95) -> tuple[FloatArray, FloatArray]:
    """The two-sided ``level`` t interval ``est -+ t * se``."""
    half = t_quantile(0.5 + level / 2.0, df) * np.asarray(se, dtype=np.float64)
    e = np.asarray(est, dtype=np.float64)
    return e - half, e + half


def equivalent(est: ArrayLike, se: ArrayLike, df: ArrayLike, delta: ArrayLike,
               alpha: float) -> NDArray[np.bool_]:
    """Two one-sided tests (TOST) at level ``alpha``: the ``1 - 2 alpha`` interval lies inside
    ``[-delta, delta]``. Only this earns ``unchanged``."""
    lo, hi = t_interval(est, se, df, 1.0 - 2.0 * alpha)
    dl = np.asarray(delta, dtype=np.float64)
    return np.asarray(np.isfinite(lo) & (lo >= -dl) & (hi <= dl))


def bh(p: ArrayLike) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values along the last axis; NaN p-values stay NaN and are
    not counted in the family."""
    a = np.asarray(p, dtype=np.float64)
    order = np.argsort(np.where(np.isnan(a), np.inf, a), axis=-1, kind="stable")
    srt = np.take_along_axis(a, order, axis=-1)
    m = np.sum(np.isfinite(a), axis=-1, keepdims=True).astype(np.float64)
    rank = np.arange(1, a.shape[-1] + 1, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        adj = np.where(np.isfinite(srt), srt * m / rank, np.inf)
    adj = np.minimum.accumulate(adj[..., ::-1], axis=-1)[..., ::-1]
    out = np.empty_like(a)
    np.put_along_axis(out, order, np.minimum(adj, 1.0), axis=-1)
    return np.asarray(np.where(np.isnan(a), np.nan, out))


POWER = 0.8
"""The power a minimum detectable effect is detected with."""


def power_noncentrality(alpha: ArrayLike, df: ArrayLike, power: float = POWER) -> FloatArray:
    """The noncentrality ``lambda`` at which a one-sided t test at level ``alpha`` rejects with
    probability ``power``: ``t_crit + z_power * sqrt(1 + t_crit^2 / (2 df))``, the normal
    approximation of the noncentral t (within 1% of power of ``scipy.stats.nct`` from 3 degrees
    of freedom on; 1,000 times faster)."""
    d = np.asarray(df, dtype=np.float64)
    tc = t_quantile(1.0 - np.asarray(alpha, dtype=np.float64), d)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.sqrt(1.0 + tc * tc / (2.0 * np.maximum(d, 1e-9)))
    return np.asarray(tc + stats.norm.ppf(power) * spread, dtype=np.float64)


def log_floor(floor: ArrayLike) -> FloatArray:
    """A relative floor (0.05 = 5%) as a symmetric bound on the log-ratio: ``log(1 + floor)``."""
    return np.asarray(np.log1p(np.asarray(floor, dtype=np.float64)))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of ``k`` successes in ``n`` trials."""
    if n <= 0:
        return (0.0, 1.0)
    a = (1.0 - level) / 2.0
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1.0 - a, k + 1, n - k))
    return lo, hi


def finite_or(x: float, default: float) -> float:
    """``x`` when finite, else ``default``."""
    return x if math.isfinite(x) else default


NULL_REACH = 1.25
"""A change of identical code in a history stands for changes up to this factor larger (in log
size): no two runs that go wrong slow a cell by exactly the same factor, and the largest the
history happened to record is not the largest there is."""


def null_share(null: ArrayLike, z: FloatArray) -> FloatArray:
    """The share of the finite values of ``null`` (``... x rows or 1 x values``) that are
    positive and reach each ``z`` (``... x rows``; :data:`NULL_REACH`); 0 where there are
    none."""
    nz = np.asarray(null, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        hits = np.sum((nz > 0) & (NULL_REACH * nz >= z[..., None]), axis=-1)
    n = np.sum(np.isfinite(nz), axis=-1)
    return np.where(n > 0, hits / np.maximum(n, 1), 0.0)


def pad_rows(rows: list[FloatArray]) -> FloatArray | None:
    """1-D arrays as the rows of one NaN-padded array (None when every one is empty)."""
    width = max((v.size for v in rows), default=0)
    if width == 0:
        return None
    out = np.full((len(rows), width), np.nan)
    for i, v in enumerate(rows):
        out[i, :v.size] = v
    return out
