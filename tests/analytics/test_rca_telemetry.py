"""Telemetry root causes: the anomaly's onset by default, candidates read causally, and a
lead-lag shown only when it is beyond chance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from allele.analytics.rca import anomaly_onset, causal_align
from allele.bench.diagnose import metric_root_causes
from allele.errors import AnalyticsError
from allele.observe.metrics import MetricPoint
from allele.store import open_store


def test_anomaly_onset_is_the_first_flag_of_the_last_episode() -> None:
    assert anomaly_onset(list(range(355, 400))) == 355
    assert anomaly_onset([10, 11, 50, 51, 53, 54]) == 50
    assert anomaly_onset([10, 11, 50, 51, 60]) == 60


def test_causal_align_reads_the_last_sample_at_or_before() -> None:
    st = 25.0 * np.arange(6)
    v = np.array([0.0, 0.0, 0.0, 6.0, 6.0, 6.0])  # changes at 75 s
    t = 10.0 * np.arange(12)
    np.testing.assert_array_equal(causal_align(t, st, v),
                                  [0, 0, 0, 0, 0, 0, 0, 0, 6, 6, 6, 6])  # 80 s is the first


def _rcatel(url: str) -> None:
    """The reviewer's store: r_cause steps 6 sigma at 350, r_target 8 sigma at 355, every 10 s;
    r_cause_slow, every 25 s, steps at 3,500 s (the target's index 350)."""
    rng = np.random.default_rng(3)
    n = 400
    ts = 1e9 + 10.0 * np.arange(n)
    cause = rng.normal(0, 1, n)
    cause[350:] += 6
    effect = rng.normal(0, 1, n)
    effect[355:] += 8
    other = rng.normal(0, 1, n)
    pts = [MetricPoint(name, "c", (), float(t), float(v))
           for name, y in [("r_target", effect), ("r_cause", cause), ("r_other", other)]
           for t, v in zip(ts, y, strict=True)]
    ts2 = 1e9 + 25.0 * np.arange(160)
    c2 = rng.normal(0, 1, 160)
    c2[140:] += 6
    pts += [MetricPoint("r_cause_slow", "c", (), float(t), float(v))
            for t, v in zip(ts2, c2, strict=True)]
    with open_store(url) as st:
        st.write_metric_points(pts)


def test_default_anomaly_is_the_onset_and_the_cause_is_found(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    _rcatel(url)
    with open_store(url, read_only=True) as st:
        res = metric_root_causes(st, "r_target", ["r_cause", "r_other"])
        slow = metric_root_causes(st, "r_target", ["r_cause", "r_other", "r_cause_slow"],
                                  at=1e9 + 3550)
    assert res.index == 355
    assert [c.name for c in res.causes] == ["r_cause"]
    ev = res.causes[0].evidence
    assert ev.startswith("r_cause changed at 350 (5 steps before the anomaly, 5 steps before "
                         "r_target)")
    assert "leads r_target by 13" not in ev and "lags" not in ev
    onsets = {c.name: c.details["onset"] for c in slow.causes}
    assert onsets == {"r_cause": 350, "r_cause_slow": 350}


def test_at_is_the_last_point_at_or_before_it_and_must_lie_in_the_series(tmp_path: Path) -> None:
    """``--at`` 9e12 was clipped to the last point and analysed, and a time between two points
    read the next one; the tool's rule elsewhere is "at or before"."""
    url = f"sqlite:///{tmp_path / 't.db'}"
    _rcatel(url)
    with open_store(url, read_only=True) as st:
        between = metric_root_causes(st, "r_target", ["r_cause"], at=1e9 + 3549.5)
        exact = metric_root_causes(st, "r_target", ["r_cause"], at=1e9 + 3550)
        last = metric_root_causes(st, "r_target", ["r_cause"], at=1e9 + 3990)
        for at, shown in ((9e12, "9000000000000"), (1e9 - 0.5, "999999999.5"),
                          (1e9 + 3990.5, "1000003990.5"), (float("nan"), "nan")):
            with pytest.raises(AnalyticsError) as err:
                metric_root_causes(st, "r_target", ["r_cause"], at=at)
            assert str(err.value) == (
                f"--at {shown} lies outside the time range of 'r_target', 1000000000 to "
                "1000003990 (400 points): give a time in it")
    assert (between.index, between.timestamp) == (354, 1e9 + 3540)
    assert (exact.index, exact.timestamp) == (355, 1e9 + 3550)
    assert (last.index, last.timestamp) == (399, 1e9 + 3990)
