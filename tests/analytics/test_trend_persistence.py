"""The trend test on persistent noise: a metric that wanders (AR(1) noise) is not a trend."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import signal

from allele.analytics.trend import (
    PredictiveAnalyzer,
    mann_kendall,
    persistence_factor,
    theil_sen_trend,
    time_to_threshold,
)


def _ar(rng: np.random.Generator, n: int, phi: float, sd: float = 1.0) -> np.ndarray:
    """Stationary AR(1) noise of marginal sd ``sd``."""
    e = rng.normal(0.0, sd * np.sqrt(1.0 - phi * phi), n)
    e[0] = rng.normal(0.0, sd)
    out: np.ndarray = signal.lfilter([1.0], [1.0, -phi], e)
    return out


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


def test_the_crossing_range_covers_the_true_time_on_persistent_noise() -> None:
    """A leak of 1 GB an hour from 4 GB, sampled every minute for 4 h, under AR(0.8) noise of
    0.15 GB: the line reaches 8 GB 241 samples after the last one. The range the message gives
    (the ends of the slope's band, pivoting about the line's centre) holds that time in most
    series; a band for independent points (``persistence=0``) in about half."""
    gb = 1024.0**3
    ts = 60.0 * np.arange(240)
    covered = plain_covered = 0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        y = 4 * gb + (gb / 120) * np.arange(240) + _ar(rng, 240, 0.8, 0.15 * gb)
        c = PredictiveAnalyzer().analyze(y, ts, threshold=8 * gb, metric="rss",
                                         unit="bytes").crossing
        assert c is not None and c.steps_range is not None and c.seconds is not None
        lo, hi = c.steps_range
        covered += lo <= 241 <= (hi if hi is not None else np.inf)
        assert c.message.startswith("rss reaches 8 GiB in about ")
        tr = theil_sen_trend(y, persistence=0.0)
        plain = time_to_threshold(tr, 240, 8 * gb)
        assert plain.steps_range is not None
        plo, phi = plain.steps_range
        plain_covered += plo <= 241 <= (phi if phi is not None else np.inf)
    assert covered >= 48
    assert plain_covered <= 40


def test_the_crossing_message_gives_its_range() -> None:
    rng = np.random.default_rng(2)
    y = 10.0 + 0.05 * np.arange(100) + _ar(rng, 100, 0.5, 1.0)
    c = PredictiveAnalyzer().analyze(y, threshold=20.0, metric="x").crossing
    assert c is not None and c.steps is not None and c.steps_range is not None
    lo, hi = c.steps_range
    assert hi is not None and lo < c.steps < hi
    assert c.message == (f"x reaches 20 in about {round(c.steps)} steps (between {round(lo)} "
                         f"steps and {round(hi)} steps within the slope's band)")
    noisy = time_to_threshold(replace(theil_sen_trend(y), slope_low=-0.01), 100, 20.0)
    assert noisy.steps_range is not None and noisy.steps_range[1] is None
    assert "(not before " in noisy.message and "reaches no trend" in noisy.message
