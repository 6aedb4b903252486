"""Declared metrics, timed regions and per-cell memory, checked against truth (issue 12)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from allele.bench.compare import compare_runs, compare_samples
from allele.bench.metrics import LOOPS_METRIC, declarations_from_doc, direction_of
from allele.bench.runner import Runner
from allele.bench.spec import loads_suite
from allele.errors import BenchmarkError, ConfigError
from allele.store import ResultStore, open_store
from allele.store.model import CellResult
from tests.bench import measure_targets

T = "tests.bench.measure_targets"
ENV = {"test": True}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultStore]:
    st = open_store(f"sqlite:///{tmp_path / 'results.db'}")
    yield st
    st.close()


def _throughput_run(store: ResultStore, gain: float, run: int, metrics: str,
                    declare: str = "higher") -> str:
    """A run of 8 cells whose throughput is 1000/s, ``gain`` times that in cells 1 and 2 (a
    code change that speeds up one path; a change of every cell alike would be taken for the
    machine's, see allele.bench.runlevel)."""
    os.environ.update(MEASURE_GAIN=str(gain), MEASURE_FASTER="1,2", MEASURE_RUN=str(run),
                      MEASURE_DECLARE=declare)
    suite = loads_suite(f"""
name: tp
target: {T}:throughput
isolation: inline
seeds: 12
inner_loops: 1
matrix: {{size: [1, 2, 3, 4, 5, 6, 7, 8]}}
metrics: {metrics}
""")
    return Runner(store, executor="inline", environment=ENV).run(suite).run_id


DECLARED = "{items_per_s: {direction: higher, unit: 1/s}, score_time: null}"


def test_a_declared_throughput_that_rises_20_percent_is_improved(store: ResultStore) -> None:
    base = _throughput_run(store, 1.0, 1, DECLARED)
    head = _throughput_run(store, 1.2, 2, DECLARED)
    b, h = store.load_run(base), store.load_run(head)
    decl = declarations_from_doc(h.info.spec)
    assert decl["items_per_s"].direction == "higher" and decl["items_per_s"].unit == "1/s"
    # the target's Metric(...) declaration reached the run (its name alone would say "lower")
    assert direction_of("score_time") == "lower"
    assert decl["score_time"].direction == "higher" and decl["score_time"].declared
    comp = compare_runs(b, h)
    verdicts = {(r.params["size"], r.metric): r.verdict for r in comp.rows}
    assert len(verdicts) == 16
    for (size, metric), verdict in verdicts.items():
        if size in (1, 2):
            assert verdict == "improved", (size, metric, verdict)
        else:  # unchanged, or too noisy to rule out a small change: never a false verdict
            assert verdict in ("unchanged", "inconclusive"), (size, metric, verdict)
    assert not any(r.guessed for r in comp.rows)
    assert not comp.caveats


def test_compare_uses_heads_declaration_and_says_when_bases_differs(store: ResultStore) -> None:
    base = _throughput_run(store, 1.0, 1, DECLARED, declare="lower")
    head = _throughput_run(store, 1.2, 2, DECLARED, declare="higher")
    comp = compare_runs(store.load_run(base), store.load_run(head))
    assert any("score_time" in c and "HEAD's declaration is used" in c for c in comp.caveats)
    assert {r.verdict for r in comp.rows if r.metric == "score_time"
            and r.params["size"] in (1, 2)} == {"improved"}


def test_an_undeclared_metric_is_compared_with_a_guess_that_is_shown(
        store: ResultStore) -> None:
    base = _throughput_run(store, 1.0, 1, "[items_per_s]")
    head = _throughput_run(store, 1.2, 2, "[items_per_s]")
    comp = compare_runs(store.load_run(base), store.load_run(head))
    assert comp.rows and all(r.guessed for r in comp.rows)
    # the fixed guess: a rate is higher-is-better
    assert {r.verdict for r in comp.rows if r.params["size"] in (1, 2)} == {"improved"}


@pytest.mark.parametrize(("name", "direction"), [
    ("ops_per_sec", "higher"), ("items_per_sec", "higher"), ("items_per_s", "higher"),
    ("cache_misses", "lower"), ("instructions", "lower"), ("us_per_call", "lower"),
    ("ns_per_genome", "lower"), ("wall_s", "lower"), ("best_fitness", "higher"),
    ("tokens_per_s", "higher"), ("alloc_peak_mb", "lower")])
def test_direction_guesses(name: str, direction: str) -> None:
    assert direction_of(name) == direction


# --- timed regions ------------------------------------------------------------------------------


def _cell(store: ResultStore, run_id: str, name: str) -> CellResult:
    record = store.load_run(run_id)
    return next(c for c in record.cells if c.params.get("label") == name)


def test_setup_is_not_timed_and_the_target_gets_its_state(store: ResultStore) -> None:
    """The same CPU-bound target, once with a setup that sleeps 50 ms before every call and
    once without any setup: the time per call must agree (the sleep is outside the timing)."""
    suite = loads_suite(f"""
name: regions
order_seed: 3
defaults: {{seeds: 10, rounds: 5, warmup: 1, isolation: inline, fixed: {{n: 100000}}}}
benchmarks:
  - name: slow-setup
    target: {T}:lcg
    setup: {T}:slow_state
    teardown: {T}:note_teardown
    fixed: {{sleep_ms: 50, label: slow}}
  - name: no-setup
    target: {T}:lcg
    fixed: {{label: plain}}
""")
    measure_targets.TEARDOWNS.clear()
    run_id = Runner(store, executor="inline", environment=ENV).run(suite).run_id
    slow, plain = _cell(store, run_id, "slow"), _cell(store, run_id, "plain")
    assert slow.status == plain.status == "ok", (slow.error, plain.error)
    assert slow.values(LOOPS_METRIC) == []  # several ms a call: one call per sample
    # CPU time per call: the setup's own work is not counted. Not "equal within the CI": a
    # call right after a 50 ms sleep runs on a core that rested (another clock, colder caches),
    # and this VM measured -14% (CI [-24%, -3%]) against back-to-back calls in a quiet CI run;
    # so the bound is +-30%
    est = compare_samples(plain.values("cpu_user_s"), slow.values("cpu_user_s"))[0]
    assert 0.7 < est.ratio < 1.43, est
    # wall time per call: a timed 50 ms sleep would add 50 ms to every sample; the medians
    # (interleaved rounds, so both cells saw the same machine) differ by far less. Not closer:
    # on a busy machine a process that slept waits for a core again, inside the timed call
    # (+9 ms of 13 ms measured here while other jobs ran)
    walls = np.median(slow.values("wall_s")), np.median(plain.values("wall_s"))
    assert abs(walls[0] - walls[1]) < 0.025, walls
    # every call got a state of its own, and each was torn down: the calibrating call, which
    # is the warm-up too (seed 0, once per cell and process), 10 measured, and the two untimed
    # memory calls (untraced, traced) of each of the first round's seeds (0 and 5 of 5 rounds)
    assert sorted(measure_targets.TEARDOWNS) == sorted([0, *range(10), 0, 0, 5, 5])
    assert slow.values("acc") == plain.values("acc")  # the state reached the target


def test_a_failing_setup_is_reported_at_the_users_line(store: ResultStore) -> None:
    """A setup that fails inside numpy: the cell's error names the setup's file, line and
    function first, then where numpy raised it (it named only ``_common.pyx``)."""
    suite = loads_suite(f"""
name: bad-setup
target: {T}:lcg
setup: {T}:bad_input
isolation: inline
fixed: {{n: "many"}}
""")
    run_id = Runner(store, executor="inline", environment=ENV).run(suite).run_id
    (cell,) = store.load_run(run_id).cells
    assert cell.status == "failed" and cell.error is not None
    assert "(measure_targets.py:" in cell.error and " in bad_input; raised in " in cell.error
    assert cell.error.startswith("TypeError: ")


def test_a_builtin_target_refuses_a_setup() -> None:
    with pytest.raises(ConfigError, match="takes no state"):
        loads_suite(f"name: x\ntarget: evolution\nsetup: {T}:make_array\n")
    with pytest.raises(BenchmarkError, match="takes no state"):
        from allele.bench.targets import evolution
        evolution({}, 0, state=[1, 2])


def test_a_microsecond_target_is_looped_and_reported_per_call(store: ResultStore) -> None:
    suite = loads_suite(f"""
name: tiny
target: {T}:tiny
isolation: inline
seeds: 3
matrix: {{n: [10]}}
""")
    run_id = Runner(store, executor="inline", environment=ENV).run(suite).run_id
    cell = store.load_run(run_id).cells[0]
    loops = cell.values(LOOPS_METRIC)
    assert len(loops) == 3 and len(set(loops)) == 1  # one count, stored with every sample
    n = int(loops[0])
    assert n >= 100 and str(n)[0] in "125" and set(str(n)[1:]) <= {"0"}
    walls = cell.values("wall_s")
    # reported per call (a sample's total would be >= ~10 ms): the loop count was calibrated
    # for samples of ~10 ms, so w * n is of that order; a loose bound, since a busy shared
    # machine moves a call's time between calibration and sample (7.4 ms seen in CI)
    assert all(w < 1e-3 for w in walls)
    assert all(w * n >= 0.002 for w in walls), (walls, n)


def test_the_inner_loop_count_is_kept_but_shown_nowhere_as_a_metric(store: ResultStore) -> None:
    from allele.bench import views
    from allele.bench.history import recent_history

    spec = loads_suite(f"name: tiny\ntarget: {T}:tiny\nisolation: inline\nseeds: 3\n"
                       "inner_loops: 50\n")
    for _ in range(2):
        run_id = Runner(store, executor="inline", environment=ENV).run(spec).run_id
    assert store.load_run(run_id).cells[0].values(LOOPS_METRIC) == [50.0] * 3  # still stored
    ov = views.run_overview(store, run_id)
    (target,) = ov["targets"]
    assert "wall_s" in target["metrics"] and LOOPS_METRIC not in target["metrics"]
    (cell,) = ov["cells"]
    assert "wall_s" in cell["medians"] and LOOPS_METRIC not in cell["medians"]
    assert LOOPS_METRIC not in cell["median_texts"]
    metrics = {h.metric for h in recent_history(store)}
    assert "wall_s" in metrics and LOOPS_METRIC not in metrics


def test_compared_runs_must_time_with_the_same_inner_loop(store: ResultStore) -> None:
    spec = f"name: tiny\ntarget: {T}:tiny\nisolation: inline\nseeds: 3\ninner_loops: {{n}}\n"
    a = Runner(store, executor="inline", environment=ENV).run(
        loads_suite(spec.format(n=1000))).run_id
    b = Runner(store, executor="inline", environment=ENV).run(
        loads_suite(spec.format(n=2000))).run_id
    c = Runner(store, executor="inline", environment=ENV).run(
        loads_suite(spec.format(n=1000))).run_id
    ra, rb, rc = store.load_run(a), store.load_run(b), store.load_run(c)
    assert ra.cells[0].values(LOOPS_METRIC) == [1000.0] * 3
    mismatch = compare_runs(ra, rb)
    assert mismatch.rows == []
    assert any("not compared" in w and "1,000 calls" in w and "2,000 calls" in w
               for w in mismatch.warnings), mismatch.warnings
    same = compare_runs(ra, rc)
    assert same.rows and not same.caveats
    assert LOOPS_METRIC not in {r.metric for r in same.rows}


def test_the_timer_resolution_scales_per_call() -> None:
    from allele.bench.metrics import resolution_per_call

    assert resolution_per_call("cpu_user_s", 1) == 1e-3
    assert resolution_per_call("cpu_user_s", 1000) == pytest.approx(1e-6)
    assert resolution_per_call("peak_rss_mb", 1000) == 1.0  # memory is not divided per call


# --- each cell's own memory ----------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_cells_memory_is_the_same_inside_the_quick_suite_as_alone(tmp_path: Path) -> None:
    """The evolution cell at population 50: alone, and inside a slice of the quick suite with
    every kind of neighbour (Kraken's numba kernels, the agent's model, a 20x bigger population
    in the same run), its alloc_peak_mb agrees within 10% and its peak RSS no longer carries
    what other targets left."""
    import statistics

    from allele.bench.spec import load_suite

    suite = load_suite(ROOT / "benchmarks" / "seed-matrix.yaml", preset="quick")
    # the timed phase alone: the preset's callgrind counts come after it and measure no memory
    suite = suite.model_copy(update={"benchmarks": [
        b.model_copy(update={"instruments": ["time"]}) for b in suite.benchmarks]})
    cell = ("benchmark=evolution", "population_size=50", "selection=tournament")
    neighbours = (*cell, "population_size=1000", 'kraken|*"reservoir_size":200,*', "agent|*")
    medians = {}
    for label, filters in (("alone", cell), ("suite", neighbours)):
        with open_store(f"sqlite:///{tmp_path / (label + '.db')}") as st:
            run_id = Runner(st, workers=2, environment=ENV).run(suite, filters=filters).run_id
            record = st.load_run(run_id)
            assert {c.target for c in record.cells} == (
                {"evolution"} if label == "alone" else {"evolution", "kraken", "agent"})
            (c,) = [c for c in record.cells if c.target == "evolution"
                    and c.params["population_size"] == 50
                    and c.params["selection"] == "tournament"]
            assert c.status == "ok", c.error
            assert record.info.spec["memory"]["alloc_peak_mb"]  # the method is on record
            medians[label] = (statistics.median(c.values("alloc_peak_mb")),
                              statistics.median(c.values("peak_rss_mb")))
    (alloc_alone, rss_alone), (alloc_suite, rss_suite) = medians["alone"], medians["suite"]
    assert alloc_alone > 0
    assert alloc_suite == pytest.approx(alloc_alone, rel=0.10), medians
    assert rss_suite == pytest.approx(rss_alone, rel=0.25), medians


def test_alloc_peak_is_the_same_for_the_first_memory_call_of_a_worker(store: ResultStore) -> None:
    """A pure-Python sort of 100,000 floats needs the same memory for every seed. The first
    memory call of a worker used to count tracemalloc's own tables, made during that call, as
    the call's resident rise: 9.7 MiB for seed 0 against 3.6 MiB for the others (2.7x)."""
    suite = loads_suite(f"name: pysort\ntarget: {T}:pylist_sort\nseeds: 4\ninner_loops: 1\n"
                        "matrix: {n: [100000]}\n")
    run_id = Runner(store, workers=1, environment=ENV).run(suite).run_id
    (cell,) = store.load_run(run_id).cells
    assert cell.status == "ok", cell.error
    by_seed = {s.seed: s.value for s in cell.samples if s.metric == "alloc_peak_mb"}
    assert sorted(by_seed) == [0, 1, 2, 3]
    assert max(by_seed.values()) <= 1.05 * min(by_seed.values()), by_seed


def test_declarations_returned_in_worker_processes_reach_the_run(store: ResultStore) -> None:
    os.environ.update(MEASURE_GAIN="1", MEASURE_FASTER="", MEASURE_RUN="0",
                      MEASURE_DECLARE="higher")
    suite = loads_suite(f"name: tp\ntarget: {T}:throughput\nseeds: 4\nrounds: 2\n"
                        "inner_loops: 1\nmatrix: {size: [1, 2]}\n")
    run_id = Runner(store, workers=2, environment=ENV).run(suite).run_id
    decl = declarations_from_doc(store.load_run(run_id).info.spec)
    assert decl["score_time"].direction == "higher" and decl["score_time"].declared
    assert not decl.get("items_per_s", None) or not decl["items_per_s"].declared


def test_a_calibrated_cell_keeps_the_previous_runs_loop_count(store: ResultStore) -> None:
    """A count calibrated anew could land on another step of the ladder in the next run (and
    the runs would not compare): a cell the previous run of the spec timed keeps its count;
    a new cell calibrates."""
    pinned = f"name: tiny\ntarget: {T}:tiny\nisolation: inline\nseeds: 3\ninner_loops: 7\n"
    free = (f"name: tiny\ntarget: {T}:tiny\nisolation: inline\nseeds: 3\n"
            "matrix: {{n: [{ns}]}}\n")
    runner = Runner(store, executor="inline", environment=ENV)
    first = runner.run(loads_suite(pinned + "matrix: {n: [10]}\n")).run_id
    assert store.load_run(first).cells[0].values(LOOPS_METRIC) == [7.0] * 3
    second = store.load_run(runner.run(loads_suite(free.format(ns="10, 20"))).run_id)
    by_n = {c.params["n"]: c.values(LOOPS_METRIC) for c in second.cells}
    assert by_n[10] == [7.0] * 3  # timed as the previous run timed it
    new = by_n[20]  # not in the previous run: calibrated (>= 100 calls for a microsecond call)
    assert len(new) == 3 and new[0] >= 100
    assert not [w for w in compare_runs(store.load_run(first), second).warnings
                if "not compared" in w]
