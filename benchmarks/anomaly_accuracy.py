"""Precision / recall / F1 per anomaly kind on the labelled synthetic benchmark.

Run: ``.venv/bin/python benchmarks/anomaly_accuracy.py [n_series_per_kind] [methods...]``
(default 8 series per kind, methods robust and ensemble). The series, the anomaly kinds and the
event-level matching rule are described in :mod:`allele.analytics.synthetic`.
"""

from __future__ import annotations

import sys
import time

from allele.analytics.anomaly import detect_series
from allele.analytics.synthetic import ANOMALY_KINDS, anomaly_benchmark, benchmark_table


def main() -> None:
    n_series = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    methods = sys.argv[2:] or ["robust", "ensemble"]
    series = anomaly_benchmark(n_series=n_series, seed=0)
    print(f"{n_series} series per kind, 1000 points each, period 48, noise sigma 0.5, "
          "tolerance 3 points")
    print(f"{'method':10s} {'kind':12s} {'events':>6s} {'detected':>8s} {'runs':>5s} "
          f"{'precision':>9s} {'recall':>6s} {'F1':>5s}")
    for method in methods:
        t0 = time.perf_counter()
        table = benchmark_table(
            lambda v, m=method: detect_series(v, method=m).flags, series)  # type: ignore[misc]
        elapsed = time.perf_counter() - t0
        for kind in ANOMALY_KINDS:
            sc = table[kind]
            print(f"{method:10s} {kind:12s} {sc.events:6d} {sc.detected:8d} {sc.runs:5d} "
                  f"{sc.precision:9.2f} {sc.recall:6.2f} {sc.f1:5.2f}")
        print(f"{method:10s} ({elapsed:.1f} s)")


if __name__ == "__main__":
    main()
