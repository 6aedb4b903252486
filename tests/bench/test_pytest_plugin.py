"""The pytest plugin and the pytest-benchmark JSON importer, on a real pytest-benchmark session.

One pytest subprocess runs a small benchmark module with pytest-benchmark, writing its JSON
(with raw data), a stats-only saved file, and - through ``-p allele.bench.pytest_plugin`` - a run
straight into a SQLite store. The tests check the three agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from allele.bench.compare import compare_runs
from allele.bench.importers import import_pytest_benchmark
from allele.errors import StoreError
from allele.store import open_store
from allele.store.model import cell_key

BENCH_MODULE = '''
import pytest

def work(n):
    return sum(i * i for i in range(n))

@pytest.mark.parametrize("n", [200, 2000])
def test_squares(benchmark, n):
    assert benchmark(work, n) == sum(i * i for i in range(n))

def test_sorted(benchmark):
    benchmark(sorted, list(range(500, 0, -1)))

def test_broken(benchmark):
    def boom():
        raise RuntimeError("broken benchmark")
    benchmark(boom)
'''


def _pytest(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # Plugins are named explicitly and entry-point autoloading is off, so the run is the same
    # whether or not the `pytest11: allele` entry point is installed (loading the module through
    # both `-p` and the entry point would register it twice).
    # Not an xdist worker either (the suite may run on xdist): pytest-benchmark turns itself off
    # under xdist, and it would read the inherited PYTEST_XDIST_WORKER as being one.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "pytest_benchmark.plugin", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pb")
    (root / "test_bench_mod.py").write_text(BENCH_MODULE)
    db = f"sqlite:///{root / 'store.db'}"
    proc = _pytest(["test_bench_mod.py", "--benchmark-json=full.json",
                    f"--benchmark-storage=file://{root / 'saved'}", "--benchmark-save=stats",
                    "--benchmark-min-rounds=7", "--benchmark-max-time=0.02",
                    "--benchmark-warmup=off",
                    "-p", "allele.bench.pytest_plugin", "--allele-store", db,
                    "--allele-run", "plugin-run"], root)
    assert "1 failed, 3 passed" in proc.stdout, proc.stdout + proc.stderr
    assert "allele: recorded benchmarks as run" in proc.stdout, proc.stdout
    saved = sorted((root / "saved").rglob("*.json"))
    assert len(saved) == 1
    return {"root": root, "db": db, "full": root / "full.json", "stats": saved[0]}


def test_plugin_records_rounds_and_failures(session: dict[str, Any]) -> None:
    full = json.loads(session["full"].read_text())
    with open_store(session["db"]) as store:
        run = store.load_run("plugin-run")
    assert run.info.status == "finished" and run.info.spec_name == "pytest-benchmark"
    by_key = {c.key: c for c in run.cells}
    assert len(by_key) == 4
    broken = by_key[cell_key("pytest:test_bench_mod.py::test_broken", {})]
    assert broken.status == "failed"
    assert broken.error == "RuntimeError: broken benchmark"
    for bench in full["benchmarks"]:  # pytest-benchmark leaves the failed one out of its JSON
        params = bench["params"] or {}
        cell = by_key[cell_key("pytest:test_bench_mod.py::" + bench["name"].split("[")[0],
                               params)]
        assert cell.status == "ok"
        assert cell.values("wall_s") == pytest.approx(bench["stats"]["data"])
        assert len(cell.values("wall_s")) >= 7
    assert run.info.environment["source"] == "pytest-benchmark"
    assert run.info.environment["cpu"]["logical"] >= 1


def test_import_raw_json_matches_plugin(session: dict[str, Any], tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'imp.db'}"
    with open_store(db) as store:
        run_id = import_pytest_benchmark(store, session["full"], name="imported")
        run = store.load_run(run_id)
        assert run.info.name == "imported" and run.info.spec["raw_data"] is True
        with pytest.raises(StoreError):  # the name is taken
            import_pytest_benchmark(store, session["full"], name="imported")
    with open_store(session["db"]) as store:
        plugin_run = store.load_run("plugin-run")
    assert {c.key for c in run.cells} == {c.key for c in plugin_run.cells if c.status == "ok"}
    for cell in run.cells:
        other = plugin_run.cell(cell.key)
        assert other is not None
        assert cell.values("wall_s") == pytest.approx(other.values("wall_s"))
    # and the samples are real: n=200 is faster than n=2000 by a wide margin
    comp = compare_runs(run, run)  # identical samples: nothing moved
    assert all(r.estimate.p_value == 1.0 and r.estimate.ratio == 1.0 for r in comp.rows)
    assert not comp.regressed and not comp.improved
    small = run.cell(cell_key("pytest:test_bench_mod.py::test_squares", {"n": 200}))
    big = run.cell(cell_key("pytest:test_bench_mod.py::test_squares", {"n": 2000}))
    assert small is not None and big is not None
    assert np.median(big.values("wall_s")) > 3 * np.median(small.values("wall_s"))


def test_import_stats_only_file(session: dict[str, Any], tmp_path: Path) -> None:
    doc = json.loads(session["stats"].read_text())
    assert "data" not in doc["benchmarks"][0]["stats"]
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        run = store.load_run(import_pytest_benchmark(store, session["stats"]))
    assert run.info.name == f"pytest-{session['stats'].stem}"
    assert run.info.spec["raw_data"] is False
    for bench in doc["benchmarks"]:
        cell = run.cell(cell_key("pytest:test_bench_mod.py::" + bench["name"].split("[")[0],
                                 bench["params"] or {}))
        assert cell is not None
        assert cell.values("wall_s") == [pytest.approx(bench["stats"]["median"])]
        assert cell.values("wall_s_min") == [pytest.approx(bench["stats"]["min"])]
        assert cell.values("ops") == [pytest.approx(bench["stats"]["ops"])]
    # one sample per side: no noise estimate, so never a verdict either way
    comp = compare_runs(run, run)
    assert {r.verdict for r in comp.rows} == {"inconclusive"}


def test_plugin_inactive_without_options(tmp_path: Path) -> None:
    (tmp_path / "test_bench_mod.py").write_text(BENCH_MODULE)
    proc = _pytest(["test_bench_mod.py", "-k", "sorted", "--benchmark-max-time=0.01",
                    "-p", "allele.bench.pytest_plugin"], tmp_path)
    assert "1 passed" in proc.stdout and "allele:" not in proc.stdout
    assert not (tmp_path / ".allele").exists()


def test_a_taken_run_name_stops_the_session_before_any_test(session: dict[str, Any]) -> None:
    """The clash was found after every benchmark ran, and their results were thrown away
    (exit 3); now it is a usage error naming the option before the first test."""
    proc = _pytest(["test_bench_mod.py", "--benchmark-max-time=0.01",
                    "-p", "allele.bench.pytest_plugin", "--allele-store", session["db"],
                    "--allele-run", "plugin-run"], session["root"])
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert ("ERROR: allele: --allele-run plugin-run: a run named 'plugin-run' already exists "
            "in the store; choose another name") in proc.stderr
    assert "passed" not in proc.stdout and "failed" not in proc.stdout
    with open_store(session["db"]) as store:
        assert [r.name for r in store.list_runs()] == ["plugin-run"]
