"""Trends are reported only when practically significant (issue 14)."""

from __future__ import annotations

import numpy as np

from allele.analytics.trend import PredictiveAnalyzer, theil_sen_trend


def test_constant_series_with_float_noise_has_no_trend() -> None:
    """100 trials of 1.0 + 1e-16 noise (and a rising float-noise pattern): no trend reported."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        y = 1.0 + rng.normal(0, 1e-16, 200)
        assert theil_sen_trend(y).direction == "none"
    ramp = 1.0 + np.arange(200) * 6.5e-18  # strictly "rising" by floating-point steps
    t = theil_sen_trend(ramp)
    assert t.direction == "none" and not t.practical
    assert "no practically significant trend" in PredictiveAnalyzer().analyze(ramp).summary()[0]


def test_best_fitness_flat_at_one_is_not_a_trend() -> None:
    y = np.concatenate([np.linspace(0.6, 1.0, 10), np.ones(90)])
    y[10:] += np.arange(90) * 1e-17
    t = theil_sen_trend(y[10:])
    assert t.direction == "none"


def test_real_trends_are_still_found() -> None:
    # 25 points rising from 86.4 to 88.1 MB (2% of the level) with noise: a real upward trend
    rng = np.random.default_rng(1)
    y = np.linspace(86.4, 88.1, 25) + rng.normal(0, 0.05, 25)
    t = theil_sen_trend(y)
    assert t.direction == "increasing" and t.practical
    assert abs(t.change - 1.7) < 0.3
    # a metric that moves around 0 is judged against its spread, not its (zero) level
    z = np.linspace(-1, 1, 50) + rng.normal(0, 0.1, 50)
    assert theil_sen_trend(z).direction == "increasing"
    # a significant drift of 0.2% of the level is not reported by default, is with min_change
    small = 100 + np.linspace(0, 0.2, 200) + rng.normal(0, 0.01, 200)
    assert theil_sen_trend(small).direction == "none"
    assert theil_sen_trend(small, min_change=0.001).direction == "increasing"
