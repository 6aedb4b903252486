"""Which matrix parameter explains a change across cells, with an answer that can be "no clear
cause".

The unit of evidence is the configuration: rows that share every parameter value (seeds,
repeats) are summarised first (their 20% trimmed mean, the plain mean below 5 rows:
:func:`~allele.analytics.rca_small.trimmed_location`), because replicates of one cell share
that cell's conditions and are not independent evidence about a parameter (treating them as
such is pseudo-replication: on an 18-cell matrix with 3 seeds it turns a cell-level accident
into "p < 0.01"). For each parameter
that takes at least two values (fixed parameters are excluded and listed as such), over the
configurations that have it: in a run of several targets, a parameter of one target is tested
among that target's cells only, so that its "unset" cells do not turn every parameter into a
copy of the target (on real A/A pairs of the recorded runs that aliasing named a false cause in
24 of 120 pairs); whether one target's cells moved is the ``target`` parameter's test:

* categorical, or numeric with at most half as many levels as configurations: a one-way ANOVA
  over its levels; numeric with more levels (a different value in almost every cell): a linear
  fit on the value's rank (1 degree of freedom), so that it cannot explain everything by
  giving every cell its own group;
* effect size: omega squared, ``(SS_effect - df_effect * MS_error) / (SS_total + MS_error)``,
  clipped at 0. Unlike eta squared it is corrected for the degrees of freedom the parameter
  spends: a parameter with one level per cell gets about 0 on noise, not 1.0;
* p-value: a permutation test of the same statistic (``n_permutations`` shuffles of the
  configuration effects, one shared set for all parameters), valid for heavy tails and outliers;
  but a parameter whose cells admit fewer than 1000 distinct arrangements (a two-level
  parameter over 6 cells has 20, so p >= 0.05) is tested, when every configuration has seed
  replicates, by the weighted F test of :mod:`~allele.analytics.rca_small` (per-configuration
  effects weighted by their seed variance plus the cells' heterogeneity), and the evidence and
  the verdict say which test decided (``details["test"]``);
* multiplicity: Benjamini-Hochberg q-values across the candidates.

A parameter is named a cause when its q-value is at most ``alpha`` and its omega squared at least
``min_effect``; when none is, the answer is ``"no clear cause"``. Measured by
``benchmarks/analytics_real_answers.py`` and ``tests/analytics/test_rca.py``: on pure noise (18
cells, 3 seeds, run-wide shifts, Student-t(3) noise) no cause in 47 of 50 trials; with a 20%
shift in one level of one parameter, that parameter first in 50 of 50. The quick matrix (6 + 4
cells, weighted F test) is measured in :mod:`~allele.analytics.rca_small`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from allele.analytics._common import FloatArray, as_series
from allele.analytics.rca_small import (
    MAX_COARSE_ARRANGEMENTS,
    arrangements,
    trimmed_location,
    weighted_f_test,
)
from allele.errors import AnalyticsError

__all__ = [
    "NO_CLEAR_CAUSE",
    "ParameterVerdict",
    "benjamini_hochberg",
    "explain_parameters",
]

NO_CLEAR_CAUSE = "no clear cause"


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q_sorted, 1.0)
    return [float(v) for v in out]


@dataclass(frozen=True)
class Cause:
    """A candidate cause with its score (higher = more likely) and the evidence for it."""

    kind: str
    """'metric', 'parameter', 'shift' (one change common to all cells), 'environment', or 'no
    data' (a telemetry candidate constant around the anomaly, listed as not a cause)."""
    name: str
    score: float
    evidence: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {"kind": self.kind, "name": self.name, "score": self.score,
                "evidence": self.evidence, "details": self.details}


@dataclass(frozen=True, slots=True)
class _Candidate:
    """One parameter's test: the design (one-hot groups or a centred rank column)."""

    name: str
    keys: list[str]
    mode: Literal["levels", "linear"]
    design: FloatArray
    df: int
    rows: NDArray[np.intp]
    """The configurations that have the parameter (the others belong to another target)."""


@dataclass(frozen=True, slots=True)
class ParameterVerdict:
    """The answer of :func:`explain_parameters`.

    ``status`` is ``"cause"`` when at least one parameter passed (then ``causes`` holds them,
    strongest first) and ``"no clear cause"`` otherwise. ``candidates`` are every tested
    parameter (with their omega squared, p and q in ``details``), ``excluded`` the parameters
    with a single value in every cell, ``configurations`` the number of distinct cells tested.
    """

    status: Literal["cause", "no clear cause"]
    causes: list[Any]
    candidates: list[Any]
    excluded: list[str]
    configurations: int
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {"status": self.status, "message": self.message,
                "causes": [c.to_dict() for c in self.causes],
                "candidates": [c.to_dict() for c in self.candidates],
                "excluded": self.excluded, "configurations": self.configurations}


