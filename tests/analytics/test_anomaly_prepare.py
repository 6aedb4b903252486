"""What the anomaly pipeline does to a series before its statistics: rounding, counts, and a
trend learned on the learning period (allele.analytics.anomaly.prepare)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from allele.analytics.anomaly import detect_series, score_series
from allele.analytics.anomaly.prepare import (
    dequantise,
    learned_trend,
    lognormal_bound,
    snap_rounding,
)
from allele.analytics.anomaly.series import _min_learn
from allele.analytics.synthetic import anomaly_benchmark, clean_series, false_runs, noise_series

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _false_runs_per_1000(flags: np.ndarray, learn: int = 150) -> float:
    return 1000.0 * len(false_runs(flags, [])) / (flags.size - learn)


def test_a_constant_with_floating_point_noise_is_a_constant() -> None:
    # 1.0 give or take an ulp: before, the ulps were scored as a series and 51 of 300 flagged
    y = 1.0 + np.random.default_rng(0).normal(0.0, 1e-16, 300)
    assert np.unique(y).size > 1
    assert not detect_series(y).flags.any()
    np.testing.assert_array_equal(snap_rounding(y, 150), np.ones(300))
    # a real change after such a learning period is still news
    z = y.copy()
    z[200] = 1.001
    assert detect_series(z).anomalies() == [200]


def test_rounding_leaves_measured_values_alone() -> None:
    rng = np.random.default_rng(1)
    y = 0.02 + rng.normal(0.0, 1e-6, 500)  # a 20 ms timing with microsecond noise
    snapped = snap_rounding(y, 150)
    assert np.max(np.abs(snapped - y)) <= 1e-12 * np.max(np.abs(y[:150]))
    assert np.unique(snapped).size == np.unique(y).size


@pytest.mark.parametrize("lam", [0.2, 0.5, 2.0, 10.0])
def test_counts_do_not_raise_a_stream_of_false_alarms(lam: float) -> None:
    # i.i.d. Poisson counts, no anomaly: before, 2.1 / 8.2 / 4.5 / 1.7 false runs per 1,000
    # points at these rates over 30 series (the robust scales of a low count are 0 or one step)
    rates = [_false_runs_per_1000(detect_series(
        np.random.default_rng(seed).poisson(lam, 1000).astype(float)).flags)
        for seed in range(12)]
    assert np.mean(rates) <= 1.0


def test_a_burst_in_a_count_is_found() -> None:
    found = 0
    for seed in range(10):
        y = np.random.default_rng(seed).poisson(0.5, 1000).astype(float)
        y[[400, 700]] += 12.0
        flags = detect_series(y).flags
        found += int(flags[400]) + int(flags[700])
    assert found >= 18


def test_count_jitter_is_fixed_per_point_and_only_for_whole_numbers() -> None:
    y = np.random.default_rng(2).poisson(3.0, 400).astype(float)
    full = dequantise(y, 150)
    np.testing.assert_array_equal(dequantise(y[:250], 150), full[:250])  # never rewritten
    assert np.all(np.abs(full - y) <= 0.5) and not np.array_equal(full, y)
    np.testing.assert_array_equal(dequantise(y + 0.25, 150), y + 0.25)  # not counts
    const = np.full(400, 7.0)
    np.testing.assert_array_equal(dequantise(const, 150), const)  # a constant keeps its rule


def test_the_shortest_learning_period_of_the_other_points_is_one_detect_accepts() -> None:
    # zero-inflated series with exactly 28 other points in the learning period: the window
    # grows with the learning period (28 // 3 = 9), so 28 was accepted by the check and then
    # refused inside (before: AnalyticsError "needs at least 29")
    assert _min_learn(None, 5) == 29
    rng = np.random.default_rng(3)
    y = np.zeros(600)
    idx = np.sort(rng.choice(150, 28, replace=False))
    y[idx] = rng.exponential(1.0, 28) + 0.01
    later = rng.random(450) < 0.2
    y[150:][later] = rng.exponential(1.0, int(later.sum())) + 0.01
    det = detect_series(y)
    assert det.mass == 0.0 and det.scores.shape == (600,)


def _trending(seed: int, slope: float, n: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 50.0 + slope * t + 2.0 * np.sin(2 * np.pi * t / 48) + rng.normal(0.0, 0.5, n)


def test_a_steady_trend_is_learned_not_flagged_for_ever() -> None:
    flagged = []
    for seed in range(6):
        det = detect_series(_trending(seed, 0.02))
        assert det.trend is not None and det.trend.slope > 0
        flagged.append(det.flags[150:].mean())
    # before: the drift statistic measured every later point against the learning level, and
    # flagged from about point 300 on
    assert max(flagged) < 0.01


def test_a_change_on_top_of_a_trend_is_still_found() -> None:
    hits = 0
    for seed in range(6):
        y = _trending(seed, 0.02)
        y[600:660] += 3.0  # a level shift of 6 noise sd for 60 points
        flags = detect_series(y).flags
        hits += bool(flags[598:665].any())
    assert hits == 6


def test_no_trend_is_learned_from_clean_noise() -> None:
    for kind in ("gaussian", "student_t", "lognormal"):
        for y in clean_series(20, seed=5, noise_kind=kind):
            assert detect_series(y).trend is None


def test_learned_trend_estimates_the_slope_and_its_error() -> None:
    rng = np.random.default_rng(4)
    r = 0.05 * np.arange(400) + rng.normal(0.0, 1.0, 400)
    got = learned_trend(r, 150, 0)
    assert got is not None
    e, phi, trend = got
    assert phi == () and trend.slope == pytest.approx(0.05, abs=4 * trend.se)
    assert 0.001 < trend.se < 0.01  # sd 1 over 147 points: sqrt(12 / 147^3) = 0.0019
    assert abs(np.polyfit(np.arange(400), e, 1)[0]) < 0.01  # the trend is gone
    var = trend.drift_var(400)
    assert var[round(trend.t_mean)] < 1e-6 and var[399] > var[200] > var[100]
    assert learned_trend(rng.normal(0.0, 1.0, 400), 150, 0) is None


def test_co2_is_not_flagged_wholesale() -> None:
    sys.path.insert(0, str(BENCH))
    realdata = pytest.importorskip("realdata")
    co2 = realdata.public_series()["co2"].values  # weekly, rising for 44 years
    det = detect_series(co2)
    assert det.trend is not None and det.trend.slope > 0
    # before: 1,867 of the 2,134 scored points (87.5 %) were flagged, all by the drift statistic
    assert det.flags[150:].mean() < 0.02


def test_a_shifted_lognormal_is_fitted_to_skewed_noise_only() -> None:
    # 150-point learning periods of noise alone: the skewed noise is recognised, the
    # symmetric ones (Student-t(3) among them, which often looks skewed) are not.
    rng = np.random.default_rng(14)
    fired = {kind: sum(lognormal_bound(noise_series(rng, 150, 0.5, kind)) is not None
                       for _ in range(100))
             for kind in ("lognormal", "student_t", "gaussian", "ar")}
    assert fired["lognormal"] >= 85, fired
    assert fired["student_t"] <= 5 and fired["gaussian"] <= 3 and fired["ar"] <= 3, fired
    # On a long sample the bound is the noise's: 20 - exp(0.125) for 20 + centred lognormal.
    x = 20.0 + rng.lognormal(0.0, 0.5, 3000) - np.exp(0.125)
    c = lognormal_bound(x)
    assert c is not None and c == pytest.approx(20.0 - np.exp(0.125), abs=0.1)


def test_skewed_noise_reads_the_spike_up_statistic_in_logs() -> None:
    # The up spikes of a right-skewed noise: the log reading finds more of them, and the
    # scores stay causal (a prefix scores as the whole series did).
    series = anomaly_benchmark(n_series=12, seed=5, kinds=["spike"], noise_kind="lognormal")
    found = sum(int(detect_series(s.values).flags[a]) for s in series
                for a, _ in s.events if s.values[a] > np.median(s.values))
    assert found >= 12
    y = series[0].values
    np.testing.assert_array_equal(score_series(y[:600]), score_series(y)[:600])
