"""The ``instructions`` instrument: callgrind's output, profiles, the spec keys, the store
column, the error without the extension, and real runs under valgrind.

The runs under valgrind use a pure-Python user target written into the test's directory (no
numpy, so valgrind starts in a second or two). Counts are deterministic, so one BASE run and 20
HEAD runs are 20 honest trials of "is 1% more work flagged, and nothing else".
"""

from __future__ import annotations

import compileall
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from allele.bench.compare import compare_runs
from allele.bench.explain import explain_runs
from allele.bench.instruments import callgrind, profiles
from allele.bench.instruments.callgrind_format import estimated_cycles, parse_lines
from allele.bench.instruments.callgrind_worker import count_calls
from allele.bench.runner import Runner, plan
from allele.bench.spec import loads_suite
from allele.errors import ConfigError
from allele.store import ResultStore, open_store
from allele.store.model import CellResult, RunInfo, RunRecord, Sample

ENV = {"test": True}
HAVE_CALLGRIND = callgrind.valgrind_path() is not None and callgrind.extension_path() is not None
needs_callgrind = pytest.mark.skipif(not HAVE_CALLGRIND, reason="valgrind or the _callgrind "
                                     "extension is not installed here")

DUMP = """# callgrind format
version: 1
creator: callgrind-3.19.0
desc: Trigger: Client Request: 3:7
positions: line
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
summary: 1000 300 200 10 20 5 1 2 1

ob=/lib/libpython.so
fl=ceval.c
fn=outer
0 100 30 20 1 2 0 0 1
cfn=inner
calls=2 10
0 880 270 180 9 18 5 1 2
cfn=outer'2
calls=1 10
0 20
fn=inner
0 800 250 160 9 18 5 1 2
cfn=leaf
calls=4 10
0 80 20 20
fn=leaf
0 80 20 20
fn=outer'2
0 20
totals: 1000 300 200 10 20 5 1 2 1
"""


def test_a_callgrind_dump_gives_totals_self_and_inclusive_costs() -> None:
    dump = parse_lines(DUMP.splitlines())
    assert dump.label == "3:7" and dump.instructions == 1000 and dump.cache_simulated
    # Ir + 10 * (I1mr + D1mr + D1mw) + 100 * (ILmr + DLmr + DLmw)
    assert dump.estimated_cycles == 1000 + 10 * (10 + 20 + 5) + 100 * (1 + 2 + 1)
    assert estimated_cycles(["Ir"], [5]) == 5
    f = dump.functions
    assert f["inner"][0][0] == 800 and f["inner"][1][0] == 880  # self, inclusive
    assert f["leaf"][0][0] == f["leaf"][1][0] == 80
    # outer'2 merges into outer: self costs add up, inclusive is the outermost level's
    assert f["outer"][0][0] == 120 and f["outer"][1][0] == 1000
    assert "outer'2" not in f


def test_an_incomplete_dump_is_refused() -> None:
    with pytest.raises(ValueError, match="not a complete callgrind output"):
        parse_lines(["# callgrind format", "fn=x", "0 3"])


def _profile(calls: dict[str, int], beneath: dict[str, int],
             functions: dict[str, tuple[int, int]], total: int) -> profiles.InstructionProfile:
    return profiles.InstructionProfile((0, 1), total, functions, calls, beneath)


