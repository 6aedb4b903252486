"""Run comparison: estimates, verdicts and their reasons, the run-level model, A/B sessions.

The figures against known truth under realistic noise are in test_verdict_truth.py; this file
checks the behaviour of the pieces and that :func:`compare_runs` runs the batch pipeline of
the simulations (tests/bench/simulate.py).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from allele.bench.compare import compare_runs, environment_diff, verdict_label
from allele.bench.estimate import V_REGRESSED, compare_samples
from allele.bench.history import History
from allele.bench.metrics import MetricInfo, resolution_of
from allele.errors import ValidationError
from allele.store.model import CellResult, RunInfo, RunRecord, Sample, cell_key
from tests.bench.simulate import Noise, ab_diffs, judge_ab


def test_compare_samples_flags_a_lone_change_and_keeps_order() -> None:
    rng = np.random.default_rng(0)
    base = rng.lognormal(0, 0.03, (100, 30))
    head = rng.lognormal(0, 0.03, (100, 30))
    head[7] *= 1.12
    ests = compare_samples(base, head, paired=True)
    assert [i for i, e in enumerate(ests) if e.verdict == "regressed"] == [7]
    e = ests[7]
    assert e.ratio == pytest.approx(1.12, abs=0.02) and e.ci_low > 1.05
    assert e.in_family and e.q_value <= 0.05 and e.reason == ""
    # the estimate shown is the one the verdict used: the interval is around it
    assert e.ci_low < e.ratio < e.ci_high
    assert sum(x.verdict == "unchanged" for x in ests) >= 95


def test_interval_null_and_equivalence() -> None:
    """Beyond the floor is a verdict, inside it with a tight interval is unchanged, straddling
    it is inconclusive (noise)."""
    rng = np.random.default_rng(1)
    base = rng.lognormal(0, 0.005, (3, 40))
    head = base * np.array([[1.02], [1.09], [1.05]]) * rng.lognormal(0, 0.005, (3, 40))
    head[2] = base[2] * 1.05 * rng.lognormal(0, 0.03, 40)  # at the floor, and noisier
    small, big, edge = compare_samples(base, head, paired=True)
    assert small.verdict == "unchanged"  # a real +2%, but inside the 5% floor
    assert big.verdict == "regressed"
    assert edge.verdict == "inconclusive" and edge.reason == "noise"
    assert verdict_label(edge) == "inconclusive (noise)"


def test_quality_drop_regresses_and_speedup_improves() -> None:
    rng = np.random.default_rng(2)
    base = rng.lognormal(0, 0.02, (4, 20))
    head = base * rng.lognormal(0, 0.02, (4, 20)) * np.array([[0.85], [0.85], [1.2], [1.0]])
    ests = compare_samples(base, head, paired=True,
                           direction=["lower", "higher", "higher", "lower"])
    assert [e.verdict for e in ests] == ["improved", "regressed", "improved", "unchanged"]


def test_too_few_samples_leave_the_family_and_say_so() -> None:
    rng = np.random.default_rng(3)
    base = [rng.lognormal(0, 0.02, 30) for _ in range(20)] + [np.array([1.0])]
    head = [b * 1.0 for b in base[:-1]] + [np.array([3.0])]
    ests = compare_samples(base, head)
    lone = ests[-1]
    assert lone.verdict == "inconclusive" and lone.reason == "too few samples"
    assert not lone.in_family and math.isinf(lone.mde)
    assert all(e.in_family for e in ests[:-1])


def test_a_row_with_samples_but_too_much_noise_says_too_noisy() -> None:
    """Twelve pairs that scatter by a factor of e cannot show even a doubling: the row leaves
    the family like a row without samples, but its reason says what is wrong with it."""
    rng = np.random.default_rng(3)
    base = [rng.lognormal(0, 0.02, 30) for _ in range(20)] + [rng.lognormal(0, 1.0, 12)]
    head = [b * rng.lognormal(0, 0.02, 30) for b in base[:-1]] + [
        base[-1] * rng.lognormal(0, 1.0, 12)]
    ests = compare_samples(base, head, paired=True)
    noisy = ests[-1]
    assert (noisy.n_base, noisy.n_head) == (12, 12)
    assert noisy.verdict == "inconclusive" and noisy.reason == "too noisy"
    assert not noisy.in_family and math.isinf(noisy.mde)
    assert all(e.in_family for e in ests[:-1])


def test_noisy_row_is_inconclusive_with_its_mde() -> None:
    rng = np.random.default_rng(4)
    base = rng.lognormal(0, 0.3, 10)
    (est,) = compare_samples([base], [base * 1.1 * rng.lognormal(0, 0.3, 10)], paired=True)
    assert est.verdict == "inconclusive" and est.reason == "noise"
    assert 0.10 < est.mde < 1.0


def test_identical_and_zero_samples() -> None:
    vals = np.full(5, 0.8)
    (same,) = compare_samples([vals], [vals.copy()], paired=True, direction="higher")
    assert same.verdict == "unchanged" and same.ratio == 1.0
    (zero,) = compare_samples([np.zeros(8)], [np.zeros(8)], paired=True)
    assert zero.verdict == "unchanged" and zero.ratio == 1.0
    rng = np.random.default_rng(9)
    # negative fitness: -2 -> -1 is better for "higher", judged relative to |base|
    (neg,) = compare_samples([-2 + 0.01 * rng.standard_normal(10)],
                             [-1 + 0.01 * rng.standard_normal(10)], direction="higher")
    assert neg.ratio == pytest.approx(1.5, abs=0.02) and neg.verdict == "improved"


def test_resolution_says_why_instead_of_a_verdict() -> None:
    """0 s -> 14 us of system CPU time is not an infinite regression, nor +23.8% of a few ms
    that the timer cannot resolve a verdict: both are inconclusive, and say why."""
    rng = np.random.default_rng(7)
    res = resolution_of("cpu_sys_s")
    (tiny,) = compare_samples([np.zeros(12)], [rng.uniform(1e-5, 2e-5, 12)], paired=True,
                              resolution=res)
    assert tiny.verdict == "inconclusive" and tiny.reason == "below resolution"
    assert not tiny.in_family
    ms = rng.normal(3e-3, 3e-5, 12)
    (slower,) = compare_samples([ms], [ms * 1.238], paired=True,
                                resolution=resolution_of("cpu_user_s"))
    assert slower.verdict == "inconclusive" and slower.reason == "below resolution"
    big = rng.normal(0.1, 1e-3, 12)
    (real,) = compare_samples([big], [big * 1.2], paired=True, resolution=res)
    assert real.verdict == "regressed"
    with pytest.raises(ValidationError, match="one entry per comparison"):
        compare_samples([ms], [ms], resolution=[1e-3, 1e-3])


#: ``cpu_sys_s`` of one real A/B session (benchmarks/aa_real.py, cell n=100000, 100 pairs): the
#: non-zero calls, in seconds; every other call measured 0 s. Printed as "-292.0% to +672.7%".
SYS_BASE = [8e-06, 8e-06, 6e-05, 6e-05, 1.2e-05, 7.2e-05, 8.5e-05, 0.000305, 6.1e-05, 3.5e-05,
            4e-06, 2e-06, 9e-06, 5.6e-05, 0.00099, 3e-05, 2e-05, 3.2e-05, 2.1e-05, 3.4e-05,
            1.3e-05, 1e-06]
SYS_HEAD = [0.000184, 2.4e-05, 4.8e-05, 5.6e-05, 5.2e-05, 7e-06, 8e-06, 0.004118, 9.4e-05,
            6.6e-05, 0.000133, 1.8e-05, 3.4e-05, 6.2e-05, 3.5e-05, 1e-05, 0.000161, 3.1e-05,
            1.7e-05, 8.2e-05]


def test_interval_below_resolution_is_not_printed_as_a_ratio() -> None:
    """The real ``cpu_sys_s`` row that printed "-292.0% to +672.7%": a t interval of mostly-zero
    samples on the difference scale, as a ratio. Below the resolution the row has no interval
    ("n/a (below resolution)", null in JSON); without a resolution it is cut at -100% (a time
    is never negative), and an interval on logs stays as it was."""
    base = np.array(SYS_BASE + [0.0] * (100 - len(SYS_BASE)))
    head = np.array(SYS_HEAD + [0.0] * (100 - len(SYS_HEAD)))
    (row,) = compare_samples([base], [head], resolution=resolution_of("cpu_sys_s"))
    assert row.reason == "below resolution" and row.scale == "none"
    assert math.isnan(row.ci_low) and math.isnan(row.ci_high)
    assert row.interval_text == "n/a (below resolution)"
    (raw,) = compare_samples([base], [head])
    assert raw.scale == "difference" and raw.ci_low >= 0.0 and raw.ci_high > 1.0
    assert raw.interval_text.startswith("[-100.0%, +")
    rng = np.random.default_rng(3)
    t = rng.lognormal(-3, 0.02, 30)
    (logs,) = compare_samples([t], [t * 1.2], paired=True)
    assert logs.scale == "log" and logs.interval_text == (
        f"[{(logs.ci_low - 1) * 100:+.1f}%, {(logs.ci_high - 1) * 100:+.1f}%]")


def test_rows_without_spread_are_exact_and_stay_out_of_the_family() -> None:
    """A checksum (the same value on both sides, call by call) cannot be a false discovery:
    it is judged against the floor outside the family, so it does not raise the bar of the
    timed rows; one that moved by 20% on every call is a change."""
    rng = np.random.default_rng(4)
    t = rng.lognormal(-3, 0.05, (3, 40))
    seeds = np.tile(np.arange(4.0) + 1, 10)
    head = t * rng.lognormal(0, 0.05, t.shape)
    ests = compare_samples([*t, seeds, seeds], [*head, seeds, seeds * 1.2], paired=True)
    timed, same, moved = ests[:3], ests[3], ests[4]
    assert all(e.in_family for e in timed) and not same.in_family and not moved.in_family
    assert same.verdict == "unchanged" and same.mde == pytest.approx(0.05)
    assert moved.verdict == "regressed" and moved.ratio == pytest.approx(1.2)
    assert math.isnan(same.q_value) and same.interval_text == "[+0.0%, +0.0%]"


def test_validation_errors() -> None:
    with pytest.raises(ValidationError):
        compare_samples([np.ones(3)], [np.ones(4)], paired=True)
    with pytest.raises(ValidationError):
        compare_samples([np.ones(3)], [np.ones(3), np.ones(3)])
    with pytest.raises(ValidationError):
        compare_samples([np.ones(3)], [np.ones(3)], q=1.5)
    with pytest.raises(ValidationError):
        compare_samples([np.array([1.0, np.nan])], [np.ones(2)])
    (single,) = compare_samples([np.ones(1)], [np.ones(1) * 2])
    assert single.verdict == "inconclusive" and single.reason == "too few samples"


# --- runs --------------------------------------------------------------------------------------


def _info(name: str, t: float = 0.0, spec: dict[str, object] | None = None) -> RunInfo:
    return RunInfo(id=name, name=name, spec_name="s", target="evolution", status="finished",
                   created_at=t, spec=spec or {}, environment={"python": "3.11"})


def _run(name: str, rng: np.random.Generator, *, cells: int = 12, seeds: int = 10,
         repeats: int = 1, shift: float = 1.0, slow: dict[tuple[int, str], float] | None = None,
         failed: set[int] | None = None, t: float = 0.0, noise: float = 0.02) -> RunRecord:
    out = []
    for i in range(cells):
        params = {"population_size": [50, 100, 200, 500][i % 4], "i": i}
        key = cell_key("evolution", params)
        if failed and i in failed:
            out.append(CellResult(key, "evolution", params, "failed", [], error="boom"))
            continue
        samples = []
        for metric, mu in (("wall_s", 0.01 * (1 + i)), ("best_fitness", 0.9)):
            factor = (slow or {}).get((i, metric), 1.0) * (shift if metric == "wall_s" else 1)
            for s in range(seeds):
                seed_effect = 1.0 + 0.05 * s if metric == "best_fitness" else 1.0
                for r in range(repeats):
                    v = mu * seed_effect * factor * math.exp(noise * rng.standard_normal())
                    samples.append(Sample(metric, float(v), s, r))
        out.append(CellResult(key, "evolution", params, "ok", samples))
    return RunRecord(_info(name, t), out)


def test_a_whole_run_shift_is_one_environment_change_not_regressions() -> None:
    """The issue's case: 4 cells, 10 seeds x 10 repeats, the whole second run 10% slower:
    no cell is flagged; the shift is reported once."""
    rng = np.random.default_rng(11)
    base = _run("base", rng, cells=4, repeats=10)
    head = _run("head", rng, cells=4, repeats=10, shift=1.10, t=1.0)
    comp = compare_runs(base, head)
    assert not comp.regressed and not comp.improved and not comp.fails()
    (shift,) = comp.shifts
    assert shift.metric == "wall_s" and shift.ratio == pytest.approx(1.10, abs=0.01)
    assert shift.significant and "the whole run moved +10" in comp.notes()[0]
    assert all(r.estimate.shift == pytest.approx(shift.ratio) for r in comp.rows
               if r.metric == "wall_s")
    assert comp.to_dict()["shifts"][0]["metric"] == "wall_s"


def test_every_shift_taken_out_is_named_even_when_not_significant() -> None:
    """A row's change is relative to the rest of the run once a shift is taken out, so a
    reader must hear of every one: fit_s read +160 % beside 1.439 ms -> 1.316 ms with a -44 %
    shift taken out that no note mentioned."""
    from allele.bench.runlevel import Shift

    rng = np.random.default_rng(11)
    comp = compare_runs(_run("base", rng, cells=4, repeats=10),
                        _run("head", rng, cells=4, repeats=10, shift=1.10, t=1.0))
    comp.shifts = [*comp.shifts, Shift("fit_s", 0.559, 0.2, 1.5, 6)]
    wall, fit = (next(n for n in comp.notes() if m in n) for m in ("wall_s", "fit_s"))
    assert "+10" in wall and "even in sign" in wall and "not significant" not in wall
    assert "-44.1%" in fit and "not significant on its own" in fit and "even in sign" in fit


def test_an_exact_change_in_a_declared_time_is_not_taken_for_the_environment() -> None:
    """A model output declared in seconds (a battery life) whose every seed's value is 30 %
    lower, with seeded noise: no busy machine moves a metric by exactly one ratio, so no shift
    is taken out. It read "unchanged [+0.0%, +0.0%]", the shift unmentioned; with 3 cells and
    no history the run-level noise is unknown, so it is inconclusive at -30 %, not unchanged."""
    rng = np.random.default_rng(21)
    noise = rng.lognormal(0.0, 0.01, 6)
    declared = {"battery_life_s": {"direction": "higher", "unit": "s"}}

    def run(name: str, factor: float) -> RunRecord:
        cells = []
        for k in (1, 2, 3):
            params = {"k": k}
            cells.append(CellResult(cell_key("m", params), "m", params, "ok",
                                    [Sample("battery_life_s", 100.0 * k * factor * float(v), s, 0)
                                     for s, v in enumerate(noise)]))
        return RunRecord(_info(name, spec={"metrics": declared}), cells)

    comp = compare_runs(run("base", 1.0), run("head", 0.7))
    assert comp.shifts == [] and not any("whole run moved" in n for n in comp.notes())
    for row in comp.rows:
        assert row.estimate.shift == 1.0 and row.estimate.ratio == pytest.approx(0.7)
        assert row.verdict != "unchanged"


def test_a_cell_that_moved_relative_to_the_shift_is_flagged() -> None:
    rng = np.random.default_rng(12)
    base = _run("base", rng)
    head = _run("head", rng, shift=1.10, slow={(3, "wall_s"): 1.30, (5, "best_fitness"): 0.7},
                t=1.0)
    comp = compare_runs(base, head)
    flagged = {(r.params["i"], r.metric): r for r in comp.regressed}
    assert set(flagged) == {(3, "wall_s"), (5, "best_fitness")}
    # +30% on a machine 10% slower: the cell moved +30% relative to the run
    assert flagged[(3, "wall_s")].estimate.ratio == pytest.approx(1.30, abs=0.04)
    assert flagged[(5, "best_fitness")].estimate.shift == 1.0  # quality is never shifted
    assert comp.mode == "two-run"


def test_history_gives_the_run_level_variance_and_never_holds_the_compared_runs() -> None:
    rng = np.random.default_rng(13)
    past = [_run(f"r{k}", rng, t=float(k)) for k in range(8)]
    base = _run("base", rng, t=10.0)
    head = _run("head", rng, t=11.0, slow={(2, "wall_s"): 1.25})
    history = History.from_records([*past, base, head])
    with_runs = compare_runs(base, head, history=history)
    without = compare_runs(base, head, history=History.from_records(past))
    assert [r.estimate for r in with_runs.rows] == [r.estimate for r in without.rows]
    assert {r.run_level for r in with_runs.rows if r.metric == "wall_s"} == {"history"}
    assert [(r.params["i"], r.metric) for r in with_runs.regressed] == [(2, "wall_s")]
    # without any history, the matrix's own spread stands in
    alone = compare_runs(base, head)
    assert {r.run_level for r in alone.rows if r.metric == "wall_s"} == {"matrix"}


def test_run_level_noise_is_named_when_it_is_what_hides_a_change() -> None:
    """A cell whose level swings by 20% between identical runs: a +12% move within one run's
    tight samples is not a verdict, and the reason says run-level noise."""
    rng = np.random.default_rng(14)
    past = []
    for k in range(10):
        run = _run(f"r{k}", rng, t=float(k), noise=0.005)
        swing = math.exp(rng.normal(0, 0.2))
        for s in run.cells[0].samples:
            if s.metric == "wall_s":
                object.__setattr__(s, "value", s.value * swing)
        past.append(run)
    base = _run("base", rng, t=20.0, noise=0.005)
    head = _run("head", rng, t=21.0, noise=0.005, slow={(0, "wall_s"): 1.12})
    comp = compare_runs(base, head, history=History.from_records(past))
    row = next(r for r in comp.rows if r.params["i"] == 0 and r.metric == "wall_s")
    assert row.verdict == "inconclusive" and row.estimate.reason == "run-level noise"
    assert row.estimate.se_between > 3 * row.estimate.se_within


def test_compare_runs_failures_missing_cells_and_json() -> None:
    rng = np.random.default_rng(15)
    base = _run("base", rng, cells=10)
    head = _run("head", rng, cells=12, failed={2}, t=1.0)
    comp = compare_runs(base, head)
    assert [f.key for f in comp.failures] == [base.cells[2].key]
    assert comp.failures[0].head_status == "failed" and comp.failures[0].error == "boom"
    assert comp.only_in_head == sorted(c.key for c in head.cells[10:])
    assert len(comp.rows) == 9 * 2
    doc = json.loads(json.dumps(comp.to_dict(), allow_nan=False))
    assert doc["head"]["name"] == "head" and len(doc["rows"]) == 18 and doc["mode"] == "two-run"
    assert {"reason", "se_within", "se_between", "df", "in_family", "run_level"} <= set(
        doc["rows"][0])
    assert doc["family_size"] == comp.family_size


def test_deterministic_metrics_use_their_tolerance_and_stay_out_of_the_family() -> None:
    """Synthetic instruction counts (exact within a run): +1% is a regression, +0.1% is within
    the 0.3% tolerance, a count that varies within a run is not deterministic; none of them is
    in the FDR family, and a whole-run time shift does not touch them."""
    rng = np.random.default_rng(16)
    base = _run("base", rng, cells=6)
    head = _run("head", rng, cells=6, shift=1.10, t=1.0)
    for run, factors in ((base, (1.0, 1.0, 1.0)), (head, (1.01, 1.001, 1.0))):
        for i, factor in enumerate(factors):
            wobble = 0.02 if i == 2 and run is head else 0.0
            run.cells[i].samples += [Sample("instructions", 1e6 * factor * (1 + wobble * s), s, 0)
                                     for s in range(5)]
    comp = compare_runs(base, head)
    rows = {r.params["i"]: r for r in comp.rows if r.metric == "instructions"}
    assert rows[0].verdict == "regressed" and rows[0].estimate.ratio == pytest.approx(1.01)
    assert rows[1].verdict == "unchanged"
    assert rows[2].verdict == "inconclusive" and rows[2].estimate.reason == "not deterministic"
    assert not any(r.estimate.in_family for r in rows.values())
    assert all(r.estimate.design == "deterministic" and r.estimate.floor == 0.003
               for r in rows.values())
    assert [s.metric for s in comp.shifts] == ["wall_s"]
    declared = {"instructions": MetricInfo("instructions", "lower", deterministic=True,
                                           tolerance=0.02)}
    loose = compare_runs(base, head, declared=declared)
    assert {r.params["i"]: r.verdict for r in loose.rows
            if r.metric == "instructions"}[0] == "unchanged"


def _ab_pair(d: np.ndarray, stride: int = 100_000) -> tuple[RunRecord, RunRecord]:
    """Two runs of an A/B session whose paired log-differences are ``d`` (cells x rounds x
    pairs): BASE at 1.0 per call, HEAD at exp(d)."""
    cells_b, cells_h = [], []
    for i in range(d.shape[0]):
        params = {"i": i}
        key = cell_key("t", params)
        sb, sh = [], []
        for r in range(d.shape[1]):
            for j in range(d.shape[2]):
                base = 0.01 * (1 + i)
                sb.append(Sample("wall_s", base, j, r * stride))
                sh.append(Sample("wall_s", base * math.exp(d[i, r, j]), j, r * stride))
        cells_b.append(CellResult(key, "t", params, "ok", sb))
        cells_h.append(CellResult(key, "t", params, "ok", sh))
    doc = {"session": "s1", "rounds": d.shape[1], "round_stride": stride}
    return (RunRecord(_info("b", 0.0, {"ab": {**doc, "role": "base"}}), cells_b),
            RunRecord(_info("h", 1.0, {"ab": {**doc, "role": "head"}}), cells_h))


def test_ab_sessions_compare_round_by_round_like_the_simulations() -> None:
    rng = np.random.default_rng(17)
    effect = np.zeros(40)
    effect[5] = math.log(1.12)
    d = ab_diffs(rng, 1, 40, 10, 3, Noise(sigma=(0.03, 0.03), bimodal_cells=0.0), effect)
    batch = judge_ab(d)
    base, head = _ab_pair(d[0])
    comp = compare_runs(base, head)
    assert comp.mode == "ab" and comp.shifts == [] and comp.warnings == []
    assert all(r.estimate.design == "ab" and r.estimate.test == "t (rounds)" for r in comp.rows)
    by_cell = sorted(comp.rows, key=lambda r: r.params["i"])
    assert [r.verdict for r in by_cell] == [
        ("regressed", "improved", "inconclusive", "unchanged")[v] for v in batch.verdict[0]]
    np.testing.assert_allclose([math.log(r.estimate.ratio) for r in by_cell], batch.est[0])
    assert by_cell[5].verdict == "regressed" and batch.verdict[0, 5] == V_REGRESSED


def test_environment_diff() -> None:
    diff = environment_diff({"python": "3.11", "cpu": {"count": 2, "model": "x"}},
                            {"python": "3.12", "cpu": {"count": 2}, "git": "abc"})
    assert diff == [("cpu.model", "x", None), ("git", None, "abc"), ("python", "3.11", "3.12")]


def test_conditions_warning_when_one_run_started_on_a_busier_machine() -> None:
    from allele.bench.compare import conditions_warning

    rng = np.random.default_rng(3)
    base = _run("base", rng, cells=4)
    head = _run("head", rng, cells=4, t=1.0)
    assert conditions_warning(base.info, head.info) is None
    assert compare_runs(base, head).warnings == []
    base.info.environment["load"] = {"1m": 1.9, "5m": 1.2, "15m": 0.8}
    head.info.environment["load"] = {"1m": 0.3, "5m": 0.4, "15m": 0.5}
    head.info.environment["cpu"] = {"usable": 2}
    note = conditions_warning(base.info, head.info)
    assert note is not None
    assert note.startswith("the machine was busier when base started (load average 1.90 on 2")
    comp = compare_runs(base, head)
    assert comp.warnings == [note] and comp.to_dict()["warnings"] == [note]
    head.info.environment["load"]["1m"] = 1.5  # half a process on 2 CPUs is the usual noise
    assert conditions_warning(base.info, head.info) is None


def test_split_params_separates_varying_from_shared() -> None:
    from allele.bench.compare import split_params

    rng = np.random.default_rng(5)
    base = _run("base", rng, cells=4)
    head = _run("head", rng, cells=4, t=1.0)
    for run in (base, head):
        for c in run.cells:
            c.params = {**c.params, "generations": 30}
    comp = compare_runs(base, head)
    assert split_params(comp.rows) == {
        "evolution": (["i", "population_size"], {"generations": 30})}
    assert split_params([]) == {}


def test_a_huge_change_prints_as_a_factor() -> None:
    """An interval's end of a metric near 0 printed as +214560193.9 %; from 10 times on the
    change reads as a factor."""
    from allele.bench.format import pct

    assert [pct(r) for r in (1.23, 0.5, 9.99, 10.0, 2145602.939, 0.0)] == [
        "+23.0%", "-50.0%", "+899.0%", "×10", "×2.15e+06", "-100.0%"]


def _memory_run(name: str, rng: np.random.Generator, rss: float,
                spec: dict[str, object]) -> RunRecord:
    """Four cells of 6 seeds x 3 repeats with a wall time and a peak RSS near ``rss`` MiB."""
    cells = []
    for n in (1, 2, 3, 4):
        params = {"n": n}
        samples = [Sample(metric, mu * math.exp(0.01 * rng.standard_normal()), s, r)
                   for metric, mu in (("wall_s", 0.01 * n), ("peak_rss_mb", rss))
                   for s in range(6) for r in range(3)]
        cells.append(CellResult(cell_key("mybench:load", params), "mybench:load", params, "ok",
                                samples))
    info = RunInfo(id=name, name=name, spec_name="s", target="mybench:load", status="finished",
                   created_at=0.0, spec=spec, environment={})
    return RunRecord(info, cells)


def _suite(isolation: str) -> dict[str, object]:
    return {"benchmarks": [{"name": "load", "target": "mybench:load", "isolation": isolation}]}


def test_memory_measured_in_different_processes_gets_no_verdict() -> None:
    """The review's case: the same code, BASE in pool workers, HEAD inline in the CLI process
    whose imports add ~12 MiB of resident memory: peak_rss_mb was called +19% regressed. The
    memory rows leave the comparison with one warning saying why; time rows still compare."""
    rng = np.random.default_rng(40)
    base = _memory_run("p5", rng, 61.5, {"executor": "local", "suite": _suite("process")})
    head = _memory_run("i6", rng, 73.4, {"executor": "inline", "suite": _suite("process")})
    comp = compare_runs(base, head)
    assert {r.metric for r in comp.rows} == {"wall_s"} and len(comp.rows) == 4
    assert not comp.regressed and not comp.fails()
    (warning,) = [w for w in comp.warnings if "not compared" in w]
    assert warning.startswith("peak_rss_mb of 4 cells not compared: BASE measured them in "
                              "worker processes of a process pool, HEAD in the runner's own "
                              "process")
    assert comp.to_dict()["warnings"] == comp.warnings


def test_memory_compares_where_both_runs_measured_alike() -> None:
    """Same kind of process: the memory rows are compared. A benchmark with
    ``isolation: inline`` runs in the runner's process beside a pool too, so it compares with
    an ``-e inline`` run. A run recorded before the executor was stored compares as before;
    one resumed with another executor (``mixed``) compares its memory with no run."""
    rng = np.random.default_rng(41)

    def pair(b: dict[str, Any], h: dict[str, Any]) -> set[str]:
        comp = compare_runs(_memory_run("b", rng, 61.5, b), _memory_run("h", rng, 73.4, h))
        return {r.metric for r in comp.rows}

    local: dict[str, Any] = {"executor": "local", "suite": _suite("process")}
    inline: dict[str, Any] = {"executor": "inline"}
    both = {"peak_rss_mb", "wall_s"}
    assert pair(local, dict(local)) == both
    assert pair({"executor": "local", "suite": _suite("inline")}, inline) == both
    assert pair({}, inline) == both  # BASE recorded no executor
    assert pair({"executor": "mixed"}, {"executor": "mixed"}) == {"wall_s"}


def test_cpu_time_resolution_is_the_one_the_runs_measured() -> None:
    """An A/B session: a 4.5 ms CPU time 13% slower (0.6 ms). With the 1 ms the catalogue
    assumes (runs recorded without a measured resolution) it is 'below resolution'; runs that
    measured 1 us steps (precise kernel accounting, as on this machine) call it regressed. The
    coarser of the two runs' resolutions applies."""
    import dataclasses

    from allele.bench.compare import recorded_cpu_resolution
    from allele.bench.environment import cpu_time_resolution as measured

    rng = np.random.default_rng(21)
    d = 0.01 * rng.standard_normal((3, 10, 3))
    d[0] += math.log(1.13)

    def as_cpu(r: RunRecord, res: float | None) -> RunRecord:
        cells = [dataclasses.replace(c, samples=[Sample("cpu_user_s", 0.45 * x.value, x.seed,
                                                        x.repeat) for x in c.samples])
                 for c in r.cells]
        env = dict(r.info.environment)
        if res is not None:
            env["cpu"] = {"logical": 2, "time_resolution_s": res}
        return RunRecord(dataclasses.replace(r.info, environment=env), cells)

    base, head = _ab_pair(d)
    row = next(r for r in compare_runs(as_cpu(base, None), as_cpu(head, None)).rows
               if r.params == {"i": 0})
    assert (row.verdict, row.estimate.reason) == ("inconclusive", "below resolution")
    comp = compare_runs(as_cpu(base, 1e-6), as_cpu(head, 1e-6))
    row = next(r for r in comp.rows if r.params == {"i": 0})
    assert row.verdict == "regressed" and row.estimate.ratio == pytest.approx(1.13, abs=0.02)
    assert [r.verdict for r in comp.rows if r.params != {"i": 0}] == ["unchanged"] * 2
    assert recorded_cpu_resolution(as_cpu(base, 1e-6).info, as_cpu(head, 4e-3).info) == 4e-3
    assert recorded_cpu_resolution(as_cpu(base, 1e-6).info, head.info) is None  # one unmeasured
    res = measured()  # this machine's: a step of 1 us to 10 ms, or None when too coarse to see
    assert res is None or 1e-7 <= res <= 0.02
