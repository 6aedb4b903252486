"""The matrix runner against the real SQLite store: isolation, failures, resume, interrupts."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from allele.bench.environment import fingerprint, stable_view
from allele.bench.executors import ProcessPoolExecutor
from allele.bench.runner import Runner, plan
from allele.bench.spec import loads_suite
from allele.errors import BenchmarkError, ConfigError
from allele.store import ResultStore, open_store

ROOT = Path(__file__).resolve().parents[2]
T = "tests.bench.runner_targets"
ENV = {"test": True}  # skip the (slow-ish) fingerprint in most tests


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultStore]:
    st = open_store(f"sqlite:///{tmp_path / 'results.db'}")
    yield st
    st.close()


def test_inline_run_stores_every_sample(store: ResultStore) -> None:
    suite = loads_suite(f"""
name: echo
target: {T}:echo
isolation: inline
matrix: {{a: [1, 2, 3], b: [10, 20]}}
seeds: [5, 6]
repeats: 2
""")
    summary = Runner(store, environment=ENV).run(suite, name="r1")
    assert (summary.status, summary.planned, summary.executed, summary.failed) == (
        "finished", 6, 6, 0)
    rec = store.load_run("r1")
    assert rec.info.status == "finished" and rec.info.cell_count == 6
    assert rec.info.spec["suite"]["name"] == "echo" and rec.info.environment == ENV
    cell = rec.cell(f'{T}:echo|{{"a":2,"b":20}}')
    assert cell is not None and cell.status == "ok"
    # 2 seeds x 2 repeats of every metric; the target saw the right params and seeds
    assert cell.values("a") == [2.0] * 4 and cell.values("b") == [20.0] * 4
    assert cell.values("seed_seen") == [5.0, 5.0, 6.0, 6.0]
    assert {(s.seed, s.repeat) for s in cell.samples if s.metric == "wall_s"} == {
        (5, 0), (5, 1), (6, 0), (6, 1)}
    for m in ("wall_s", "cpu_user_s", "cpu_sys_s", "peak_rss_mb"):
        assert len(cell.values(m)) == 4 and all(v >= 0 for v in cell.values(m))
    assert cell.values("pid") == [float(os.getpid())] * 4  # inline: this very process


def test_rounds_split_the_seeds_interleave_cells_and_merge_into_one_cell(
        store: ResultStore) -> None:
    from allele.bench.runner import plan
    from tests.bench import runner_targets

    text = (f"name: rr\ntarget: {T}:counted\nisolation: inline\nseeds: 6\nrounds: 3\n"
            "warmup: 2\nrepeats: 2\nprofile: true\ninner_loops: 1\nalloc_peak: false\n"
            "matrix: {cell: [a, b]}\n")
    tasks = plan(loads_suite(text))
    # every round of every cell before the next round of any; seed i goes to round i % 3
    assert [(t.round, t.rounds) for t in tasks] == [(r, 3) for r in range(3) for _ in range(2)]
    assert [t.index for t in tasks] == list(range(6))
    for t in tasks:
        assert t.seeds == (t.round, t.round + 3)
        assert t.profile == (t.round == 0)  # the profiling pass runs once per cell
    runner_targets.CALLS.clear()
    summary = Runner(store, environment=ENV).run(loads_suite(text), name="rr")
    assert (summary.planned, summary.executed, summary.failed) == (2, 2, 0)
    rec = store.load_run("rr")
    assert rec.info.cell_count == 2
    for cell in rec.cells:
        # one stored cell with every seed x repeat exactly once
        pairs = sorted((s.seed, s.repeat) for s in cell.samples if s.metric == "wall_s")
        assert pairs == [(seed, r) for seed in range(6) for r in range(2)]
        assert cell.status == "ok" and cell.profile
        # warm-up ran once in this process (2 calls), not once per round; plus 12 measured
        # calls and one profiled call
        assert runner_targets.CALLS[cell.params["cell"]] == 2 + 12 + 1


def test_rounds_on_a_process_pool_then_resume_adds_nothing(store: ResultStore) -> None:
    suite = loads_suite(f"name: rp\ntarget: {T}:echo\nseeds: 6\nrounds: 3\n"
                        "matrix: {a: [1, 2, 3, 4]}\n")
    summary = Runner(store, workers=2, environment=ENV).run(suite, name="rp")
    assert (summary.status, summary.executed, summary.failed) == ("finished", 4, 0)
    rec = store.load_run("rp")
    assert rec.info.cell_count == 4
    for cell in rec.cells:
        assert sorted(cell.values("seed_seen")) == [float(s) for s in range(6)]
        assert all(pid != os.getpid() for pid in cell.values("pid"))  # in the workers
    again = Runner(store, workers=2, environment=ENV).resume("rp")
    assert (again.executed, again.skipped) == (0, 4)
    assert store.load_run("rp").info.cell_count == 4


def test_a_failing_round_fails_its_cell_and_keeps_the_other_rounds(
        store: ResultStore) -> None:
    suite = loads_suite(f"name: rf\ntarget: {T}:counted\nisolation: inline\nseeds: 4\n"
                        "rounds: 2\nmatrix: {cell: [x]}\nfixed: {fail_seed: 1}\n")
    summary = Runner(store, environment=ENV).run(suite, name="rf")
    assert summary.failed == 1 and summary.executed == 1
    (cell,) = store.load_run("rf").cells
    assert cell.status == "failed" and cell.error is not None
    assert cell.error.startswith("ValueError: seed 1 fails")
    # round 0 (seeds 0, 2) finished; round 1 stopped at seed 1, before seed 3
    assert sorted(cell.values("seed_seen")) == [0.0, 2.0]
    with pytest.raises(ConfigError, match="rounds \\(5\\) cannot exceed the number of seeds \\(4\\)"):
        loads_suite(f"name: bad\ntarget: {T}:counted\nseeds: 4\nrounds: 5\n")


def test_a_failing_cell_does_not_stop_the_run(store: ResultStore) -> None:
    suite = loads_suite(f"name: f\ntarget: {T}:flaky\nisolation: inline\nmatrix: {{x: [1, 2, 3]}}\n"
                        "seeds: [1, 2]\n")
    summary = Runner(store, environment=ENV).run(suite, name="f")
    assert summary.status == "finished" and summary.failed == 1
    rec = store.load_run("f")
    statuses = {c.params["x"]: c.status for c in rec.cells}
    assert statuses == {1: "ok", 2: "failed", 3: "ok"}
    bad = next(c for c in rec.cells if c.params["x"] == 2)
    assert bad.error is not None and bad.error.startswith("RuntimeError: x=2 is not allowed")
    assert "runner_targets.py" in bad.error
    good = next(c for c in rec.cells if c.params["x"] == 3)
    assert good.values("y") == [3.0, 6.0]
    assert rec.info.failed_count == 1


def test_process_isolation_survives_segfault_abort_oom_kill_and_hangs(
        store: ResultStore) -> None:
    suite = loads_suite(f"""