def _aggregate(params: Sequence[Mapping[str, Any]], effect: FloatArray
               ) -> tuple[list[dict[str, Any]], FloatArray, FloatArray, int]:
    """Per distinct configuration (rows sharing every parameter value): the 20% trimmed mean of
    its rows' effects, the Tukey-McLaughlin variance of that mean (NaN for a configuration of
    one row; :func:`~allele.analytics.rca_small.trimmed_location`: the plain mean and ``s^2 / m``
    below 5 rows) and the fewest rows of a configuration."""
    groups: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for i, p in enumerate(params):
        key = tuple(sorted((k, repr(v)) for k, v in p.items()))
        groups.setdefault(key, []).append(i)
    configs = [dict(params[idx[0]]) for idx in groups.values()]
    located = [trimmed_location(effect[idx]) for idx in groups.values()]
    means = np.array([loc for loc, _ in located])
    variances = np.array([var for _, var in located])
    reps = min(len(idx) for idx in groups.values())
    return configs, means, variances, reps


def _candidate(name: str, configs: list[dict[str, Any]]) -> _Candidate | None:
    rows = np.array([i for i, c in enumerate(configs) if name in c], dtype=np.intp)
    values = [configs[i][name] for i in rows]
    keys = [repr(v) for v in values]
    levels = sorted(set(keys))
    n, k = len(rows), len(levels)
    if k < 2 or n < 3:
        return None  # fixed (one value wherever it is set), or set in too few cells
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if numeric and k > max(2, n // 2):
        ranks = np.argsort(np.argsort(np.asarray(values, dtype=np.float64), kind="stable"))
        col = ranks.astype(np.float64)
        col -= col.mean()
        return _Candidate(name, keys, "linear", col, 1, rows)
    onehot = np.zeros((n, k))
    for i, key in enumerate(keys):
        onehot[i, levels.index(key)] = 1.0
    return _Candidate(name, keys, "levels", onehot, k - 1, rows)


def _effect_ss(cand: _Candidate, e: FloatArray) -> FloatArray:
    """The parameter's sum of squares for each row of ``e`` (rows are permutations, centred)."""
    if cand.mode == "linear":
        x = cand.design
        return np.asarray((e @ x) ** 2 / float(x @ x), dtype=np.float64)
    counts = cand.design.sum(axis=0)
    sums = e @ cand.design
    return np.asarray(np.sum(sums**2 / counts, axis=-1), dtype=np.float64)


def _percent(effect: float) -> float:
    return (math.exp(effect) - 1) * 100


def _permutation(cand: _Candidate, e: FloatArray, n_permutations: int, seed: int
                 ) -> tuple[float, float]:
    """(omega squared, permutation p) of one candidate over its centred effects ``e``."""
    n = e.size
    rng = np.random.default_rng(seed)
    perms = rng.permuted(np.tile(e, (max(n_permutations, 0), 1)), axis=1)
    total = float(e @ e)
    ss = float(_effect_ss(cand, e[None, :])[0])
    df_err = n - 1 - cand.df
    ms_err = (total - ss) / df_err if df_err > 0 else math.inf
    omega2 = max(0.0, (ss - cand.df * ms_err) / (total + ms_err)) if total > 0 and \
        math.isfinite(ms_err) else 0.0
    null = _effect_ss(cand, perms)
    return omega2, float((1 + np.sum(null >= ss * (1 - 1e-12))) / (1 + null.size))


def _test(cand: _Candidate, e_all: FloatArray, var_all: FloatArray, n_permutations: int,
          seed: int, ratio: bool, metric: str) -> tuple[float, float, str, dict[str, Any]]:
    """(omega squared, p, evidence text, details) of one candidate, over the configurations
    that have it: a permutation test (shuffled among themselves), or, when they admit fewer
    than :data:`MAX_COARSE_ARRANGEMENTS` arrangements and every one has seed replicates, the
    weighted F test of :mod:`~allele.analytics.rca_small`."""
    e = e_all[cand.rows] - e_all[cand.rows].mean()
    n = e.size
    count = arrangements(cand.keys)
    v = var_all[cand.rows]
    details: dict[str, Any]
    if count < MAX_COARSE_ARRANGEMENTS and bool(np.all(np.isfinite(v))):
        small = weighted_f_test(e, v, cand.design, cand.df, levels=cand.mode == "levels")
        omega2, p = small.omega2, small.p
        how = (f"weighted omega^2; weighted F test over per-configuration effects with their "
               f"seed variances, F({small.df_effect}, {small.df_error})={small.f:.3g}, p={p:.2g}"
               f": {count} arrangements are too few for a permutation p-value")
        details = {"test": "weighted F", "f": small.f, "tau2": small.tau2,
                   "scale": small.scale}
    else:
        omega2, p = _permutation(cand, e, n_permutations, seed)
        how = f"omega^2, degrees-of-freedom corrected; permutation p={p:.2g}"
        details = {"test": "permutation"}
    if cand.mode == "linear":
        slope = float(e @ cand.design / (cand.design @ cand.design)) * (n - 1)
        shown = f"{_percent(slope):+.1f}%" if ratio else f"{slope:+.3g}"
        what = (f"{cand.name} (a different value in almost every cell, tested as a linear "
                f"trend over its rank: {shown} from lowest to highest)")
    else:
        what = cand.name
    text = f"explains {omega2:.0%} of the {metric} change across {n} configurations ({how})"
    details |= {"omega2": omega2, "p": p, "df": cand.df, "mode": cand.mode, "what": what,
                "arrangements": count}
    return omega2, p, text, details


def explain_parameters(
    params: Sequence[Mapping[str, Any]],
    effect: ArrayLike,
    *,
    ratio: bool = True,
    metric: str = "wall_s",
    alpha: float = 0.05,
    min_effect: float = 0.05,
    n_permutations: int = 999,
    seed: int = 0,
) -> ParameterVerdict:
    """Test every varying parameter against the per-row ``effect`` (see the module docstring).

    ``effect`` holds one value per row of ``params`` (``log(after / before)`` when ``ratio``, so
    the evidence reads in percent). AnalyticsError when fewer than 4 configurations remain.
    """
    e_rows = as_series(effect, name="effect")
    if len(params) != e_rows.size:
        raise AnalyticsError(f"{len(params)} parameter sets but {e_rows.size} values")
    configs, e, var, reps = _aggregate(params, e_rows)
    if e.size < 4:
        raise AnalyticsError(f"need at least 4 distinct configurations, got {e.size}")
    names = sorted({k for p in params for k in p})
    cands = [c for c in (_candidate(n, configs) for n in names) if c is not None]
    tested = {c.name for c in cands}
    excluded = [n for n in names if n not in tested]
    results = [(c, *_test(c, e, var, n_permutations, seed, ratio, metric)) for c in cands]
    qs = benjamini_hochberg([r[2] for r in results])
    out = []
    for (cand, omega2, _p, text, det), q in zip(results, qs, strict=True):
        passed = q <= alpha and omega2 >= min_effect
        det = {**det, "q": q, "significant": passed, "replicates": reps}
        evidence = f"{det.pop('what')} {text}, FDR q={q:.2g}{_suffix(cand, e, ratio, det)}"
        out.append(Cause("parameter", cand.name, omega2, evidence, det))
    out.sort(key=lambda c: (not c.details["significant"], -c.score, c.details["p"]))
    causes = [c for c in out if c.details["significant"]]
    if causes:
        message = (f"{causes[0].name} explains the {metric} change "
                   f"({causes[0].score:.0%} of it; q={causes[0].details['q']:.2g}, "
                   f"{causes[0].details['test']} test)")
    else:
        best = out[0] if out else None
        tail = (f"; the strongest candidate, {best.name}, explains {best.score:.0%} "
                f"(q={best.details['q']:.2g})") if best is not None else ""
        message = (f"{NO_CLEAR_CAUSE}: no parameter explains the {metric} change beyond "
                   f"{_chance(out)} (FDR {alpha:g}, omega^2 >= {min_effect:g}){tail}")
    return ParameterVerdict("cause" if causes else "no clear cause", causes, out, excluded,
                            int(e.size), message)


def _chance(candidates: Sequence[Cause]) -> str:
    """What "chance" was for the tests that ran: shuffling the cells, the seeds' scatter, or
    both."""
    tests = {c.details["test"] for c in candidates}
    parts = []
    if "permutation" in tests or not tests:
        parts.append("what shuffling the cells gives")
    if "weighted F" in tests:
        parts.append("what the seeds' and the cells' scatter give (weighted F test: too few "
                     "cells to shuffle)")
    return " or ".join(parts)


def _suffix(cand: _Candidate, e_all: FloatArray, ratio: bool, details: dict[str, Any]) -> str:
    """``; population=200: +20.1%, the other cells +0.3%`` for a levels test."""
    if cand.mode == "linear":
        return ""
    unit = "%" if ratio else ""
    groups: dict[str, list[float]] = {}
    for key, v in zip(cand.keys, e_all[cand.rows], strict=True):
        groups.setdefault(key, []).append(float(v))
    worst = max(groups, key=lambda k: float(np.mean(groups[k])))
    rest = [v for k, vs in groups.items() if k != worst for v in vs]
    w, r = float(np.mean(groups[worst])), float(np.mean(rest))
    details["worst_value"] = worst
    if ratio:
        w, r = _percent(w), _percent(r)
    label = f"{cand.name}={worst.strip(chr(39))}"
    return f"; {label}: {w:+.1f}{unit}, the other cells {r:+.1f}{unit}"
