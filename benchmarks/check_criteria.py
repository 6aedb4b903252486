"""The seed's success criteria, checked in one invocation (``make check-criteria``).

Run:  .venv/bin/python benchmarks/check_criteria.py [--repeats 5] [--seed-runs 300]

* **Observation overhead**: the paired per-call CPU overhead of a Telemetry on the evolution
  engine and on KrakenLNN streaming (``benchmarks/overhead.py``'s paired figures: one component,
  its observer switched on and off call by call, each call timed in thread CPU time, so another
  process on a busy machine cannot inflate either side). Our goal < 1 %; the seed's < 5 %.
* **Storage and retrieval**: saving a 1,000-cell run, loading it, and one cell's history over the
  seeded runs, in the SQLite store (``benchmarks/store_speed.py``'s figures; each is also shown as
  a ratio against the naive row-by-row store timed in the same invocation). Our goal <= 200 ms;
  the seed's < 1 s.

Prints one PASS/FAIL line per criterion with the measured figure, the goal and the seed's
threshold, and exits 1 when a goal is missed (the seed's thresholds are printed, not judged).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead
import store_speed

OVERHEAD_GOAL, OVERHEAD_SEED = 1.0, 5.0           # percent
STORE_GOAL_MS, STORE_SEED_MS = 200.0, 1000.0


def _line(ok: bool, what: str, figure: str, goal: str, seed: str) -> str:
    return f"{'PASS' if ok else 'FAIL'}  {what:<58} {figure:>12}   goal {goal:<9} seed {seed}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed-runs", type=int, default=300,
                        help="runs seeded into the store before the history query")
    args = parser.parse_args(argv)
    print(f"check_criteria: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}",
          flush=True)

    rows: list[tuple[bool, str]] = []
    evo = overhead.paired_evolution(args.repeats, 1000, 200)
    kraken = {chunk: overhead.paired_kraken(args.repeats, 20_000, chunk) for chunk in (1000, 100)}
    for name, pct in (("overhead: evolution (pop 1000, 200 generations)", evo),
                      *((f"overhead: kraken (20,000 steps, chunks of {c})", v)
                        for c, v in kraken.items())):
        rows.append((pct < OVERHEAD_GOAL, _line(pct < OVERHEAD_GOAL, name, f"{pct:+.3f} %",
                                                f"< {OVERHEAD_GOAL:g} %",
                                                f"< {OVERHEAD_SEED:g} %")))

    store_args = argparse.Namespace(seed_runs=args.seed_runs, repeats=args.repeats,
                                    naive_cells=50)
    with tempfile.TemporaryDirectory() as tmp:
        figures = store_speed.run_backend("sqlite", f"sqlite:///{Path(tmp) / 'r.db'}",
                                          store_args)
    for op in ("save", "load", "history"):
        f = next(f for f in figures if f.op == op)  # the headline figure of each operation
        ms = f.allele_s * 1000
        ok = ms <= STORE_GOAL_MS
        rows.append((ok, _line(ok, f"store {op}: {f.what.strip()}"[:58],
                               f"{ms:.1f} ms", f"<= {STORE_GOAL_MS:g} ms",
                               f"< {STORE_SEED_MS:g} ms")
                     + f"   ({f.naive_s / f.allele_s:.1f}x faster than the naive store)"))

    print("\nthe seed's success criteria")
    for _, line in rows:
        print(line)
    failed = sum(not ok for ok, _ in rows)
    print(f"\n{len(rows) - failed} of {len(rows)} goals met")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
