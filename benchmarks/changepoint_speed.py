"""Change points of long series: the detector of ``allele.bench.changepoint`` on 5,000 runs.

Goal (issue 11): 5,000 points in under 1 s. The baseline measured in the same invocation is one
pass of the detector's own statistic over the series (``scan``: every split and segment end at
once), so the ratio says how many scans a whole detection costs; the old E-divisive strong pass
took 4.5-18.8 s for the same length.

    python benchmarks/changepoint_speed.py [--points 5000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from allele.bench.changepoint import detect_change_points, robust_scores, scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.points
    cases = {
        "flat": np.exp(0.03 * rng.standard_normal(n)),
        "two steps": np.exp(0.03 * rng.standard_normal(n)) * np.where(
            np.arange(n) >= n // 3, 1.1, 1.0) * np.where(np.arange(n) >= 2 * n // 3, 0.85, 1.0),
        "ten steps, busy runs": np.exp(0.03 * rng.standard_normal(n)
                                       + np.repeat(rng.normal(0, 0.1, 11), n // 11 + 1)[:n])
        * np.where(rng.random(n) < 0.05, 1.3, 1.0),
    }
    detect_change_points(cases["flat"])  # the null table is loaded once
    z = robust_scores(np.log(cases["flat"]))
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        scan(z, 3)
    base = (time.perf_counter() - t0) / args.repeats
    print(f"changepoint_speed: {n} points; baseline one scan {base * 1000:.1f} ms "
          "(machine shared with other jobs: figures vary)")
    for name, x in cases.items():
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            cps = detect_change_points(x)
        s = (time.perf_counter() - t0) / args.repeats
        print(f"  {name:22s} {s:.3f} s ({s / base:.0f} scans), {len(cps)} change points; "
              f"goal < 1 s: {'met' if s < 1.0 else 'MISSED'}")


if __name__ == "__main__":
    main()
