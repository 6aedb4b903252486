"""A matrix of 10,000 cells on Dask and on the process pool; then a store of 10^7 samples.

1. Scheduling overhead per cell = (wall - sum of call times / workers) / cells, store commits
   included, cluster start excluded, for ``--cells`` cells of a cheap target
   (``allele.bench.targets:work`` with ``n=--n``, one seed, one repeat, no warmup) run by the
   Runner into a SQLite store:
   a Dask LocalCluster of 2 worker processes (``dask-local`` with the executor's defaults, which
   batch cheap cells, or ``--max-batch``/``--prefetch``/``--batch-target``; goal <= 5 ms per
   cell) and, in the same invocation, the local process pool of 2 workers (the baseline) and
   ``dask-local`` with batching off (one cell per Dask task: ``max_batch=1, prefetch=1.0``). Sum
   of call times is the stored ``wall_s`` samples. Printed with the store's growth per cell.
2. At that size: ``bench compare`` (load both runs, compare_runs) and ``bench report`` (HTML)
   times between the two runs.
3. A store of ``--big-samples`` samples (default 10^7: 20 runs x 1000 cells x 5 metrics x 100
   samples, written with ``save_cells``): the time of the dashboard's queries (run list, run
   overview, a cell's history across the 20 runs, the comparison of the two newest runs, what
   ``/api/runs``, ``/api/runs/{id}``, ``/api/history`` and ``/api/compare`` call) and of
   ``bench compare``'s.

Usage::

    python benchmarks/scale_matrix.py                       # the figures in docs/scale.md
    python benchmarks/scale_matrix.py --cells 1000 --big-samples 1000000   # a quick check
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from allele.bench.executors import DaskExecutor, Executor, ProcessPoolExecutor
from allele.bench.runner import Runner
from allele.bench.spec import loads_suite
from allele.store import ResultStore, open_store
from allele.store.model import CellResult, Sample, cell_key

TARGET = "allele.bench.targets:work"


def suite_text(name: str, cells: int, n: int) -> tuple[str, int]:
    side = int(np.ceil(np.sqrt(cells)))
    rows = -(-cells // side)
    assert side * rows >= cells
    # inner_loops: 1: one call per cell (a calibrated cheap target would loop to 10 ms a
    # sample, and the stored per-call times would no longer add up to the cell's time)
    return (f"name: {name}\ntarget: {TARGET}\nisolation: process\nseeds: 1\nrepeats: 1\n"
            f"inner_loops: 1\nwarmup: 0\norder: sequential\nmatrix: {{a: {list(range(side))}, "
            f"b: {list(range(rows))}}}\nfixed: {{n: {n}}}\n"), side * rows


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def matrix(store: ResultStore, db: Path, name: str, cells: int, n: int, executor: Executor,
           workers: int) -> tuple[float, str]:
    text, total = suite_text(name, cells, n)
    suite = loads_suite(text)
    size0 = db.stat().st_size
    wall, summary = _timed(lambda: Runner(store, executor=executor, workers=workers).run(
        suite, name=name))
    assert summary.executed == total and summary.failed == 0, summary
    rec = store.load_run(name)
    calls = sum(sum(c.values("wall_s")) for c in rec.cells)
    assert len(rec.cells) == total
    per_cell = (wall - calls / workers) / total
    grown = (db.stat().st_size - size0) / total
    print(f"  {name:<12} {total:,} cells in {wall:6.1f} s; calls {calls:5.1f} s; overhead "
          f"{per_cell * 1e3:5.2f} ms per cell; store +{grown:,.0f} bytes per cell")
    return per_cell, summary.run_id


def scale(cells: int, n: int, workers: int, tmp: Path, with_plain: bool,
          batching: dict[str, Any]) -> None:
    db = tmp / "scale.db"
    print(f"1. {cells:,} cells of {TARGET} (n={n}), {workers} workers, SQLite store")
    with open_store(f"sqlite:///{db}") as store:
        with ProcessPoolExecutor(workers) as pool:
            pool.start()
            pool_cell, pool_run = matrix(store, db, "pool", cells, n, pool, workers)
        dask = DaskExecutor(None, workers, **batching)  # cluster start: not timed
        print(f"  dask-local: max_batch={dask.max_batch}, prefetch={dask.prefetch:g}, "
              f"batch_target_s={dask.batch_target_s:g}")
        try:
            dask_cell, dask_run = matrix(store, db, "dask-local", cells, n, dask, workers)
        finally:
            dask.close()
        plain_cell = None
        if with_plain:
            dask = DaskExecutor(None, workers, max_batch=1, prefetch=1.0)  # batching off
            try:
                plain_cell, _ = matrix(store, db, "dask-plain", cells, n, dask, workers)
            finally:
                dask.close()
        goal = "MET" if dask_cell <= 0.005 else "NOT MET"
        print(f"  dask-local overhead {dask_cell * 1e3:.2f} ms per cell (goal <= 5 ms: {goal}); "
              f"process pool {pool_cell * 1e3:.2f} ms; ratio dask / pool "
              f"{dask_cell / pool_cell:.1f}")
        if plain_cell is not None:
            print(f"  dask-local one cell per task (batching off) {plain_cell * 1e3:.2f} ms per "
                  f"cell; dask-local / one per task {dask_cell / plain_cell:.2f}")
        print(f"2. at {cells:,} cells: store file {db.stat().st_size / 2**20:,.1f} MiB")
        _queries(store, pool_run, dask_run, with_report=True)


def _queries(store: ResultStore, base: str, head: str, *, with_report: bool = False,
             key: str | None = None, metric: str = "wall_s") -> None:
    from allele.bench import views
    from allele.bench.compare import compare_runs
    from allele.bench.report import build_report

    def compare() -> Any:
        return compare_runs(store.load_run(base), store.load_run(head))

    rows: list[tuple[str, float]] = []
    if key is not None:
        rows.append(("dashboard run list (/api/runs)", _timed(lambda: views.run_list(store))[0]))
        rows.append(("dashboard run overview (/api/runs/{id})",
                     _timed(lambda: views.run_overview(store, head))[0]))
        rows.append(("dashboard cell history (/api/history)",
                     _timed(lambda: views.cell_history(store, key, metric))[0]))
        rows.append(("dashboard comparison (/api/compare)",
                     _timed(lambda: views.run_comparison(store, base, head))[0]))
    t, cmp = _timed(compare)
    rows.append((f"bench compare (load 2 runs + compare, {len(cmp.rows):,} rows)", t))
    if with_report:
        t, html = _timed(lambda: build_report(store, head, base))
        rows.append((f"bench report (HTML, {len(html) / 2**20:.1f} MiB)", t))
    for label, secs in rows:
        print(f"  {label:<58} {secs:8.2f} s")


def big_store(total: int, tmp: Path, runs: int = 20, metrics: int = 5, per: int = 100) -> None:
    cells = max(1, total // (runs * metrics * per))
    names = [f"m{i}" for i in range(metrics - 1)] + ["wall_s"]
    db = tmp / "big.db"
    rng = np.random.default_rng(0)
    print(f"3. a store of {runs * cells * metrics * per:,} samples ({runs} runs x {cells:,} "
          f"cells x {metrics} metrics x {per} samples)")
    t0 = time.perf_counter()
    with open_store(f"sqlite:///{db}") as store:
        ids = []
        for r in range(runs):
            rid = store.create_run(f"big-{r}", "big", TARGET, {"name": "big"}, {})
            vals = rng.lognormal(size=(cells, metrics, per)).tolist()
            batch = [CellResult(key=cell_key(TARGET, {"i": c}), target=TARGET,
                                params={"i": c}, status="ok",
                                samples=[Sample(names[m], vals[c][m][k], k % 10, k // 10)
                                         for m in range(metrics) for k in range(per)],
                                started_at=1.0 + r, finished_at=2.0 + r)
                     for c in range(cells)]
            store.save_cells(rid, batch)
            store.finish_run(rid, "finished")
            ids.append(rid)
        print(f"  written in {time.perf_counter() - t0:.1f} s; store file "
              f"{db.stat().st_size / 2**20:,.0f} MiB")
        key = cell_key(TARGET, {"i": 0})
        _queries(store, ids[-2], ids[-1], key=key)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--n", type=int, default=2000, help="loop count of the cheap target")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--big-samples", type=int, default=10_000_000)
    ap.add_argument("--skip", default="", help="comma list of matrix,plain,big to skip")
    ap.add_argument("--max-batch", type=int, help="dask-local's max_batch (default: the "
                    "executor's)")
    ap.add_argument("--prefetch", type=float, help="dask-local's prefetch (default: the "
                    "executor's)")
    ap.add_argument("--batch-target", type=float, help="dask-local's batch_target_s (default: "
                    "the executor's)")
    args = ap.parse_args()
    batching = {k: v for k, v in (("max_batch", args.max_batch), ("prefetch", args.prefetch),
                                  ("batch_target_s", args.batch_target)) if v is not None}
    skip = set(args.skip.split(","))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.1f}")
    with tempfile.TemporaryDirectory() as d:
        if "matrix" not in skip:
            scale(args.cells, args.n, args.workers, Path(d), "plain" not in skip, batching)
        if "big" not in skip:
            big_store(args.big_samples, Path(d))


if __name__ == "__main__":
    main()
