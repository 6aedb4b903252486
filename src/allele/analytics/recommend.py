"""Configuration recommendations from matrix results.

:class:`ConfigurationRecommender` fits surrogate models (scikit-learn gradient boosting) of a
quality metric and a cost metric over cell parameters, predicts them over the candidate grid
(the cartesian product of the values seen per parameter), computes the Pareto front (best
quality for the cost) and recommends changes to a current configuration with expected gain,
cost and a confidence, e.g. ``"population 100 -> 250: best_fitness +3.1% for +40% wall_s;
confidence 0.8"``. The confidence is the share of ``n_bootstrap`` surrogates, each fitted on a
bootstrap resample of the cells, that agree the recommended configuration improves the quality.
The direction of each metric (higher or lower is better) is given by ``higher_is_better``.

:class:`PerformanceOptimizer` keeps one recommender per component (benchmark target).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike

from allele.analytics._common import FloatArray, as_series
from allele.errors import AnalyticsError, NotFittedError

__all__ = [
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


@dataclass(frozen=True)
class Recommendation:
    """A configuration with its predicted quality and cost relative to the current one."""

    params: dict[str, Any]
    changes: dict[str, tuple[Any, Any]]
    quality: float
    cost: float
    quality_change_pct: float
    cost_change_pct: float
    confidence: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "params": self.params, "changes": {k: list(v) for k, v in self.changes.items()},
            "quality": self.quality, "cost": self.cost,
            "quality_change_pct": self.quality_change_pct,
            "cost_change_pct": self.cost_change_pct, "confidence": self.confidence,
            "text": self.text,
        }


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

    return GradientBoostingRegressor(n_estimators=150, max_depth=3, learning_rate=0.1,
                                     subsample=1.0, random_state=seed)


def _pct(new: float, old: float) -> float:
    return 0.0 if old == 0 else (new - old) / abs(old) * 100.0


class ConfigurationRecommender:
    """Surrogate models of quality and cost over cell parameters (see module docstring)."""

    def __init__(
        self,
        quality_metric: str = "best_fitness",
        cost_metric: str = "wall_s",
        higher_is_better: bool = True,
        n_bootstrap: int = 10,
        seed: int = 0,
    ) -> None:
        self.quality_metric = quality_metric
        self.cost_metric = cost_metric
        self.higher_is_better = higher_is_better
        self.n_bootstrap = n_bootstrap
        self.seed = seed

    def fit(self, params: Sequence[Mapping[str, Any]], quality: ArrayLike,
            cost: ArrayLike) -> Self:
        """Learn quality and cost from cells (one parameter dict and two values per cell)."""
        q = as_series(quality, name="quality")
        c = as_series(cost, name="cost")
        if not (len(params) == q.size == c.size):
            raise AnalyticsError("params, quality and cost must have the same length")
        if q.size < 4:
            raise AnalyticsError(f"need at least 4 cells to fit a surrogate, got {q.size}")
        self.encoder_ = _Encoder(params)
        x = self.encoder_.encode(params)
        sign = 1.0 if self.higher_is_better else -1.0
        self._sign = sign
        self.quality_model_ = _surrogate(self.seed).fit(x, sign * q)
        self.cost_model_ = _surrogate(self.seed).fit(x, c)
        rng = np.random.default_rng(self.seed)
        self.boot_models_ = []
        for b in range(self.n_bootstrap):
            idx = rng.integers(0, q.size, q.size)
            self.boot_models_.append(_surrogate(self.seed + b + 1).fit(x[idx], sign * q[idx]))
        self.candidates_ = self.encoder_.grid()
        xc = self.encoder_.encode(self.candidates_)
        self.pred_quality_ = np.asarray(self.quality_model_.predict(xc), dtype=np.float64)
        self.pred_cost_ = np.asarray(self.cost_model_.predict(xc), dtype=np.float64)
        self._boot_pred = np.stack([m.predict(xc) for m in self.boot_models_]) \
            if self.boot_models_ else self.pred_quality_[None, :]
        return self

    def _check(self) -> None:
        if not hasattr(self, "candidates_"):
            raise NotFittedError("ConfigurationRecommender used before fit")

    def best(self, max_cost: float | None = None) -> dict[str, Any]:
        """The candidate with the best predicted quality (within ``max_cost`` if given)."""
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

    def _index_of(self, params: Mapping[str, Any]) -> int:
        for i, cand in enumerate(self.candidates_):
            if all(cand.get(k) == params.get(k) for k in self.encoder_.names):
                return i
        raise AnalyticsError(f"configuration {dict(params)} is not on the measured grid")

    def recommend(self, current: Mapping[str, Any], top: int = 3,
                  max_cost_increase_pct: float | None = None) -> list[Recommendation]:
        """Pareto-optimal configurations better than ``current``, best predicted quality first."""
        self._check()
        cur = self._index_of(current)
        q0 = float(self._sign * self.pred_quality_[cur])
        c0 = float(self.pred_cost_[cur])
        out = []
        for i in pareto_front(self.pred_quality_, self.pred_cost_):
            if self.pred_quality_[i] <= self.pred_quality_[cur]:
                continue
            cost_pct = _pct(float(self.pred_cost_[i]), c0)
            if max_cost_increase_pct is not None and cost_pct > max_cost_increase_pct:
                continue
            cand = self.candidates_[i]
            conf = float(np.mean(self._boot_pred[:, i] > self._boot_pred[:, cur]))
            q1 = float(self._sign * self.pred_quality_[i])
            q_pct = _pct(q1, q0)
            changes = {k: (current.get(k), cand[k]) for k in self.encoder_.names
                       if current.get(k) != cand[k]}
            change_txt = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changes.items())
            text = (f"{change_txt}: {self.quality_metric} {q_pct:+.1f}% for "
                    f"{cost_pct:+.0f}% {self.cost_metric}; confidence {conf:.1f}")
            out.append(Recommendation(dict(cand), changes, q1, float(self.pred_cost_[i]),
                                      q_pct, cost_pct, conf, text))
        out.sort(key=lambda r: -self._sign * r.quality)
        return out[:top]


class PerformanceOptimizer:
    """One :class:`ConfigurationRecommender` per component (benchmark target).

    ``fit`` takes cells as ``(component, params, metrics)`` triples, where ``metrics`` maps
    metric names to a value (e.g. a median over seeds); cells missing either metric are skipped.
    """

    def __init__(self, quality_metric: str = "best_fitness", cost_metric: str = "wall_s",
                 higher_is_better: bool = True, n_bootstrap: int = 10, seed: int = 0) -> None:
        self.quality_metric = quality_metric
        self.cost_metric = cost_metric
        self.higher_is_better = higher_is_better
        self.n_bootstrap = n_bootstrap
        self.seed = seed

    def fit(self, cells: Sequence[tuple[str, Mapping[str, Any], Mapping[str, float]]]) -> Self:
        """Fit a recommender per component that has at least 4 usable cells."""
        by_comp: dict[str, list[tuple[Mapping[str, Any], float, float]]] = {}
        for comp, params, metrics in cells:
            if self.quality_metric in metrics and self.cost_metric in metrics:
                by_comp.setdefault(comp, []).append(
                    (params, float(metrics[self.quality_metric]),
                     float(metrics[self.cost_metric])))
        self.recommenders_: dict[str, ConfigurationRecommender] = {}
        for comp, rows in sorted(by_comp.items()):
            if len(rows) < 4:
                continue
            rec = ConfigurationRecommender(self.quality_metric, self.cost_metric,
                                           self.higher_is_better, self.n_bootstrap, self.seed)
            rec.fit([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
            self.recommenders_[comp] = rec
        if not self.recommenders_:
            raise AnalyticsError(
                f"no component has 4 or more cells with both {self.quality_metric!r} and "
                f"{self.cost_metric!r}")
        return self

    def components(self) -> list[str]:
        """Components with a fitted recommender."""
        if not hasattr(self, "recommenders_"):
            raise NotFittedError("PerformanceOptimizer used before fit")
        return sorted(self.recommenders_)

    def recommend(self, component: str, current: Mapping[str, Any],
                  top: int = 3) -> list[Recommendation]:
        """Recommendations for one component."""
        if component not in self.components():
            raise AnalyticsError(f"no recommender for component {component!r}")
        return self.recommenders_[component].recommend(current, top)
