"""Root-cause ranking: which metric moved first, which parameter explains a regression, what
changed in the environment.

* :func:`rank_metric_causes`: given metric series and the index of an anomaly, each metric's
  change point is located in the ``max_lag`` points before the anomaly (the split maximising a
  two-sample z against a robust noise scale). Metrics that changed significantly are ranked by
  how early they moved (lead), how much (magnitude), and by the lead-lag cross-correlation of
  their differenced series with the target's (positive lag = the candidate leads).
* :func:`rank_parameter_causes`: per-cell regression effects (``log(after / before)``) are
  explained by each matrix parameter with a one-way ANOVA (eta squared = share of the variance
  explained, F and p) and a depth-2 decision tree (impurity importance, summed per parameter).
* :func:`diff_environments`: flattened environment dictionaries of two runs, differences ranked
  by how likely they matter for performance (versions, CPU, platform first).

Every result is a :class:`Cause` with a score in [0, 1] and an evidence sentence; a metric
candidate that did not vary near the anomaly is listed last as kind ``"no data"``, not a cause.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from allele.analytics._common import FloatArray, as_series, mad_sigma
from allele.analytics.rca_params import Cause, ParameterVerdict, explain_parameters
from allele.errors import AnalyticsError

__all__ = [
    "Cause",
    "RootCauseAnalyzer",
    "anomaly_onset",
    "causal_align",
    "diff_environments",
    "explain_parameter_change",
    "lead_lag",
    "rank_metric_causes",
    "rank_parameter_causes",
    "unexplained_shift",
]


def _robust_sigma(x: FloatArray) -> float:
    """Robust spread of the baseline levels (so slow oscillations count as normal variation)."""
    s = mad_sigma(x)
    return s if s > 0 else (float(np.std(x)) or 1.0)


def _long_run_factor(x: FloatArray) -> float:
    """``sqrt((1 + phi) / (1 - phi))`` for the lag-1 autocorrelation ``phi`` of a baseline.

    A mean of m autocorrelated points varies ``(1 + phi) / (1 - phi)`` times more than m
    independent ones: AR(0.9) metrics wander by 4.4 times the naive standard error, and a
    change-point z computed without this factor listed a false cause in 87% of trials on
    8 such metrics with no cause at all. phi is bias-corrected (``+ (1 + 3 phi) / m``, Kendall's
    first-order correction) and clipped to [0, 0.97].
    """
    d = x - x.mean()
    denom = float(d @ d)
    if x.size < 8 or denom == 0.0:
        return 1.0
    phi = float(d[1:] @ d[:-1]) / denom
    phi = min(max(phi + (1 + 3 * phi) / x.size, 0.0), 0.97)
    return math.sqrt((1 + phi) / (1 - phi))


def _resolution(x: FloatArray) -> float:
    """The smallest difference of two means of ``x`` that is not floating-point rounding:
    ``size * eps * max|x|``, the worst error of a sum of its values.

    Below it a "change" is noise of the arithmetic: a candidate carried forward at 20.6024 for
    over 100 points (it stopped being recorded) was named the cause, "changed at 330 ... by
    -7.11e-14 (20.0 sigma, z=11.1)", its sigma being the 3.6e-15 standard deviation of one
    value repeated."""
    return float(x.size * np.finfo(np.float64).eps * np.max(np.abs(x))) if x.size else 0.0


def _change_point(x: FloatArray, lo: int, hi: int, start: int, sigma: float
                  ) -> tuple[int, float, float]:
    """Best split k in [lo, hi] of x[start:hi+1]: (k, z, mean_after - mean_before).

    The segment is summed relative to its first value, so a constant stretch sums to exact
    zeros and its means cannot differ by rounding."""
    seg = x[start:hi + 1] - x[start]
    c = np.concatenate(([0.0], np.cumsum(seg)))
    m = seg.size
    ks = np.arange(max(lo - start, 2), min(hi - start, m - 1) + 1)
    if ks.size == 0:
        return hi, 0.0, 0.0
    before = c[ks] / ks
    after = (c[m] - c[ks]) / (m - ks)
    z = np.abs(after - before) / (sigma * np.sqrt(1.0 / ks + 1.0 / (m - ks)))
    i = int(np.argmax(z))
    return int(ks[i]) + start, float(z[i]), float(after[i] - before[i])


def anomaly_onset(flagged: Sequence[int], max_gap: int = 3) -> int:
    """The first point of the last episode of ``flagged`` indices (ascending): flags at most
    ``max_gap`` points apart are one episode. A root cause moves before the anomaly starts,
    and the last flag of a level shift can be far into it: rcatel's target shifted at 355 and
    stayed flagged to 399, 44 points after its cause moved, beyond the window searched."""
    if not flagged:
        raise AnalyticsError("no flagged points")
    idx = sorted(int(i) for i in flagged)
    start = idx[-1]
    for prev, cur in itertools.pairwise(reversed(idx)):
        if prev - cur > max_gap:
            break
        start = cur
    return start


def causal_align(times: ArrayLike, sample_times: ArrayLike, values: ArrayLike) -> FloatArray:
    """``values`` sampled at ``sample_times`` (ascending) read at ``times``: at each time, the
    last value sampled at or before it (the first value before the first sample).

    Linear interpolation reads the next sample too, so a change is dated before it happened: a
    candidate sampled every 25 s that changed at 3,500 s was dated one 10-s step early (349)
    and ranked above the true cause. A causal ranking must not use values after a time to date
    a change at that time."""
    t = np.asarray(times, dtype=np.float64)
    st = np.asarray(sample_times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    idx = np.clip(np.searchsorted(st, t, side="right") - 1, 0, v.size - 1)
    out: FloatArray = v[idx]
    return out


def lead_lag(candidate: ArrayLike, target: ArrayLike, max_lag: int) -> tuple[int, float]:
    """Lag (in steps) at which ``candidate``'s differences best correlate with ``target``'s,
    and that correlation. A positive lag means the candidate moves first."""
    a = np.diff(as_series(candidate, name="candidate"))
    b = np.diff(as_series(target, name="target"))
    n = min(a.size, b.size)
    a, b = a[-n:], b[-n:]
    best = (0, 0.0)
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            x, y = a[: n - lag], b[lag:]
        else:
            x, y = a[-lag:], b[: n + lag]
        if x.size < 4 or np.std(x) == 0 or np.std(y) == 0:
            continue
        r = float(np.corrcoef(x, y)[0, 1])
        if abs(r) > abs(best[1]):
            best = (lag, r)
    return best


def _significant_r(r: float, n: int, max_lag: int, alpha: float = 0.05) -> bool:
    """Whether a cross-correlation ``r`` of ``n`` pairs, the largest of ``2 max_lag + 1`` lags,
    is beyond what white noise gives at ``alpha`` (Bonferroni over the lags).

    Step changes give one large difference each among noise, and the largest ``|r|`` over 41
    lags of 80 noisy differences is about 0.3 by chance: rcatel's cause was reported as
    "changed at 350, 5 steps before r_target" and "leads r_target by 13 steps (r=-0.30)"."""
    from scipy import stats

    if n < 4:
        return False
    crit = float(stats.norm.ppf(1.0 - alpha / (2.0 * (2 * max_lag + 1)))) / math.sqrt(n)
    return abs(r) > crit


def _lead_lag_evidence(x: FloatArray, t: FloatArray, max_lag: int, target: str
                       ) -> tuple[float, str]:
    """(lead-lag score, evidence text) of ``x`` against the target ``t``: nothing unless the
    cross-correlation is beyond chance (:func:`_significant_r`)."""
    lag, r = lead_lag(x, t, max_lag)
    if lag == 0 or not _significant_r(r, x.size - 1 - abs(lag), max_lag):
        return 0.0, ""
    if lag > 0:
        return abs(r), f"; leads {target} by {lag} steps (r={r:+.2f})"
    return 0.0, f"; lags {target} by {-lag} steps (r={r:+.2f})"


def rank_metric_causes(
    metrics: Mapping[str, ArrayLike],
    anomaly_index: int,
    target: str | None = None,
    *,
    max_lag: int = 20,
    baseline: int = 60,
    z_threshold: float = 5.0,
) -> list[Cause]:
    """Rank the metrics that moved before the anomaly at ``anomaly_index`` (see module docs).

    ``target`` is the metric where the anomaly was seen; it is excluded from the candidates and
    used for the lead-lag evidence. Score: ``0.8 lead + 0.1 magnitude + 0.1 lead-lag``, where
    lead = ``exp(-(onset - earliest onset) / 2)`` (the first mover gets 1, one that moved two
    steps later 0.37), magnitude = ``1 - exp(-shift / (4 sigma))``, and lead-lag = the
    cross-correlation of the differences when the metric leads the target and it is beyond
    chance over the lags tried (:func:`_significant_r`; 0 otherwise, and not shown). Change
    points are searched
    in the ``max_lag`` points before the anomaly against the ``baseline`` points before those,
    with the noise scale widened for autocorrelation (:func:`_long_run_factor`, estimated on up
    to ``4 * baseline`` points before the window: 60 points underestimate phi); metrics
    without a significant change (z <= ``z_threshold``) are not listed. A change no larger than
    the floating-point resolution of the metric's scale (:func:`_resolution`) is no change, and
    a metric constant up to it in the window searched comes last as kind ``"no data"`` (score
    0, :func:`_no_data`). The answer "no clear cause" is a list without a ``"metric"`` cause.
    """
    if not metrics:
        raise AnalyticsError("no metrics given")
    series = {k: as_series(v, name=k) for k, v in metrics.items()}
    n = min(s.size for s in series.values())
    a = int(anomaly_index)
    if not 0 <= a < n:
        raise AnalyticsError(f"anomaly_index {a} is outside the series (length {n})")
    lo = max(a - max_lag, 3)
    start = max(0, lo - baseline)
    if lo - start < 5:
        raise AnalyticsError("not enough history before the anomaly for a baseline")
    if target is not None and target not in series:
        raise AnalyticsError(f"target metric {target!r} not among the metrics")
    history = max(0, lo - 4 * baseline)
    tgt_onset: int | None = None
    if target is not None:
        t = series[target]
        base_t = t[start:lo]
        k, z, _ = _change_point(t, lo, a, start,
                                _robust_sigma(base_t) * _long_run_factor(t[history:lo]))
        tgt_onset = k if z > z_threshold else None
    found = []
    no_data = []
    for name, x in series.items():
        if name == target:
            continue
        res = _resolution(x[start:a + 1])
        if np.ptp(x[lo:a + 1]) <= res:
            no_data.append(_no_data(name, x, lo, a))
            continue
        sigma = max(_robust_sigma(x[start:lo]), res)
        k, z, delta = _change_point(x, lo, a, start, sigma * _long_run_factor(x[history:lo]))
        if z > z_threshold and abs(delta) > res:
            found.append((name, x, sigma, k, z, delta))
    first = min((f[3] for f in found), default=a)
    causes = []
    for name, x, sigma, k, z, delta in found:
        lead = math.exp(-(k - first) / 2.0)
        mag = 1.0 - math.exp(-abs(delta) / (4.0 * sigma))
        ll_score, ll_txt = (0.0, "") if target is None else _lead_lag_evidence(
            x[start:a + 1], series[target][start:a + 1], max_lag, target)
        score = 0.8 * lead + 0.1 * mag + 0.1 * ll_score
        before_txt = ""
        if tgt_onset is not None and k < tgt_onset:
            before_txt = f", {tgt_onset - k} steps before {target}"
        causes.append(Cause(
            "metric", name, float(score),
            f"{name} changed at {k} ({a - k} steps before the anomaly{before_txt}) by "
            f"{delta:+.3g} ({abs(delta) / sigma:.1f} sigma, z={z:.1f}){ll_txt}",
            {"onset": k, "shift": delta, "z": z, "lead_steps": a - k},
        ))
    causes.sort(key=lambda c: -c.score)
    return causes + no_data


def _no_data(name: str, x: FloatArray, lo: int, a: int) -> Cause:
    """The entry of a candidate that did not vary in the window searched: kind ``"no data"``,
    score 0. Read at the target's timestamps, a candidate no longer recorded repeats its last
    value (:func:`causal_align`), and a value repeated cannot have moved before the anomaly;
    it is listed, not dropped, so the answer says the candidate was looked at and why it is
    not a cause."""
    return Cause(
        "no data", name, 0.0,
        f"{name}: no data near the anomaly: constant at {x[a]:.6g} from {lo} to {a} (a last "
        "value carried forward, or a metric that did not move), so not a cause",
        {"constant": float(x[a]), "from": lo, "to": a})


def _percent(effect: float) -> float:
    """A log effect ``log(after / before)`` as a percent change (0.1 -> +10.5%)."""
    return (math.exp(effect) - 1) * 100


def _log_effects(before: FloatArray, after: ArrayLike) -> FloatArray:
    """Per-cell ``log(after / before)``; both positive and of one length."""
    af = as_series(after, name="after")
    if af.size != before.size:
        raise AnalyticsError("before and after differ in length")
    if np.any(before <= 0) or np.any(af <= 0):
        raise AnalyticsError("before/after must be positive to compare as ratios")
    return np.log(af / before)


def rank_parameter_causes(
    params: Sequence[Mapping[str, Any]],
    before: ArrayLike,
    after: ArrayLike | None = None,
    *,
    metric: str = "wall_s",
    seed: int = 0,
    alpha: float = 0.05,
    n_permutations: int = 999,
) -> list[Cause]:
    """Rank matrix parameters by how much of a regression they explain.

    ``params[i]`` are the parameters of cell ``i``; with ``after``, the per-cell effect is
    ``log(after / before)`` (both must be positive), otherwise ``before`` already holds the
    effects. Every varying parameter is listed (fixed ones are left out), the ones that pass the
    permutation test after the FDR correction first, then by omega squared (the score); see
    :func:`~allele.analytics.rca_params.explain_parameters`, which also gives the verdict ("no
    clear cause") and ``details["significant"]`` on each cause.
    """
    return explain_parameter_change(params, before, after, metric=metric, seed=seed,
                                    alpha=alpha, n_permutations=n_permutations).candidates


def explain_parameter_change(
    params: Sequence[Mapping[str, Any]],
    before: ArrayLike,
    after: ArrayLike | None = None,
    *,
    metric: str = "wall_s",
    seed: int = 0,
    alpha: float = 0.05,
    min_effect: float = 0.05,
    n_permutations: int = 999,
) -> ParameterVerdict:
    """:func:`rank_parameter_causes` with its verdict: ``status`` is ``"no clear cause"`` when
    no parameter passes (see :func:`~allele.analytics.rca_params.explain_parameters`)."""
    b = as_series(before, name="before")
    if len(params) != b.size:
        raise AnalyticsError(f"{len(params)} parameter sets but {b.size} values")
    effect = _log_effects(b, after) if after is not None else b
    if not any(params):
        raise AnalyticsError("cells have no parameters")
    if effect.size < 4 or np.ptp(effect) == 0:
        raise AnalyticsError("need at least 4 cells with varying effects")
    return explain_parameters(params, effect, ratio=after is not None, metric=metric,
                              alpha=alpha, min_effect=min_effect,
                              n_permutations=n_permutations, seed=seed)


def common_shift(before: ArrayLike, after: ArrayLike, *, metric: str = "wall_s",
                 alpha: float = 0.05, min_shift_pct: float = 5.0) -> Cause | None:
    """The share of a change that is one shift common to every cell.

    With per-cell effects ``e = log(after / before)``, ``n * mean(e)**2 / sum(e**2)`` is the
    part of the squared effect that a uniform shift explains: near 1 when every cell moved
    alike (the machine, a shared dependency, the environment), small when a few cells moved
    (then a matrix parameter usually explains it). None for fewer than 4 cells or no change.
    ``details["significant"]``: the mean effect differs from 0 (one-sample t test at ``alpha``)
    and the median shift is at least ``min_shift_pct`` percent: a smaller common shift is within
    what two runs of one machine differ by, not a cause to chase.
    """
    from scipy import stats

    effect = _log_effects(as_series(before, name="before"), after)
    if effect.size < 4:
        return None
    energy = float(np.sum(effect**2))
    if energy == 0.0:
        return None
    mean = float(effect.mean())
    share = float(effect.size * mean**2 / energy)
    same_sign = int(np.sum(np.sign(effect) == np.sign(mean)))
    n = int(effect.size)
    pct = _percent(float(np.median(effect)))
    lo, hi = (_percent(float(x)) for x in (effect.min(), effect.max()))
    p = float(stats.ttest_1samp(effect, 0.0).pvalue) if np.ptp(effect) > 0 else 0.0
    significant = p <= alpha and abs(pct) >= min_shift_pct
    return Cause(
        "shift", "all cells", share,
        f"a shift common to all cells explains {share:.0%} of the {metric} change: median "
        f"{pct:+.1f}% (cells from {lo:+.1f}% to {hi:+.1f}%, {same_sign} of {n} in the same "
        "direction); a cause shared by every cell (machine load, a dependency, the environment) "
        f"fits that part better than any parameter (t test p={p:.2g})",
        {"share": share, "median_pct": pct, "same_direction": same_sign, "cells": n, "p": p,
         "significant": significant})


def unexplained_shift(params: Sequence[Mapping[str, Any]], before: ArrayLike, after: ArrayLike,
                      explained: Cause, shift: Cause, *, metric: str = "wall_s"
                      ) -> Cause | None:
    """``shift`` (the :func:`common_shift` of every cell) if :func:`common_shift` finds a
    significant one among the cells at the level of the parameter cause ``explained`` whose
    cells moved least (smallest mean ``|log(after / before)|``), else None.

    A parameter that moves some cells drags the mean effect of all of them: with only the sbx
    cells 1.5 times slower, "every cell moved together by +21%" was reported beside "sbx:
    +45%, the other cells +3%". A shift is a cause of its own only if it is there in the cells
    the parameter moved least (None too when fewer than 4 cells are at that level).
    """
    b = as_series(before, name="before")
    effect = _log_effects(b, after)
    keys = [repr(p.get(explained.name)) for p in params]
    means = {k: float(np.mean([e for kk, e in zip(keys, effect, strict=True) if kk == k]))
             for k in set(keys)}
    least = min(sorted(means), key=lambda k: abs(means[k]))
    keep = [k == least for k in keys]
    rows = np.flatnonzero(keep)
    a = np.asarray(after, dtype=np.float64)
    rest = common_shift(b[rows], a[rows], metric=metric)
    return shift if rest is not None and rest.details["significant"] else None


_ENV_WEIGHTS = (
    (("version", "python", "numpy", "scipy", "torch", "sklearn", "scikit", "blas", "mkl",
      "openblas", "numba"), 0.9),
    (("cpu", "processor", "machine", "cores", "threads", "freq", "gpu", "memory", "ram"), 0.8),
    (("platform", "os", "kernel", "implementation", "compiler"), 0.6),
    (("commit", "git", "branch"), 0.5),
)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def diff_environments(env_a: Mapping[str, Any], env_b: Mapping[str, Any]) -> list[Cause]:
    """Differences between two runs' environments, most performance-relevant first."""
    fa, fb = _flatten(env_a), _flatten(env_b)
    causes = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, "<absent>"), fb.get(key, "<absent>")
        if va == vb:
            continue
        low = key.lower()
        if low.startswith("load."):
            # the load average at the start of a run always differs a little: only the 1-minute
            # figure, and only a difference of at least half a busy process, is evidence
            if (low != "load.1m" or not isinstance(va, int | float)
                    or not isinstance(vb, int | float) or abs(vb - va) < 0.5):
                continue
            causes.append(Cause("environment", key, 0.85,
                                f"{key}: {va} -> {vb} (load average when the run started)",
                                {"before": va, "after": vb}))
            continue
        weight = next((w for hints, w in _ENV_WEIGHTS if any(h in low for h in hints)), 0.3)
        causes.append(Cause("environment", key, weight, f"{key}: {va} -> {vb}",
                            {"before": va, "after": vb}))
    causes.sort(key=lambda c: (-c.score, c.name))
    return causes


