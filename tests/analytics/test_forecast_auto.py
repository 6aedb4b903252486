"""Model choice by backtest, refusal of degenerate fits and clipping (issue 14 part 3)."""

from __future__ import annotations

import numpy as np
import pytest

from allele.analytics.forecast import (
    ARIMAForecaster,
    AutoForecaster,
    AutoRegForecaster,
    DriftForecaster,
    ExpSmoothingForecaster,
    NaiveForecaster,
    SeasonalNaiveForecaster,
    ThetaForecaster,
    degenerate_reason,
    mase,
)
from allele.analytics.synthetic import trend_season_series

MB = 1024.0**2


def _rss(seed: int) -> np.ndarray:
    """25 points of a process' RSS rising from 86.4 to 88.1 MB with small noise, in bytes."""
    rng = np.random.default_rng(seed)
    return (np.linspace(86.4, 88.1, 25) + rng.normal(0, 0.03, 25)) * MB


@pytest.mark.parametrize("seed", range(5))
def test_rss_case_gives_a_monotone_forecast_with_positive_width_intervals(seed: int) -> None:
    fc = AutoForecaster().fit(_rss(seed)).predict(24)
    assert np.all(np.diff(fc.mean) >= 0), fc.model
    assert np.all(fc.upper - fc.lower > 0)
    assert np.all(fc.lower <= fc.mean) and np.all(fc.mean <= fc.upper)
    assert fc.mean[-1] > 88.0 * MB - 0.1 * MB  # keeps rising, not the 1.8e6 / 8.8e7 of issue 14


def test_exact_line_refuses_every_arima_fit_with_zero_width_intervals() -> None:
    y = np.linspace(86.4, 88.1, 25) * MB
    fc = ARIMAForecaster().fit(y).predict(24)
    assert "fallback: every ARIMA fit refused" in fc.model
    assert fc.refused and all("zero-width interval" in r for r in fc.refused)
    assert np.all(fc.upper > fc.lower)
    auto = AutoForecaster().fit(y)
    assert auto.model_ == "drift"  # the line itself wins the backtest
    np.testing.assert_allclose(auto.predict(3).mean, 88.1 * MB + np.arange(1, 4) * 1.7 / 24 * MB)


def test_degenerate_reasons() -> None:
    y = np.linspace(86.4, 88.1, 25) * MB
    h = np.arange(1, 13, dtype=float)
    alternating = np.where(h % 2 == 1, 1.8e6, 8.8e7)  # what ARIMA(2,1,2) answered in issue 14
    assert degenerate_reason(y, alternating, alternating, alternating) == "zero-width interval"
    assert degenerate_reason(y, alternating, alternating - 1e6, alternating + 1e6) == \
        "explosive forecast"
    wiggle = y[-1] + np.where(h % 2 == 1, 1.0, -1.0) * 0.2 * MB
    assert degenerate_reason(y, wiggle, wiggle - MB, wiggle + MB) == "oscillating forecast"
    nan = np.full(12, np.nan)
    assert degenerate_reason(y, nan, nan, nan) == "non-finite forecast or interval"
    good = y[-1] + 0.07 * MB * h
    assert degenerate_reason(y, good, good - MB, good + MB) is None
    damped = y[-1] + 0.05 * MB * (-0.5) ** h  # a fading alternation is allowed
    assert degenerate_reason(y, damped, damped - MB, damped + MB) is None


def test_intervals_clipped_at_zero_for_a_non_negative_metric() -> None:
    rng = np.random.default_rng(1)
    counts = rng.poisson(0.8, 200).astype(float)
    for f in (NaiveForecaster(), DriftForecaster(), SeasonalNaiveForecaster(7),
              AutoForecaster()):
        fc = f.fit(counts).predict(10)
        assert np.all(fc.lower >= 0) and np.all(fc.mean >= 0), f
    signed = NaiveForecaster().fit(counts - 0.5).predict(10)
    assert np.any(signed.lower < 0)
    unclipped = NaiveForecaster(nonnegative=False).fit(counts).predict(10)
    assert np.any(unclipped.lower < 0)


def test_auto_chooses_a_seasonal_model_and_beats_the_baselines_on_held_out_data() -> None:
    y = trend_season_series(n=264, period=24, slope=0.05, seed=2)
    train, test = y[:-24], y[-24:]
    auto = AutoForecaster(horizon=24).fit(train)
    assert auto.periods_ == [24]
    assert "24" in auto.model_ and "ARIMA" in auto.model_
    assert auto.scores_[auto.baseline_] > min(auto.scores_.values())
    chosen = mase(test, auto.predict(24).mean, train, 24)
    for base in (SeasonalNaiveForecaster(24), NaiveForecaster(), DriftForecaster()):
        assert chosen < mase(test, base.fit(train).predict(24).mean, train, 24)


def test_auto_prefers_a_baseline_on_a_random_walk_when_no_model_beats_it() -> None:
    rng = np.random.default_rng(4)
    y = 100 + np.cumsum(rng.normal(size=150))
    auto = AutoForecaster(horizon=10).fit(y)
    assert auto.periods_ == []
    assert {"naive", "drift", "ARIMA"} <= set(auto.scores_)
    if auto.chosen_ != auto.baseline_:  # a model must beat the best baseline consistently
        assert auto.scores_[auto.chosen_] < auto.scores_[auto.baseline_]
        assert auto.p_values_[auto.chosen_] < auto.alpha
    assert auto.folds_ == 7  # as many origins of 10 steps as leave half of the 150 points
    assert all(s.size == 7 for s in auto.fold_scores_.values())
    assert auto.choice_.startswith(auto.model_)
    assert "backtest MASE" in auto.choice_


