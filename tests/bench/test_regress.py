"""Change-point detection over run histories: synthetic series with known steps."""

from __future__ import annotations

import numpy as np
import pytest

from allele.bench.regress import (
    analyse_runs,
    attribute,
    build_series,
    detect_change_points,
    energy_statistic,
    find_changes,
    segment_stats,
)
from allele.errors import ValidationError
from allele.store.model import CellResult, RunInfo, RunRecord, Sample, cell_key


def test_energy_statistic_matches_direct_formula() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(17)
    q = energy_statistic(x, min_size=2)
    n = x.size
    for tau in range(2, n - 1):
        a, b = x[:tau], x[tau:]
        m1, m2 = a.size, b.size
        cross = np.abs(a[:, None] - b[None, :]).mean()
        wa = np.abs(a[:, None] - a[None, :]).sum() / (m1 * (m1 - 1))
        wb = np.abs(b[:, None] - b[None, :]).sum() / (m2 * (m2 - 1))
        assert q[tau] == pytest.approx(m1 * m2 / n * (2 * cross - wa - wb))
    assert np.isneginf(q[:2]).all() and np.isneginf(q[n - 1:]).all()


def test_energy_statistic_peaks_at_step() -> None:
    x = np.r_[np.zeros(10), np.ones(12)] + 0.01 * np.random.default_rng(1).standard_normal(22)
    assert int(np.argmax(energy_statistic(x, 3))) == 10


def test_segment_stats_welch_and_constant_segments() -> None:
    a = np.array([1.0, 1.1, 0.9, 1.0])
    b = np.array([2.0, 2.1, 1.9])
    st = segment_stats(a, b)
    assert st.mean_before == pytest.approx(1.0) and st.rel_change == pytest.approx(1.0)
    assert st.p_value < 1e-3
    assert segment_stats(np.ones(3), np.ones(4)).p_value == 1.0
    assert segment_stats(np.ones(3), 2 * np.ones(4)).p_value == 0.0


def test_step_found_within_one_run_in_90_percent_of_trials() -> None:
    """One 10% step, 3% noise per run, 30 runs: found within +-1 run in >= 90% of 200 trials."""
    found = 0
    magnitudes = []
    for trial in range(200):
        rng = np.random.default_rng(trial)
        pos = int(rng.integers(8, 23))
        x = 1.0 + 0.03 * rng.standard_normal(30)
        x[pos:] *= 1.10
        cps = detect_change_points(x)
        near = [c for c in cps if abs(c.index - pos) <= 1]
        if near:
            found += 1
            magnitudes.append(near[0].magnitude)
            assert near[0].stats.p_value <= 0.001
    assert found / 200 >= 0.90
    assert float(np.median(magnitudes)) == pytest.approx(0.10, abs=0.01)


def test_flat_histories_rarely_give_change_points() -> None:
    """<= 5% of 200 flat histories (30 and 120 runs, 3% noise) report any change point."""
    for n in (30, 120):
        false = 0
        for trial in range(200):
            rng = np.random.default_rng(50_000 + trial)
            false += bool(detect_change_points(1.0 + 0.03 * rng.standard_normal(n)))
        assert false / 200 <= 0.05


def test_multiple_steps_in_long_series_across_windows() -> None:
    rng = np.random.default_rng(7)
    x = 1.0 + 0.02 * rng.standard_normal(150)
    x[40:] *= 1.2
    x[110:] *= 0.8
    cps = detect_change_points(x, window=50)
    assert [c.index for c in cps] == [40, 110]
    assert cps[0].magnitude > 0.15 and cps[1].magnitude < -0.15


def test_min_magnitude_filters_small_real_steps() -> None:
    rng = np.random.default_rng(8)
    x = 1.0 + 0.002 * rng.standard_normal(40)
    x[20:] *= 1.02  # significant but small
    assert detect_change_points(x, min_magnitude=0.05) == []
    assert [c.index for c in detect_change_points(x, min_magnitude=0.01)] == [20]


def test_detector_validation() -> None:
    with pytest.raises(ValidationError):
        detect_change_points([1.0, float("nan"), 2.0])
    with pytest.raises(ValidationError):
        detect_change_points([1.0] * 10, min_size=1)
    assert detect_change_points([1.0, 2.0]) == []


