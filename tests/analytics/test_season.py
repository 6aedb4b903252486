"""Several seasons at once (issue 14 part 3): the periods found on real and synthetic series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from allele.analytics._season import season_profile, seasonal_periods

from .conftest import public_values


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


def test_held_out_season_refuses_a_hump_and_finds_the_day_in_hourly_demand() -> None:
    from allele.analytics._season import held_out_strength, seasonal_period

    infl = public_values("macro_infl")[:101]  # 1959-1984: the 1970s rise and fall, no season
    assert seasonal_period(infl, max_period=50) == 44  # in-sample: two "cycles" of a hump
    assert held_out_strength(infl, 44) < 0.0           # one half does not predict the other
    assert seasonal_period(infl, max_period=50, held_out=0.2) is None
    demand = public_values("elec_vic_hourly")[:150]
    assert seasonal_period(demand, max_period=75) == 71
    assert seasonal_period(demand, max_period=75, held_out=0.2) == 24
    co2 = public_values("co2")[:150]  # a real yearly season of weeks, under three cycles
    assert seasonal_period(co2, max_period=75, held_out=0.2) == 52
    assert held_out_strength(co2, 52) > 0.6


def test_held_out_season_in_autocorrelated_noise_is_rare_and_a_true_one_is_kept() -> None:
    from scipy.signal import lfilter

    from allele.analytics._season import seasonal_period

    rng = np.random.default_rng(0)
    ar = [lfilter([1.0], [1.0, -0.8], rng.normal(size=450))[300:] for _ in range(100)]
    in_sample = sum(seasonal_period(y, max_period=75) is not None for y in ar)
    held = sum(seasonal_period(y, max_period=75, held_out=0.2) is not None for y in ar)
    assert in_sample > 50 and held < 25, (in_sample, held)
    # the synthetic benchmark's seasons (period 48, AR(0.8) noise of sd 0.5): every one kept
    from allele.analytics.synthetic import clean_series

    for y in clean_series(20, 150, 48, 0.5, seed=3, noise_kind="ar"):
        found = seasonal_period(y, max_period=75, held_out=0.2)
        assert found == seasonal_period(y, max_period=75)  # a true season passes unchanged
        assert found is not None and abs(found - 48) <= 1
