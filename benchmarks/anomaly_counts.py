"""The series detector on what its Gaussian-minded statistics handle worst: counts, constants
with floating-point noise, and series with a trend.

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/anomaly_counts.py [--series 30]``. Prints:

* per Poisson rate, over ``--series`` i.i.d. series of 1,000 counts: false runs per 1,000
  scored points, and how many of 3 bursts per series (``+max(8, 6 sd)`` at random points after
  the learning period) were flagged;
* flagged points on 1.0 plus floating-point noise (values 1.0 give or take an ulp);
* on co2 (weekly, rising for 44 years; ``benchmarks/data``) and on synthetic series with a
  steady trend: the share of scored points flagged, and whether a trend was learned.

No anomaly is injected except the bursts, so every other flag is a false alarm. The figures do
not depend on the machine's speed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from realdata import public_series

from allele.analytics.anomaly import detect_series
from allele.analytics.synthetic import false_runs

LEARN = 150


def counts(rates: list[float], series: int) -> None:
    print(f"i.i.d. Poisson counts, {series} series of 1,000 points per rate")
    print(f"  {'rate':>5s}  {'false runs/1000':>15s}  {'bursts found':>12s}")
    for lam in rates:
        runs = 0
        found = 0
        for seed in range(series):
            rng = np.random.default_rng(seed)
            y = rng.poisson(lam, 1000).astype(float)
            runs += len(false_runs(detect_series(y).flags, []))
            z = y.copy()
            pos = rng.integers(2 * LEARN, 1000, 3)
            z[pos] += max(8.0, 6.0 * np.sqrt(lam))
            found += int(detect_series(z).flags[pos].sum())
        print(f"  {lam:5.2f}  {1000.0 * runs / (series * (1000 - LEARN)):15.2f}  "
              f"{found:5d} of {3 * series}")


def rounding() -> None:
    y = 1.0 + np.random.default_rng(0).normal(0.0, 1e-16, 300)
    det = detect_series(y)
    print(f"1.0 + ulp noise ({np.unique(y).size} distinct values, 300 points): "
          f"{int(det.flags.sum())} flagged")


def trends() -> None:
    co2 = public_series()["co2"].values
    det = detect_series(co2)
    print(f"co2 ({co2.size} points): {int(det.flags.sum())} flagged "
          f"({det.flags[LEARN:].mean():.1%} of the scored points); trend learned: "
          f"{det.trend is not None}")
    shares = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        t = np.arange(1000)
        y = 50 + 0.02 * t + 2 * np.sin(2 * np.pi * t / 48) + rng.normal(0, 0.5, 1000)
        shares.append(detect_series(y).flags[LEARN:].mean())
    print(f"20 series with a trend of 0.04 noise sd per point: {np.mean(shares):.2%} of the "
          f"scored points flagged on average, {np.max(shares):.2%} at most")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=30)
    args = ap.parse_args()
    counts([0.05, 0.2, 0.5, 2.0, 10.0], args.series)
    rounding()
    trends()


if __name__ == "__main__":
    main()