def test_attribute_threshold_and_equality() -> None:
    params = [{"population_size": p, "selection": s}
              for p in (50, 100, 200, 500, 1000) for s in ("rank", "tournament")]
    big = [p["population_size"] >= 500 for p in params]
    a = attribute(params, big)
    assert a.description == "population_size >= 500"
    assert a.precision == 1.0 and a.recall == 1.0
    rank = [p["selection"] == "rank" for p in params]
    assert attribute(params, rank).description == "selection == 'rank'"
    assert attribute(params, [True] * 10).description == "all cells"
    assert attribute(params, [False] * 10).description == "no cells"
    noisy = list(big)
    noisy[0] = True  # one stray cell: the threshold still explains most of it
    b = attribute(params, noisy)
    assert b.description == "population_size >= 500" and b.recall == pytest.approx(4 / 5)


def _history(n_runs: int, step_at: int, rng: np.random.Generator) -> list[RunRecord]:
    runs = []
    for r in range(n_runs):
        cells = []
        for pop in (50, 100, 200, 500, 1000):
            for sel in ("rank", "tournament"):
                params = {"population_size": pop, "selection": sel}
                slow = 1.15 if (r >= step_at and pop >= 500) else 1.0
                samples = [Sample("wall_s", float(pop / 100 * slow * (1 + 0.02 * z)), 0, i)
                           for i, z in enumerate(rng.standard_normal(5))]
                samples += [Sample("best_fitness", 0.9 + 0.001 * i, 0, i) for i in range(5)]
                cells.append(CellResult(cell_key("evolution", params), "evolution", params, "ok",
                                        samples))
        info = RunInfo(id=f"r{r:02d}", name=f"run-{r}", spec_name="s", target="evolution",
                       status="finished", created_at=1000.0 + r)
        runs.append(RunRecord(info, cells))
    return runs


def test_find_changes_over_runs_groups_and_attributes() -> None:
    runs = _history(20, 12, np.random.default_rng(3))
    rng = np.random.default_rng(4)
    rng.shuffle(runs)  # order comes from created_at, not from the list
    groups = find_changes(runs)
    assert len(groups) == 1
    g = groups[0]
    assert (g.target, g.metric, g.kind) == ("evolution", "wall_s", "regression")
    assert g.run.name == "run-12"
    assert g.attribution.description == "population_size >= 500"
    assert len(g.changes) == 4 and g.cells_checked == 10
    assert g.magnitude == pytest.approx(0.15, abs=0.03)
    assert all(c.index == 12 for c in g.changes)
    # since: a change before the cut-off is not reported
    assert find_changes(runs, since=1013.0) == []
    assert len(find_changes(runs, since=1012.0)) == 1
    # cell filter
    only_small = find_changes(runs, cell_filter=lambda k: '"population_size":50,' in k)
    assert only_small == []
    report = analyse_runs(runs, metrics=["wall_s"])
    assert report.series == 10 and report.runs == 20
    assert report.to_dict()["groups"][0]["attribution"] == "population_size >= 500"


def test_improvement_direction_for_quality_metric() -> None:
    runs = _history(16, 100, np.random.default_rng(5))
    for r, run in enumerate(runs):
        for cell in run.cells:
            if r >= 8:
                cell.samples = [Sample(s.metric, s.value * 1.2, s.seed, s.repeat)
                                if s.metric == "best_fitness" else s for s in cell.samples]
    groups = find_changes(runs, metrics=["best_fitness"])
    assert len(groups) == 1
    assert groups[0].kind == "improvement" and groups[0].attribution.description == "all cells"
    assert groups[0].run.name == "run-8"


def test_build_series_skips_failed_cells() -> None:
    runs = _history(4, 100, np.random.default_rng(6))
    runs[1].cells[0].status = "failed"
    series = {(s.key, s.metric): s for s in build_series(runs)}
    s = series[(runs[0].cells[0].key, "wall_s")]
    assert [r.name for r in s.runs] == ["run-0", "run-2", "run-3"]
    assert s.values[0] == pytest.approx(np.median(runs[0].cells[0].values("wall_s")))
