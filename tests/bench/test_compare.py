"""Run comparison: statistics against known truth (synthetic samples, fixed seeds)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from allele.bench.calibrate import calibration
from allele.bench.compare import compare_runs, environment_diff
from allele.bench.estimate import compare_samples
from allele.bench.stats import clip_far_outliers
from allele.errors import ValidationError
from allele.store.model import CellResult, RunInfo, RunRecord, Sample, cell_key

METRICS = ("wall_s", "peak_rss_mb", "best_fitness")  # lower, lower, higher
N_CELLS = 60
N_REP = 10
NOISE = 0.03


def _matrix(rng: np.random.Generator, effect: dict[int, float] | None = None,
            noise: float = NOISE) -> tuple[np.ndarray, np.ndarray]:
    """(cells*metrics) x repeats arrays for BASE and HEAD; ``effect`` scales HEAD rows."""
    k = N_CELLS * len(METRICS)
    means = rng.uniform(0.5, 2.0, size=(k, 1))
    base = means * (1.0 + noise * rng.standard_normal((k, N_REP)))
    head = means * (1.0 + noise * rng.standard_normal((k, N_REP)))
    for row, factor in (effect or {}).items():
        head[row] *= factor
    return base, head


DIRECTIONS = ["lower", "lower", "higher"] * N_CELLS


def test_aa_false_positive_rate_over_200_matrices() -> None:
    """A/A: 200 matrices of 60 cells x 3 metrics, 10 repeats, 3% noise: <= 5% report any."""
    flagged = 0
    unchanged_share = []
    for trial in range(200):
        rng = np.random.default_rng(trial)
        base, head = _matrix(rng)
        ests = compare_samples(base, head, direction=DIRECTIONS, seed=trial)
        verdicts = [e.verdict for e in ests]
        flagged += "regressed" in verdicts or "improved" in verdicts  # stricter: either
        unchanged_share.append(verdicts.count("unchanged") / len(verdicts))
    assert flagged / 200 <= 0.05
    # and most cells are positively "unchanged", not merely unflagged
    assert float(np.mean(unchanged_share)) > 0.85


def test_power_10_percent_slowdown_in_one_cell() -> None:
    """A 10% slowdown in one cell (10 repeats, 3% noise) is regressed in >= 90% of 200 trials."""
    hits = 0
    others_flagged = 0
    target = 3 * 17  # wall_s of cell 17
    for trial in range(200):
        rng = np.random.default_rng(10_000 + trial)
        base, head = _matrix(rng, effect={target: 1.10})
        ests = compare_samples(base, head, direction=DIRECTIONS, seed=trial)
        hits += ests[target].verdict == "regressed"
        others_flagged += sum(e.verdict == "regressed" for i, e in enumerate(ests)
                              if i != target)
    assert hits / 200 >= 0.90
    assert others_flagged <= 10


def test_quality_drop_regresses_and_speedup_improves() -> None:
    rng = np.random.default_rng(1)
    base, head = _matrix(rng, effect={0: 0.85, 2: 0.85, 5: 1.2})
    ests = compare_samples(base, head, direction=DIRECTIONS, seed=0)
    assert ests[0].verdict == "improved"  # wall_s 15% lower: faster
    assert ests[2].verdict == "regressed"  # best_fitness 15% lower: worse
    assert ests[5].verdict == "improved"  # best_fitness 20% higher
    assert ests[0].ci_high < 0.95 and ests[0].ratio == pytest.approx(0.85, abs=0.03)


def test_noise_hides_effect_inconclusive_with_mde() -> None:
    rng = np.random.default_rng(2)
    base = 1.0 + 0.30 * rng.standard_normal(10)
    head = 1.1 * (1.0 + 0.30 * rng.standard_normal(10))
    (est,) = compare_samples([base], [head], seed=0)
    assert est.verdict == "inconclusive"
    assert est.mde > 0.10  # this cell could not see a 10% change
    assert est.ci_low < 1.0 < est.ci_high or est.ci_low < 1.05


def test_mde_infinite_when_paired_test_too_coarse_for_the_family() -> None:
    rng = np.random.default_rng(3)
    base = 1.0 + 0.03 * rng.standard_normal((180, 10))
    head = 1.0 + 0.03 * rng.standard_normal((180, 10))
    head[0] *= 1.3  # huge, every pair worse
    ests = compare_samples(base, head, paired=True, seed=0)
    # 10 pairs: signed-rank p >= 2/1024 > 0.05/180, so it can never pass FDR on its own
    assert ests[0].p_value == pytest.approx(2 / 1024)
    assert ests[0].verdict == "inconclusive"
    assert math.isinf(ests[0].mde)


def test_pvalues_and_fdr_match_scipy() -> None:
    rng = np.random.default_rng(4)
    base = rng.normal(1.0, 0.05, size=(20, 12))
    head = rng.normal(1.0, 0.05, size=(20, 12))
    head[:5] *= 1.08
    ests = compare_samples(base, head, seed=0)
    p = np.array([e.p_value for e in ests])
    expected = [stats.mannwhitneyu(head[i], base[i], method="exact").pvalue for i in range(20)]
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    np.testing.assert_allclose([e.q_value for e in ests],
                               stats.false_discovery_control(p, method="bh"), rtol=1e-12)
    paired = compare_samples(base, head, paired=True, seed=0)
    expected_w = [stats.wilcoxon(head[i], base[i]).pvalue for i in range(20)]
    np.testing.assert_allclose([e.p_value for e in paired], expected_w, rtol=1e-12)
    assert {e.test for e in paired} == {"wilcoxon"}
    assert {e.test for e in ests} == {"mannwhitneyu"}


def test_bootstrap_ci_covers_true_ratio() -> None:
    rng = np.random.default_rng(5)
    k, n = 400, 20
    base = rng.lognormal(0.0, 0.05, size=(k, n))
    head = 1.2 * rng.lognormal(0.0, 0.05, size=(k, n))
    true_ratio = 1.2  # ratio of the means (same shape of noise)
    ests = compare_samples(base, head, seed=1)
    covered = np.mean([e.ci_low <= true_ratio <= e.ci_high for e in ests])
    assert 0.88 <= covered <= 0.99
    assert all(e.ci_low <= e.ratio <= e.ci_high for e in ests)
    np.testing.assert_allclose([e.ratio for e in ests], clip_far_outliers(head).mean(1)
                               / clip_far_outliers(base).mean(1))
    np.testing.assert_allclose([e.median_base for e in ests], np.median(base, axis=1))


def test_far_outliers_clipped_for_the_ratio_not_for_the_test() -> None:
    rng = np.random.default_rng(15)
    clean = 1.0 + 0.03 * rng.standard_normal((50, 10))
    clipped = clip_far_outliers(clean)  # normal data: rarely touched, and only slightly
    assert np.mean(clipped != clean) < 0.02
    assert np.max(np.abs(clipped - clean)) < 0.03
    base = 1.0 + 0.01 * rng.standard_normal(200)
    head = 1.0 + 0.01 * rng.standard_normal(200)
    head[:2] = 100.0  # two rounds hit by a 100x stall
    (est,) = compare_samples([base], [head])
    assert head.mean() > 1.9  # the raw mean doubled
    assert est.ratio == pytest.approx(1.0, abs=0.01)  # the clipped one did not
    assert est.verdict == "unchanged"
    assert est.p_value == pytest.approx(stats.mannwhitneyu(head, base).pvalue)


def test_seeded_and_reproducible() -> None:
    rng = np.random.default_rng(6)
    base, head = _matrix(rng)
    a = compare_samples(base, head, direction=DIRECTIONS, seed=7)
    b = compare_samples(base, head, direction=DIRECTIONS, seed=7)
    c = compare_samples(base, head, direction=DIRECTIONS, seed=8)
    assert a == b
    assert [e.ci_low for e in a] != [e.ci_low for e in c]


def test_identical_deterministic_samples_unchanged() -> None:
    vals = np.full(5, 0.8)
    (paired,) = compare_samples([vals], [vals.copy()], paired=True, direction="higher")
    (unpaired,) = compare_samples([vals], [vals.copy()], direction="higher")
    for est in (paired, unpaired):
        assert est.p_value == 1.0 and est.ratio == 1.0
        assert est.verdict == "unchanged"


def test_zero_and_negative_baselines() -> None:
    (zero,) = compare_samples([np.zeros(8)], [np.zeros(8)], direction="lower")
    assert zero.ratio == 1.0 and zero.verdict == "unchanged"
    (grow,) = compare_samples([np.zeros(8)], [np.ones(8)], direction="lower")
    assert math.isinf(grow.ratio) and grow.verdict == "regressed"
    rng = np.random.default_rng(9)
    # negative fitness: -2 -> -1 is better for "higher", ratio 1.5 means +50% of |base|
    (neg,) = compare_samples([-2 + 0.01 * rng.standard_normal(10)],
                             [-1 + 0.01 * rng.standard_normal(10)], direction="higher")
    assert neg.ratio == pytest.approx(1.5, abs=0.02) and neg.verdict == "improved"


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
    assert single.test == "none" and single.verdict == "inconclusive"


# --- runs ------------------------------------------------------------------------------------


def _run(name: str, rng: np.random.Generator, *, seeds: int, repeats: int,
         slow: dict[tuple[int, str], float] | None = None,
         failed: set[int] | None = None, cells: int = 12) -> RunRecord:
    out = []
    for i in range(cells):
        params = {"population_size": [50, 100, 200, 500][i % 4], "selection": "ts"[i // 4 % 2],
                  "i": i}
        key = cell_key("evolution", params)
        if failed and i in failed:
            out.append(CellResult(key, "evolution", params, "failed", [], error="boom"))
            continue
        samples = []
        for metric, mu in (("wall_s", 1.0 + i / 10), ("best_fitness", 0.9)):
            factor = (slow or {}).get((i, metric), 1.0)
            for s in range(seeds):
                seed_effect = 1.0 + 0.05 * s if metric == "best_fitness" else 1.0
                for r in range(repeats):
                    v = mu * seed_effect * factor * (1.0 + 0.02 * rng.standard_normal())
                    samples.append(Sample(metric, float(v), s, r))
        out.append(CellResult(key, "evolution", params, "ok", samples))
    info = RunInfo(id=name, name=name, spec_name="s", target="evolution", status="finished",
                   created_at=0.0, environment={"python": "3.11", "cpu": {"count": 2}})
    return RunRecord(info, out)


def test_compare_runs_matches_samples_and_flags_cell() -> None:
    rng = np.random.default_rng(11)
    base = _run("base", rng, seeds=1, repeats=10)
    head = _run("head", rng, seeds=1, repeats=10, slow={(3, "wall_s"): 1.25,
                                                        (5, "best_fitness"): 0.7})
    comp = compare_runs(base, head, seed=3)
    assert len(comp.rows) == 24
    assert [(r.key, r.metric) for r in comp.regressed] == sorted(
        [(base.cells[3].key, "wall_s"), (base.cells[5].key, "best_fitness")])
    assert all(r.estimate.test == "mannwhitneyu" for r in comp.rows)
    order = sorted(range(12), key=lambda i: base.cells[i].key)
    b = [base.cells[i].values(m) for i in order for m in ("best_fitness", "wall_s")]
    h = [head.cells[i].values(m) for i in order for m in ("best_fitness", "wall_s")]
    direct = compare_samples(b, h, direction=["higher", "lower"] * 12, seed=3)
    assert [r.estimate for r in comp.rows] == direct
    assert comp.counts()["regressed"] == 2
    assert all(math.isfinite(r.estimate.mde) for r in comp.regressed)


def test_compare_runs_pairs_by_seed() -> None:
    rng = np.random.default_rng(12)
    base = _run("base", rng, seeds=8, repeats=2)
    head = _run("head", rng, seeds=8, repeats=2)
    comp = compare_runs(base, head)
    assert all(r.estimate.paired and r.estimate.test == "wilcoxon" for r in comp.rows)
    assert not comp.regressed
    row = comp.rows[0]
    cb, ch = base.cell(row.key), head.cell(row.key)
    assert cb is not None and ch is not None
    expected = stats.wilcoxon(ch.values(row.metric), cb.values(row.metric)).pvalue
    assert row.estimate.p_value == pytest.approx(expected)


def test_compare_runs_failures_missing_cells_and_json() -> None:
    rng = np.random.default_rng(13)
    base = _run("base", rng, seeds=1, repeats=5, cells=10)
    head = _run("head", rng, seeds=1, repeats=5, cells=12, failed={2})
    comp = compare_runs(base, head)
    assert [f.key for f in comp.failures] == [base.cells[2].key]
    assert comp.failures[0].head_status == "failed" and comp.failures[0].error == "boom"
    assert comp.only_in_head == sorted(c.key for c in head.cells[10:])
    assert comp.only_in_base == []
    assert len(comp.rows) == 9 * 2
    doc = json.loads(json.dumps(comp.to_dict(), allow_nan=False))
    assert doc["head"]["name"] == "head" and len(doc["rows"]) == 18
    assert set(doc["counts"]) == {"regressed", "improved", "inconclusive", "unchanged"}


def test_calibration_counts_flags_per_target() -> None:
    rng = np.random.default_rng(14)
    base = _run("base", rng, seeds=1, repeats=10)
    head = _run("head", rng, seeds=1, repeats=10, slow={(3, "wall_s"): 1.3})
    (cal,) = calibration(compare_runs(base, head))
    assert cal.target == "evolution" and cal.cells == 12 and cal.comparisons == 24
    assert cal.false_positives == 1 and cal.false_positive_rate == pytest.approx(1 / 24)
    assert cal.false_positives_by_metric == {"wall_s": 1, **{
        m: 0 for m in cal.false_positives_by_metric if m != "wall_s"}}
    assert len(cal.false_positives_by_metric) == 2


def test_environment_diff() -> None:
    diff = environment_diff({"python": "3.11", "cpu": {"count": 2, "model": "x"}},
                            {"python": "3.12", "cpu": {"count": 2}, "git": "abc"})
    assert diff == [("cpu.model", "x", None), ("git", None, "abc"), ("python", "3.11", "3.12")]


def test_values_below_the_metric_resolution_are_unchanged_not_infinite_regressions() -> None:
    from allele.bench.metrics import resolution_of

    rng = np.random.default_rng(7)
    base = np.zeros(12)  # a cell that never entered the kernel: 0 s of system CPU time
    head = rng.uniform(1e-5, 2e-5, 12)  # ... and a few microseconds the next run
    raw = compare_samples([base], [head], direction="lower", paired=True)[0]
    assert raw.verdict == "regressed" and math.isinf(raw.ratio)  # what the ratio alone says
    est = compare_samples([base], [head], direction="lower", paired=True,
                          resolution=resolution_of("cpu_sys_s"))[0]
    assert est.verdict == "unchanged"
    # above the resolution the statistics decide as before
    big = compare_samples([base + 0.01], [head + 0.02], direction="lower", paired=True,
                          resolution=resolution_of("cpu_sys_s"))[0]
    assert big.verdict == "regressed"
    # one sample above the resolution does not make 43 us -> 0 an improvement of 100% ...
    spiky = np.full(12, 2e-5)
    spiky[3] = 4e-3  # one scheduler tick
    raw = compare_samples([spiky], [np.zeros(12)], direction="lower", paired=True)[0]
    assert raw.verdict == "improved" and raw.ratio == 0.0
    est = compare_samples([spiky], [np.zeros(12)], direction="lower", paired=True,
                          resolution=resolution_of("cpu_sys_s"))[0]
    assert est.verdict == "unchanged"
    # ... but a change larger than the resolution from near zero still counts
    grown = compare_samples([np.zeros(12)], [rng.uniform(4e-3, 5e-3, 12)], direction="lower",
                            paired=True, resolution=resolution_of("cpu_sys_s"))[0]
    assert grown.verdict == "regressed"
    # and values well above the resolution are judged by the statistics, however small the
    # change in absolute terms (3.0 ms -> 3.6 ms of user CPU is +20%)
    ms = rng.normal(3e-3, 3e-5, 12)
    slower = compare_samples([ms], [ms * 1.2], direction="lower", paired=True,
                             resolution=resolution_of("cpu_user_s"))[0]
    assert slower.verdict == "regressed"
    assert resolution_of("wall_s") == 0.0 and resolution_of("peak_rss_mb") == 1.0
    with pytest.raises(ValidationError, match="one entry per comparison"):
        compare_samples([base], [head], resolution=[1e-3, 1e-3])


def test_conditions_warning_when_one_run_started_on_a_busier_machine() -> None:
    from allele.bench.compare import conditions_warning

    rng = np.random.default_rng(3)
    base = _run("base", rng, seeds=1, repeats=4)
    head = _run("head", rng, seeds=1, repeats=4)
    # no load recorded (older runs): nothing to say
    assert conditions_warning(base.info, head.info) is None
    assert compare_runs(base, head).warnings == []
    base.info.environment["load"] = {"1m": 1.9, "5m": 1.2, "15m": 0.8}
    head.info.environment["load"] = {"1m": 0.3, "5m": 0.4, "15m": 0.5}
    head.info.environment["cpu"] = {"usable": 2}
    note = conditions_warning(base.info, head.info)
    assert note is not None
    assert note.startswith("the machine was busier when base started (load average 1.90 on 2")
    assert "than when head started (0.30)" in note
    comp = compare_runs(base, head)
    assert comp.warnings == [note] and comp.to_dict()["warnings"] == [note]
    # the busier run is named whichever side it is on
    assert "busier when base started" in (conditions_warning(head.info, base.info) or "")
    del head.info.environment["cpu"]  # no CPU count anywhere: the sentence leaves it out
    assert "(load average 1.90) than when head" in (conditions_warning(base.info, head.info) or "")
    head.info.environment["cpu"] = {"usable": 2}
    # a small difference is the usual noise: under half a process on 2 CPUs ...
    head.info.environment["load"]["1m"] = 1.5
    assert conditions_warning(base.info, head.info) is None
    # ... or under a quarter of the CPUs on 8 (1.6 < 2), but not 2.7
    head.info.environment["cpu"] = {"usable": 8}
    head.info.environment["load"]["1m"] = 0.3
    assert conditions_warning(base.info, head.info) is None
    base.info.environment["load"]["1m"] = 3.0
    assert "(load average 3.00 on 8 CPUs)" in (conditions_warning(base.info, head.info) or "")


def test_split_params_separates_varying_from_shared() -> None:
    from allele.bench.compare import split_params

    rng = np.random.default_rng(5)
    base = _run("base", rng, seeds=1, repeats=3)
    head = _run("head", rng, seeds=1, repeats=3)
    for run in (base, head):
        for c in run.cells:
            c.params = {**c.params, "generations": 30, "seed_bank": [1, 2]}
    comp = compare_runs(base, head)
    assert split_params(comp.rows) == {
        "evolution": (["i", "population_size", "selection"],
                      {"generations": 30, "seed_bank": [1, 2]})}
    # a parameter present in some cells only varies (set vs unset)
    comp.rows[0].params.pop("generations")
    varying, fixed = split_params(comp.rows)["evolution"]
    assert "generations" in varying and fixed == {"seed_bank": [1, 2]}
    assert split_params([]) == {}


def test_paired_pvalues_with_zero_and_tied_differences_use_the_normal_approximation() -> None:
    from scipy import stats

    from allele.bench.stats import pvalues as _pvalues

    rng = np.random.default_rng(11)
    base = np.round(rng.normal(100, 2, (6, 12)))  # integer-valued: tied and zero differences
    head = base + np.round(rng.normal(1.5, 2, (6, 12)))
    head[0] = base[0]  # a row without any difference: p = 1
    got = _pvalues(base, head, paired=True)
    assert got[0] == 1.0
    for i in range(1, 6):  # close to scipy's permutation answer, without its cost
        ref = stats.wilcoxon(head[i], base[i], zero_method="wilcox", method="auto").pvalue
        assert got[i] == pytest.approx(ref, abs=0.03)
    clean = rng.normal(0, 1, (3, 10))  # no ties, no zeros: the exact distribution
    moved = clean + rng.normal(0.5, 1, (3, 10))
    exact = _pvalues(clean, moved, paired=True)
    for i in range(3):
        ref = stats.wilcoxon(moved[i], clean[i], method="exact").pvalue
        assert exact[i] == pytest.approx(ref, rel=1e-12)


def _history_runs(n: int, rng: np.random.Generator, *, swing: float,
                  step_at: int | None = None) -> list[RunRecord]:
    """``n`` runs of two cells: ``noisy`` whose whole-run level swings by ``swing`` (log sd)
    from run to run with tight samples inside a run, and ``steady`` (1% level noise, +20% from
    run ``step_at`` on)."""
    runs = []
    for r in range(n):
        level = math.exp(rng.normal(0, swing))
        step = 1.2 if step_at is not None and r >= step_at else 1.0
        cells = []
        for name, mu in (("noisy", level), ("steady", step * math.exp(rng.normal(0, 0.01)))):
            params = {"cell": name}
            samples = [Sample("wall_s", float(mu * (1 + 0.01 * rng.standard_normal())), s, 0)
                       for s in range(12)]
            cells.append(CellResult(cell_key("evolution", params), "evolution", params, "ok",
                                    samples))
        info = RunInfo(id=f"r{r}", name=f"r{r}", spec_name="s", target="evolution",
                       status="finished", created_at=float(r), environment={})
        runs.append(RunRecord(info, cells))
    return runs


def test_run_to_run_noise_raises_the_floor_of_cells_that_swing_between_runs() -> None:
    from allele.bench.compare import noise_floor, run_to_run_noise

    rng = np.random.default_rng(21)
    runs = _history_runs(12, rng, swing=0.25, step_at=9)
    noise = run_to_run_noise(runs)
    noisy = noise[(cell_key("evolution", {"cell": "noisy"}), "wall_s")]
    steady = noise[(cell_key("evolution", {"cell": "steady"}), "wall_s")]
    assert 0.12 < noisy < 0.5  # the true run-to-run spread is exp(0.25) - 1 = 28%
    assert steady < 0.03  # one +20% step in the history barely moves the estimate
    assert run_to_run_noise(runs[:4]) == {}  # too few runs to say anything
    assert noise_floor(0.05, None) == 0.05 and noise_floor(0.05, 0.001) == 0.05
    assert noise_floor(0.05, noisy) > 0.3
    assert noise_floor(0.05, 40.0) == 1.0 and noise_floor(1.5, 40.0) == 1.5  # capped at +100%
    # base and head: the noisy cell 35% slower in head (a swing), the steady one +20% (a step)
    base, head = runs[8], runs[9]
    noisy_key = cell_key("evolution", {"cell": "noisy"})
    for c in head.cells:
        if c.key == noisy_key:
            ref = base.cell(noisy_key)
            assert ref is not None
            c.samples = [Sample(s.metric, s.value * 1.35, s.seed, s.repeat) for s in ref.samples]
    plain = {r.params["cell"]: r.verdict for r in compare_runs(base, head).rows}
    assert plain == {"noisy": "regressed", "steady": "regressed"}
    judged = compare_runs(base, head, noise=noise)
    verdicts = {r.params["cell"]: r for r in judged.rows}
    # the swing is within what this cell does between identical runs: not a verdict, and not
    # "unchanged" either; the step in the steady cell still is a regression
    assert verdicts["noisy"].verdict == "inconclusive"
    assert verdicts["noisy"].estimate.floor == pytest.approx(noise_floor(0.05, noisy))
    assert verdicts["steady"].verdict == "regressed"
    assert verdicts["steady"].estimate.floor == 0.05
    note = judged.noise_note()
    assert note is not None and note.startswith("1 of 2 cell metrics move between identical")
    assert compare_runs(base, head).noise_note() is None
    # medians at a metric's resolution (sys time of 0 or a few us) are left out
    for i, run in enumerate(runs):
        for c in run.cells:
            c.samples += [Sample("cpu_sys_s", 1e-5 * (1 + i % 3), s, 0) for s in range(12)]
    assert all(metric != "cpu_sys_s" for _, metric in run_to_run_noise(runs))
