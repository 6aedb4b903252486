"""The trend test on persistent noise: a metric that wanders (AR(1) noise) is not a trend."""

from __future__ import annotations

import numpy as np
import pytest

from allele.analytics.trend import (
    PredictiveAnalyzer,
    mann_kendall,
    persistence_factor,
    theil_sen_trend,
)


def _ar(rng: np.random.Generator, n: int, phi: float, sd: float = 1.0) -> np.ndarray:
    e = rng.normal(0.0, sd * np.sqrt(1.0 - phi * phi), n)
    x = np.empty(n)
    x[0] = rng.normal(0.0, sd)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x


def test_the_factor_is_the_variance_of_s_under_ar1_noise() -> None:
    """Hamed-Rao's factor against the variance of the Mann-Kendall S over 3,000 simulated
    AR(0.6) series of 50 points (truth by simulation)."""
    rng = np.random.default_rng(5)
    n, phi = 50, 0.6
    s = np.array([mann_kendall(_ar(rng, n, phi))[0] for _ in range(3000)])
    independent = n * (n - 1) * (2 * n + 5) / 18.0
    assert np.var(s) / independent == pytest.approx(persistence_factor(n, phi), rel=0.1)
    assert persistence_factor(n, 0.0) == 1.0
    assert persistence_factor(n, 0.9) > persistence_factor(n, 0.6) > 2.0


def test_persistent_noise_without_a_trend_is_not_reported_as_one() -> None:
    rng = np.random.default_rng(11)
    series = [100.0 + _ar(rng, 400, 0.8, 3.0) for _ in range(60)]
    found = sum(theil_sen_trend(y).direction != "none" for y in series)
    plain = sum(theil_sen_trend(y, persistence=0.0).direction != "none" for y in series)
    assert plain >= 20  # the test for independent points: about half of them
    assert found <= 6  # at most about the 5 % the test allows, with room for sampling
    analyzed = sum(PredictiveAnalyzer().analyze(y).trend.direction != "none" for y in series)
    assert analyzed <= 6


def test_a_trend_in_independent_noise_keeps_its_power_and_its_band() -> None:
    rng = np.random.default_rng(12)
    t = np.arange(100)
    trends = [theil_sen_trend(0.02 * t + rng.normal(0.0, 1.0, 100))  # 2 sd over the window
              for _ in range(40)]
    assert sum(tr.direction == "increasing" for tr in trends) >= 36
    assert np.median([tr.persistence for tr in trends]) < 0.1


def test_the_band_widens_with_the_persistence_allowed_for() -> None:
    rng = np.random.default_rng(13)
    y = 0.05 * np.arange(200) + _ar(rng, 200, 0.8, 1.0)
    plain = theil_sen_trend(y, persistence=0.0)
    tr = theil_sen_trend(y)
    assert 0.6 < tr.persistence <= 0.9
    assert tr.slope == plain.slope
    assert tr.slope_high - tr.slope_low > 2.0 * (plain.slope_high - plain.slope_low)
    assert tr.slope_low < 0.05 < tr.slope_high
    assert tr.p_value > plain.p_value


def test_a_stepwise_counter_and_a_seasonal_trend_are_still_trends() -> None:
    staircase = np.floor(np.arange(30) / 7.0) * 4096.0  # differences mostly exactly 0
    tr = theil_sen_trend(staircase)
    assert tr.persistence == 0.0 and tr.direction == "increasing"
    rng = np.random.default_rng(14)
    t = np.arange(240)
    seasonal = 10 * np.sin(2 * np.pi * t / 24) + 0.03 * t + rng.normal(0, 1, 240)
    a = PredictiveAnalyzer().analyze(seasonal)
    assert a.seasonality.period == 24
    assert a.trend.direction == "increasing" and a.trend.persistence < 0.3
