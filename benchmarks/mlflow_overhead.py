"""What MLflow tracking adds to an evolution: population 1000, 200 generations, SQLite backend.

Interleaved pairs of runs in one process: a plain ``EvolutionEngine.run()`` and the same run
(same seed) with an :class:`allele.tracking.MlflowObserver` attached, writing to a SQLite MLflow
database in a temporary folder. The order inside each pair alternates. The tracker and the
database are created before the timings (MLflow's import and schema migration are a one-off
start-up cost, reported separately). Each tracked run opens its own MLflow run.

Printed:

* ``overhead``: median tracked run time / median untracked run time - 1: what tracking costs the
  evolution itself (the observer only appends to a buffer; the writer thread writes in the
  background once events are ``flush_interval_s`` old, or at the flush); also the median of the
  per-pair ratios and the ratio of the evolution thread's CPU time (``time.thread_time``, which
  other processes on a busy machine do not disturb);
* ``flush``: the median time, after a tracked run, until its metrics are durable in MLflow (the
  background writer's ``log_batch`` calls; off the evolution's critical path but real work);
* ``metrics``: how many metric values each tracked run wrote, checked against MLflow;
* ``observer hot path``: the cost of one observer call measured alone (thread CPU time), times
  the generations, as a share of the untracked run: the direct cost, free of machine noise.

    .venv/bin/python benchmarks/mlflow_overhead.py [--pairs 30] [--population 1000]
        [--generations 200]

Goal (issue 7): tracking adds under 2% to the evolution.
"""

from __future__ import annotations

import argparse
import gc
import os
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
    parser.add_argument("--pairs", type=int, default=30)
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
        flushes: list[float] = []
        counts: list[int] = []
        for i in range(args.pairs):
            order = (False, True) if i % 2 == 0 else (True, False)
            for with_tracking in order:
                if not with_tracking:
                    plain.append(run_once(cfg, None))
                    continue
                obs = tracker.observer()
                tracked.append(run_once(cfg, obs))
                t1 = time.perf_counter()
                obs.close()
                tracker.flush()
                flushes.append(time.perf_counter() - t1)
                (run,) = obs.runs().values()
                run_id = run.run_id()
                counts.append(sum(len(client.get_metric_history(run_id, k))
                                  for k in ("best", "mean", "std", "diversity",
                                            "generation_seconds")))
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
    overhead = 100.0 * (med_tracked / med_plain - 1.0)
    paired = 100.0 * (statistics.median(t / p for t, p in zip(wall_t, wall_p, strict=True)) - 1)
    cpu_overhead = 100.0 * (statistics.median(cpu_t) / statistics.median(cpu_p) - 1.0)
    expected = 5 * (args.generations + 1)
    print(f"evolution: population {args.population}, {args.generations} generations, "
          f"{args.pairs} interleaved pairs")
    print(f"untracked: median {med_plain * 1e3:.1f} ms wall, "
          f"{statistics.median(cpu_p) * 1e3:.1f} ms thread CPU "
          f"(wall min {min(wall_p) * 1e3:.1f}, max {max(wall_p) * 1e3:.1f})")
    print(f"tracked:   median {med_tracked * 1e3:.1f} ms wall, "
          f"{statistics.median(cpu_t) * 1e3:.1f} ms thread CPU "
          f"(wall min {min(wall_t) * 1e3:.1f}, max {max(wall_t) * 1e3:.1f})")
    print(f"median of per-pair wall ratios: {paired:+.2f}%; thread CPU time: "
          f"{cpu_overhead:+.2f}%")
    print(f"flush after a tracked run (background log_batch, SQLite): median "
          f"{statistics.median(flushes) * 1e3:.0f} ms for {expected} metric values")
    print(f"tracker start-up (import MLflow, create/migrate the database): {startup:.1f} s")
    ok = all(c == expected for c in counts)
    print(f"metrics per tracked run in MLflow: {sorted(set(counts))} "
          f"(expected {expected}: {'ok' if ok else 'MISMATCH'})")
    hot_share = 100.0 * per_call * (args.generations + 1) / statistics.median(cpu_p)
    print(f"observer hot path: {per_call * 1e6:.2f} us per call = {hot_share:.2f}% of the "
          f"untracked run's CPU time")
    print(f"overhead (median wall time): {overhead:+.2f}% (goal: under 2%)")


if __name__ == "__main__":
    main()
