"""The parameter test of :mod:`~allele.analytics.rca_params` for matrices too small to permute.

A permutation p-value over n configurations can only take as many values as there are distinct
ways to deal the parameter's values to the cells: 20 for a two-level parameter over 6 cells, so
the smallest p is 0.05 before any multiplicity correction and the quick matrix (6 evolution
cells, 4 Kraken cells) could never name a cause. When a parameter's cells admit fewer than
:data:`MAX_COARSE_ARRANGEMENTS` arrangements and every configuration has seed-level replicates,
the evidence is weighed instead with what the seeds say about each configuration:

* each configuration's effect ``y_i`` is the 20% trimmed mean of its seed-level
  ``log(after / before)`` (seeds paired between the two runs), with the Tukey-McLaughlin
  sampling variance ``v_i`` of that trimmed mean (:func:`trimmed_location`). The recorded runs
  have wild seeds (the robust z of a seed's log ratio within its cell is beyond 5 for 0.9% of
  wall_s and 2.8% of cpu_user_s seeds, its 99.9th percentile 8.7 and 26; seeds 0 to 2 most
  often): a plain mean moves by ``1/m`` of such an excursion and ``s^2`` by its square, so one
  seed could name a cause or hide one;
* the configurations also differ beyond their seeds (on this shared machine a cell measured
  while another process ran moves by itself): that heterogeneity ``tau^2`` is estimated by
  DerSimonian-Laird from the residuals of the parameter's own model, so a level effect is not
  counted as heterogeneity, and every configuration is weighted by ``1 / (v_i + tau^2)``;
* the statistic is the weighted F of the parameter's levels (or of its rank trend) against the
  intercept, scaled by the Knapp-Hartung residual mean square ``s^2``, which is floored at 1:
  the residual scatter may say the configurations are noisier than ``v_i + tau^2`` (then the
  test is wider), never that they are more precise than their seeds (the floor); the p-value is
  that of F(df_effect, n - p);
* the effect size is the weighted analogue of omega squared, ``(Q_M - df s^2) / (Q_0 + s^2)``.

Measured by ``benchmarks/analytics_real_answers.py`` (and ``tests/analytics/test_rca_small.py``)
on the quick matrix, trimmed effects (plain means before them in brackets). Synthetic
(:func:`~allele.analytics.synthetic_answers.quick_matrix_trial`: run-wide shifts, per-cell drifts
between runs, t(3) seed noise with outliers; 50 trials): no cause on pure noise in 50 of 50 (49),
the shifted parameter named first at +20% / +50% / +100% in 3 / 10 / 19 (2 / 7 / 17); on 400
fresh seeds (5000..5399) no cause in 98.5% (98.75%). Real A/A pairs of the 16 recorded runs (120
pairs, seeds paired): no cause in 116 (116) for wall_s and 113 (120) for cpu_user_s, every false
cause ``target`` (the plain mean's outlier-inflated variances had made it conservative); with a
shift injected into one level of one parameter, named first in cpu_user_s in 9 / 31 / 60
(3 / 22 / 51) of 120 at +20% / +50% / +100%, in wall_s 1 / 5 / 18 (2 / 6 / 17), whose seed
noise is wide rather than wild. Two to three cells per level cannot see a 20% shift through
seed noise of sd 0.5 to 0.9 in ``log(new / base)``: the test answers "no clear cause" there
rather than guess. A parameter of one target is tested over that target's cells only: testing a
Kraken parameter against the target means over all 10 cells, with their residual scatter pooled,
named it at +100% in 88 rather than 60 of 120 cpu_user_s pairs, but on the A/A pairs gave
``reservoir_size`` p < 0.05 in 19 of 120, because the Kraken cells scatter between runs 3 to 6
times more than the evolution cells (median ``tau^2`` 0.077 against 0.013 in wall_s).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from allele.analytics._common import FloatArray

__all__ = ["MAX_COARSE_ARRANGEMENTS", "TRIM", "SmallTest", "arrangements", "trimmed_location",
           "weighted_f_test"]

MAX_COARSE_ARRANGEMENTS = 1000
"""Below this many distinct arrangements of a parameter's values over its cells, a permutation
p-value is too coarse (its smallest value is ``1 / arrangements`` before any correction)."""


TRIM = 0.2
"""Fraction of a configuration's seed log ratios cut from each end by :func:`trimmed_location`."""


