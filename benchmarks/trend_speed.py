"""The cost of the trend step of ``allele analyze forecast`` (Theil-Sen slope and Mann-Kendall
test) against the former pairwise implementation, on long series.

    PYTHONPATH=src .venv/bin/python benchmarks/trend_speed.py [--old-n 5000] [--repeats 3]

The former path is ``scipy.stats.theilslopes`` (n x n matrices of differences: O(n^2) memory, 7
TiB at a million points) and the Mann-Kendall S summed over every lag (O(n^2) time); the
current one is :func:`allele.analytics.trend.theil_sen_trend`: exact slopes up to 2,000 points, a
seeded sample of 2,000,000 pairs beyond, and S from :func:`scipy.stats.kendalltau` (merge sort,
O(n log n)). For each length: median CPU seconds over ``--repeats`` runs and the peak of
Python-allocated memory (tracemalloc) of one run. The old path runs only at ``--old-n`` (it cannot
at a million points); the ratio is at that length.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from scipy import stats

from allele.analytics.trend import theil_sen_trend


def _old_trend(y: np.ndarray) -> tuple[float, float]:
    """The former trend step: scipy's Theil-Sen and the lag-loop Mann-Kendall S."""
    res = stats.theilslopes(y, np.arange(y.size, dtype=np.float64), alpha=0.95)
    s = 0.0
    for k in range(1, y.size):
        s += float(np.sum(np.sign(y[k:] - y[:-k])))
    return float(res.slope), s


def _measure(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median CPU seconds, peak traced MB of one run)."""
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return statistics.median(times), peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-n", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'n':>9s} {'path':5s} {'CPU s':>8s} {'peak MB':>8s}")
    for n in (args.old_n, 20_000, 1_000_000):
        y = 100 + 1e-4 * np.arange(n) + rng.normal(0, 1, n)
        new_s, new_mb = _measure(lambda y=y: theil_sen_trend(y), args.repeats)
        print(f"{n:9,d} {'new':5s} {new_s:8.2f} {new_mb:8.0f}")
        if n == args.old_n:
            old_s, old_mb = _measure(lambda y=y: _old_trend(y), 1)
            print(f"{n:9,d} {'old':5s} {old_s:8.2f} {old_mb:8.0f}")
            ratio = old_s / new_s if new_s > 0 else math.inf
            print(f"at {n:,} points the old path costs {ratio:.0f} times the CPU and "
                  f"{old_mb / new_mb:.0f} times the memory")


if __name__ == "__main__":
    main()
