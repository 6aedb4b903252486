"""What the untimed memory call costs a run, and whether a cell's memory is its own (issue 12).

Runs the quick seed-matrix's evolution and Kraken cells (the agent's too with ``--agent``) in
this one invocation, alternating a run without the memory call (``alloc_peak: false``) and a
run with it (the default), and prints each run's wall time and the ratio of the medians. Then
runs the evolution cell at population 50 alone and prints its ``alloc_peak_mb`` and
``peak_rss_mb`` beside the values it had inside the runs.

    PYTHONPATH=src .venv/bin/python benchmarks/measurement_cost.py --pairs 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from allele.bench.runner import Runner
from allele.bench.spec import SuiteSpec, load_suite
from allele.store import open_store

SPEC = Path(__file__).resolve().parent / "seed-matrix.yaml"
EVO50 = ("benchmark=evolution", "population_size=50", "selection=tournament")


def _suite(alloc_peak: bool, agent: bool) -> SuiteSpec:
    suite = load_suite(SPEC, preset="quick")
    benches = [b.model_copy(update={"alloc_peak": alloc_peak}) for b in suite.benchmarks
               if agent or b.target != "agent"]
    return suite.model_copy(update={"benchmarks": benches})


def _evo50(record: object) -> tuple[float, float]:
    cell = next(c for c in record.cells  # type: ignore[attr-defined]
                if c.target == "evolution" and c.params["population_size"] == 50
                and c.params["selection"] == "tournament")
    return (statistics.median(cell.values("alloc_peak_mb") or [float("nan")]),
            statistics.median(cell.values("peak_rss_mb")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--agent", action="store_true", help="include the agent cells")
    args = ap.parse_args()
    times: dict[bool, list[float]] = {False: [], True: []}
    inside: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp, open_store(f"sqlite:///{tmp}/r.db") as st:
        runner = Runner(st, workers=args.workers, environment={"benchmark": True})
        for i in range(args.pairs):
            for alloc in ((False, True) if i % 2 == 0 else (True, False)):
                summary = runner.run(_suite(alloc, args.agent))
                times[alloc].append(summary.seconds)
                print(f"run {len(times[False]) + len(times[True])}: memory call "
                      f"{'on ' if alloc else 'off'}  {summary.seconds:6.1f} s  "
                      f"({summary.executed} cells, {summary.failed} not ok)")
                if alloc:
                    inside.append(_evo50(st.load_run(summary.run_id)))
        alone = runner.run(_suite(True, False), filters=EVO50)
        alone_mem = _evo50(st.load_run(alone.run_id))
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"\nmedian run time: {off:.1f} s without the memory call, {on:.1f} s with it: "
          f"ratio {on / off:.2f}")
    print("evolution population 50, alloc_peak_mb / peak_rss_mb (MB):")
    print(f"  alone:        {alone_mem[0]:.4f} / {alone_mem[1]:.1f}")
    for n, (a, r) in enumerate(inside, 1):
        print(f"  in suite #{n}:  {a:.4f} / {r:.1f}  (alloc ratio to alone "
              f"{a / alone_mem[0]:.3f})")


if __name__ == "__main__":
    main()
