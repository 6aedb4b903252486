"""Prediction intervals never have zero width, and the floor at 0 of a non-negative series does
not collapse them."""

from __future__ import annotations

import numpy as np
import pytest

from allele.analytics.forecast import (
    ARIMAForecaster,
    AutoForecaster,
    DriftForecaster,
    NaiveForecaster,
)
from allele.analytics.forecast.base import data_resolution


def test_data_resolution() -> None:
    assert data_resolution(np.array([3.0, 4.0, 5.0])) == 1.0
    assert data_resolution(np.array([1.0, 1.25, 2.0])) == 0.25
    assert data_resolution(np.full(10, 5.0)) == 1.0
    assert data_resolution(np.full(10, 0.25)) == 0.01


def test_three_points_on_a_line_get_an_interval_growing_with_the_horizon() -> None:
    fc = AutoForecaster().fit([3.0, 4.0, 5.0]).predict(5)
    np.testing.assert_allclose(fc.mean, [6, 7, 8, 9, 10])
    width = fc.upper - fc.lower
    assert np.all(width > 0) and np.all(np.diff(width) > 0)
    # The floor: z(0.9) * resolution / 2 * sqrt(h) on each side, resolution 1.
    np.testing.assert_allclose(fc.upper[0] - fc.mean[0], 1.6448536 * 0.5, rtol=1e-6)


def test_a_constant_series_gets_an_interval_of_its_resolution() -> None:
    fc = NaiveForecaster().fit([5.0] * 20).predict(4)
    assert np.all(fc.mean == 5.0)
    assert np.all(fc.lower < 5.0) and np.all(fc.upper > 5.0)


def test_the_25_point_rss_line_is_monotone_with_positive_width_and_names_refusals() -> None:
    y = np.linspace(86.4e6, 88.1e6, 25)
    fc = AutoForecaster().fit(y).predict(24)
    assert fc.model == "drift"
    assert np.all(np.diff(fc.mean) > 0)
    width = fc.upper - fc.lower
    assert np.all(width > 0) and np.all(np.diff(width) > 0)
    # Half a step of the line (its resolution) on each side at step 1, times z(0.9).
    step = (88.1e6 - 86.4e6) / 24
    assert fc.upper[0] - fc.mean[0] == pytest.approx(1.6448536 * step / 2, rel=1e-6)
    # Every ARIMA order of the search is refused, and each refusal is named.
    assert len(fc.refused) == 9
    assert all("zero-width interval" in r for r in fc.refused)


@pytest.mark.parametrize("model", ["arima", "drift"])
def test_a_forecast_below_the_floor_keeps_its_interval(model: str) -> None:
    """A non-negative series falling towards 0: where the line passes below 0 the forecast is
    0 and the interval runs from 0 to the model's upper half-width (it used to be 0 | 0 | 0)."""
    rng = np.random.default_rng(2)
    y = np.maximum(0.0, 30 - 0.1 * np.arange(300) + rng.normal(0, 1, 300))
    y = y[:290] if model == "drift" else y
    f = (ARIMAForecaster(order=(0, 1, 1)) if model == "arima" else DriftForecaster()).fit(y)
    fc = f.predict(40)
    raw_mean, _, raw_upper = f._predict(40)
    below = raw_mean < 0
    assert below.any()
    assert np.all(fc.mean[below] == 0.0) and np.all(fc.lower[below] == 0.0)
    np.testing.assert_allclose(fc.upper[below], (raw_upper - raw_mean)[below])
    assert np.all(fc.upper > fc.lower)
    # Once on the floor, the upper bound does not shrink.
    assert np.all(np.diff(fc.upper[below]) >= 0)
