"""Robust helpers of the verdicts (``allele.bench.stats``)."""

from __future__ import annotations

import numpy as np

from allele.bench.stats import winsorize


def test_winsorize_pulls_a_far_value_in_to_the_fence_and_counts_it() -> None:
    x = np.array([[1.0, 1.1, 0.9, 1.05, 0.95, 1.02, 0.98, 9.0]])
    out, f = winsorize(x, k=3.0)
    assert out[0, :7].tolist() == x[0, :7].tolist()
    assert 1.0 < out[0, 7] < 1.5 and f[0] == 1 / 8
    scaled, _ = winsorize(1000.0 * x, k=3.0)  # the fence scales with the data
    np.testing.assert_allclose(scaled, 1000.0 * out)


def test_a_mad_of_ulps_is_no_scale_to_clip_by_as_an_exact_zero_is_none() -> None:
    exact = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 2.0])
    ulps = exact + np.array([0.0, 2.2e-16, -1.1e-16, 2.2e-16, -2.2e-16, 0.0])
    for row in (exact, ulps):  # before: the ulps row had its 2.0 pulled in to 1.0 + 1e-15
        out, f = winsorize(row)
        assert out[-1] == 2.0 and f == 0.0
    # The same around 0, as in log-ratios of identical timings with one pair apart.
    logs = np.array([0.0, 1e-16, -1e-16, 0.0, 2e-16, 0.7])
    out, f = winsorize(logs)
    assert out[-1] == 0.7 and f == 0.0
    # A MAD that is a real (if small) spread still clips.
    real = np.array([1.0, 1.0 + 1e-6, 1.0 - 1e-6, 1.0 + 2e-6, 1.0 - 2e-6, 2.0])
    out, f = winsorize(real)
    assert out[-1] < 1.0001 and f > 0.0


def test_winsorize_over_several_axes_and_with_nan() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5))
    x[1, 2, 3] = 40.0
    x[2, 0, 0] = np.nan
    out, f = winsorize(x, axis=(-2, -1))
    assert f.shape == (3,) and f[1] >= 1 / 20
    assert out[1, 2, 3] < 10.0 and np.isnan(out[2, 0, 0])
    assert np.isfinite(out[2]).sum() == 19  # the NaN stays out of its row's count
