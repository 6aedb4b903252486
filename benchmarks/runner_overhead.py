"""Runner overhead per cell and parallel efficiency, each against a baseline measured here.

    .venv/bin/python benchmarks/runner_overhead.py [--cells 200] [--par-cells 16] [--rounds 3]

1. Inline overhead: ``--cells`` cells of a small fixed CPU workload (``allele.bench.targets:work``)
   run through :class:`allele.bench.Runner` (inline executor, a real SQLite store in a temporary
   directory, environment fingerprint and run creation included) versus a bare loop calling the
   same target function with the same params and seeds. Overhead per cell =
   (runner time - bare loop time) / cells. Goal: at most 10 ms.
2. Parallel efficiency: ``--par-cells`` CPU-bound cells (about 0.2 s each) on a process pool of
   2 workers versus the bare serial loop. Efficiency = serial time / (2 x pool time). Printed for a
   fresh pool (worker start-up included) and a warm pool (workers already started). Goal: >= 85%.

Both comparisons alternate baseline and runner ``--rounds`` times and report medians, because the
machine may be shared. The load average is printed alongside: on a busy 2-core machine no pool can
reach 2x. Two further figures separate the runner's own losses from the machine's: the CPU each
side actually obtained, and the worker utilisation (time the workers spent inside cells divided
by 2 x the pool's wall time), which only dispatch delays of the runner can lower. And a third
baseline bounds what any pool can reach here: the same cells submitted one by one to a bare, warm
``concurrent.futures.ProcessPoolExecutor(2)`` (no store, no runner). Its efficiency is the
machine's ceiling (two vCPUs that share a physical core, or a neighbour's load, keep it below
100%); the runner's share of that ceiling is bare-pool time / runner-pool time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from allele.bench.executors import ProcessPoolExecutor
from allele.bench.runner import Runner
from allele.bench.spec import loads_suite
from allele.bench.targets import work
from allele.store import open_store

TARGET = "allele.bench.targets:work"


def suite_text(name: str, cells: int, n: int, isolation: str) -> str:
    # one call per sample and no untimed memory call: this measures the runner's machinery,
    # not the measuring calls a spec asks for (benchmarks/measurement_cost.py prices those)
    return (f"name: {name}\ntarget: {TARGET}\nisolation: {isolation}\nseeds: 1\n"
            "inner_loops: 1\nalloc_peak: false\n"
            f"order: sequential\nmatrix: {{i: {list(range(cells))}}}\nfixed: {{n: {n}}}\n")


CPU_RATES: dict[str, list[float]] = {"serial": [], "pool": []}
"""CPU seconds per wall second of the serial loop and of the (warm) pool, per round."""
BUSY: list[float] = []
"""Per warm round: time the workers spent inside cells / (2 x pool wall time)."""


def bare_loop(cells: int, n: int) -> float:
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(cells):
        work({"i": i, "n": n}, 0)
    wall = time.perf_counter() - t0
    CPU_RATES["serial"].append((time.process_time() - c0) / wall)
    return wall


def runner_time(db: Path, name: str, cells: int, n: int, executor: object,
                record_cpu: bool = False) -> float:
    suite = loads_suite(suite_text(name, cells, n, "inline" if executor == "inline" else
                                   "process"))
    with open_store(f"sqlite:///{db}") as store:
        t0 = time.perf_counter()
        summary = Runner(store, executor=executor, workers=2).run(  # type: ignore[arg-type]
            suite, name=name)
        elapsed = time.perf_counter() - t0
        if record_cpu:
            rec = store.load_run(name)
            cpu = sum(sum(c.values("cpu_user_s")) + sum(c.values("cpu_sys_s"))
                      for c in rec.cells)
            CPU_RATES["pool"].append(cpu / elapsed)
            busy = sum(c.finished_at - c.started_at for c in rec.cells)
            BUSY.append(busy / (2 * elapsed))
    assert summary.executed == cells and summary.failed == 0, summary
    return elapsed


def _cell(i: int, n: int) -> None:
    work({"i": i, "n": n}, 0)


def bare_pool(pool: concurrent.futures.ProcessPoolExecutor, cells: int, n: int) -> float:
    """The same cells on a bare, warm process pool: the most any pool gets out of this machine."""
    t0 = time.perf_counter()
    for fut in [pool.submit(_cell, i, n) for i in range(cells)]:
        fut.result()
    return time.perf_counter() - t0


def calibrate(seconds: float) -> int:
    """Loop count of ``work`` that takes about ``seconds`` here."""
    n = 20_000
    while True:
        t0 = time.perf_counter()
        work({"n": n}, 0)
        dt = time.perf_counter() - t0
        if dt > 0.02:
            return max(1000, int(n * seconds / dt))
        n *= 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=200)
    ap.add_argument("--par-cells", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "overhead.db"
        # 1. inline overhead ---------------------------------------------------------------------
        n_small = calibrate(0.002)
        base, run = [], []
        for r in range(args.rounds):
            base.append(bare_loop(args.cells, n_small))
            run.append(runner_time(db, f"inline-{r}", args.cells, n_small, "inline"))
        b, t = statistics.median(base), statistics.median(run)
        per_cell_ms = (t - b) / args.cells * 1e3
        print(f"\n[inline] {args.cells} cells of ~{b / args.cells * 1e3:.2f} ms "
              f"(work n={n_small}), median of {args.rounds} rounds")
        print(f"  bare loop      {b:8.3f} s")
        print(f"  runner inline  {t:8.3f} s   (store commits, fingerprint, run record included)")
        print(f"  overhead/cell  {per_cell_ms:8.3f} ms   goal <= 10 ms: "
              f"{'PASS' if per_cell_ms <= 10 else 'FAIL'}")

        # 2. parallel efficiency -----------------------------------------------------------------
        n_big = calibrate(0.2)
        CPU_RATES["serial"].clear()
        serial, fresh, warm, bare = [], [], [], []
        plain = concurrent.futures.ProcessPoolExecutor(2)
        for fut in [plain.submit(_cell, i, 1000) for i in range(4)]:
            fut.result()  # both workers started and warm
        for r in range(args.rounds):
            bare.append(bare_pool(plain, args.par_cells, n_big))
            serial.append(bare_loop(args.par_cells, n_big))
            fresh.append(runner_time(db, f"fresh-{r}", args.par_cells, n_big, "local"))
            with ProcessPoolExecutor(2) as pool:
                pool.start()
                runner_time(db, f"warmup-{r}", 2, 1000, pool)  # imports done in both workers
                warm.append(runner_time(db, f"warm-{r}", args.par_cells, n_big, pool,
                                        record_cpu=True))
        plain.shutdown()
        s = statistics.median(serial)
        f, w = statistics.median(fresh), statistics.median(warm)
        print(f"\n[2 workers] {args.par_cells} CPU-bound cells of "
              f"~{s / args.par_cells:.3f} s (work n={n_big}), median of {args.rounds} rounds")
        print(f"  serial bare loop   {s:8.3f} s")
        print(f"  pool, fresh        {f:8.3f} s   efficiency {s / (2 * f) * 100:5.1f}%")
        print(f"  pool, warm         {w:8.3f} s   efficiency {s / (2 * w) * 100:5.1f}%   "
              f"goal >= 85%: {'PASS' if s / (2 * w) >= 0.85 else 'FAIL'}")
        bp = statistics.median(bare)
        print(f"  bare pool (ceiling) {bp:7.3f} s   efficiency {s / (2 * bp) * 100:5.1f}%   "
              f"(concurrent.futures, warm, no runner)")
        print(f"  runner, warm pool, as a share of the bare pool: {bp / w * 100:5.1f}%")
        rs = statistics.median(CPU_RATES["serial"])
        rp = statistics.median(CPU_RATES["pool"])
        print(f"  CPU obtained: serial loop {rs:.2f} CPU-s per s, warm pool {rp:.2f} CPU-s per s"
              f" -> CPU-share-normalised efficiency {rp / (2 * rs) * 100:5.1f}%")
        print("    (pool CPU rate / twice the serial CPU rate; meaningful only if the scheduler")
        print("     gives every process the same share, which a busy shared machine need not do)")
        print(f"  worker utilisation (time inside cells / (2 x pool time)): "
              f"{statistics.median(BUSY) * 100:5.1f}%  (the runner's own dispatch losses only)")
        print(f"  rounds: serial {[round(x, 3) for x in serial]}, fresh "
              f"{[round(x, 3) for x in fresh]}, warm {[round(x, 3) for x in warm]}, "
              f"bare pool {[round(x, 3) for x in bare]}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
