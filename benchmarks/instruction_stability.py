"""How still the ``instructions`` instrument holds: the same cells counted in separate
invocations while a CPU hog spins on the other core.

Counts the quick preset's evolution and Kraken cells (benchmarks/seed-matrix.yaml) in
``instructions`` mode: each invocation is one callgrind subprocess for all cells (as a run's
instruction phase is), and the invocations are separate processes, each counting the cells in
another order (``--order shuffled``, the default: a count must not depend on the cells counted
before it; ``--order fixed`` keeps the spec's order). For every cell it prints the
instruction count's spread over the invocations (max/min - 1; goal <= 0.3%), the wall time of
each invocation beside it (which moves with the machine, the count should not), and the
slowdown of the measured call under callgrind against the same call run natively in this
process. Last, the default tolerance of ``instructions`` (bench/metrics.py) against the
measured spread: it must be at least twice the largest spread.

    .venv/bin/python benchmarks/instruction_stability.py [--invocations 5] [--seeds 1]
                                [--benchmarks evolution kraken] [--order shuffled|fixed]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from allele.bench.instruments.callgrind import InstrumentedCell, count_cells
from allele.bench.metrics import DETERMINISTIC_METRICS
from allele.bench.spec import load_suite
from allele.bench.targets import resolve_target

SPEC = Path(__file__).with_name("seed-matrix.yaml")
HOG = "while True:\n    pass\n"
GOAL = 0.003


def quick_cells(benchmarks: list[str], seeds: int) -> list[InstrumentedCell]:
    suite = load_suite(SPEC, preset="quick")
    cells = []
    for bench in suite.benchmarks:
        if bench.name not in benchmarks:
            continue
        for params in bench.expand():
            key = f"{bench.target} " + " ".join(f"{k}={v}" for k, v in sorted(params.items())
                                                if k not in ("generations", "target_fitness",
                                                             "washout", "threads",
                                                             "train_steps", "test_steps"))
            cells.append(InstrumentedCell(key, bench.target, params,
                                          tuple(bench.seed_list[:seeds]), bench.warmup,
                                          bench.timeout_s))
    return cells


def native_seconds(cell: InstrumentedCell) -> float:
    """The measured call run natively here: median of 3 after a warm-up, per seed summed."""
    fn = resolve_target(cell.target)
    total = 0.0
    for seed in cell.seeds:
        fn(dict(cell.params), seed)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn(dict(cell.params), seed)
            times.append(time.perf_counter() - t0)
        total += statistics.median(times)
    return total


def _hog() -> subprocess.Popen[bytes]:
    hog = subprocess.Popen([sys.executable, "-c", HOG])
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) > 1:
        os.sched_setaffinity(hog.pid, {cpus[-1]})  # the other core
    return hog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invocations", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=1, help="seeds counted per cell")
    parser.add_argument("--benchmarks", nargs="+", default=["evolution", "kraken"])
    parser.add_argument("--no-hog", action="store_true", help="no CPU hog on the other core")
    parser.add_argument("--order", choices=("shuffled", "fixed"), default="shuffled",
                        help="the cells' order in each invocation: shuffled (a new order each "
                             "time, as runs with other cells and A/B versions see) or fixed")
    args = parser.parse_args()
    cells = quick_cells(args.benchmarks, args.seeds)
    native = {c.key: native_seconds(c) for c in cells}
    counts: dict[str, list[float]] = {c.key: [] for c in cells}
    measured: dict[str, list[float]] = {c.key: [] for c in cells}
    walls: list[float] = []
    hog = None if args.no_hog else _hog()
    try:
        rng = random.Random(0)
        for i in range(args.invocations):
            order = rng.sample(cells, len(cells)) if args.order == "shuffled" else cells
            res = count_cells(order)
            walls.append(res.seconds)
            for c in cells:
                got = res.cells[c.key]
                if got.error:
                    sys.exit(f"{c.key}: {got.error}")
                counts[c.key].append(sum(s.value for s in got.samples
                                         if s.metric == "instructions"))
                measured[c.key].append(got.seconds.get("measured", float("nan")))
            print(f"invocation {i + 1}/{args.invocations}: {res.seconds:.1f} s wall",
                  flush=True)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    print(f"\n{len(cells)} cells, {args.invocations} separate callgrind invocations "
          f"({args.order} order), seeds {list(cells[0].seeds)}, "
          f"{'no hog' if hog is None else 'a CPU hog on the other core'}"
          "; machine shared with other work")
    print(f"{'cell':58} {'instructions':>14} {'spread':>9} {'call under cg':>14} "
          f"{'native':>9} {'slowdown':>9}")
    worst = 0.0
    for c in cells:
        v = counts[c.key]
        spread = max(v) / min(v) - 1.0
        worst = max(worst, spread)
        under = statistics.median(measured[c.key])
        print(f"{c.key[:58]:58} {statistics.median(v):>14,.0f} {spread:>9.4%} "
              f"{under:>12.2f} s {native[c.key] * 1e3:>6.1f} ms "
              f"{under / native[c.key]:>8.0f}x")
    print("wall time of each invocation: " + ", ".join(f"{w:.1f} s" for w in walls)
          + f" (spread {max(walls) / min(walls) - 1.0:.1%})")
    tol = DETERMINISTIC_METRICS["instructions"]
    print(f"largest instruction spread: {worst:.4%} (goal <= {GOAL:.1%}: "
          f"{'PASS' if worst <= GOAL else 'FAIL'})")
    print(f"default tolerance of 'instructions': {tol:.2%} = {tol / worst if worst else float('inf'):.0f}"
          f" x the largest spread (must be >= 2x: {'PASS' if tol >= 2 * worst else 'FAIL'})")


if __name__ == "__main__":
    main()
