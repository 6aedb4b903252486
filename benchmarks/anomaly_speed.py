"""Throughput of the causal robust series detector against a naive per-point Python loop.

Run: ``.venv/bin/python benchmarks/anomaly_speed.py [n_points] [gaussian|student_t]``. Prints
points/s of
``score_series(method="robust")`` (vectorised rolling median/MAD) and of the per-point reference
loop computing the same statistics (timed on a shorter prefix, it is slow), and their ratio.
The goal is at least 100,000 points/s for the robust detector. The noise is Gaussian by default;
``student_t`` (Student-t(3), the same sd) keeps the spike columns on their half-t tails, which
are refitted and scored where a Gaussian column takes the cheaper normal fit.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from allele.analytics.anomaly import robust_statistics_reference, score_series


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    noise = sys.argv[2] if len(sys.argv) > 2 else "gaussian"
    if noise not in ("gaussian", "student_t"):
        raise SystemExit(f"unknown noise {noise!r}: use gaussian or student_t")
    rng = np.random.default_rng(0)
    t = np.arange(n)
    e = (rng.normal(0, 0.5, n) if noise == "gaussian"
         else rng.standard_t(3, n) * 0.5 / np.sqrt(3.0))
    y = 10 + 2 * np.sin(2 * np.pi * t / 96) + e
    y[rng.integers(n // 5, n, 50)] += 6
    score_series(y[:5000], method="robust")  # warm up imports and caches
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        score_series(y, method="robust")
        best = min(best, time.perf_counter() - t0)
    fast = n / best
    m = min(n, 20_000)
    t0 = time.perf_counter()
    robust_statistics_reference(y[:m], 48, 5, 10.0, 0.5, m // 7)
    slow = m / (time.perf_counter() - t0)
    print(f"robust score_series ({noise} noise): {n} points in {best:.3f} s = "
          f"{fast:,.0f} points/s")
    print(f"naive per-point loop: {m} points = {slow:,.0f} points/s")
    print(f"ratio: {fast / slow:.1f}x; goal >= 100,000 points/s: "
          f"{'met' if fast >= 100_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
