"""The cost of AutoForecaster's model choice on real series of a few hundred points.

    PYTHONPATH=src .venv/bin/python benchmarks/forecast_speed.py [--repeats 3]

For each public series of the real-data fixture under 400 points (``benchmarks/realdata.py``),
the points before its held-out window (``analytics_real_forecast.HORIZON``): the CPU seconds of
``AutoForecaster(horizon=h).fit(train).predict(h)`` and, in the same invocation, of one
``ARIMAForecaster().fit(train)`` (a KPSS test and an AIC search over nine orders), the reference
unit: the ratio says how many ARIMA order searches a model choice costs, which a busy shared
machine changes less than the seconds. Medians over ``--repeats`` runs; CPU time of this
process (BLAS is limited to one thread by the forecasters).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from analytics_real_forecast import HORIZON
from realdata import public_series

from allele.analytics.forecast import ARIMAForecaster, AutoForecaster


def _cpu(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    series = public_series()
    AutoForecaster(horizon=8).fit(series["nile"].values[:60])  # imports and first-call costs
    print(f"{'series':14s} {'n':>4s} {'h':>3s} {'folds':>5s} {'auto s':>7s} {'ARIMA s':>8s} "
          f"{'ratio':>6s}")
    ratios = []
    for name, h in HORIZON.items():
        y = np.asarray(series[name].values, dtype=np.float64)
        if y.size >= 400:
            continue
        train = y[:-h]
        folds = AutoForecaster(horizon=h).fit(train).folds_
        auto = _cpu(lambda t=train, hh=h: AutoForecaster(horizon=hh).fit(t).predict(hh),
                    args.repeats)
        ref = _cpu(lambda t=train: ARIMAForecaster().fit(t), args.repeats)
        ratios.append(auto / ref)
        print(f"{name:14s} {train.size:4d} {h:3d} {folds:5d} {auto:7.2f} {ref:8.2f} "
              f"{auto / ref:6.2f}")
    print(f"median: a model choice costs {statistics.median(ratios):.2f} ARIMA order searches")


if __name__ == "__main__":
    main()
