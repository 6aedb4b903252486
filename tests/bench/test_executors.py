"""Executors: the local process pool and Dask (against a real LocalCluster)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

import pytest

from allele.bench.executors import (
    DaskExecutor,
    InlineExecutor,
    ProcessPoolExecutor,
    make_executor,
)
from allele.bench.profiler import run_cell
from allele.bench.task import CellTask
from allele.errors import ConfigError
from allele.store.model import cell_key

T = "tests.bench.runner_targets"


def task(target: str, i: int = 0, seeds: tuple[int, ...] = (0,), timeout_s: float = 30.0,
         **params: object) -> CellTask:
    p = {"i": i, **params}
    return CellTask(key=cell_key(target, p), benchmark="b", target=target, params=p,
                    seeds=seeds, timeout_s=timeout_s, index=i)


def test_run_cell_measures_and_never_raises_for_a_target_failure() -> None:
    ok = run_cell(task(f"{T}:flaky", x=3, seeds=(1, 2)))
    assert ok.status == "ok" and ok.values("y") == [3.0, 6.0]
    assert ok.finished_at >= ok.started_at > 0
    bad = run_cell(task(f"{T}:flaky", x=2))
    assert bad.status == "failed" and bad.samples == []
    missing = run_cell(task("nope.module:fn"))
    assert missing.status == "failed" and "cannot import nope.module" in (missing.error or "")


def test_run_cell_rejects_non_numeric_and_reserved_metrics() -> None:
    r = run_cell(task("allele.bench.targets:resolve_target"))  # returns a function
    assert r.status == "failed"


def test_inline_timeout_uses_the_alarm() -> None:
    r = run_cell(task(f"{T}:crash", how="hang", timeout_s=0.3))
    assert r.status == "timeout" and "longer than 0.3 s" in (r.error or "")


def test_pool_workers_are_persistent_and_results_complete() -> None:
    tasks = [task(f"{T}:echo", i=i) for i in range(8)]
    started: list[int] = []
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.run(tasks, on_start=lambda t: started.append(t.index)))
        again = list(pool.run([task(f"{T}:echo", i=100)]))
    assert sorted(r.params["i"] for r in results) == list(range(8))
    assert sorted(started) == list(range(8))
    pids = {r.values("pid")[0] for r in results + again}
    assert len(pids) <= 2 and os.getpid() not in pids  # two workers served nine cells
    assert all(r.status == "ok" for r in results)


def test_pool_replaces_a_crashed_worker_and_keeps_going() -> None:
    tasks = [task(f"{T}:crash", i=0, how="segv"), task(f"{T}:echo", i=1),
             task(f"{T}:crash", i=2, how="abort"), task(f"{T}:echo", i=3)]
    with ProcessPoolExecutor(1) as pool:
        results = {r.params["i"]: r for r in pool.run(tasks)}
        assert pool.replaced == 2
    assert results[0].status == "crashed" and "SIGSEGV" in (results[0].error or "")
    assert results[2].status == "crashed" and "SIGABRT" in (results[2].error or "")
    assert results[1].status == results[3].status == "ok"
    # a worker keeps to its target: the echo cells ran one after the other in one worker
    assert results[1].values("pid") == results[3].values("pid")


def test_pool_kills_a_worker_that_ignores_the_alarm() -> None:
    # time.sleep is interrupted by SIGALRM; a C-level hang is not; both end as timeouts
    with ProcessPoolExecutor(1) as pool:
        r = next(iter(pool.run([task(f"{T}:crash", how="hang", timeout_s=0.5)])))
    assert r.status == "timeout"


def test_make_executor_parses_the_cli_values() -> None:
    assert isinstance(make_executor("inline"), InlineExecutor)
    pool = make_executor("local", 3)
    assert isinstance(pool, ProcessPoolExecutor) and pool.capacity == 3
    for bad in ("threads", "dask://", "ftp://x"):
        with pytest.raises(ConfigError, match="--executor"):
            make_executor(bad)
    with pytest.raises(ConfigError, match="workers"):
        ProcessPoolExecutor(0)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    distributed = pytest.importorskip("distributed")
    lc = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp", dashboard_address=":0")
    try:
        yield lc.scheduler_address
    finally:
        lc.close()


def test_dask_executor_against_a_local_cluster(cluster: str) -> None:
    address = cluster.removeprefix("tcp://")
    with make_executor(f"dask://{address}") as ex:
        assert isinstance(ex, DaskExecutor) and ex.capacity == 2
        tasks = [task(f"{T}:flaky", i=i, x=i % 3, seeds=(1, 2)) for i in range(6)]
        seen: list[int] = []
        results = {r.params["i"]: r
                   for r in ex.run(tasks, on_start=lambda t: seen.append(t.index))}
    assert sorted(results) == sorted(seen) == list(range(6))
    for i, r in results.items():
        if i % 3 == 2:
            assert r.status == "failed" and "x=2 is not allowed" in (r.error or "")
        else:
            assert r.status == "ok" and r.values("y") == [float(i % 3), 2.0 * (i % 3)]
            assert len(r.values("wall_s")) == 2


def test_dask_executor_times_out_a_hanging_cell(cluster: str) -> None:
    with DaskExecutor(cluster) as ex:
        tasks = [task(f"{T}:crash", i=0, how="ok"),
                 task(f"{T}:slow", i=1, s=5.0, timeout_s=0.3)]
        results = {r.params["i"]: r for r in ex.run(tasks)}
    assert results[0].status == "ok"
    assert results[1].status == "timeout" and "Dask" in (results[1].error or "")


def test_dask_prefetched_cells_start_their_timeout_clock_when_they_can_run() -> None:
    """Cells queued behind a hung one (prefetch) are not timed out for the wait; the hung one
    is, with its own reason, and every cell gets its own result."""
    distributed = pytest.importorskip("distributed")
    lc = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0")
    try:
        with DaskExecutor(lc.scheduler_address) as ex:
            ex.prefetch = 2.0
            assert ex.capacity == 1
            # one call a cell (no inner-loop calibration: its extra call would hold the
            # thread-based worker for another 3 s after the hung cell's timeout)
            tasks = [replace(task(f"{T}:slow", i=0, s=3.0, timeout_s=0.3), inner_loops=1)]
            tasks += [replace(task(f"{T}:echo", i=i, timeout_s=1.0), inner_loops=1)
                      for i in range(1, 4)]
            results = {r.params["i"]: r for r in ex.run(tasks)}
    finally:
        lc.close()
    assert results[0].status == "timeout" and "0.3 s" in (results[0].error or "")
    assert [results[i].status for i in (1, 2, 3)] == ["ok"] * 3
    assert [results[i].values("i") for i in (1, 2, 3)] == [[1.0], [2.0], [3.0]]


def test_dask_batches_cheap_cells_and_each_cell_keeps_its_own_result(cluster: str) -> None:
    with DaskExecutor(cluster) as ex:
        ex.max_batch, ex.prefetch = 32, 2.0
        # batches of many cells even when a loaded machine makes these cells take 50 ms
        ex.batch_target_s = 1.0
        tasks = [task(f"{T}:flaky", i=i, x=i % 3, seeds=(1,)) for i in range(120)]
        results = {r.params["i"]: r for r in ex.run(tasks)}
        assert ex.tasks_submitted < 60  # cells travelled in batches
    assert sorted(results) == list(range(120))
    for i, r in results.items():
        if i % 3 == 2:
            assert r.status == "failed" and "x=2 is not allowed" in (r.error or "")
        else:
            assert r.status == "ok" and r.values("y") == [float(i % 3)]


@pytest.mark.slow
@pytest.mark.parametrize(("how", "status", "reason"), [("segv", "crashed", "died")])
def test_dask_a_crash_inside_a_batch_is_reported_for_its_cell_alone(
        how: str, status: str, reason: str) -> None:
    pytest.importorskip("distributed")
    tasks = [task(f"{T}:crash", i=i, timeout_s=4.0, how=how if i == 20 else "ok")
             for i in range(40)]
    with DaskExecutor(None, workers=1) as ex:
        ex.max_batch, ex.prefetch = 32, 2.0
        results = {r.params["i"]: r for r in ex.run(tasks)}
        assert ex.largest_batch > 1  # the cells travelled in batches
    assert sorted(results) == list(range(40))
    assert results[20].status == status and reason in (results[20].error or "")
    assert all(r.status == "ok" and r.values("ok") == [1.0]
               for i, r in results.items() if i != 20)


@pytest.mark.slow
def test_dask_a_hang_inside_a_batch_is_reported_for_its_cell_alone() -> None:
    """Two worker processes, cells in batches, one cell that sleeps an hour (timeout 4 s) among
    cheap cells whose timeout (1 s) is shorter than the hung cell's and than a worker's restart
    on a loaded machine: the hung cell is the only timeout; the cells queued behind it, in its
    batch, in the next task on its worker or re-sent while its worker restarts, are not timed
    out for the wait and keep their own samples."""
    pytest.importorskip("distributed")
    hung = 25
    tasks = [task(f"{T}:crash", i=i, timeout_s=4.0 if i == hung else 1.0,
                  how="hang" if i == hung else "ok") for i in range(80)]
    with DaskExecutor(None, workers=2) as ex:
        ex.max_batch, ex.prefetch = 32, 2.0
        ex.batch_target_s = 1.0  # batches of many cells, whatever the machine's speed
        results = {r.params["i"]: r for r in ex.run(tasks)}
        assert ex.batches_given_up >= 1  # the hung cell was in a batch
    assert sorted(results) == list(range(80))
    assert results[hung].status == "timeout" and "4 s" in (results[hung].error or "")
    bad = {i: (r.status, r.error) for i, r in results.items()
           if i != hung and (r.status != "ok" or r.values("ok") != [1.0])}
    assert bad == {}


def test_dask_a_cell_queued_on_a_worker_killed_for_another_is_not_crashed() -> None:
    """A worker this executor killed (a frozen cell's) fails every task queued on it with
    KilledWorker: those cells go again without counting toward `crashed`; a death elsewhere
    counts, and the second one under the same cell reports it (once under CI load, an innocent
    cell was reported crashed after the frozen one's worker was killed)."""
    import time
    from types import SimpleNamespace

    pytest.importorskip("distributed")
    from distributed.scheduler import KilledWorker

    from allele.bench.dask_executor import DaskExecutor, _Flight, _last_worker

    ex = DaskExecutor.__new__(DaskExecutor)  # the bookkeeping alone, no cluster
    ex._killed, ex._died_once = {"tcp://127.0.0.1:4001"}, set()
    t = task(f"{T}:crash", i=16)
    flight = _Flight([t], "tok", time.time())

    def death(address: str) -> KilledWorker:
        return KilledWorker("allele-cells-tok", SimpleNamespace(address=address), 0)

    assert _last_worker(death("tcp://127.0.0.1:4001")) == "tcp://127.0.0.1:4001"
    for _ in range(3):  # deaths of the killed worker never count
        assert ex._results(flight, None, death("tcp://127.0.0.1:4001")) is None
    assert ex._died_once == set()
    assert ex._results(flight, None, death("tcp://127.0.0.1:4002")) is None  # once: again
    crashed = ex._results(flight, None, death("tcp://127.0.0.1:4003"))
    assert crashed is not None and crashed[0].status == "crashed"


@pytest.mark.slow
def test_dask_a_cell_that_freezes_its_worker_is_the_one_timed_out() -> None:
    """A C call holding the GIL freezes the worker process, its watcher included, so the cell
    is never reported running: the task is given up on the fallback clock, its cells run
    again, the silent one alone on the cluster, and only that one is a timeout."""
    pytest.importorskip("distributed")
    frozen = 15
    tasks = [task(f"{T}:crash", i=i, timeout_s=2.0 if i == frozen else 1.0,
                  how="gil_hang" if i == frozen else "ok") for i in range(40)]
    with DaskExecutor(None, workers=2, max_batch=32, prefetch=2.0) as ex:
        ex.batch_target_s = 1.0
        ex.start_slack_s = 2.0
        results = {r.params["i"]: r for r in ex.run(tasks)}
    assert sorted(results) == list(range(40))
    assert results[frozen].status == "timeout"
    assert "never reported running" in (results[frozen].error or "")
    bad = {i: (r.status, r.error) for i, r in results.items()
           if i != frozen and (r.status != "ok" or r.values("ok") != [1.0])}
    assert bad == {}


def test_dask_local_starts_and_stops_its_own_cluster() -> None:
    pytest.importorskip("distributed")
    ex = DaskExecutor(None, workers=1, processes=False)
    try:
        r = list(ex.run([task(f"{T}:echo", i=7)]))
    finally:
        ex.close()
    assert r[0].status == "ok" and r[0].values("i") == [7.0]


def test_workers_that_cannot_start_are_an_error_not_crashed_cells(tmp_path: object) -> None:
    """A script fed on stdin has a main module the workers cannot re-import."""
    import subprocess
    import sys

    script = (
        "from allele.bench.executors import ProcessPoolExecutor\n"
        "from allele.store.model import cell_key\n"
        "from allele.bench.task import CellTask\n"
        "from allele.errors import BenchmarkError\n"
        "t = CellTask(key=cell_key('x', {}), benchmark='b', "
        "target='allele.bench.targets:work', params={'n': 10}, seeds=(0,))\n"
        "try:\n"
        "    with ProcessPoolExecutor(1) as pool:\n"
        "        print(list(pool.run([t])))\n"
        "except BenchmarkError as exc:\n"
        "    print('ERROR', exc)\n"
    )
    out = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True,
                         timeout=120)
    assert "ERROR benchmark worker processes die while starting" in out.stdout, out.stderr
    assert "__main__" in out.stdout


def test_a_worker_never_runs_two_targets() -> None:
    """Cells of two targets interleaved on one worker: each target's cells share a process,
    never one another's (what a target leaves in a process must not count for the next)."""
    tasks = [task(f"{T}:echo" if i % 2 else f"{T}:echo_too", i=i) for i in range(6)]
    with ProcessPoolExecutor(1) as pool:
        results = list(pool.run(tasks))
        assert pool.replaced == 0 and pool.retired == 1
    pids: dict[str, set[float]] = {}
    for r in results:
        assert r.status == "ok", r.error
        pids.setdefault(r.target, set()).update(r.values("pid"))
    assert all(len(p) == 1 for p in pids.values())
    assert pids[f"{T}:echo"].isdisjoint(pids[f"{T}:echo_too"])