def test_profiles_round_trip_and_rank_the_cause_first() -> None:
    base = _profile({"m.run": 2, "m.helper": 10, "builtins.len": 50},
                    {"m.run": 62, "m.helper": 10, "builtins.len": 50},
                    {"collect": (5, 1000), "_PyEval_EvalFrameDefault": (600, 1000),
                     "k_mul": (300, 300)}, 1000)
    # HEAD: m.extra (new) calls builtins.len 20 more times; m.helper is called once more
    head = _profile({"m.run": 2, "m.helper": 11, "builtins.len": 70, "m.extra": 2},
                    {"m.run": 85, "m.helper": 11, "builtins.len": 70, "m.extra": 22},
                    {"collect": (5, 1100), "_PyEval_EvalFrameDefault": (650, 1100),
                     "k_mul": (350, 350), "long_add": (40, 40)}, 1100)
    assert profiles.decode(profiles.encode(head)) == head
    deltas = profiles.call_deltas(base, head)
    assert [d.name for d in deltas] == ["m.extra", "builtins.len", "m.helper"]
    assert (deltas[0].delta, deltas[0].beneath_delta) == (2, 22)
    selfs = profiles.cost_deltas(base, head, by="self")
    assert [d.name for d in selfs] == ["_PyEval_EvalFrameDefault", "k_mul", "long_add"]
    incl = profiles.cost_deltas(base, head, by="inclusive")
    # collect and the interpreter loop wrap the whole call on both sides: left out
    assert [d.name for d in incl] == ["k_mul", "long_add"]


def test_a_damaged_profile_is_a_store_error() -> None:
    from allele.errors import StoreError

    with pytest.raises(StoreError, match="cannot be read"):
        profiles.decode(b"not zlib")


def _fib(n: int) -> int:
    return n if n < 2 else _fib(n - 1) + _fib(n - 2)


def _target(params: dict[str, int], seed: int) -> dict[str, float]:
    total = sum(len(str(i)) for i in range(params["n"]))
    return {"fib": float(_fib(params["f"])), "total": float(total + seed)}


def test_python_calls_are_counted_exactly_with_the_work_beneath_them() -> None:
    calls, beneath = count_calls(_target, {"n": 5, "f": 4}, 0)
    assert calls[f"{__name__}._target"] == 1
    assert calls[f"{__name__}._fib"] == 9  # fib(4) makes 9 calls
    assert calls["builtins.len"] == 5 and calls["builtins.sum"] == 1
    assert calls[f"{__name__}._target.<locals>.<genexpr>"] == 6  # resumed 5 times + the end
    assert beneath[f"{__name__}._fib"] == 9  # counted once for the recursion
    assert beneath[f"{__name__}._target"] == sum(calls.values())
    assert count_calls(_target, {"n": 5, "f": 4}, 0) == (calls, beneath)


def _counted_run(name: str, factors: dict[int, float]) -> RunRecord:
    """Exact counts of 4 cells x 3 seeds; the seeds differ by 7% among themselves (another
    random path), and cell ``i`` is multiplied by ``factors[i]``."""
    cells = []
    for i in range(4):
        samples = [Sample("instructions", round(1e6 * (i + 1) * (1 + 0.07 * s)
                                                * factors.get(i, 1.0)), s, 0)
                   for s in range(3)]
        cells.append(CellResult(f"t|{i}", "t", {"i": i}, "ok", samples))
    return RunRecord(RunInfo(name, name, "s", "t", "finished", 0.0), cells)


def test_counts_are_compared_seed_by_seed_against_the_tolerance() -> None:
    base = _counted_run("base", {})
    head = _counted_run("head", {0: 1.01, 1: 1.002, 2: 0.99})
    comp = compare_runs(base, head)
    got = {r.params["i"]: (r.verdict, r.estimate.reason) for r in comp.rows}
    assert got == {0: ("regressed", ""), 1: ("unchanged", ""), 2: ("improved", ""),
                   3: ("unchanged", "")}
    assert comp.rows[0].estimate.ratio == pytest.approx(1.01, rel=1e-6)
    assert comp.family_size == 0 and not comp.excluded
    # seeds that disagree (one up 2%, the others still) are not a verdict
    odd = _counted_run("odd", {})
    odd.cells[3].samples[0] = Sample("instructions", odd.cells[3].samples[0].value * 1.02, 0, 0)
    row = next(r for r in compare_runs(base, odd).rows if r.params["i"] == 3)
    assert (row.verdict, row.estimate.reason) == ("inconclusive", "not deterministic")