name: crashy
target: {T}:crash
order: sequential
timeout_s: 1.5
seeds: 1
matrix: {{how: [ok, segv, abort, oom_kill, hang, busy_hang, exit]}}
""")
    pool = ProcessPoolExecutor(2)
    try:
        summary = Runner(store, executor=pool, environment=ENV).run(suite, name="c")
    finally:
        pool.close()
    assert summary.status == "finished" and summary.executed == 7
    rec = store.load_run("c")
    by = {c.params["how"]: c for c in rec.cells}
    assert by["ok"].status == "ok" and by["ok"].values("ok") == [1.0]
    assert (by["segv"].status, by["segv"].error) == (
        "crashed", "crashed: worker killed by SIGSEGV (segmentation fault)")
    assert by["abort"].status == "crashed" and "SIGABRT" in (by["abort"].error or "")
    assert by["oom_kill"].status == "crashed"
    assert "SIGKILL" in (by["oom_kill"].error or "")
    assert "out-of-memory" in (by["oom_kill"].error or "")
    assert by["exit"].status == "crashed" and "code 3" in (by["exit"].error or "")
    for how in ("hang", "busy_hang"):  # interrupted by the alarm, or the worker killed
        assert by[how].status == "timeout", by[how].error
        assert "longer than 1.5 s" in (by[how].error or "")
    assert pool.replaced >= 4  # segv, abort, oom_kill, exit each cost a worker


def test_memory_limit_turns_a_hog_into_a_failed_cell(store: ResultStore) -> None:
    suite = loads_suite(f"name: m\ntarget: {T}:crash\nseeds: 1\nmemory_limit_mb: 2048\n"
                        "matrix: {how: [hog]}\nfixed: {mb: 8192}\n")
    Runner(store, executor="local", workers=1, environment=ENV).run(suite, name="m")
    cell = store.load_run("m").cells[0]
    assert cell.status == "failed"
    assert cell.error is not None and cell.error.startswith("out of memory (memory_limit_mb=2048)")


def test_peak_rss_tracemalloc_and_profile(store: ResultStore) -> None:
    suite = loads_suite(f"""
