"""Configuration recommendations from seed-level matrix results, with an answer that can be "no
reliably better configuration".

:class:`ConfigurationRecommender` takes one row per (cell, seed): the cell's parameters, its
quality and cost for that seed, and the seed. At least two seeds are required: the seeds are split
in two halves (alternate seeds), and

* a surrogate (scikit-learn gradient boosting over the parameters) is fitted on the *selection*
  seeds' per-cell means; its error is cross-validated over cells (``cv_rmse_``, ``cv_r2_``) and
  reported beside every answer;
* candidates better than the current configuration are chosen on the selection seeds only
  (measured cells, best predicted quality first, within the cost trade-off);
* each candidate is then re-estimated on the *held-out* seeds, which played no part in choosing
  it: that estimate is what is reported (the winner's curse corrected: the selection-half gain is
  shown beside it), and it must beat the current configuration in a one-sided z test at
  ``alpha`` (Bonferroni over the candidates): seed effects shared by every cell are removed
  first, cells are summarised by their median over seeds (robust to one outlying seed), the
  current configuration is estimated on all seeds, and the null distribution of the
  difference is resampled from the residuals of an additive cell + seed model over every cell
  (heavy tails included);
* a recommendation is never made when its cost outweighs its gain: the cost increase in percent
  may be at most ``max_cost_per_gain`` times the held-out quality gain in percent (default 20:
  +20% cost for +1% quality at most), so "population 50 -> 1000: +0.2% fitness for +210%
  wall_s" is refused.

When nothing passes, :meth:`ConfigurationRecommender.advise` answers ``"no reliably better
configuration"``. Measured by ``benchmarks/analytics_real_answers.py`` and
``tests/analytics/test_recommend.py`` (figures in docs/analytics.md): on pure noise no
recommendation in 19 of 20 trials; on a known response surface the optimum is recovered (first
in 8 of 10 trials, among the three recommendations in 10 of 10).
The direction of quality (higher or lower is better) is ``higher_is_better``.

:class:`PerformanceOptimizer` keeps one recommender per component (benchmark target).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import ArrayLike

from allele.analytics._common import FloatArray, as_series
from allele.errors import AnalyticsError, NotFittedError

__all__ = [
    "NO_BETTER",
    "Advice",
    "ConfigurationRecommender",
    "PerformanceOptimizer",
    "Recommendation",
    "pareto_front",
]


def pareto_front(quality: ArrayLike, cost: ArrayLike) -> list[int]:
    """Indices of the points not dominated in (maximise quality, minimise cost), by cost."""
    q = as_series(quality, name="quality")
    c = as_series(cost, name="cost")
    if q.size != c.size:
        raise AnalyticsError("quality and cost differ in length")
    order = np.lexsort((-q, c))  # by cost, then best quality first
    front: list[int] = []
    best = -math.inf
    for i in order:
        if q[i] > best:
            front.append(int(i))
            best = float(q[i])
    return front


NO_BETTER = "no reliably better configuration"


@dataclass(frozen=True)
class Recommendation:
    """A configuration with its quality and cost relative to the current one.

    ``quality`` and ``quality_change_pct`` are the held-out estimates (seeds that did not choose
    it); ``selection_change_pct`` is the gain the selection seeds saw (biased upwards: the
    winner's curse); ``confidence`` is ``1 - p`` of the held-out test.
    """

    params: dict[str, Any]
    changes: dict[str, tuple[Any, Any]]
    quality: float
    cost: float
    quality_change_pct: float
    cost_change_pct: float
    confidence: float
    text: str
    selection_change_pct: float = math.nan
    p_value: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "params": self.params, "changes": {k: list(v) for k, v in self.changes.items()},
            "quality": self.quality, "cost": self.cost,
            "quality_change_pct": self.quality_change_pct,
            "selection_change_pct": self.selection_change_pct,
            "cost_change_pct": self.cost_change_pct, "confidence": self.confidence,
            "p_value": self.p_value, "text": self.text,
        }


@dataclass(frozen=True)
class Advice:
    """The answer of :meth:`ConfigurationRecommender.advise`: ``status`` is ``"recommend"`` or
    ``"no reliably better configuration"``; ``message`` says it with the surrogate's
    cross-validated error and what was refused."""

    status: Literal["recommend", "no reliably better configuration"]
    current: dict[str, Any]
    recommendations: list[Recommendation]
    message: str
    cv_rmse: float
    cv_r2: float
    refused: list[str]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {"status": self.status, "message": self.message, "current": self.current,
                "recommendations": [r.to_dict() for r in self.recommendations],
                "cv_rmse": self.cv_rmse, "cv_r2": self.cv_r2, "refused": self.refused}


class _Encoder:
    """Numeric parameters as they are, categorical ones one-hot."""

    def __init__(self, params: Sequence[Mapping[str, Any]]) -> None:
        self.names = sorted({k for p in params for k in p})
        self.numeric: dict[str, bool] = {}
        self.levels: dict[str, list[Any]] = {}
        for name in self.names:
            values = [p.get(name) for p in params]
            numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
            self.numeric[name] = numeric
            uniq = sorted({v for v in values}, key=lambda v: (str(type(v)), v if numeric else
                                                              repr(v)))
            self.levels[name] = uniq

    def encode(self, params: Sequence[Mapping[str, Any]]) -> FloatArray:
        cols: list[FloatArray] = []
        for name in self.names:
            values = [p.get(name) for p in params]
            if self.numeric[name]:
                cols.append(np.asarray(values, dtype=np.float64))
            else:
                for level in self.levels[name]:
                    cols.append(np.asarray([v == level for v in values], dtype=np.float64))
        return np.stack(cols, axis=1)

    def grid(self) -> list[dict[str, Any]]:
        return [dict(zip(self.names, combo, strict=True))
                for combo in itertools.product(*(self.levels[n] for n in self.names))]




def _surrogate(seed: int) -> Any:
    from sklearn.ensemble import GradientBoostingRegressor

    return GradientBoostingRegressor(n_estimators=60, max_depth=3, learning_rate=0.15,
                                     subsample=1.0, random_state=seed)


def _pct(new: float, old: float) -> float:
    return 0.0 if old == 0 else (new - old) / abs(old) * 100.0


def _cross_validate(x: FloatArray, y: FloatArray, seed: int, folds: int) -> tuple[float, float]:
    """Cross-validated RMSE and R^2 of the surrogate over cells (``folds``-fold)."""
    n = y.size
    k = min(folds, n)
    if k < 2:
        return math.nan, math.nan
    order = np.random.default_rng(seed).permutation(n)
    pred = np.empty(n)
    for f in range(k):
        test = order[f::k]
        train = np.setdiff1d(order, test)
        pred[test] = _surrogate(seed).fit(x[train], y[train]).predict(x[test])
    sse = float(np.sum((y - pred) ** 2))
    sst = float(np.sum((y - y.mean()) ** 2))
    return math.sqrt(sse / n), (1.0 - sse / sst) if sst > 0 else math.nan


def _seed_table(params: Sequence[Mapping[str, Any]], values: FloatArray, seeds: FloatArray
                ) -> tuple[list[dict[str, Any]], list[float], FloatArray]:
    """Configurations, the sorted seeds and a (config x seed) table of mean values (NaN where a
    cell lacks a seed)."""
    keys: dict[tuple[tuple[str, str], ...], int] = {}
    configs: list[dict[str, Any]] = []
    for p in params:
        key = tuple(sorted((k, repr(v)) for k, v in p.items()))
        if key not in keys:
            keys[key] = len(configs)
            configs.append(dict(p))
    uniq = sorted({float(s) for s in seeds})
    col = {s: j for j, s in enumerate(uniq)}
    total = np.zeros((len(configs), len(uniq)))
    count = np.zeros_like(total)
    for p, v, s in zip(params, values, seeds, strict=True):
        i = keys[tuple(sorted((k, repr(val)) for k, val in p.items()))]
        total[i, col[float(s)]] += v
        count[i, col[float(s)]] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        table = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return configs, uniq, table


def _seed_adjusted(table: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The table with each seed's effect shared by every cell removed, and the residuals of the
    additive cell + seed model (scaled up for the degrees of freedom the fit spent). A seed that
    is easy for every cell is not evidence for any cell, and comparing a held-out mean with an
    all-seed mean must not depend on it."""
    ok = ~np.isnan(table)
    row = np.nanmean(table, axis=1, keepdims=True)
    colm = np.nanmean(table - row, axis=0, keepdims=True)
    resid = np.where(ok, table - row - colm, 0.0)
    r, c = table.shape
    dof = max(int(ok.sum()) - r - c + 1, 1)
    inflate = math.sqrt(int(ok.sum()) / dof)
    return table - colm, resid[ok] * inflate


class ConfigurationRecommender:
    """Seed-level surrogates of quality and cost, held-out validation (see module docstring)."""

    def __init__(
        self,
        quality_metric: str = "best_fitness",
        cost_metric: str = "wall_s",
        higher_is_better: bool = True,
        *,
        alpha: float = 0.05,
        max_cost_per_gain: float = 20.0,
        cv_folds: int = 5,
        seed: int = 0,
    ) -> None:
        self.quality_metric = quality_metric
        self.cost_metric = cost_metric
        self.higher_is_better = higher_is_better
        self.alpha = alpha
        self.max_cost_per_gain = max_cost_per_gain
        self.cv_folds = cv_folds
        self.seed = seed

    def fit(self, params: Sequence[Mapping[str, Any]], quality: ArrayLike, cost: ArrayLike,
            seeds: ArrayLike | None = None) -> Self:
        """Learn from rows of one (cell, seed) each: parameters, quality, cost and the seed."""
        q = as_series(quality, name="quality")
        c = as_series(cost, name="cost")
        if not (len(params) == q.size == c.size):
            raise AnalyticsError("params, quality and cost must have the same length")
        if seeds is None:
            raise AnalyticsError(
                "recommendations need seed-level replicates: give the seed of every row "
                "(a matrix run with at least 2 seeds, e.g. `seeds: [0, 1, 2, 3]` in the spec)")
        sd = as_series(seeds, name="seeds")
        if sd.size != q.size:
            raise AnalyticsError("seeds and quality differ in length")
        if np.unique(sd).size < 2:
            raise AnalyticsError(
                "recommendations need at least 2 seeds (one chooses, the other checks); "
                "rerun the matrix with more seeds")
        sign = 1.0 if self.higher_is_better else -1.0
        self._sign = sign
        configs, uniq, raw = _seed_table(params, sign * q, sd)
        table, self.residuals_ = _seed_adjusted(raw)
        self.noise_ = float(np.sqrt(np.mean(self.residuals_**2)))
        if len(configs) < 4:
            raise AnalyticsError(f"need at least 4 cells to fit a surrogate, got {len(configs)}")
        _, _, cost_table = _seed_table(params, c, sd)
        self.configs_ = configs
        self.seeds_ = uniq
        self.encoder_ = _Encoder(configs)
        x = self.encoder_.encode(configs)
        sel, val = np.arange(0, len(uniq), 2), np.arange(1, len(uniq), 2)
        with np.errstate(invalid="ignore"):
            self.q_sel_ = np.nanmedian(table[:, sel], axis=1)
            self.q_val_ = np.nanmedian(table[:, val], axis=1)
            self.q_all_ = q_all = np.nanmedian(table, axis=1)
            self.cost_ = np.nanmean(cost_table, axis=1)
        self.n_val_ = np.sum(~np.isnan(table[:, val]), axis=1)
        self.n_all_ = np.sum(~np.isnan(table), axis=1)
        ok = ~np.isnan(self.q_sel_)
        self.sel_model_ = _surrogate(self.seed).fit(x[ok], self.q_sel_[ok])
        self.pred_sel_ = np.asarray(self.sel_model_.predict(x), dtype=np.float64)
        self.cv_rmse_, self.cv_r2_ = _cross_validate(x[ok], self.q_sel_[ok], self.seed,
                                                     self.cv_folds)
        self.quality_model_ = _surrogate(self.seed).fit(x, q_all)
        self.cost_model_ = _surrogate(self.seed).fit(x, self.cost_)
        self.candidates_ = self.encoder_.grid()
        xc = self.encoder_.encode(self.candidates_)
        self.pred_quality_ = np.asarray(self.quality_model_.predict(xc), dtype=np.float64)
        self.pred_cost_ = np.asarray(self.cost_model_.predict(xc), dtype=np.float64)
        return self

    def _check(self) -> None:
        if not hasattr(self, "candidates_"):
            raise NotFittedError("ConfigurationRecommender used before fit")

    def best(self, max_cost: float | None = None) -> dict[str, Any]:
        """The grid point with the best predicted quality (all seeds; within ``max_cost``)."""
        self._check()
        ok = np.ones(len(self.candidates_), bool) if max_cost is None else \
            self.pred_cost_ <= max_cost
        if not ok.any():
            raise AnalyticsError(f"no configuration is predicted to cost at most {max_cost}")
        i = int(np.flatnonzero(ok)[np.argmax(self.pred_quality_[ok])])
        return dict(self.candidates_[i])

    def pareto(self) -> list[tuple[dict[str, Any], float, float]]:
        """The predicted Pareto front: (params, quality, cost), cheapest first."""
        self._check()
        idx = pareto_front(self.pred_quality_, self.pred_cost_)
        return [(dict(self.candidates_[i]), float(self._sign * self.pred_quality_[i]),
                 float(self.pred_cost_[i])) for i in idx]

    def _resolve(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        """``params`` completed with the values every measured cell shares, and its cell.

        A user names what varies (as predict's ``--params`` asks); the fixed parameters of the
        spec (generations, a target fitness) are the same in every cell, so they are filled in
        rather than demanded. A configuration still matching no cell is refused with the keys
        missing or unknown and, for each key whose value no cell has, the values they do have.
        """
        names, levels = self.encoder_.names, self.encoder_.levels
        full = dict(params)
        for k in names:
            if k not in full and len(levels[k]) == 1:
                full[k] = levels[k][0]
        for i, cand in enumerate(self.configs_):
            if all(cand.get(k) == full.get(k) for k in names) and set(full) <= set(names):
                return full, i
        why = []
        if missing := [k for k in names if k not in full]:
            why.append("missing " + ", ".join(missing))
        if unknown := sorted(k for k in full if k not in names):
            why.append("unknown " + ", ".join(unknown) + " (the cells have "
                       + ", ".join(names) + ")")
        why += [f"{k}={full[k]!r} (the cells have {', '.join(map(repr, levels[k]))})"
                for k in names if k in full and full[k] not in levels[k]]
        raise AnalyticsError(f"configuration {dict(params)} is not among the measured cells: "
                             + ("; ".join(why) or "that combination was not measured"))

    def _affordable(self, gain_pct: float, cost_pct: float, budget: float | None) -> bool:
        if budget is not None and cost_pct > budget:
            return False
        return gain_pct > 0 and (cost_pct <= 0 or cost_pct <= self.max_cost_per_gain * gain_pct)

    def _null_p(self, gain: float, m_cand: int, m_cur: int, draws: int = 4000) -> float:
        """P(a held-out gain at least ``gain`` when neither cell is better): the difference of
        a median of ``m_cand`` and a median of ``m_cur`` residuals, resampled from the residuals
        of every cell, so heavy tails are in the null. (Means and a normal z test gave 4 false
        recommendations in 20 pure-noise trials with Student-t(3) noise: one outlying seed of
        the current cell made every candidate look better.)"""
        res = self.residuals_
        if res.size == 0 or not np.any(res):
            return 0.0 if gain > 0 else 1.0
        rng = np.random.default_rng(self.seed + 17)
        a = np.median(rng.choice(res, (draws, max(m_cand, 1))), axis=1)
        b = np.median(rng.choice(res, (draws, max(m_cur, 1))), axis=1)
        return float((1 + np.sum(a - b >= gain)) / (1 + draws))

    def _validate(self, i: int, cur: int, current: Mapping[str, Any], tests: int,
                  budget: float | None) -> Recommendation | str:
        """Re-estimate candidate ``i`` on the held-out seeds: a Recommendation, or why not."""
        cand = self.configs_[i]
        changes = {k: (current.get(k), cand.get(k)) for k in self.encoder_.names
                   if current.get(k) != cand.get(k)}
        change_txt = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changes.items())
        s = self._sign
        q0, q1 = s * float(self.q_all_[cur]), s * float(self.q_val_[i])
        sel_pct = s * _pct(s * float(self.pred_sel_[i]), s * float(self.pred_sel_[cur]))
        gain_pct = s * _pct(q1, q0)
        cost_pct = _pct(float(self.cost_[i]), float(self.cost_[cur]))
        gain = float(self.q_val_[i] - self.q_all_[cur])
        p = self._null_p(gain, int(self.n_val_[i]), int(self.n_all_[cur]))
        if p > self.alpha / tests:
            return (f"{change_txt}: {gain_pct:+.1f}% on the held-out seeds (selection "
                    f"{sel_pct:+.1f}%), p={p:.2g}: not reliably better")
        if not self._affordable(gain_pct, cost_pct, budget):
            return (f"{change_txt}: {gain_pct:+.1f}% {self.quality_metric} for {cost_pct:+.0f}% "
                    f"{self.cost_metric}: the cost outweighs the gain")
        text = (f"{change_txt}: {self.quality_metric} {gain_pct:+.1f}% on held-out seeds "
                f"(selection seeds {sel_pct:+.1f}%) for {cost_pct:+.0f}% {self.cost_metric}; "
                f"p={p:.2g}")
        return Recommendation(dict(cand), changes, q1, float(self.cost_[i]), gain_pct, cost_pct,
                              1.0 - p, text, sel_pct, p)

    def advise(self, current: Mapping[str, Any], top: int = 3,
               max_cost_increase_pct: float | None = None) -> Advice:
        """Up to ``top`` held-out-validated configurations better than ``current``, or the
        answer "no reliably better configuration"."""
        self._check()
        current, cur = self._resolve(current)
        s = self._sign
        chosen = []
        for i in np.argsort(-self.pred_sel_):
            i = int(i)
            if i == cur or self.n_val_[i] == 0:
                continue
            gain_pct = s * _pct(s * float(self.pred_sel_[i]), s * float(self.pred_sel_[cur]))
            if self._affordable(gain_pct, _pct(float(self.cost_[i]), float(self.cost_[cur])),
                                max_cost_increase_pct):
                chosen.append(i)
            if len(chosen) == top:
                break
        recs: list[Recommendation] = []
        refused: list[str] = []
        for i in chosen:
            res = self._validate(i, cur, current, len(chosen), max_cost_increase_pct)
            (recs.append(res) if isinstance(res, Recommendation) else refused.append(res))
        recs.sort(key=lambda r: -s * r.quality)
        cv = (f"surrogate cross-validated RMSE {self.cv_rmse_:.3g} (R^2 {self.cv_r2_:.2f}) over "
              f"{len(self.configs_)} cells; {len(self.seeds_) // 2 + len(self.seeds_) % 2} "
              f"selection and {len(self.seeds_) // 2} held-out seeds")
        if recs:
            return Advice("recommend", dict(current), recs, f"{recs[0].text} ({cv})",
                          self.cv_rmse_, self.cv_r2_, refused)
        why = "; ".join(refused) if refused else \
            f"no cell beats it on the selection seeds within the cost trade-off " \
            f"(at most {self.max_cost_per_gain:g}% {self.cost_metric} per 1% " \
            f"{self.quality_metric})"
        return Advice("no reliably better configuration", dict(current), [],
                      f"{NO_BETTER}: {why} ({cv})", self.cv_rmse_, self.cv_r2_, refused)

    def recommend(self, current: Mapping[str, Any], top: int = 3,
                  max_cost_increase_pct: float | None = None) -> list[Recommendation]:
        """The recommendations of :meth:`advise` (an empty list means "no reliably better
        configuration")."""
        return self.advise(current, top, max_cost_increase_pct).recommendations


class PerformanceOptimizer:
    """One :class:`ConfigurationRecommender` per component (benchmark target).

    ``fit`` takes rows ``(component, params, metrics, seed)``, one per cell and seed, where
    ``metrics`` maps metric names to a value (e.g. the median over that seed's repeats); rows
    missing either metric are skipped.
    """

    def __init__(self, quality_metric: str = "best_fitness", cost_metric: str = "wall_s",
                 higher_is_better: bool = True, *, max_cost_per_gain: float = 20.0,
                 seed: int = 0) -> None:
        self.quality_metric = quality_metric
        self.cost_metric = cost_metric
        self.higher_is_better = higher_is_better
        self.max_cost_per_gain = max_cost_per_gain
        self.seed = seed

    def fit(self, rows: Sequence[tuple[str, Mapping[str, Any], Mapping[str, float], int]]
            ) -> Self:
        """Fit a recommender per component that has at least 4 cells and 2 seeds."""
        by_comp: dict[str, list[tuple[Mapping[str, Any], float, float, int]]] = {}
        for comp, params, metrics, seed in rows:
            if self.quality_metric in metrics and self.cost_metric in metrics:
                by_comp.setdefault(comp, []).append(
                    (params, float(metrics[self.quality_metric]),
                     float(metrics[self.cost_metric]), seed))
        self.recommenders_: dict[str, ConfigurationRecommender] = {}
        skipped: list[str] = []
        for comp, got in sorted(by_comp.items()):
            cells = {repr(sorted(r[0].items())) for r in got}
            if len(cells) < 4 or len({r[3] for r in got}) < 2:
                skipped.append(f"{comp} ({len(cells)} cells, {len({r[3] for r in got})} seeds)")
                continue
            rec = ConfigurationRecommender(self.quality_metric, self.cost_metric,
                                           self.higher_is_better,
                                           max_cost_per_gain=self.max_cost_per_gain,
                                           seed=self.seed)
            rec.fit([r[0] for r in got], [r[1] for r in got], [r[2] for r in got],
                    [r[3] for r in got])
            self.recommenders_[comp] = rec
        if not self.recommenders_:
            both = f"{self.quality_metric!r} and {self.cost_metric!r}"
            if not by_comp:  # it blamed the seeds of a run with 8 that lacked the metric
                raise AnalyticsError(f"no cell has both {both}: name metrics the run recorded")
            few_seeds = any(len({r[3] for r in got}) < 2 for got in by_comp.values())
            raise AnalyticsError(
                f"no component has 4 or more cells and 2 or more seeds with both {both} ("
                + ", ".join(skipped) + ")"
                + ("; recommendations need seed-level replicates: run the matrix with 2+ seeds"
                   if few_seeds else "; a component needs 4 or more cells"))
        return self

    def components(self) -> list[str]:
        """Components with a fitted recommender."""
        if not hasattr(self, "recommenders_"):
            raise NotFittedError("PerformanceOptimizer used before fit")
        return sorted(self.recommenders_)

    def advise(self, component: str, current: Mapping[str, Any], top: int = 3) -> Advice:
        """The answer for one component."""
        if component not in self.components():
            raise AnalyticsError(f"no recommender for component {component!r}")
        return self.recommenders_[component].advise(current, top)

    def recommend(self, component: str, current: Mapping[str, Any],
                  top: int = 3) -> list[Recommendation]:
        """Recommendations for one component."""
        return self.advise(component, current, top).recommendations