# --- spec and plan -----------------------------------------------------------------------------


def test_instruments_are_spec_keys_with_defaults() -> None:
    suite = loads_suite("""
name: s
defaults: {instruments: [time, instructions], instruction_seeds: 2}
benchmarks:
  - {name: a, target: evolution, seeds: 5, rounds: 2, cache_sim: true}
  - {name: b, target: evolution, instruments: [instructions], fixed: {generations: 2}}
  - {name: c, target: evolution, instruments: [time], fixed: {generations: 3}}
""")
    a, b, c = suite.benchmarks
    assert a.instruments == ["time", "instructions"] and a.cache_sim and a.instruction_seeds == 2
    assert b.instruments == ["instructions"] and not b.cache_sim
    assert c.instruments == ["time"]
    tasks = plan(suite)
    by = {t.benchmark: [x for x in tasks if x.benchmark == t.benchmark] for t in tasks}
    assert len(by["a"]) == 2 and all(t.instruction_seeds == (0, 1) and t.timed for t in by["a"])
    assert len(by["b"]) == 1 and not by["b"][0].timed and by["b"][0].instruction_seeds == (0, 1)
    assert by["c"][0].instruction_seeds == ()
    assert loads_suite("name: d\ntarget: evolution\n").benchmarks[0].instruments == ["time"]


@pytest.mark.parametrize(("text", "message"), [
    ("instruments: [time, cycles]", "instruments[1]: Input should be 'time' or 'instructions'"),
    ("instruments: []", "the instrument list is empty"),
    ("instruments: [time, time]", "repeats an instrument"),
    ("instruction_seeds: 0", "instruction_seeds: Input should be greater than or equal to 1"),
    ("cache_sim: 1", "cache_sim: Input should be a valid boolean"),
])
def test_wrong_instrument_keys_are_one_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads_suite(f"name: x\ntarget: evolution\n{text}\n", source="x.yaml")
    assert message in str(info.value) and "\n" not in str(info.value)


# --- the store ---------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultStore]:
    st = open_store(f"sqlite:///{tmp_path / 'results.db'}")
    yield st
    st.close()


def test_the_profile_has_its_own_column_read_on_request(store: ResultStore) -> None:
    run = store.create_run("r", "s", "t", {}, {})
    blob = profiles.encode(_profile({"m.f": 1}, {"m.f": 1}, {"f": (1, 1)}, 1))
    store.save_cells(run, [
        CellResult("t|a", "t", {}, "ok", [Sample("instructions", 1.0, 0, 0)],
                   instr_profile=blob),
        CellResult("t|b", "t", {}, "ok", [Sample("wall_s", 1.0, 0, 0)])])
    assert store.instruction_profiles("r") == {"t|a": blob}
    assert store.instruction_profiles("r", keys=["t|b"]) == {}
    assert all(c.instr_profile is None for c in store.load_run("r").cells)


# --- without valgrind or the extension ---------------------------------------------------------


SPEC_WORK = """
name: w
target: allele.bench.targets:work
isolation: inline
seeds: 2
matrix: {n: [100]}
"""


