"""What keeping a cell's finished rounds in the store costs, against a baseline in the same run.

    .venv/bin/python benchmarks/round_keeping.py [--cells 300] [--repeat 3]

``--cells`` cheap cells (``allele.bench.targets:work``, 3 seeds, inline, a real SQLite store in
a temporary directory) run once with ``rounds: 1`` (the baseline: one write per cell) and once
with ``rounds: 3`` (two rounds a cell kept in ``cell_rounds`` before the cell is saved whole),
alternately ``--repeat`` times; the medians, their ratio and the extra time per kept round are
printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from allele.bench.runner import Runner
from allele.bench.spec import loads_suite
from allele.store import open_store


def once(rounds: int, cells: int) -> float:
    ns = list(range(1000, 1000 + cells))
    spec = loads_suite(f"name: rk\ntarget: allele.bench.targets:work\nisolation: inline\n"
                       f"seeds: 3\nrounds: {rounds}\nrepeats: 1\nwarmup: 0\ninner_loops: 1\n"
                       f"alloc_peak: false\nmatrix: {{n: {ns}}}\n")
    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"sqlite:///{d}/r.db")
        t = time.perf_counter()
        Runner(store, executor="inline", environment={"bench": "round_keeping"}).run(spec,
                                                                                   name="r")
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    times: dict[int, list[float]] = {1: [], 3: []}
    for _ in range(args.repeat):
        for rounds in (1, 3):
            times[rounds].append(once(rounds, args.cells))
    base, kept = statistics.median(times[1]), statistics.median(times[3])
    print(f"{args.cells} cells x 3 seeds, inline: rounds: 1 {base:.2f} s (baseline), rounds: 3 "
          f"{kept:.2f} s; ratio {kept / base:.2f}; "
          f"{(kept - base) / (2 * args.cells) * 1000:.2f} ms a kept round")


if __name__ == "__main__":
    main()
