"""Several seasons at once (issue 14 part 3): the periods found on real and synthetic series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from allele.analytics._season import season_profile, seasonal_periods


def _elec_vic() -> np.ndarray:
    """The hourly Victoria electricity demand that statsmodels ships among its test data."""
    results = pytest.importorskip("statsmodels.tsa.stl.tests.results")
    path = Path(results.__file__).parent / "mstl_elec_vic.csv"
    if not path.exists():
        pytest.skip("statsmodels without its test data")
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=1)


def test_daily_and_weekly_seasons_of_hourly_demand() -> None:
    y = _elec_vic()
    assert seasonal_periods(y) == [24, 168]
    # Every harmonic: the weekly profile explains 75% out of sample (3 harmonics: 11% in-sample).
    assert season_profile(y, 168)[1] > 0.7


def test_two_synthetic_seasons_with_trend_and_noise() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(24 * 7 * 6)
    daily = np.where((t % 24 >= 8) & (t % 24 < 18), 3.0, 0.0)   # a square day, many harmonics
    weekly = np.where(t % 168 >= 120, -2.0, 0.0)                 # quiet weekends
    y = 50 + 0.01 * t + daily + weekly + rng.standard_t(4, t.size) * 0.5
    assert seasonal_periods(y) == [24, 168]


def test_no_season_in_noise_or_random_walks() -> None:
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(10):
        hits += bool(seasonal_periods(rng.normal(size=300)))
        hits += bool(seasonal_periods(np.cumsum(rng.normal(size=300))))
    assert hits <= 1
