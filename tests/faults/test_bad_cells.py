"""Bad cells and bad specs (issue 16, items 3, 6, 7, 9, 12): one bad cell never stops a run nor a
resume, a target's ``sys.exit()`` ends its cell and not the CLI, a memory limit never poisons the
worker that ran it, a matrix over the cell limit is refused before anything is built, and an
unguarded script leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest

from allele.bench.runner import Runner
from allele.bench.spec import loads_suite
from allele.errors import BenchmarkError, ConfigError
from allele.store import ResultStore, open_store
from tests.faults.cli import allele, one_line_error

T = "tests.faults.targets"
ENV = {"test": True}
ROOT = Path(__file__).resolve().parents[2]


def test_a_cell_the_store_refuses_fails_alone_and_resume_finishes(sqlite_store: ResultStore) -> None:
    suite = loads_suite(f"""
name: wide
order: sequential
defaults: {{isolation: inline, seeds: 1}}
benchmarks:
  - {{name: wide, target: "{T}:many_metrics", matrix: {{n: [70000]}}}}
  - {{name: fine, target: "{T}:tiny", matrix: {{a: [1, 2]}}}}
""")
    summary = Runner(sqlite_store, executor="inline", environment=ENV).run(suite, name="wide")
    assert summary.status == "finished" and summary.executed == 3 and summary.failed == 1
    rec = sqlite_store.load_run("wide")
    by = {c.target.split(":")[1]: c for c in rec.cells}
    bad = next(c for c in rec.cells if c.target.endswith("many_metrics"))
    assert bad.status == "failed" and bad.samples == []
    assert "refused this cell's result" in (bad.error or "") and "65535" in (bad.error or "")
    assert by["tiny"].status == "ok" and rec.info.cell_count == 3
    again = Runner(sqlite_store, executor="inline", environment=ENV).resume("wide")
    assert again.status == "finished" and again.executed == 0 and again.skipped == 3


def test_sys_exit_in_an_inline_target_fails_its_cell_not_the_cli(tmp_path: Path) -> None:
    spec = tmp_path / "exit.yaml"
    spec.write_text(f"name: exits\ntarget: {T}:exits\nisolation: inline\nseeds: 1\n"
                    "order: sequential\nmatrix: {exit: [false, true], code: [0, 3]}\n")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    code, _, err = allele("bench", "run", str(spec), "--store", url, "-q", "--name", "e")
    assert code == 0, err
    assert "4 cells run" in err and "2 failed" in err
    with open_store(url) as st:
        rec = st.load_run("e")
    assert rec.info.status == "finished" and rec.info.cell_count == 4
    errors = sorted(c.error or "" for c in rec.cells if c.status == "failed")
    assert errors[0].startswith("SystemExit: the target called sys.exit(0)")
    assert errors[1].startswith("SystemExit: the target called sys.exit(3)")
    code, _, err = allele("bench", "run", str(spec), "--store", url, "-q", "--strict")
    assert code == 1, err


def test_a_memory_limit_never_poisons_the_worker_that_ran_it(sqlite_store: ResultStore) -> None:
    suite = loads_suite(f"""
name: poison
order: sequential
defaults: {{seeds: 1}}
benchmarks:
  - {{name: limited, target: "{T}:uses_backend", memory_limit_mb: 2048, matrix: {{n: [1]}}}}
  - {{name: free, target: "{T}:uses_backend", matrix: {{n: [2]}}}}
