"""Change points over histories of runs: grouping, attribution, run-wide shifts, FDR over the
series (the detector on one series is tested in test_changepoints.py)."""

from __future__ import annotations

import numpy as np
import pytest

from allele.bench.regress import (
    analyse_runs,
    attribute,
    build_series,
    find_changes,
)
from allele.errors import ValidationError
from allele.store.model import CellResult, RunInfo, RunRecord, Sample, cell_key


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
    assert all(abs(c.index - 12) <= 1 for c in g.changes)
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


def test_a_step_of_every_cell_is_one_environment_change() -> None:
    """Every cell 10% slower from run 12 on (the machine changed): one environment group, no
    regression; a cell that also moved on its own is still found, relative to the shift."""
    runs = _history(24, 1000, np.random.default_rng(7))
    for r, run in enumerate(runs):
        for cell in run.cells:
            up = 1.10 if r >= 12 else 1.0
            own = 1.25 if (r >= 18 and cell.params["population_size"] == 50) else 1.0
            cell.samples = [Sample(s.metric, s.value * up * own, s.seed, s.repeat)
                            if s.metric == "wall_s" else s for s in cell.samples]
    groups = find_changes(runs, metrics=["wall_s"])
    kinds = {(g.kind, g.run.name) for g in groups}
    assert ("environment", "run-12") in kinds
    env = next(g for g in groups if g.kind == "environment")
    assert env.magnitude == pytest.approx(0.10, abs=0.03) and env.cells_checked == 10
    assert env.cells_changed == 10  # every cell moved, though its one change is the shift series
    regs = [g for g in groups if g.kind == "regression"]
    assert len(regs) == 1 and regs[0].run.name == "run-18" and regs[0].cells_changed == 2
    assert regs[0].attribution.description == "population_size == 50"
    assert regs[0].magnitude == pytest.approx(0.25, abs=0.05)


def test_find_changes_validates_q() -> None:
    with pytest.raises(ValidationError):
        find_changes(_history(8, 100, np.random.default_rng(8)), q=0.0)


def test_a_new_inner_loop_count_is_not_a_change_point() -> None:
    """The calibration may halve a micro-benchmark's inner loop on a slower machine: the loop
    count (how a sample was timed) changing is no regression; the timing it measures is."""
    rng = np.random.default_rng(1)

    def history(step: float) -> list[RunRecord]:
        runs = []
        for r in range(16):
            cells = []
            for n in (10, 100, 1000):
                params = {"op": "mutate", "n": n}
                slow = step if r >= 8 and n == 1000 else 1.0
                samples = [Sample("us_per_call", n * slow * (1 + 0.02 * z), 0, i)
                           for i, z in enumerate(rng.standard_normal(5))]
                samples += [Sample("loops", 400.0 if r < 8 else 200.0, 0, i) for i in range(5)]
                cells.append(CellResult(cell_key("genome_ops", params), "genome_ops", params,
                                        "ok", samples))
            runs.append(RunRecord(RunInfo(id=f"r{r:02d}", name=f"run-{r}", spec_name="s",
                                          target="genome_ops", status="finished",
                                          created_at=1000.0 + r), cells))
        return runs

    assert find_changes(history(1.0)) == []  # before: "loops regression" at run 8
    found = find_changes(history(1.5))
    assert [(g.metric, g.kind) for g in found] == [("us_per_call", "regression")]
