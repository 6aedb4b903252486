"""The real-data fixture of the analytics harness (benchmarks/data) loads, and its injections are
seeded, labelled and placed after the learning period."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

realdata = pytest.importorskip("realdata")


def test_public_series_and_recorded_histories_load() -> None:
    pub = realdata.public_series()
    assert pub["elec_vic_hourly"].values.size == 3600
    assert pub["elec_vic_hourly"].seasons == (24, 168)
    assert pub["nile"].values.size == 100 and np.all(np.isfinite(pub["co2"].values))
    runs = realdata.history_runs()
    assert len(runs) == 16 and all(r["run"]["status"] == "finished" for r in runs)
    hist = realdata.history_series()
    assert len(hist) >= 50
    wall = [s for name, s in hist.items() if name.endswith(":wall_s")]
    assert wall and all(s.values.size == 192 and s.nonnegative for s in wall)


def test_injections_are_seeded_labelled_and_after_learning() -> None:
    s = realdata.public_series()["macro_unemp"]
    for kind in realdata.INJECT_KINDS:
        a = realdata.inject(s, kind, seed=3, learn=100)
        b = realdata.inject(s, kind, seed=3, learn=100)
        np.testing.assert_array_equal(a.values, b.values)
        assert a.events and all(100 <= lo < hi <= s.values.size for lo, hi in a.events)
        changed = np.flatnonzero(a.values != s.values)
        assert changed.size and changed.min() >= a.events[0][0]
        assert np.all(a.values >= 0)  # a non-negative series stays non-negative


def test_detector_beats_chance_on_hourly_demand_with_injected_spikes() -> None:
    from allele.analytics.anomaly import detect_series
    from allele.analytics.synthetic import evaluate_events

    s = realdata.public_series()["elec_vic_hourly"]
    hits = chance = 0.0
    rng = np.random.default_rng(0)
    for seed in range(3):
        inj = realdata.inject(s, "spike", seed=seed)
        flags = detect_series(inj.values).flags
        hits += evaluate_events(flags, inj.events).f1
        for off in rng.integers(1, 3450, size=10):
            shifted = flags.copy()
            shifted[150:] = np.roll(flags[150:], int(off))
            chance += evaluate_events(shifted, inj.events).f1 / 10
    assert hits / 3 >= 0.6 and chance / 3 <= 0.2


def test_the_recorded_trends_are_the_machines_not_the_seeds() -> None:
    """The trends of the recorded histories are all on timings; no series a seed fixes (which
    repeats the same values in every run) has one, so seed order does not make them."""
    import analytics_real_answers as answers  # benchmarks/, on the path above
    rows = {(r.series, r.measure): r.value for r in answers.trend_rows(5)}
    assert rows[("recorded quality and memory", "trend reported")] == 0.0
    assert rows[("recorded timings", "trend reported")] == pytest.approx(16 / 38)
    assert 0.0 < rows[("recorded timings", "trend also in the 16 run medians")] < 16 / 38
    assert rows[("recorded series", "trend reported")] == pytest.approx(16 / 74)