""")
    Runner(sqlite_store, executor="local", workers=1, environment=ENV).run(suite, name="poison")
    cells = {c.params["n"]: c for c in sqlite_store.load_run("poison").cells}
    # under 2 GiB the backend cannot load: that cell fails, as the limit says it should ...
    assert cells[1].status == "failed" and "digest" in (cells[1].error or "")
    # ... and the next cell, without a limit, runs in a process the limit never touched
    assert cells[2].status == "ok", cells[2].error


def test_a_memory_limit_needs_a_process_of_its_own(sqlite_store: ResultStore) -> None:
    suite = loads_suite(f"name: m\ntarget: {T}:tiny\nseeds: 1\nisolation: inline\n"
                        "memory_limit_mb: 512\n")
    with pytest.raises(ConfigError, match="memory_limit_mb needs isolation: process"):
        Runner(sqlite_store, executor="local", environment=ENV).run(suite)
    process = loads_suite(f"name: m\ntarget: {T}:tiny\nseeds: 1\nmemory_limit_mb: 512\n")
    with pytest.raises(ConfigError, match="memory_limit_mb needs"):
        Runner(sqlite_store, executor="inline", environment=ENV).run(process)
    assert sqlite_store.list_runs() == []


def test_a_matrix_over_the_cell_limit_is_refused_before_anything_is_built() -> None:
    axes = "{" + ", ".join(f"x{i}: [{', '.join(map(str, range(100)))}]" for i in range(3)) + "}"
    with pytest.raises(ConfigError, match=r"up to 1,000,000 cells .* over the limit of 100,000"):
        loads_suite(f"name: big\ntarget: {T}:tiny\nmatrix: {axes}\n")
    huge = "{" + ", ".join(f"x{i}: [{', '.join(map(str, range(1000)))}]" for i in range(3)) + "}"
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="up to 1,000,000,000 cells"):
            loads_suite(f"name: huge\ntarget: {T}:tiny\nmatrix: {huge}\n")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20  # the 10^9 cells were never built (it was a MemoryError before)
    small = f"name: s\ntarget: {T}:tiny\nmatrix: {{a: [1, 2, 3]}}\ninclude: [{{a: 9}}]\n"
    with pytest.raises(ConfigError, match="up to 4 cells"):
        loads_suite(small, max_cells=3)
    assert len(loads_suite(small, max_cells=4).benchmarks[0].expand()) == 4


def test_the_cell_limit_comes_from_the_settings_and_the_cli(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: s\ntarget: {T}:tiny\nisolation: inline\nseeds: 1\n"
                    "matrix: {a: [1, 2, 3]}\n")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    monkeypatch.setenv("ALLELE_BENCH__MAX_CELLS", "2")
    code, out, err = allele("bench", "run", str(spec), "--store", url, "-q")
    assert one_line_error(code, out, err) and "over the limit of 2" in err
    assert not (tmp_path / "r.db").exists()  # refused before the store was even opened
    code, _, err = allele("bench", "run", str(spec), "--store", url, "-q", "--max-cells", "3")
    assert code == 0, err


def test_no_cells_without_filters_says_include_exclude(sqlite_store: ResultStore) -> None:
    suite = loads_suite(f"name: none\ntarget: {T}:tiny\nmatrix: {{a: [1, 2]}}\n"
                        "exclude: [{a: 1}, {a: 2}]\n")
    with pytest.raises(BenchmarkError, match="include/exclude entries remove every"):
        Runner(sqlite_store, executor="inline", environment=ENV).run(suite)
    with pytest.raises(BenchmarkError, match="matches the filters a=3"):
        Runner(sqlite_store, executor="inline", environment=ENV).run(
            loads_suite(f"name: f\ntarget: {T}:tiny\nmatrix: {{a: [1, 2]}}\n"), filters=["a=3"])


@pytest.mark.parametrize("key", ["timeout_s", "memory_limit_mb"])
@pytest.mark.parametrize("value", [".nan", ".inf"])
def test_non_finite_numbers_are_refused_as_such(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{key}: Input should be a finite number"):
        loads_suite(f"name: n\ntarget: {T}:tiny\n{key}: {value}\n")


def test_an_unguarded_script_gets_one_clear_error_and_leaves_no_run(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: s\ntarget: {T}:tiny\nseeds: 1\nmatrix: {{a: [1, 2, 3, 4]}}\n")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        from allele.bench.runner import run_spec
        run_spec({str(spec)!r}, store={url!r}, workers=2)
        print("done")
    """))
    import allele

    here = str(Path(allele.__file__).resolve().parents[1])  # the allele this test imports
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((here, str(ROOT)))}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "done" not in proc.stdout
    assert proc.stderr.count('if __name__ == "__main__":') == 1, proc.stderr
    assert proc.stderr.count("Traceback") == 1  # the script's own error, none from workers
    assert "WorkerStartError" in proc.stderr
    with open_store(url) as st:
        assert st.list_runs() == []  # nothing left behind