name: mem
target: {T}:allocate
seeds: 1
profile: true
tracemalloc: true
matrix: {{mb: [0, 200]}}
fixed: {{py_mb: 5}}
""")
    Runner(store, executor="local", workers=1, environment=ENV).run(suite, name="mem")
    rec = store.load_run("mem")
    small = next(c for c in rec.cells if c.params["mb"] == 0)
    big = next(c for c in rec.cells if c.params["mb"] == 200)
    # the same worker ran both; the peak is reset per call, so it tracks each call's memory
    assert big.values("peak_rss_mb")[0] > small.values("peak_rss_mb")[0] + 150
    assert big.values("tracemalloc_peak_mb")[0] >= 200
    assert 4.5 <= small.values("tracemalloc_peak_mb")[0] < 50
    assert small.profile is not None and "cumulative" in small.profile
    assert "allocate" in small.profile


def test_metrics_filter_keeps_only_the_named_metrics(store: ResultStore) -> None:
    suite = loads_suite(f"name: k\ntarget: {T}:echo\nisolation: inline\nseeds: 2\n"
                        "metrics: [a, wall_s]\nmatrix: {a: [1]}\n")
    Runner(store, environment=ENV).run(suite, name="k")
    # plus the calibrated inner-loop count of this microsecond target, which is not a metric
    # but how its samples were timed (kept whatever the filter)
    assert store.load_run("k").cells[0].metrics() == ["a", "loops", "wall_s"]


def test_unimportable_target_fails_before_the_run_exists(store: ResultStore) -> None:
    suite = loads_suite("name: x\ntarget: no_such_module_here:fn\n")
    with pytest.raises(BenchmarkError, match="cannot import no_such_module_here"):
        Runner(store, environment=ENV).run(suite)
    assert store.list_runs() == []
    with pytest.raises(BenchmarkError, match="no cell"):
        Runner(store, environment=ENV).run(loads_suite(f"name: y\ntarget: {T}:echo\n"),
                                           filters=["zz=1"])


def test_interrupt_leaves_a_resumable_run_and_resume_adds_no_duplicates(
        store: ResultStore, tmp_path: Path) -> None:
    flag = tmp_path / "stop"
    flag.write_text("1")
    suite = loads_suite(f"""
name: intr
target: {T}:interrupt_after
isolation: inline
order: sequential
seeds: 1
matrix: {{x: [0, 1, 2, 3, 4, 5]}}
fixed: {{flag: "{flag}", stop_at: 3}}
""")
    first = Runner(store, environment=ENV).run(suite, name="intr")
    assert first.status == "interrupted" and first.executed == 3
    info = store.get_run("intr")
    assert info.status == "interrupted" and info.cell_count == 3
    flag.unlink()
    again = Runner(store, environment=ENV).resume("intr")
    assert (again.status, again.executed, again.skipped, again.planned) == (
        "finished", 3, 3, 6)
    rec = store.load_run("intr")
    assert sorted(c.params["x"] for c in rec.cells) == [0, 1, 2, 3, 4, 5]
    assert rec.info.status == "finished"
    # resuming a finished run runs nothing
    assert Runner(store, environment=ENV).resume("intr").executed == 0


def test_the_executor_is_recorded_with_the_run_and_a_resume_with_another_marks_it_mixed(
        store: ResultStore, tmp_path: Path) -> None:
    """Memory measured in the runner's process and in a pool worker differ whatever the code
    does, so the comparison needs to know where a run measured (the review's false +19%
    peak_rss_mb regression between a default run and an ``-e inline`` one)."""
    flag = tmp_path / "stop"
    flag.write_text("1")
    suite = loads_suite(f"""
