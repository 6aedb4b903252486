from __future__ import annotations

import numpy as np
import pytest

from allele.analytics.rca import (
    RootCauseAnalyzer,
    diff_environments,
    lead_lag,
    rank_metric_causes,
    rank_parameter_causes,
)
from allele.analytics.synthetic import regression_trial, root_cause_trial
from allele.errors import AnalyticsError


def test_metric_rca_names_the_injected_cause_first() -> None:
    trials = 40
    hits = 0
    for seed in range(trials):
        metrics, cause, target, at = root_cause_trial(seed)
        ranked = rank_metric_causes(metrics, at, target)
        hits += bool(ranked) and ranked[0].name == cause
    assert hits / trials >= 0.9


def test_parameter_rca_names_the_injected_parameter_first() -> None:
    trials = 30
    hits = 0
    for seed in range(trials):
        cells, before, after, cause = regression_trial(seed)
        ranked = rank_parameter_causes(cells, before, after)
        hits += ranked[0].name == cause
    assert hits / trials >= 0.9
    cells, before, after, cause = regression_trial(0)
    top = rank_parameter_causes(cells, before, after)[0]
    assert top.details["eta2"] > 0.5 and top.details["p"] < 1e-6
    assert "%" in top.evidence


def test_lead_lag_sign() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=300).cumsum()
    y = np.roll(x, 3) + rng.normal(0, 0.1, 300)
    lag, r = lead_lag(x[10:], y[10:], 10)
    assert lag == 3 and r > 0.8


def test_environment_diff_ranks_versions_first() -> None:
    a = {"python": "3.11.7", "packages": {"numpy": "1.26.4"}, "hostname": "a", "cpu": "x86"}
    b = {"python": "3.11.7", "packages": {"numpy": "2.1.0"}, "hostname": "b", "cpu": "x86"}
    diffs = diff_environments(a, b)
    assert [d.name for d in diffs] == ["packages.numpy", "hostname"]
    assert diffs[0].evidence == "packages.numpy: 1.26.4 -> 2.1.0"


def test_analyzer_combines_and_validates() -> None:
    metrics, cause, target, at = root_cause_trial(1)
    res = RootCauseAnalyzer().analyze(metrics=metrics, anomaly_index=at, target=target,
                                      env_before={"v": 1}, env_after={"v": 2})
    assert res[0].name == cause and res[-1].kind == "environment"
    with pytest.raises(AnalyticsError):
        RootCauseAnalyzer().analyze()
    with pytest.raises(AnalyticsError):
        rank_metric_causes(metrics, 10_000, target)
