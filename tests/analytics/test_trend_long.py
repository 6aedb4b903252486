"""Theil-Sen and Mann-Kendall on long series: exact (equal to scipy) on short ones, bounded
memory on long ones, with a confidence band that still covers the exact one."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from allele.analytics.trend import mann_kendall, theil_sen_trend


def _pair_loop_s(y: np.ndarray) -> float:
    """The Mann-Kendall S by the definition: the sum of sign(y_j - y_i) over i < j."""
    return float(sum(np.sum(np.sign(y[k:] - y[:-k])) for k in range(1, y.size)))


@pytest.mark.parametrize("n", [3, 4, 10, 57, 301])
def test_theil_sen_reproduces_scipy_and_mann_kendall_the_pair_count(n: int) -> None:
    rng = np.random.default_rng(n)
    y = np.round(rng.normal(0, 1, n) + 0.01 * np.arange(n), 1)  # rounded: ties in y
    ref = stats.theilslopes(y, np.arange(n), alpha=0.95)
    tr = theil_sen_trend(y, persistence=0.0)  # scipy's band is that for independent points
    np.testing.assert_allclose([tr.slope, tr.intercept, tr.slope_low, tr.slope_high],
                               [ref.slope, ref.intercept, ref.low_slope, ref.high_slope],
                               rtol=1e-12, atol=1e-15)
    s, _, _, tau = mann_kendall(y)
    assert s == _pair_loop_s(y)
    assert tau == pytest.approx(s / (n * (n - 1) / 2))


def test_sampled_theil_sen_band_covers_the_exact_band() -> None:
    rng = np.random.default_rng(7)
    n = 1500
    y = rng.normal(0, 1, n) + 0.002 * np.arange(n)
    exact = stats.theilslopes(y, np.arange(n), alpha=0.95)
    sampled = theil_sen_trend(y, max_pairs=50_000)  # 1,124,250 pairs: sampled
    assert sampled.slope_low <= exact.low_slope
    assert sampled.slope_high >= exact.high_slope
    assert sampled.slope_low <= sampled.slope <= sampled.slope_high
    assert sampled.slope == pytest.approx(exact.slope, abs=exact.high_slope - exact.low_slope)
    # Seeded: the same series gives the same answer.
    assert theil_sen_trend(y, max_pairs=50_000) == sampled


def test_a_long_series_is_analysed_in_bounded_memory() -> None:
    """200,000 points: the old pairwise matrices would take 320 GB; the sample takes 16 MB."""
    rng = np.random.default_rng(3)
    n = 200_000
    y = rng.normal(0, 1, n) + 2e-5 * np.arange(n)
    tr = theil_sen_trend(y)
    assert tr.direction == "increasing"
    assert tr.slope_low < 2e-5 < tr.slope_high
    assert tr.slope_high - tr.slope_low < 2e-6