def test_without_the_extension_asking_for_instructions_is_one_clear_error(
        store: ResultStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain `pip install` without valgrind's header builds no extension: the import fails,
    the run is refused before it exists, and everything else still runs."""
    monkeypatch.setitem(sys.modules, "allele.bench.instruments._callgrind", None)
    assert callgrind.extension_path() is None
    suite = loads_suite(SPEC_WORK + "instruments: [time, instructions]\n")
    with pytest.raises(callgrind.InstrumentUnavailable) as info:
        Runner(store, executor="inline", environment=ENV).run(suite, name="x")
    text = str(info.value)
    assert "install valgrind" in text and "reinstall Allele" in text and "\n" not in text
    assert store.list_runs() == []
    summary = Runner(store, executor="inline", environment=ENV).run(loads_suite(SPEC_WORK))
    assert summary.status == "finished" and summary.failed == 0


def test_without_valgrind_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(callgrind.InstrumentUnavailable, match="needs valgrind"):
        callgrind.require()


# --- under valgrind ----------------------------------------------------------------------------


TARGET = textwrap.dedent('''
    INJECT = set()


    def _injected(acc, n):
        for i in range(n):
            acc = (acc * 1103515245 + i) & 0xFFFFFFFF
        return acc


    def work(params, seed):
        n = int(params["n"])
        acc = seed
        for i in range(n):
            acc = (acc * 1103515245 + i) & 0xFFFFFFFF
        if n in INJECT:
            acc = _injected(acc, n // 100)
        return {"checksum": float(acc)}
''')

CELLS = [2000, 2500, 3000, 3500]


def _spec(module: str, instruments: str = "[instructions]", extra: str = "") -> str:
    return (f"name: inj\ntarget: {module}:work\nisolation: inline\nseeds: 1\n"
            f"instruments: {instruments}\nmatrix: {{n: {CELLS}}}\n{extra}")


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's target module on the path, rewritten by the tests (no stale bytecode)."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "instrtarget.py").write_text(TARGET)
    monkeypatch.syspath_prepend(str(src))
    return src / "instrtarget.py"


def _inject(module: Path, cells: set[int]) -> None:
    module.write_text(TARGET.replace("INJECT = set()", f"INJECT = {cells!r}"))
    sys.modules.pop("instrtarget", None)


@needs_callgrind
def test_a_timed_run_gets_deterministic_counts_cycles_and_profiles(
        store: ResultStore, user_module: Path) -> None:
    suite = loads_suite(_spec("instrtarget", "[time, instructions]",
                              "cache_sim: true\ninstruction_seeds: 1\n"))
    for name in ("a", "b"):
        summary = Runner(store, executor="inline", environment=ENV).run(suite, name=name)
        assert summary.status == "finished" and summary.failed == 0 and summary.executed == 4
    a, b = store.load_run("a"), store.load_run("b")
    for cell in a.cells:
        assert len(cell.values("wall_s")) == 1  # the timed phase
        assert [s.seed for s in cell.samples if s.metric == "instructions"] == [0]
        (ir,) = cell.values("instructions")
        (cycles,) = cell.values("estimated_cycles")
        assert cycles > ir > 100 * cell.params["n"]  # ~1000 instructions an iteration
    ratios = [b.cell(c.key).values("instructions")[0] / c.values("instructions")[0]  # type: ignore[union-attr]
              for c in a.cells]
    assert max(abs(r - 1.0) for r in ratios) < 1e-4
    assert sorted(store.instruction_profiles("a")) == sorted(c.key for c in a.cells)
    comp = compare_runs(a, b, metrics=["instructions", "estimated_cycles"])
    assert {r.verdict for r in comp.rows} == {"unchanged"}
    assert all(r.estimate.design == "deterministic" for r in comp.rows)


@pytest.mark.slow
@needs_callgrind
def test_one_percent_more_work_in_any_one_cell_is_flagged_alone(
        store: ResultStore, user_module: Path) -> None:
    """BASE once, then one HEAD run per cell, each with 1% more work (a new function) in that
    cell: it regresses on `instructions`, no other cell moves, and `bench explain` (and the
    HTML report) names the injected function first. (The counts are deterministic, so one trial
    per cell is the whole question; that they repeat across runs is the test above's.)"""
    suite = loads_suite(_spec("instrtarget"))
    Runner(store, executor="inline", environment=ENV).run(suite, name="base")
    flagged, false = 0, 0
    for trial, injected in enumerate(CELLS):
        _inject(user_module, {injected})
        head = f"head-{trial}"
        Runner(store, executor="inline", environment=ENV).run(suite, name=head)
        comp = compare_runs(store.load_run("base"), store.load_run(head),
                            metrics=["instructions"])
        for row in comp.rows:
            if row.params["n"] == injected:
                flagged += row.verdict == "regressed"
                assert 1.008 < row.estimate.ratio < 1.012
            else:
                false += row.verdict != "unchanged"
        exp = explain_runs(store, "base", head)
        assert [c.params["n"] for c in exp.cells] == [injected]
        assert exp.cells[0].calls[0].name == "instrtarget._injected"
    assert (flagged, false) == (len(CELLS), 0)
    from allele.bench.report import build_report

    page = build_report(store, f"head-{len(CELLS) - 1}", "base", scripts_url="plotly.js")
    assert "Why instruction counts regressed" in page and "instrtarget._injected" in page


@needs_callgrind
def test_an_ab_session_counts_both_versions_with_heads_extension(
        store: ResultStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BASE is a commit, HEAD the working tree with 1% more work in one cell: each version is
    counted in its own callgrind process (BASE's tree has no extension: HEAD's is used)."""
    import subprocess

    from allele.bench.ab import AbSession

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    repo = tmp_path / "proj"
    repo.mkdir()
    for args in (["init", "-q"], ["config", "user.email", "t@example.org"],
                 ["config", "user.name", "t"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    (repo / "instrtarget.py").write_text(TARGET)
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "base"], check=True)
    (repo / "instrtarget.py").write_text(TARGET.replace("INJECT = set()", "INJECT = {3000}"))
    monkeypatch.chdir(repo)
    suite = loads_suite(_spec("instrtarget"))
    result = AbSession(store, suite, base="HEAD", rounds=2, cwd=repo).run()
    assert result.status == "finished" and not result.failed
    comp = compare_runs(store.load_run(result.base_run), store.load_run(result.head_run),
                        metrics=["instructions"])
    assert {r.params["n"]: r.verdict for r in comp.rows} == {
        2000: "unchanged", 2500: "unchanged", 3000: "regressed", 3500: "unchanged"}
    exp = explain_runs(store, result.base_run, result.head_run)
    assert exp.cells[0].calls[0].name == "instrtarget._injected"


FAILING = textwrap.dedent('''
    import sys


    def fails_when_profiled(params, seed):
        if sys.getprofile() is not None:  # only in the instrument's call-counting pass
            raise RuntimeError("no profiling here")
        return {"x": float(seed)}


    def fails(params, seed):
        raise ValueError("broken target")
''')


@needs_callgrind
def test_a_cell_whose_counting_fails_keeps_its_timing_and_says_why(
        store: ResultStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "failtarget.py").write_text(FAILING)
    monkeypatch.syspath_prepend(str(tmp_path))
    suite = loads_suite("""
name: f
benchmarks:
  - {name: timed, target: "failtarget:fails_when_profiled", isolation: inline, seeds: 2,
     instruments: [time, instructions]}
  - {name: counted, target: "failtarget:fails", instruments: [instructions], seeds: 1}
""")
    summary = Runner(store, executor="inline", environment=ENV).run(suite, name="f")
    assert summary.status == "finished" and summary.executed == 2 and summary.failed == 1
    cells = {c.target: c for c in store.load_run("f").cells}
    timed, counted = cells["failtarget:fails_when_profiled"], cells["failtarget:fails"]
    assert timed.status == "ok" and len(timed.values("wall_s")) == 2
    assert not timed.values("instructions")
    assert "instructions not counted: under callgrind: RuntimeError: no profiling here" in (
        timed.error or "")
    assert counted.status == "failed" and "ValueError: broken target" in (counted.error or "")


STATEFUL = textwrap.dedent('''
    def make(params, seed):
        if params["variant"] == "heavy":  # the same state, built the slow way
            acc = 0
            for i in range(200_000):
                acc = (acc + i) & 0xFFFF
        return list(range(3000))


    def done(params, seed, state):
        state.clear()


    def use(params, seed, state):
        total = 0
        for x in state:
            total += x * x
        return {"total": float(total)}
''')


@needs_callgrind
def test_setup_and_teardown_run_uncounted(store: ResultStore, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "stateful.py").write_text(STATEFUL)
    monkeypatch.syspath_prepend(str(tmp_path))
    suite = loads_suite("""
name: st
target: "stateful:use"
setup: "stateful:make"
teardown: "stateful:done"
instruments: [instructions]
seeds: 1
matrix: {variant: [light, heavy]}
""")
    summary = Runner(store, executor="inline", environment=ENV).run(suite, name="st")
    assert summary.failed == 0, summary.failures
    counts = {c.params["variant"]: c.values("instructions")[0] for c in store.load_run("st").cells}
    assert counts["light"] > 1e5
    # the heavy setup's 200k iterations (over 100M instructions) are not counted; what it left
    # in the allocator moves the target's own count by about 1.4%
    assert abs(counts["heavy"] / counts["light"] - 1.0) < 0.05


@needs_callgrind
def test_resume_counts_the_cells_a_killed_run_stored_without_counts(tmp_path: Path) -> None:
    """The runner is killed (SIGKILL) right after it committed the last timed cell, before
    the instruction phase; ``--resume`` counts those cells and keeps their stored timings."""
    import os
    import subprocess

    src = tmp_path / "src"
    src.mkdir()
    (src / "instrtarget.py").write_text(TARGET)
    (tmp_path / "spec.yaml").write_text(_spec("instrtarget", "[time, instructions]",
                                              "instruction_seeds: 1\n"))
    url = f"sqlite:///{tmp_path / 'r.db'}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), *sys.path[1:]]),
           "ALLELE_STORE_URL": url, "ALLELE_DATA_DIR": str(tmp_path / "data")}
    allele = [str(Path(sys.executable).with_name("allele"))]
    killed = subprocess.run([*allele, "bench", "run", "spec.yaml", "--name", "k", "-q"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**env, "ALLELE_FAILPOINTS": f"runner.cell_committed="
                                 f"{len(CELLS)}:kill"})
    assert killed.returncode == -9, killed.stderr
    with open_store(url) as st:
        before = {c.key: c for c in st.load_run("k").cells}
    assert len(before) == len(CELLS)
    assert not any(c.values("instructions") for c in before.values())
    resumed = subprocess.run([*allele, "bench", "run", "--resume", "k", "-q"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    # what ran is said as it was: no cell timed again, every one counted (was "N cells run")
    assert (f"0 cells run, {len(CELLS)} only counted (their stored timings kept), 0 already "
            "done, 0 failed") in " ".join(resumed.stderr.split())
    with open_store(url) as st:
        run = st.load_run("k")
        assert run.info.status == "finished"
        for cell in run.cells:
            assert len(cell.values("instructions")) == 1
            assert cell.values("instructions")[0] > 100 * cell.params["n"]
            assert cell.values("wall_s") == before[cell.key].values("wall_s")  # kept
        assert sorted(st.instruction_profiles("k")) == sorted(before)


HISTORY = textwrap.dedent('''
    import os
    import signal

    HOARD = []


    def work(params, seed):
        rows = [{"i": i, "v": (i * 7919 + seed) % 1000} for i in range(5000)]
        rows.sort(key=lambda r: r["v"])
        return {"x": float(rows[0]["i"])}


    def hoard(params, seed):  # leaves 100,000 objects behind in the process
        HOARD.extend((i, str(i)) for i in range(int(params["n"])))
        return {"x": float(len(HOARD))}


    def crash(params, seed):
        if params["n"] == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"x": float(sum(range(params["n"] * 1000)))}
''')


def _count(cells: list[callgrind.InstrumentedCell], key: str = "x", **kwargs: Any) -> float:
    """One cell's count from a pass over ``cells``; the cell must not have failed."""
    got = callgrind.count_cells(cells, **kwargs).cells[key]
    assert got.error is None, got.error
    return got.samples[0].value


def _history_tree(tree: Path) -> Path:
    """A directory holding the ``histtarget`` module."""
    tree.mkdir(exist_ok=True)
    (tree / "histtarget.py").write_text(HISTORY)
    return tree


@needs_callgrind
def test_a_count_does_not_depend_on_the_cells_counted_before_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted one after the other in one process, a cell counted after one that left 100,000
    objects behind counted 1.2% more or less (the collector and the allocator start from
    another state): above the 0.3% tolerance, so identical code could be "regressed". Each
    cell now runs in a process forked from one common state."""
    monkeypatch.syspath_prepend(str(_history_tree(tmp_path)))
    x = callgrind.InstrumentedCell("x", "histtarget:work", {}, (0,))
    h = callgrind.InstrumentedCell("h", "histtarget:hoard", {"n": 100_000}, (0,))
    assert _count([x, h]) == _count([h, x])


@needs_callgrind
def test_a_cell_that_kills_its_process_under_callgrind_loses_only_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(_history_tree(tmp_path)))
    cells = [callgrind.InstrumentedCell(f"c{n}", "histtarget:crash", {"n": n}, (0,))
             for n in (1, 3, 2)]
    got = callgrind.count_cells(cells).cells
    assert got["c3"].error == "under callgrind: the cell's process died (signal 9, SIGKILL)"
    assert not got["c3"].samples
    ones, twos = got["c1"].samples[0].value, got["c2"].samples[0].value
    assert got["c1"].error is None and got["c2"].error is None
    assert 1.5 < twos / ones < 2.5  # the counts are the cells' own: twice the loop


@needs_callgrind
def test_the_same_tree_counts_the_same_from_paths_of_any_length(tmp_path: Path) -> None:
    """An A/B session puts BASE's temporary worktree, or HEAD's tree, first on the path: the
    path's length moved a count (177 instructions for this target, 0.19% of an evolution cell)
    until every version came through an alias of one length."""
    x = callgrind.InstrumentedCell("x", "histtarget:work", {}, (0,))
    short, long = (_history_tree(tmp_path / name) for name in ("a", "a" * 80))
    assert _count([x], paths=[str(short)]) == _count([x], paths=[str(long)])


@needs_callgrind
def test_a_tree_without_bytecode_counts_as_one_with_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An A/B session's BASE is a fresh worktree: with PYTHONDONTWRITEBYTECODE its modules were
    compiled from source in the counted process, HEAD's loaded from ``__pycache__``, and the
    compiler's allocations moved the counts (an evolution cell 0.13%)."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    bulk = "".join(f"\ndef f{i}(x):\n    return [x * {i} + k for k in range(3)]\n"
                   for i in range(300))
    trees = {}
    for name in ("cached", "fresh"):
        pkg = tmp_path / name / "histpkg"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(HISTORY + bulk)
        trees[name] = pkg.parent
    assert compileall.compile_dir(trees["cached"], quiet=2)
    x = callgrind.InstrumentedCell("x", "histpkg:work", {}, (0,))
    assert _count([x], paths=[str(trees["cached"])]) == _count([x], paths=[str(trees["fresh"])])


@needs_callgrind
def test_entries_beside_the_tree_do_not_move_a_count(tmp_path: Path) -> None:
    """HEAD's tree holds a virtual environment, caches and build output beside its sources;
    BASE's worktree only what git tracks. The import system caches each path entry's listing,
    and 80 more entries moved an evolution cell's count by 0.35% until the tree went on the path
    as a view of its own entries."""
    x = callgrind.InstrumentedCell("x", "histtarget:work", {}, (0,))
    bare, full = _history_tree(tmp_path / "bare"), _history_tree(tmp_path / "full")
    for i in range(80):
        (full / f".cache_{i}").mkdir()
    assert (_count([x], paths=[str(bare)], cwd=bare)
            == _count([x], paths=[str(full)], cwd=full))