def trimmed_location(values: FloatArray, trim: float = TRIM) -> tuple[float, float]:
    """The ``trim`` trimmed mean of ``values`` and its sampling variance (NaN for one value).

    ``g = floor(trim * n)`` values are cut from each end, leaving ``h = n - 2g``; the variance is
    Tukey and McLaughlin's (Yuen's ``d``), ``(n - 1) s_w^2 / (h (h - 1))`` with ``s_w^2`` the
    variance of the sample winsorized at the same ``g``. Below 5 values ``g`` is 0 and both are
    the plain mean and ``s^2 / n``. With 12 seeds, 2 are cut at each end: one wild seed moves
    the estimate by at most the gap to its neighbour, and its variance by a winsorized amount,
    where it moved the mean by ``1/12`` of its excursion and ``s^2`` by its square.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    g = math.floor(trim * n)
    h = n - 2 * g
    location = float(x[g:n - g].mean())
    if h < 2:
        return location, math.nan
    winsorized = np.clip(x, x[g], x[n - 1 - g])
    return location, (n - 1) * float(np.var(winsorized, ddof=1)) / (h * (h - 1))


def arrangements(keys: Sequence[str]) -> int:
    """Distinct ways to deal these parameter values to the cells: ``n! / prod(count!)``."""
    out = math.factorial(len(keys))
    for count in Counter(keys).values():
        out //= math.factorial(count)
    return out


@dataclass(frozen=True, slots=True)
class SmallTest:
    """The weighted F test of one parameter over per-configuration effects."""

    f: float
    p: float
    df_effect: int
    df_error: int
    tau2: float
    """Between-configuration variance beyond the seeds (DerSimonian-Laird)."""
    scale: float
    """Knapp-Hartung residual mean square, floored at 1."""
    omega2: float


def _wls_rss(x: FloatArray, y: FloatArray, w: FloatArray) -> float:
    """Weighted residual sum of squares of the least-squares fit of ``y`` on ``x``."""
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)
    r = (y - x @ coef) * sw
    return float(r @ r)


def _dl_tau2(x: FloatArray, y: FloatArray, v: FloatArray) -> float:
    """DerSimonian-Laird heterogeneity of a meta-regression on ``x`` (method of moments on the
    residual Q with fixed-effect weights: ``(Q_E - (n - p)) / tr(P)``, clipped at 0)."""
    w = 1.0 / v
    n, p = x.shape
    q_e = _wls_rss(x, y, w)
    xtw = x.T * w
    trace = float(w.sum() - np.trace(np.linalg.pinv(xtw @ x) @ (xtw * w) @ x))
    return max(0.0, (q_e - (n - p)) / trace) if trace > 0 else 0.0


def weighted_f_test(effects: FloatArray, variances: FloatArray, design: FloatArray,
                    df_effect: int, *, levels: bool) -> SmallTest:
    """Test ``design`` (one-hot levels when ``levels``, else a centred trend column) against
    the intercept on per-configuration ``effects`` with sampling ``variances`` (module docs).

    A variance of 0 (identical seeds) is floored at ``1e-12`` times the mean squared effect, so
    the configuration weighs heavily but finitely. With no residual degrees of freedom the
    answer is p = 1 and no effect.
    """
    y = np.asarray(effects, dtype=np.float64)
    n = y.size
    x = design if levels else np.column_stack((np.ones(n), design))
    df_error = n - x.shape[1]
    if df_error <= 0 or df_effect <= 0:
        return SmallTest(0.0, 1.0, df_effect, max(df_error, 0), 0.0, 1.0, 0.0)
    tiny = 1e-12 * max(float(np.mean(y**2)), 1e-12)
    v = np.maximum(np.asarray(variances, dtype=np.float64), tiny)
    tau2 = _dl_tau2(x, y, v)
    w = 1.0 / (v + tau2)
    rss_full = _wls_rss(x, y, w)
    rss_null = _wls_rss(np.ones((n, 1)), y, w)
    q_m = max(rss_null - rss_full, 0.0)
    scale = max(rss_full / df_error, 1.0)
    f = q_m / df_effect / scale
    from scipy import stats

    p = float(stats.f.sf(f, df_effect, df_error))
    omega2 = max(0.0, (q_m - df_effect * scale) / (rss_null + scale))
    return SmallTest(float(f), p, df_effect, df_error, float(tau2), float(scale), float(omega2))