name: where
target: {T}:interrupt_after
isolation: inline
order: sequential
seeds: 1
matrix: {{x: [0, 1, 2]}}
fixed: {{flag: "{flag}", stop_at: 1}}
""")
    assert Runner(store, environment=ENV).run(suite, name="w").status == "interrupted"
    assert store.get_run("w").spec["executor"] == "local"
    flag.unlink()
    again = Runner(store, executor="inline", environment=ENV).resume("w")
    assert (again.status, again.executed) == ("finished", 2)
    assert store.get_run("w").spec["executor"] == "mixed"
    Runner(store, executor="inline", environment=ENV).run(suite, name="i")
    assert store.get_run("i").spec["executor"] == "inline"


def test_a_run_stopped_between_rounds_keeps_them_and_resume_runs_only_the_rest(
        store: ResultStore, tmp_path: Path) -> None:
    """Rounds run one after the other, so a run of ``rounds: 3`` stopped in its third round has
    only the cells before the stop whole. Every other finished round is kept in the store
    (``cell_rounds``, not ``cells``); the resume runs the rounds missing and nothing else (2 of
    12 tasks; before, 6), and each cell ends with every seed once and no rounds left behind."""
    flag = tmp_path / "stop"
    flag.write_text("1")
    suite = loads_suite(f"""
