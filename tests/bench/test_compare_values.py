"""The change a comparison row shows must be one a reader can take at its word: none from a
BASE of 0, none below the metric's resolution, never a fall of more than 100% for a metric that
cannot be negative, a run-wide shift taken out as a factor on every scale, and non-finite
samples dropped (as ``allele bench show`` drops them) without warnings."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from allele.bench.alerting import comparison_alerts
from allele.bench.compare import compare_runs
from allele.bench.estimate import Between, Row, Within, estimate_rows
from allele.bench.metrics import MetricInfo
from allele.store.model import CellResult, RunInfo, RunRecord, Sample, cell_key


def _info(name: str, t: float) -> RunInfo:
    return RunInfo(id=name, name=name, spec_name="s", target="t", status="finished",
                   created_at=t, spec={}, environment={})


def _record(name: str, t: float, values: dict[str, list[float]], cells: int = 3) -> RunRecord:
    """``cells`` cells with the same samples (one per seed) of each metric."""
    out = []
    for k in range(cells):
        params = {"k": k}
        samples = [Sample(metric, v, seed, 0) for metric, vs in values.items()
                   for seed, v in enumerate(vs)]
        out.append(CellResult(cell_key("t", params), "t", params, "ok", samples))
    return RunRecord(_info(name, t), out)


def test_a_row_from_a_zero_base_has_no_percentage_but_a_verdict() -> None:
    """The review's ``v 0 -> 999 +100.0%``: the change from 0 is undefined (``–``, null in
    JSON, no interval); an exact move off 0 is still a change, judged by its direction; a row
    that stays at 0 is unchanged."""
    base = _record("a", 0.0, {"v": [0.0] * 4, "zero": [0.0] * 4})
    head = _record("b", 1.0, {"v": [999.0] * 4, "zero": [0.0] * 4})
    comp = compare_runs(base, head)
    moved = [r for r in comp.rows if r.metric == "v"]
    assert len(moved) == 3
    for r in moved:
        e = r.estimate
        assert (e.base, e.head) == (0.0, 999.0)
        assert math.isnan(e.ratio) and math.isnan(e.ci_low) and math.isnan(e.ci_high)
        assert e.verdict == "improved"  # "v" is guessed higher-is-better
        assert e.interval_text == "n/a (base 0)"
    for r in (r for r in comp.rows if r.metric == "zero"):
        assert r.verdict == "unchanged" and r.estimate.ratio == 1.0
    doc = json.loads(json.dumps(comp.to_dict(), allow_nan=False))
    v_rows = [d for d in doc["rows"] if d["metric"] == "v"]
    assert [d["ratio"] for d in v_rows] == [None] * 3
    assert [d["interval"] for d in v_rows] == ["n/a (base 0)"] * 3


def test_an_ab_row_from_zero_is_not_plus_100_percent() -> None:
    """In an A/B session (no run-level model) ``checksum 0 -> 999`` and ``0 -> 1`` were both
    ``+100.0% improved`` with a ratio of 2.0."""
    blocks = np.array([0, 0, 1, 1, 2, 2])
    rows = [Row("ab", np.zeros(6), np.full(6, h), "higher", group="checksum", blocks=blocks)
            for h in (999.0, 1.0)]
    rows.append(Row("ab", np.zeros(6), np.full(6, 5.0), "lower", group="misses",
                    blocks=blocks))
    ests = estimate_rows(rows)
    assert [e.verdict for e in ests] == ["improved", "improved", "regressed"]
    assert all(math.isnan(e.ratio) and e.scale == "none" for e in ests)


def test_a_deterministic_row_from_zero_has_a_direction_not_an_infinite_change() -> None:
    """An exact count from 0 (cache misses 0 -> 5 in every seed) regressed, by direction: its
    change is undefined (it was +inf: '+inf%' in the table), so no ratio and 'n/a (base 0)';
    0 -> 0 is unchanged, and a fewer-is-better count falling to 0 improved by -100%."""
    det = {"misses": MetricInfo("misses", "lower", deterministic=True, tolerance=0.003),
           "gone": MetricInfo("gone", "lower", deterministic=True, tolerance=0.003),
           "none": MetricInfo("none", "lower", deterministic=True, tolerance=0.003)}
    base = _record("a", 0.0, {"misses": [0.0] * 4, "gone": [7.0] * 4, "none": [0.0] * 4})
    head = _record("b", 1.0, {"misses": [5.0] * 4, "gone": [0.0] * 4, "none": [0.0] * 4})
    comp = compare_runs(base, head, declared=det)
    by = {m: [r.estimate for r in comp.rows if r.metric == m] for m in det}
    assert all(len(v) == 3 for v in by.values())
    for e in by["misses"]:
        assert (e.design, e.verdict, e.base, e.head) == ("deterministic", "regressed", 0.0, 5.0)
        assert math.isnan(e.ratio) and e.interval_text == "n/a (base 0)"
    assert all(e.verdict == "improved" and e.ratio == 0.0 for e in by["gone"])
    assert all(e.verdict == "unchanged" and e.ratio == 1.0 for e in by["none"])
    doc = json.loads(json.dumps(comp.to_dict(), allow_nan=False))
    assert {d["ratio"] for d in doc["rows"] if d["metric"] == "misses"} == {None}


def _cpu_run(name: str, t: float, per_cell: list[list[float]]) -> RunRecord:
    cells = []
    for k, vs in enumerate(per_cell):
        params = {"k": k}
        samples = [Sample("cpu_sys_s", v, seed, 0) for seed, v in enumerate(vs)]
        samples += [Sample("wall_s", 0.01 * (k + 1) * (1.0 + 0.01 * seed), seed, 0)
                    for seed in range(len(vs))]
        cells.append(CellResult(cell_key("t", params), "t", params, "ok", samples))
    return RunRecord(_info(name, t), cells)


def test_rows_below_resolution_show_no_change() -> None:
    """The review's ``83.92 us -> 1.917 us -100.5%``, ``26.03 us -> 28.42 us -77.2%`` and
    ``0 s -> 0 s -100.0%``: CPU times of a few ticks of 0 and a few microseconds, on the
    difference scale, had the run's log shift subtracted from a relative difference."""
    base = _cpu_run("a", 0.0, [[0.0, 2e-4, 0.0, 1e-4, 0.0, 1e-4], [0.0] * 6,
                               [3e-5, 0.0, 4e-5, 3e-5, 0.0, 5e-5]])
    head = _cpu_run("b", 1.0, [[0.0, 0.0, 1e-5, 0.0, 0.0, 1e-6], [0.0] * 6,
                               [4e-5, 3e-5, 0.0, 4e-5, 3e-5, 4e-5]])
    comp = compare_runs(base, head)
    rows = [r for r in comp.rows if r.metric == "cpu_sys_s"]
    assert len(rows) == 3
    for r in rows:
        e = r.estimate
        assert e.reason == "below resolution" and math.isnan(e.ratio) and e.scale == "none"
    doc = json.loads(json.dumps(comp.to_dict(), allow_nan=False))
    assert {d["ratio"] for d in doc["rows"] if d["metric"] == "cpu_sys_s"} == {None}


