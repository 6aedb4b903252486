"""The drift re-baseline (allele.analytics.anomaly.rebase): a drift's onset is flagged, and once
it has alarmed for two windows the new behaviour is the reference, so the points long after it
are not flagged; scores stay causal; a clean series never re-baselines."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from allele.analytics.anomaly import detect_series
from allele.analytics.anomaly.rebase import DriftRebase

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _slope_step(seed: int, n: int = 1500, onset: int = 600) -> np.ndarray:
    """Gaussian noise (sd 0.5) whose level starts rising by 0.01 a point (0.02 sd) at ``onset``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10.0 + rng.normal(0.0, 0.5, n) + np.where(t >= onset, 0.01 * (t - onset), 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_a_slope_that_starts_is_flagged_at_its_onset_then_taken_as_normal(seed: int) -> None:
    det = detect_series(_slope_step(seed), learn=150)
    f = det.flags
    assert not f[:600].any()
    onset = int(np.argmax(f[600:])) + 600
    assert f[600:].any() and onset < 700  # found 41-98 points after it starts
    assert len(det.rebased) == 1 and onset < det.rebased[0] < onset + 130
    # Before the re-baseline every later point was flagged (800-1500: 700 of 700).
    assert int(f[800:].sum()) <= 1


def test_rebaseline_keeps_scores_causal() -> None:
    y = _slope_step(0)
    full = detect_series(y, learn=150)
    cut = full.rebased[0] + 37
    part = detect_series(y[:cut], learn=150)
    np.testing.assert_array_equal(part.scores, full.scores[:cut])
    assert part.rebased == full.rebased


def test_clean_series_never_rebaseline() -> None:
    rng = np.random.default_rng(7)
    for _ in range(5):
        det = detect_series(rng.standard_t(3, 1500) * 0.3, learn=150)
        assert det.rebased == ()


def test_a_return_to_the_former_level_is_not_news() -> None:
    """A long incident (a step that lasts 300 points) is re-based on, and its end, a return to a
    level that was normal, raises no drift alarm after the step's own."""
    rng = np.random.default_rng(3)
    y = rng.normal(0.0, 0.5, 1500)
    y[500:800] += 2.5
    det = detect_series(y, learn=150)
    assert det.rebased and 500 < det.rebased[0] < 800
    assert det.flags[500:560].any()
    assert not det.flags[830:].any()


def test_the_rebase_waits_for_two_windows_of_alarms_with_short_gaps() -> None:
    e = np.zeros(400)
    stats = np.zeros((400, 7))
    reb = DriftRebase(e, 10, 1.0)
    scores = np.zeros((400, 7))
    scores[100:115, 5] = 0.9
    scores[118:130, 5] = 0.9  # a gap of 3 quiet rows (at most window // 2) keeps the run
    assert reb(stats, scores, 0, 119) == 119 and reb.rows == []
    assert reb(stats, scores, 119, 400) == 120 and reb.rows == [119]
    assert reb.after == 20 and reb.span == 30 and reb.gap == 5


def _co2_interpolated() -> np.ndarray:
    sys.path.insert(0, str(BENCH))
    realdata = pytest.importorskip("realdata")
    _, raw = realdata._read_csv(realdata.DATA / "public" / "co2.csv")
    keep = np.isfinite(raw)
    idx = np.arange(raw.size)
    return np.interp(idx, idx[keep], raw[keep])[int(np.argmax(keep)):]


def test_co2_with_its_missing_weeks_interpolated_is_not_flagged_for_good() -> None:
    """co2 (2,284 weeks) with its 59 missing weeks interpolated: no trend is learned on 150
    points, and the drift statistic flagged 1,848 points before the re-baseline (266 with
    it); with 400 learning points 1,212 (68)."""
    y = _co2_interpolated()
    assert y.size == 2284 and math.isfinite(float(y.sum()))
    det = detect_series(y, learn=150)
    assert det.trend is None and int(det.flags.sum()) < 400
    assert int(detect_series(y, learn=400).flags.sum()) < 150