def test_auto_on_very_short_or_constant_series() -> None:
    fc = AutoForecaster().fit([1.0, 2.0, 3.0, 4.0]).predict(3)
    assert fc.model.startswith("drift (fallback: only 4 points")
    np.testing.assert_allclose(fc.mean, [5.0, 6.0, 7.0])
    const = AutoForecaster().fit([3.0] * 30).predict(2)
    assert "constant series" in const.model and const.mean.tolist() == [3.0, 3.0]


@pytest.mark.slow
def test_hourly_demand_chosen_model_no_worse_than_weekly_seasonal_naive() -> None:
    from pathlib import Path

    results = pytest.importorskip("statsmodels.tsa.stl.tests.results")
    y = np.loadtxt(Path(results.__file__).parent / "mstl_elec_vic.csv", delimiter=",",
                   skiprows=1, usecols=1)
    train, test = y[:-168], y[-168:]
    auto = AutoForecaster(horizon=168).fit(train)
    assert auto.periods_ == [24, 168]
    fc = auto.predict(168)
    sn = SeasonalNaiveForecaster(168).fit(train).predict(168).mean
    assert mase(test, fc.mean, train, 24) <= mase(test, sn, train, 24)


def test_a_model_better_on_average_but_not_across_origins_keeps_the_baseline() -> None:
    rng = np.random.default_rng(7)
    y = 50 + np.cumsum(rng.normal(size=200))
    auto = AutoForecaster(horizon=10, alpha=0.1).fit(y)
    for name, p in auto.p_values_.items():
        mean_better = auto.scores_[name] < auto.scores_[auto.baseline_]
        if mean_better and p >= auto.alpha:
            assert auto.chosen_ != name
    strict = AutoForecaster(horizon=10, alpha=1e-12).fit(y)  # no model can pass
    assert strict.chosen_ == strict.baseline_
    assert "better at p=" not in strict.choice_


def test_auto_follows_a_cycle_of_non_integer_length_with_a_long_autoregression() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(330)
    y = 80 + 60 * np.sin(2 * np.pi * t / 10.6) + rng.normal(0, 8, t.size)
    train, test = y[:-22], y[-22:]
    ar = AutoRegForecaster().fit(train)
    assert ar.order_ is not None and ar.order_ >= 2
    fc = ar.predict(22)
    assert np.all(fc.upper - fc.lower > 0) and np.all(np.diff(fc.upper - fc.lower) >= -1e-9)
    sn = SeasonalNaiveForecaster(11).fit(train).predict(22).mean
    assert mase(test, fc.mean, train, 11) < mase(test, sn, train, 11)
    auto = AutoForecaster(horizon=11).fit(train)
    assert auto.chosen_ != auto.baseline_
    assert mase(test[:11], auto.predict(11).mean, train, 11) < mase(test[:11], sn[:11], train, 11)


def test_smoothers_values_and_intervals() -> None:
    y = np.array([10.0, 12, 11, 13, 12, 14, 13, 15, 14, 16, 15, 17])
    ses = ExpSmoothingForecaster(trend=False).fit(y)
    fc = ses.predict(5)
    assert np.ptp(fc.mean) == pytest.approx(0.0, abs=1e-9)  # a flat level
    width = fc.upper - fc.lower
    assert np.all(width > 0) and np.all(np.diff(width) >= 0)
    theta = ThetaForecaster().fit(y)
    alpha, slope = theta.params_["alpha"], theta.params_["slope"]
    assert slope == pytest.approx(np.polyfit(np.arange(12.0), y, 1)[0])
    h = np.arange(1, 6.0)
    drift = 0.5 * slope * (h - 1 + 1 / alpha - (1 - alpha) ** 12 / alpha)
    level = ExpSmoothingForecaster(trend=False).fit(y).predict(5).mean
    np.testing.assert_allclose(theta.predict(5).mean - drift, level, rtol=1e-6)
    damped = ExpSmoothingForecaster(trend=True).fit(y)
    steps = np.diff(damped.predict(30).mean)
    assert np.all(steps > 0) and steps[-1] < steps[0]  # rising, and the rise fades
    short = ThetaForecaster().fit([1.0, 2.0, 4.0])
    assert "fallback" in short.model_


def test_arima_with_given_parameters_only_filters_and_matches_its_fit() -> None:
    rng = np.random.default_rng(5)
    e = rng.normal(size=160)
    y = np.empty(160)
    y[0] = 0.0
    for t in range(1, 160):
        y[t] = 0.6 * y[t - 1] + e[t]
    fit = ARIMAForecaster(order=(1, 0, 0)).fit(y)
    assert fit.params_ is not None
    again = ARIMAForecaster(order=(1, 0, 0), params=tuple(fit.params_)).fit(y)
    a, b = fit.predict(6), again.predict(6)
    np.testing.assert_allclose(b.mean, a.mean)
    np.testing.assert_allclose(b.upper, a.upper)
    later = ARIMAForecaster(order=(1, 0, 0), params=tuple(fit.params_)).fit(y[:120])
    np.testing.assert_allclose(later.params_, fit.params_)  # kept, not re-estimated


def test_a_season_too_long_for_the_series_is_named_not_dropped_silently() -> None:
    y = trend_season_series(n=100, period=12, seed=3)
    f = AutoForecaster(horizon=10, seasonal_periods=[12, 1000]).fit(y)
    assert f.periods_ == [12]
    assert any(r.startswith("season 1000: longer than the") for r in f.refused_)
    assert f.predict(10).refused == f.refused_
    # a season found by the detector itself and not usable is not the user's to be told about
    assert not any(r.startswith("season") for r in AutoForecaster(horizon=10).fit(y).refused_)
