"""Verdicts on this real machine, with a background CPU hog that starts and stops at random.

A small CPU-bound spec (3 cells of a pure-Python loop of 10-25 ms, 4 seeds x 25 repeats: 100
pairs a cell, in ``allele bench ab``'s default rounds, one per pair) lives in a throw-away git
repository. While a hog process spins one core for
random spells (1-6 s on, 1-6 s off, seeded), the script runs

1. ``--pairs`` A/A sessions (``allele bench ab`` of HEAD against the unchanged working tree):
   every regressed or improved row is a false verdict; goal: at most 1 pair of 10 with any;
2. ``--pairs`` A/B sessions with 10% more work in one cell of the working tree: goal: the
   slowed cell found (regressed in wall or CPU time) in at least 9 of 10, no other cell
   flagged.

The noise it ran in is printed as the baseline measured in the same invocation: the per-pair
spread of CPU and wall time in the A/A sessions, and the load average before and after.

    python benchmarks/aa_real.py [--pairs 10] [--rounds N] [--seed 0] [--keep DIR]

``--keep DIR`` keeps the store (``DIR/results.db``, sessions ``aa-K`` and ``ab-K``) for a look
at the samples afterwards.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from allele.bench.ab import ROUND_STRIDE, AbSession, auto_rounds
from allele.bench.compare import Comparison, compare_runs
from allele.bench.spec import load_suite
from allele.store import ResultStore, open_store

TARGET = textwrap.dedent('''
    EXTRA = {}


    def work(params, seed):
        n = int(int(params["n"]) * EXTRA.get(int(params["n"]), 1.0))
        acc = seed
        for i in range(n):
            acc = (acc * 1103515245 + i) & 0xFFFFFFFF
        return {"checksum": float(seed)}
''')
SPEC = textwrap.dedent('''
    name: aa-real
    target: aatarget:work
    seeds: 4
    repeats: 25
    matrix: {n: [100000, 150000, 200000]}
''')
SLOWED = 150000

HOG = textwrap.dedent('''
    import random, sys, time
    rng = random.Random(int(sys.argv[1]))
    while True:
        end = time.monotonic() + rng.uniform(1, 6)
        while time.monotonic() < end:
            pass
        time.sleep(rng.uniform(1, 6))
''')


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def make_repo(root: Path) -> Path:
    repo = root / "proj"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "aa@example.org")
    _git(repo, "config", "user.name", "aa")
    (repo / "aatarget.py").write_text(TARGET)
    (repo / "spec.yaml").write_text(SPEC)
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "base")
    return repo


def session(store: ResultStore, repo: Path, name: str, rounds: int | None,
            seed: int) -> Comparison:
    suite = load_suite(repo / "spec.yaml")
    result = AbSession(store, suite, base="HEAD", rounds=rounds, seed=seed, cwd=repo,
                       name=name).run()
    return compare_runs(store.load_run(result.base_run), store.load_run(result.head_run))


def flagged(comp: Comparison) -> list[tuple[int, str]]:
    return [(int(r.params["n"]), r.metric) for r in comp.rows
            if r.verdict in ("regressed", "improved") and r.estimate.design != "deterministic"]


def pair_spread(store: ResultStore, comps: list[Comparison]) -> dict[str, float]:
    """Per-pair sd of log HEAD/BASE over the A/A sessions, per metric: the noise the sessions
    ran in."""
    out: dict[str, list[float]] = {"cpu_user_s": [], "wall_s": []}
    for comp in comps:
        base = store.load_run(comp.base.id)
        head = store.load_run(comp.head.id)
        for cb in base.cells:
            ch = head.cell(cb.key)
            if ch is None:
                continue
            for metric in out:
                b, h = cb.keyed(metric), ch.keyed(metric)
                out[metric] += [math.log(h[k] / b[k]) for k in b if k in h and b[k] > 0
                                and h[k] > 0]
    return {m: float(np.std(v)) for m, v in out.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of each session (default: allele bench ab's, one per pair)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the store in this directory (results.db)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aa-real-") as tmp:
        repo = make_repo(Path(tmp))
        hog = subprocess.Popen([sys.executable, "-c", HOG, str(args.seed)])
        where = Path(tmp) if args.keep is None else args.keep
        where.mkdir(parents=True, exist_ok=True)
        try:
            with open_store(f"sqlite:///{where}/results.db") as store:
                rounds = args.rounds or auto_rounds(load_suite(repo / "spec.yaml"))
                aa = [session(store, repo, f"aa-{k}", rounds, rng.randrange(1 << 30))
                      for k in range(args.pairs)]
                (repo / "aatarget.py").write_text(TARGET + f"\nEXTRA[{SLOWED}] = 1.10\n")
                ab = [session(store, repo, f"ab-{k}", rounds, rng.randrange(1 << 30))
                      for k in range(args.pairs)]
                noise = pair_spread(store, aa)
        finally:
            hog.kill()
            hog.wait()
    load1 = os.getloadavg()
    false_pairs = sum(bool(flagged(c)) for c in aa)
    found = sum(any(r.params["n"] == SLOWED and r.metric in ("wall_s", "cpu_user_s")
                    and r.verdict == "regressed" for r in c.rows) for c in ab)
    others = sum(any(n != SLOWED for n, _ in flagged(c)) for c in ab)
    print(f"aa_real: {args.pairs} A/A and {args.pairs} A/B sessions, 3 cells x 100 pairs, "
          f"{rounds} rounds (round stride {ROUND_STRIDE}), random CPU hog on one core; "
          f"{time.perf_counter() - t0:.0f} s")
    print("  baseline noise (same invocation): one pair differs by sd "
          + ", ".join(f"{v:.1%} in {m}" for m, v in noise.items())
          + f"; load average {load0[0]:.2f} before, {load1[0]:.2f} after, "
          f"{os.cpu_count()} CPUs")
    print(f"  A/A pairs with any false verdict: {false_pairs} of {args.pairs} (goal <= 1)")
    for c in aa:
        if flagged(c):
            print(f"    {c.head.name}: {flagged(c)}")
    print(f"  A/B: injected +10% found in {found} of {args.pairs} (goal >= 9); sessions with "
          f"another cell flagged: {others}")
    for c in ab:
        row = next(r for r in c.rows if r.params["n"] == SLOWED and r.metric == "cpu_user_s")
        e = row.estimate
        print(f"    {c.head.name}: cpu_user_s {e.ratio - 1:+.1%} [{e.ci_low - 1:+.1%}, "
              f"{e.ci_high - 1:+.1%}] {row.verdict}; flagged {flagged(c)}")


if __name__ == "__main__":
    main()
