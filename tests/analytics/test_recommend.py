from __future__ import annotations

import re

import numpy as np
import pytest

from allele.analytics.recommend import ConfigurationRecommender, PerformanceOptimizer, pareto_front
from allele.analytics.synthetic import response_surface
from allele.errors import AnalyticsError, NotFittedError


def test_pareto_front() -> None:
    q = [1.0, 2.0, 1.5, 3.0, 2.5]
    c = [1.0, 2.0, 2.5, 3.0, 3.5]
    assert pareto_front(q, c) == [0, 1, 3]


def test_recommender_recovers_known_optimum_and_phrases_advice() -> None:
    params, quality, cost, optimum = response_surface(seed=0)
    rec = ConfigurationRecommender(n_bootstrap=4, seed=0).fit(params, quality, cost)
    assert rec.best() == optimum
    front = rec.pareto()
    assert any(p == optimum for p, _, _ in front)
    costs = [c for _, _, c in front]
    quals = [q for _, q, _ in front]
    assert costs == sorted(costs) and quals == sorted(quals)
    current = {"population": 100, "mutation_rate": 0.05, "crossover": "sbx"}
    recs = rec.recommend(current)
    assert recs and recs[0].quality_change_pct > 0 and recs[0].cost_change_pct > 0
    assert recs[0].params["population"] > 100
    assert 0.0 <= recs[0].confidence <= 1.0
    assert re.match(r"population 100 -> \d+: best_fitness \+\d+\.\d% for \+\d+% wall_s; "
                    r"confidence \d\.\d$", recs[0].text), recs[0].text
    # A cost budget restricts the advice.
    capped = rec.recommend(current, max_cost_increase_pct=30)
    assert all(r.cost_change_pct <= 30 for r in capped)


def test_optimizer_per_component_and_errors() -> None:
    params, quality, cost, _optimum = response_surface(seed=1, repeats=1)
    cells = [("evolution", p, {"best_fitness": q, "wall_s": c})
             for p, q, c in zip(params, quality, cost, strict=True)]
    cells += [("kraken", {"units": u}, {"best_fitness": -abs(u - 200) / 100.0, "wall_s": u / 100})
              for u in (50, 100, 200, 300, 400)]
    opt = PerformanceOptimizer(n_bootstrap=2).fit(cells)
    assert opt.components() == ["evolution", "kraken"]
    assert opt.recommenders_["kraken"].best() == {"units": 200}
    assert opt.recommend("kraken", {"units": 50})[0].params == {"units": 100} or \
        opt.recommend("kraken", {"units": 50})[0].params == {"units": 200}
    with pytest.raises(AnalyticsError):
        opt.recommend("llm", {})
    with pytest.raises(NotFittedError):
        ConfigurationRecommender().best()
    with pytest.raises(AnalyticsError):
        ConfigurationRecommender().fit([{"a": 1}], [1.0], [1.0])
    with pytest.raises(AnalyticsError):
        opt.recommenders_["kraken"].recommend({"units": 123})
    assert np.isfinite(opt.recommenders_["kraken"].pred_cost_).all()