class RootCauseAnalyzer:
    """Runs every applicable ranking and returns one list, best-scored first within each kind
    (metric causes, then parameter causes with the common shift, the significant ones first,
    then environment differences). For the verdict ("no clear cause") use
    :func:`explain_parameter_change`; an empty metric ranking is that answer too."""

    def __init__(self, max_lag: int = 20, baseline: int = 60, z_threshold: float = 5.0,
                 seed: int = 0) -> None:
        self.max_lag = max_lag
        self.baseline = baseline
        self.z_threshold = z_threshold
        self.seed = seed

    def analyze(
        self,
        *,
        metrics: Mapping[str, ArrayLike] | None = None,
        anomaly_index: int | None = None,
        target: str | None = None,
        cells: Sequence[Mapping[str, Any]] | None = None,
        before: ArrayLike | None = None,
        after: ArrayLike | None = None,
        env_before: Mapping[str, Any] | None = None,
        env_after: Mapping[str, Any] | None = None,
        metric: str = "wall_s",
    ) -> list[Cause]:
        """Combine the evidence that was supplied; raises AnalyticsError when none was."""
        out: list[Cause] = []
        used = False
        if metrics is not None and anomaly_index is not None:
            used = True
            out += rank_metric_causes(metrics, anomaly_index, target, max_lag=self.max_lag,
                                      baseline=self.baseline, z_threshold=self.z_threshold)
        if cells is not None and before is not None:
            used = True
            ranked = rank_parameter_causes(cells, before, after, metric=metric, seed=self.seed)
            shift = common_shift(before, after, metric=metric) if after is not None else None
            if shift is not None:
                ranked = sorted([*ranked, shift], key=lambda c: (
                    not c.details.get("significant", False), -c.score))
            out += ranked
        if env_before is not None and env_after is not None:
            used = True
            out += diff_environments(env_before, env_after)
        if not used:
            raise AnalyticsError(
                "give metrics + anomaly_index, cells + before (+ after), or two environments")
        return out