def _fixed_shift(shift: float) -> object:
    def model(name: str, within: Within, idx: list[int]) -> Between:
        del name, within
        return Between(shift, np.zeros(len(idx)), np.full(len(idx), np.inf))
    return model


def test_a_run_wide_shift_is_a_factor_on_the_difference_scale_too() -> None:
    """A whole run twice as slow: a cell that doubled is unchanged relative to the run, whether
    its samples are all positive (log scale) or some are 0 (difference scale). The difference
    row used to lose ``log 2`` from its relative difference: +30.7% instead of +0%."""
    rng = np.random.default_rng(1)
    base_pos = 1.0 + 0.01 * rng.standard_normal(8)
    base_zero = np.array([0.0, 2.0, 0.0, 2.0, 0.0, 2.0, 0.0, 2.0]) * (
        1.0 + 0.01 * rng.standard_normal(8))
    rows = [Row("paired", base_pos, 2.0 * base_pos, "lower", group="t_s"),
            Row("paired", base_zero, 2.0 * base_zero, "lower", group="t_s")]
    ests = estimate_rows(rows, between=_fixed_shift(math.log(2.0)))  # type: ignore[arg-type]
    assert [e.scale for e in ests] == ["log", "difference"]
    assert ests[0].ratio == pytest.approx(1.0, abs=1e-9)
    assert ests[1].ratio == pytest.approx(1.0, abs=1e-9)
    assert [e.shift for e in ests] == [pytest.approx(2.0), pytest.approx(2.0)]


