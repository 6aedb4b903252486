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


def _ar1(phi: float, n: int, rng: np.random.Generator) -> np.ndarray:
    e = rng.normal(0.0, 1.0, n)
    x = np.zeros(n)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x


def test_persistent_noise_is_not_a_level_shift() -> None:
    from allele.analytics.shifts import detect_level_shifts, noise_persistence

    rng = np.random.default_rng(0)
    false_shifts = {0.5: 0, 0.9: 0}
    found = 0
    for _ in range(30):
        for phi in false_shifts:
            false_shifts[phi] += bool(detect_level_shifts(_ar1(phi, 400, rng)))
        y = _ar1(0.5, 400, rng)
        y[200:] += 4 * np.std(y)
        found += any(abs(s.index - 200) <= 10 for s in detect_level_shifts(y))
    # before: 19 of 50 AR(0.5) series and all AR(0.9) series had a "level shift"
    assert false_shifts[0.5] == 0 and false_shifts[0.9] <= 6
    assert found == 30
    assert noise_persistence(rng.normal(size=2000)) < 0.1
    assert 0.8 < noise_persistence(_ar1(0.9, 2000, rng)) < 0.97
    # a level shift is a few outlying differences, not persistence
    white = rng.normal(size=2000)
    white[1000:] += 10.0
    assert noise_persistence(white) < 0.1
