"""What MLflow tracking adds to an evolution: population 1000, 200 generations, SQLite backend.

Interleaved runs in one process: a plain ``EvolutionEngine.run()`` and the same run (same seed)
with an :class:`allele.tracking.MlflowObserver` attached, writing to a SQLite MLflow database in
a temporary folder. The tracker and the database are created before the timings (MLflow's import
and schema migration are a one-off start-up cost, reported separately). Each tracked run opens
its own MLflow run.

The runs come in blocks: ``--per-block`` untracked and tracked runs alternating (ABAB..., the
order flipped every other block). A shared machine adds delays of up to +70% to single runs
(another tenant on the same physical core; even a thread's CPU time grows), and those delays only
ever add time, so each block keeps the fastest run of each arm and yields one ratio; the verdict
is the median of the block ratios, printed with a bootstrap 95% confidence interval.

Printed:

* ``overhead``: the median block ratio tracked / untracked - 1, and its 95% CI: what tracking
  costs the evolution itself (the observer only appends to a buffer; the writer thread writes in
  the background once events are ``flush_interval_s`` old, or at the flush), measured on the
  evolution thread's CPU time (``time.thread_time``) and on wall time; also the plain medians over
  all runs, noise included;
* ``flush``: the median time, after a tracked run, until its metrics are durable in MLflow (the
  background writer's ``log_batch`` calls; off the evolution's critical path but real work);
* ``metrics``: how many metric values each tracked run wrote, checked against MLflow;
* ``observer hot path``: the cost of one observer call measured alone (thread CPU time), times
  the generations, as a share of the untracked run: the direct cost, free of machine noise.

    .venv/bin/python benchmarks/mlflow_overhead.py [--blocks 30] [--per-block 3]
        [--population 1000] [--generations 200]

Goal (issue 7): tracking adds under 2% to the evolution.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from allele.core.evolution import EvolutionConfig, EvolutionEngine
from allele.core.fitness import target_personality

TARGET = {"empathy": 0.9, "engagement": 0.8, "technical_knowledge": 0.3, "creativity": 0.6}
FITNESS = target_personality(TARGET)


def run_once(cfg: EvolutionConfig, observer: object | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this thread) of one ``run()``."""
    engine = EvolutionEngine(cfg, FITNESS, observer=observer)
    gc.collect()  # both arms start from a clean heap (a flush leaves MLflow's garbage behind)
    c0 = time.thread_time()
    t0 = time.perf_counter()
    engine.run()
    return time.perf_counter() - t0, time.thread_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument("--per-block", type=int, default=3,
                        help="untracked and tracked runs per block (the fastest of each counts)")
    parser.add_argument("--population", type=int, default=1000)
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--flush-interval", type=float, default=2.0,
                        help="the tracker's flush_interval_s (default: the library default)")
    args = parser.parse_args()
    cfg = EvolutionConfig(population_size=args.population, generations=args.generations, seed=1)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
        t0 = time.perf_counter()
        from allele.tracking.mlflow import MlflowTracker

        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        tracker = MlflowTracker(uri, "overhead", spool_path=Path(tmp) / "spool.jsonl",
                                flush_interval_s=args.flush_interval)
        startup = time.perf_counter() - t0
        client = tracker._applier.client(uri)

        run_once(cfg, None)  # warm-up, both paths
        warm = tracker.observer()
        run_once(cfg, warm)
        warm.close()
        tracker.flush()

        plain: list[tuple[float, float]] = []
        tracked: list[tuple[float, float]] = []
        block_ratios: dict[str, list[float]] = {"wall": [], "cpu": []}
        flushes: list[float] = []
        counts: list[int] = []
        for b in range(args.blocks):
            arms: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            order = (False, True) if b % 2 == 0 else (True, False)
            for _ in range(args.per_block):
                for with_tracking in order:
                    if not with_tracking:
                        arms[False].append(run_once(cfg, None))
                        continue
                    obs = tracker.observer()
                    arms[True].append(run_once(cfg, obs))
                    t1 = time.perf_counter()
                    obs.close()
                    tracker.flush()
                    flushes.append(time.perf_counter() - t1)
                    (run,) = obs.runs().values()
                    run_id = run.run_id()
                    counts.append(sum(len(client.get_metric_history(run_id, k))
                                      for k in ("best", "mean", "std", "diversity",
                                                "generation_seconds")))
            plain.extend(arms[False])
            tracked.extend(arms[True])
            for i, kind in enumerate(("wall", "cpu")):
                block_ratios[kind].append(min(x[i] for x in arms[True])
                                          / min(x[i] for x in arms[False]))
        # the hot path alone, measured in isolation: one observer call per generation
        from allele.core.observer import GenerationStats, notify

        hot = tracker.observer()
        stats = GenerationStats(0, 0.5, 0.4, 0.1, 0.2, args.population, 0.001)
        hot.on_generation("hot-path", stats)  # opens the run (once per component)
        calls = 20_000
        c0 = time.thread_time()
        for _ in range(calls):
            notify(hot, "on_generation", "hot-path", stats)
        per_call = (time.thread_time() - c0) / calls
        hot.close()
        tracker.close()

    wall_p, wall_t = [w for w, _ in plain], [w for w, _ in tracked]
    cpu_p, cpu_t = [c for _, c in plain], [c for _, c in tracked]
    med_plain, med_tracked = statistics.median(wall_p), statistics.median(wall_t)
    expected = 5 * (args.generations + 1)
    print(f"evolution: population {args.population}, {args.generations} generations, "
          f"{args.blocks} blocks of {args.per_block} untracked + {args.per_block} tracked runs")
    print(f"untracked: median {med_plain * 1e3:.1f} ms wall, "
          f"{statistics.median(cpu_p) * 1e3:.1f} ms thread CPU "
          f"(wall min {min(wall_p) * 1e3:.1f}, max {max(wall_p) * 1e3:.1f})")
    print(f"tracked:   median {med_tracked * 1e3:.1f} ms wall, "
          f"{statistics.median(cpu_t) * 1e3:.1f} ms thread CPU "
          f"(wall min {min(wall_t) * 1e3:.1f}, max {max(wall_t) * 1e3:.1f})")
    print(f"medians over all runs, noise included: wall {100 * (med_tracked / med_plain - 1):+.2f}%"
          f", thread CPU {100 * (statistics.median(cpu_t) / statistics.median(cpu_p) - 1):+.2f}%")
    print(f"flush after a tracked run (background log_batch, SQLite): median "
          f"{statistics.median(flushes) * 1e3:.0f} ms for {expected} metric values")
    print(f"tracker start-up (import MLflow, create/migrate the database): {startup:.1f} s")
    ok = all(c == expected for c in counts)
    print(f"metrics per tracked run in MLflow: {sorted(set(counts))} "
          f"(expected {expected}: {'ok' if ok else 'MISMATCH'})")
    hot_share = 100.0 * per_call * (args.generations + 1) / statistics.median(cpu_p)
    print(f"observer hot path: {per_call * 1e6:.2f} us per call = {hot_share:.2f}% of the "
          f"untracked run's CPU time")
    verdicts = {}
    for kind, label in (("cpu", "thread CPU"), ("wall", "wall")):
        med, lo, hi = median_ci(block_ratios[kind])
        verdicts[kind] = med
        print(f"overhead ({label}, median of {args.blocks} block ratios, fastest run per arm): "
              f"{100 * (med - 1):+.2f}%  (95% CI {100 * (lo - 1):+.2f}% .. {100 * (hi - 1):+.2f}%)")
    cpu_pct = 100 * (verdicts["cpu"] - 1)
    print(f"overhead: {cpu_pct:+.2f}% of the evolution thread's CPU time (goal: under 2%: "
          f"{'met' if cpu_pct < 2.0 else 'MISSED'})")


def median_ci(ratios: list[float], n_boot: int = 5000) -> tuple[float, float, float]:
    """Median of ``ratios`` and a percentile-bootstrap 95% interval of it (seeded)."""
    rng = random.Random(7)
    boots = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(n_boot))
    return (statistics.median(ratios), boots[int(0.025 * n_boot)],
            boots[int(0.975 * n_boot) - 1])


if __name__ == "__main__":
    main()
