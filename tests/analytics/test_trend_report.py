"""What PredictiveAnalyzer says: threshold messages on the right side, level shifts in the
metric's units, and AutoForecaster's bounded history."""

from __future__ import annotations

import numpy as np
import pytest

from allele.analytics.forecast import AutoForecaster
from allele.analytics.trend import PredictiveAnalyzer


def test_a_threshold_already_passed_says_so() -> None:
    rng = np.random.default_rng(0)
    y = 350 + 0.05 * np.arange(300) + rng.normal(0, 1, 300)  # every value above 300, rising
    res = PredictiveAnalyzer().analyze(y, threshold=300.0, metric="co2")
    assert res.crossing is not None and res.crossing.steps is None
    assert res.crossing.message.startswith("co2 is already above 300 (at 36")
    assert res.crossing.message.endswith("not expected to fall to it (no significant downward "
                                         "trend)")
    flat = PredictiveAnalyzer().analyze(rng.normal(5, 1, 100), threshold=50.0, metric="x")
    assert flat.crossing is not None
    assert flat.crossing.message.startswith("x is already below 50 (at 4.91 on its trend line)")
    assert "not expected to rise to it (no significant upward trend)" in flat.crossing.message


def test_level_shift_levels_are_the_metrics_own() -> None:
    """A ramp with a step of -20 at 150: the levels either side of the step are those of the
    series there (the line at 150 is 350 without the step, 330 with it), not means of the
    detrended residual (about 209 and 194); the trend is the ramp's, not bent by the step."""
    rng = np.random.default_rng(1)
    n = 300
    y = 200 + 1.0 * np.arange(n) + rng.normal(0, 1, n)
    y[150:] -= 20
    res = PredictiveAnalyzer().analyze(y)
    assert res.trend.direction == "increasing"
    assert res.trend.slope == pytest.approx(1.0, abs=0.01)
    # the trend line stands where the series is now, after the step
    assert res.trend.intercept + res.trend.slope * (n - 1) == pytest.approx(479.0, abs=1.0)
    shift = next(s for s in res.level_shifts if s.index == 150)
    assert shift.before == pytest.approx(350.0, abs=1.0)
    assert shift.after == pytest.approx(330.0, abs=1.0)
    assert shift.size == pytest.approx(-20, abs=1.0)
    line = next(s for s in res.summary() if s.startswith("level shift at 150"))
    assert line.startswith(f"level shift at 150: {shift.before:.4g} -> {shift.after:.4g} "
                           "(trend-adjusted, step -")


def test_auto_forecaster_uses_its_last_max_history_points_and_says_so() -> None:
    rng = np.random.default_rng(2)
    y = 10 + rng.normal(0, 1, 1000)
    f = AutoForecaster(horizon=5, max_history=200).fit(y)
    assert f.choice_.endswith(", on the last 200 of 1,000 points")
    short = AutoForecaster(horizon=5).fit(y)
    assert "on the last" not in short.choice_


def test_summary_speaks_the_metrics_unit() -> None:
    """A process's memory warming up, then a 30 MB jump: with unit='bytes' the slope, its band,
    the levels and the step read in KB and MB (they printed as 2.633e+08 -> 2.947e+08); the
    warm-up ramp that stops is not a second level shift."""
    mb = 2.0**20
    rng = np.random.default_rng(0)
    t = np.arange(300)
    y = (200 + 0.4 * np.minimum(t, 120) + rng.normal(0, 1.5, 300)) * mb
    y[220:] += 30 * mb
    res = PredictiveAnalyzer().analyze(y, unit="bytes")
    assert [s.index for s in res.level_shifts] == [220]
    assert res.level_shifts[0].size == pytest.approx(30 * mb, rel=0.1)
    lines = res.summary()
    shift = next(ln for ln in lines if ln.startswith("level shift"))
    assert shift.startswith("level shift at 220: 251 MiB -> 281 MiB (trend-adjusted, step +")
    assert shift.split("step ")[1].startswith(("+29", "+30", "+31")) and " MiB, z=" in shift
    assert lines[0].startswith("increasing trend: +") and " KiB per step (Theil-Sen, band +" in lines[0]
    plain = PredictiveAnalyzer().analyze(y).summary()
    assert any(ln.startswith("level shift at 220: 2.63") for ln in plain)
    assert "UTC" not in shift  # no timestamps: the index is all there is
    # with timestamps, where it is on a chart's time axis (2026-12-06 22:00 UTC, a point a minute)
    timed = PredictiveAnalyzer().analyze(y, 1_796_594_400.0 + 60.0 * t, unit="bytes").summary()
    at = next(ln for ln in timed if ln.startswith("level shift at 220"))
    assert at.endswith(", at 2026-12-07 01:40:00 UTC)")


def test_a_trend_too_small_to_matter_is_said_in_the_unit() -> None:
    """The runner's memory drifting by 435 KB over a window at 145 MB (0.3 %): significant but
    not practical, and said so in KB (it printed +4.45e+05)."""
    rng = np.random.default_rng(4)
    y = 145e6 + np.linspace(0, 4.45e5, 400) + rng.normal(0, 2e4, 400)
    line = PredictiveAnalyzer().analyze(y, unit="bytes").summary()[0]
    assert line.startswith("no practically significant trend: +4")
    assert " KiB over the window (Mann-Kendall p=" in line