def test_a_non_negative_metric_never_falls_by_more_than_100_percent() -> None:
    """A time with some zero samples that fell to a tenth on a machine twice as slow: relative
    to the run it fell to a twentieth (-95%). Subtracting ``log 2`` from its relative
    difference of -0.9 printed -159%."""
    base = np.array([0.0, 2.0, 0.0, 2.0, 0.0, 2.0, 0.0, 2.0]) * np.linspace(1.0, 1.1, 8)
    rows = [Row("paired", base, 0.1 * base, "lower", group="t_s"),
            Row("paired", base + 1.0, 2.0 * (base + 1.0), "lower", group="t_s")]
    ests = estimate_rows(rows, between=_fixed_shift(math.log(2.0)))  # type: ignore[arg-type]
    assert ests[0].scale == "difference"
    assert ests[0].ratio == pytest.approx(0.05, abs=1e-9)
    assert ests[0].ci_low >= 0.0


def test_non_finite_samples_are_dropped_pairwise_and_quietly() -> None:
    """The review's target returned NaN for seed 0: ``score`` showed base ``–``, head ``–``
    and ``unchanged +0.0%`` with a RuntimeWarning, while ``show`` counted 2 samples of 1."""
    base = _record("a", 0.0, {"score": [math.nan, 1.0, 1.0], "inf": [math.inf] * 3})
    head = _record("b", 1.0, {"score": [math.nan, 1.0, 1.0], "inf": [math.inf] * 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        comp = compare_runs(base, head)
    score = [r.estimate for r in comp.rows if r.metric == "score"]
    assert len(score) == 3
    for e in score:
        assert (e.n_base, e.n_head) == (2, 2)
        assert (e.base, e.head, e.median_base, e.median_head) == (1.0, 1.0, 1.0, 1.0)
        assert e.verdict == "unchanged" and e.ratio == 1.0
    for e in (r.estimate for r in comp.rows if r.metric == "inf"):
        assert (e.n_base, e.n_head) == (0, 0)
        assert e.reason == "too few samples" and math.isnan(e.ratio)


def test_an_unpaired_row_keeps_each_sides_finite_samples() -> None:
    base = np.array([1.0, np.nan, 1.1, 0.9, 1.0])
    head = np.array([1.0, 1.05, 0.95, np.inf])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (e,) = estimate_rows([Row("unpaired", base, head, "lower", group="m")])
    assert (e.n_base, e.n_head) == (4, 3)
    assert math.isfinite(e.ratio) and math.isfinite(e.ci_low)


def test_an_alert_from_a_zero_base_names_the_move_not_a_percentage() -> None:
    base = _record("a", 0.0, {"misses": [0.0] * 4})
    head = _record("b", 1.0, {"misses": [5.0] * 4})
    comp = compare_runs(base, head)
    assert [r.verdict for r in comp.rows] == ["regressed"] * 3
    alerts = comparison_alerts(comp)
    assert len(alerts) == 3
    text = f"{alerts[0].annotations['summary']} | {alerts[0].annotations['verdict']}"
    assert "0 → 5" in text and "%" not in text.split("floor")[0] and "–" not in text
