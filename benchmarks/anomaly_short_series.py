"""Spike detection and false alarms on short series, where the learning pool is small.

A benchmark history of 100 runs learns on 50 points; the spike columns' pools then hold 24
values, 12 on each side of the centre, and the half-t tail's degrees of freedom are barely
known. Two tables:

* spikes found: Gaussian noise (sd 1), ``--series`` series per cell, one spike of +6, +10 or
  +20 sd two thirds of the way into the scored part, learning half the series (150 at 400);
* false runs per 1,000 scored points on clean noise of several tails (Gaussian, Student-t(3),
  Student-t(1.5), Cauchy), the same lengths.

    PYTHONPATH=src .venv/bin/python benchmarks/anomaly_short_series.py [--series 20] [--clean 100]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from allele.analytics.anomaly import detect_series
from allele.analytics.synthetic import evaluate_events

SIZES = ((60, 30), (100, 50), (200, 100), (400, 150))
NOISES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "Gaussian": lambda r, n: r.normal(size=n),
    "Student-t(3)": lambda r, n: r.standard_t(3, n),
    "Student-t(1.5)": lambda r, n: r.standard_t(1.5, n),
    "Cauchy": lambda r, n: r.standard_cauchy(n),
}


def spikes_found(series: int) -> None:
    rng = np.random.default_rng(1)
    print(f"Gaussian spikes found (of {series} series per cell; median score in brackets)")
    print(f"  {'n, learning':>12s}  {'+6 sd':>12s}  {'+10 sd':>12s}  {'+20 sd':>12s}")
    for n, learn in SIZES:
        cells = []
        for mag in (6.0, 10.0, 20.0):
            hit, scores = 0, []
            for _ in range(series):
                y = 10.0 + rng.normal(size=n)
                k = learn + (n - learn) * 2 // 3
                y[k] += mag
                det = detect_series(y, learn=learn)
                hit += bool(det.flags[k])
                scores.append(det.scores[k])
            cells.append(f"{hit:3d} ({np.median(scores):.2f})")
        print(f"  {f'{n}, {learn}':>12s}  " + "  ".join(f"{c:>12s}" for c in cells))


def clean_false_runs(series: int) -> None:
    print(f"false runs per 1,000 scored points on clean series ({series} per cell)")
    print(f"  {'noise':>15s}  " + "  ".join(f"{f'n={n}':>7s}" for n, _ in SIZES))
    for name, draw in NOISES.items():
        cells = []
        for n, learn in SIZES:
            rng = np.random.default_rng(5)
            runs = 0
            for _ in range(series):
                runs += evaluate_events(detect_series(10.0 + draw(rng, n), learn=learn).flags,
                                        []).runs
            cells.append(1000.0 * runs / (series * (n - learn)))
        print(f"  {name:>15s}  " + "  ".join(f"{c:7.2f}" for c in cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=20, help="spiked series per cell")
    ap.add_argument("--clean", type=int, default=100, help="clean series per cell")
    args = ap.parse_args()
    t0 = time.perf_counter()
    spikes_found(args.series)
    clean_false_runs(args.clean)
    print(f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