name: rounds
target: {T}:interrupt_after
isolation: inline
order: sequential
seeds: 6
rounds: 3
inner_loops: 1
alloc_peak: false
matrix: {{x: [0, 1, 2, 3]}}
fixed: {{flag: "{flag}", stop_at: 2, stop_seed: 2}}
""")
    first = Runner(store, environment=ENV).run(suite, name="rounds")
    # round 2 of x = 0 and 1 completed those cells; it stopped at x = 2's round 2
    assert (first.status, first.executed) == ("interrupted", 2)
    assert store.get_run("rounds").cell_count == 2
    key = {t.params["x"]: t.key for t in plan(suite)}
    assert {k: sorted(v) for k, v in store.saved_rounds("rounds").items()} == {
        key[2]: [0, 1], key[3]: [0, 1]}
    flag.unlink()
    tasks: list[int] = []

    class Count:
        def start(self, name: str, total: int, skipped: int, **_: object) -> None:
            tasks.extend([total, skipped])

        def cell_started(self, task: object) -> None: ...

        def cell_finished(self, task: object, result: object) -> None:
            tasks.append(-1)

        def stop(self) -> None: ...

    again = Runner(store, environment=ENV, progress=Count()).resume("rounds")  # type: ignore[arg-type]
    assert (again.status, again.executed, again.skipped) == ("finished", 2, 2)
    assert tasks == [12, 10, -1, -1]  # 12 tasks, 10 kept, 2 run
    rec = store.load_run("rounds")
    assert rec.info.cell_count == 4
    for cell in rec.cells:
        assert sorted(s.seed for s in cell.samples if s.metric == "x") == list(range(6))
        assert cell.status == "ok"
    assert store.saved_rounds("rounds") == {}


def test_a_round_is_kept_as_the_round_it_is_when_rounds_finish_out_of_order(
        store: ResultStore) -> None:
    """On two workers, a cell's rounds finish out of order (seed 0 is slow: round 1 usually
    finishes first and round 0 while round 2 runs): whatever the order, each kept round holds
    its own seeds (seed i in round i % 4), which a resume relies on to run the right ones, and
    the cell completes. Taken from the task last started for the cell, round 0's result was
    kept as round 2 and the cell never completed."""
    suite = loads_suite(f"name: ooo\ntarget: {T}:seed0_slow\nseeds: 4\nrounds: 4\n"
                        "inner_loops: 1\nalloc_peak: false\nfixed: {s0: 0.3, s: 0.2}\n")
    seen: list[dict[int, list[float]]] = []

    class Peek:
        def start(self, *_: object, **__: object) -> None: ...

        def cell_started(self, task: object) -> None: ...

        def cell_finished(self, task: object, result: object) -> None:
            kept = store.saved_rounds("ooo")
            seen.append({r: part.values("seed_seen") for v in kept.values()
                         for r, part in v.items()})

        def stop(self) -> None: ...

    summary = Runner(store, workers=2, environment=ENV, progress=Peek()).run(  # type: ignore[arg-type]
        suite, name="ooo")
    assert summary.status == "finished" and summary.executed == 1
    assert any(seen)  # rounds were kept before the cell was whole
    assert all(vals == [float(r)] for state in seen for r, vals in state.items())
    (cell,) = store.load_run("ooo").cells
    assert sorted(cell.values("seed_seen")) == [0.0, 1.0, 2.0, 3.0]


def test_environment_fingerprint_is_recorded() -> None:
    env = fingerprint(repo=ROOT)
    assert env["cpu"]["logical"] == os.cpu_count()
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert env["numpy"] and env["packages"]["numpy"] == env["numpy"]
    assert env["packages"]["allele"] is not None
    assert isinstance(env["blas"], list) and env["blas"]
    assert env["git"] is not None and len(env["git"]["commit"]) == 40
    assert isinstance(env["git"]["dirty"], bool)
    assert fingerprint(repo="/")["git"] is None
    # the load at the start of the run is kept (it explains noisy timings) ...
    assert set(env["load"]) == {"1m", "5m", "15m"}
    assert env["load"]["1m"] == pytest.approx(os.getloadavg()[0], abs=2.0)
    # ... but is not part of what identifies the machine, nor is the current CPU frequency
    stable = stable_view(env)
    assert "load" not in stable and "freq_mhz" not in stable["cpu"]
    assert stable["cpu"]["logical"] == env["cpu"]["logical"] and "load" in env  # not mutated
    assert "freq_mhz" in env["cpu"]
    assert stable_view({"python": "3.11"}) == {"python": "3.11"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from allele.cli.bench import app; app()", *args]


def _ctrl_c_default() -> None:
    """SIGINT as a terminal's foreground job has it. A suite started in the background by a
    shell without job control inherits SIGINT ignored (POSIX shells do that to background
    jobs), and so would the runner: it then ran all its cells and exited 0."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _count_cells(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with closing(sqlite3.connect(db, timeout=5)) as conn:  # closed, not only committed
            return int(conn.execute("select count(*) from cells").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _kill_9_when(ready: Callable[[], bool], spec: Path, url: str, name: str,
                 *args: str) -> tuple[dict[str, str], int]:
    """Run ``spec`` through the CLI into ``url`` as run ``name`` and SIGKILL the runner once
    ``ready()``; returns the environment it ran with (for the resume) and its pid."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT / "src"), str(ROOT)))}
    proc = subprocess.Popen(_cli("run", str(spec), "--store", url, "--name", name, "-q", *args),
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while not ready() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    return env, proc.pid


def _count_rounds(db: Path) -> int:
    try:
        with closing(sqlite3.connect(db, timeout=5)) as conn:
            return int(conn.execute("select count(*) from cell_rounds").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_kill_9_between_rounds_keeps_the_rounds_done(tmp_path: Path) -> None:
    """A runner killed with SIGKILL in the first of two rounds has stored no cell, but every
    round it finished is in the store; the resume runs only the rest (each cell's start is
    that of its kept round, from before the kill) and every seed lands once."""
    spec = tmp_path / "slow.yaml"
    spec.write_text(f"name: slow\ntarget: {T}:slow\nseeds: 2\nrounds: 2\norder: sequential\n"
                    "inner_loops: 1\nalloc_peak: false\nmatrix: {x: [0, 1, 2, 3, 4, 5]}\n"
                    "fixed: {s: 0.12}\n")
    db = tmp_path / "r.db"
    url = f"sqlite:///{db}"
    env, _ = _kill_9_when(lambda: _count_rounds(db) >= 3, spec, url, "k9r", "--executor",
                          "inline")
    killed_at = time.time()
    with open_store(url) as st:
        kept = st.saved_rounds("k9r")
        whole = {c.key for c in st.load_run("k9r").cells}  # (none, unless the kill came late)
        assert kept and not set(kept) & whole
        assert all(list(v) == [0] for v in kept.values())  # the first round, sequentially
    out = subprocess.run(_cli("run", "--resume", "k9r", "--store", url, "-q",
                              "--executor", "inline"),
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    with open_store(url) as st:
        rec = st.load_run("k9r")
        assert st.saved_rounds("k9r") == {}
    assert rec.info.cell_count == 6 and all(c.status == "ok" for c in rec.cells)
    for cell in rec.cells:
        assert sorted(s.seed for s in cell.samples if s.metric == "x") == [0, 1]
        assert (cell.started_at < killed_at) == (cell.key in kept or cell.key in whole)


@pytest.mark.parametrize("executor", ["inline", "local"])
def test_resume_after_kill_9_of_the_runner(tmp_path: Path, executor: str) -> None:
    spec = tmp_path / "slow.yaml"
    spec.write_text(f"name: slow\ntarget: {T}:slow\nseeds: 1\nmatrix: {{x: {list(range(16))}}}\n"
                    "fixed: {s: 0.25}\n")
    db = tmp_path / "r.db"
    url = f"sqlite:///{db}"
    env, runner_pid = _kill_9_when(lambda: _count_cells(db) >= 4, spec, url, "k9", "--executor",
                                   executor, "--workers", "2")
    done_before = _count_cells(db)
    assert 4 <= done_before < 16
    with open_store(url) as st:
        assert st.get_run("k9").status == "running"  # never got to say goodbye
    out = subprocess.run(_cli("run", "--resume", "k9", "--store", url, "-q",
                              "--executor", executor, "--workers", "2"),
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"{16 - done_before} cells run, {done_before} already done" in out.stderr
    with open_store(url) as st:
        rec = st.load_run("k9")
    counts = Counter(c.params["x"] for c in rec.cells)
    assert counts == Counter(range(16))  # every cell exactly once
    assert rec.info.status == "finished" and rec.info.cell_count == 16
    assert all(c.status == "ok" for c in rec.cells)
    # the orphaned workers of the killed runner went away with it
    if executor == "local":
        leftovers = ["?"]
        deadline = time.monotonic() + 10
        while leftovers and time.monotonic() < deadline:
            ps = subprocess.run(["ps", "-eo", "pid=,pgid=,args="], capture_output=True,
                                text=True)
            leftovers = [line for line in ps.stdout.splitlines()
                         if line.split()[1] == str(runner_pid)]
            time.sleep(0.1)
        assert leftovers == []


def test_sigint_stops_cleanly_and_exit_code_130(tmp_path: Path) -> None:
    spec = tmp_path / "slow.yaml"
    spec.write_text(f"name: slow\ntarget: {T}:slow\nseeds: 1\nisolation: process\n"
                    f"matrix: {{x: {list(range(20))}}}\nfixed: {{s: 0.2}}\n")
    db = tmp_path / "r.db"
    url = f"sqlite:///{db}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT / "src"), str(ROOT)))}
    proc = subprocess.Popen(_cli("run", str(spec), "--store", url, "--name", "ci", "-q",
                                 "--workers", "2"),
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=_ctrl_c_default)
    deadline = time.monotonic() + 60
    while _count_cells(db) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "resume with: allele bench run --resume ci" in err
    with open_store(url) as st:
        info = st.get_run("ci")
        assert info.status == "interrupted"
        assert 3 <= info.cell_count < 20
        done = st.finished_cell_keys(info.id)
    assert len(done) == info.cell_count
    assert plan(loads_suite(spec.read_text()))[0].key.startswith(f"{T}:slow|")


@pytest.mark.slow
def test_dask_local_process_workers_report_crashes_and_timeouts(store: ResultStore) -> None:
    suite = loads_suite(f"""
name: dcrash
target: {T}:crash
seeds: 1
timeout_s: 2
matrix: {{how: [ok, segv, hang]}}
""")
    summary = Runner(store, executor="dask-local", workers=1, environment=ENV).run(
        suite, name="d")
    assert summary.status == "finished" and summary.executed == 3
    by = {c.params["how"]: c for c in store.load_run("d").cells}
    assert by["ok"].status == "ok"
    assert by["segv"].status == "crashed" and "Dask worker" in (by["segv"].error or "")
    assert by["hang"].status == "timeout"


@pytest.mark.postgres
def test_runner_on_postgres_with_workers_and_resume(pg_url: str, tmp_path: Path) -> None:
    flag = tmp_path / "stop"
    flag.write_text("1")
    suite = loads_suite(f"""
name: pg
order: sequential
benchmarks:
  - name: pooled
    target: {T}:echo
    seeds: [1, 2]
    matrix: {{a: [1, 2, 3, 4]}}
  - name: stopper
    target: {T}:interrupt_after
    isolation: inline
    seeds: 1
    matrix: {{x: [0, 1, 2]}}
    fixed: {{flag: "{flag}", stop_at: 1}}
""")
    with open_store(pg_url) as st:
        first = Runner(st, executor="local", workers=2, environment=ENV).run(suite, name="pg")
        assert first.status == "interrupted" and first.executed == 5  # 4 pooled + x=0
        flag.unlink()
        again = Runner(st, executor="local", workers=2, environment=ENV).resume("pg")
        assert (again.executed, again.skipped) == (2, 5)
        rec = st.load_run("pg")
    assert rec.info.status == "finished" and len(rec.cells) == 7
    assert len({c.key for c in rec.cells}) == 7
    pooled = [c for c in rec.cells if "echo" in c.target]
    assert all(c.values("seed_seen") == [1.0, 2.0] for c in pooled)
