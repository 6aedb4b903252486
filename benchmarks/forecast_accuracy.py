"""Forecast accuracy against the seasonal-naive baseline, evaluated on the same folds.

    .venv/bin/python benchmarks/forecast_accuracy.py [--seeds 5] [--lstm]

Series: ``allele.analytics.synthetic.trend_season_series`` (trend plus a period-24 season plus
noise, 240 points). Rolling-origin backtest, 3 folds of 24 steps; ARIMA's order chosen by AIC
(the forecaster's default). Prints MASE and sMAPE of the model and of seasonal-naive per seed,
and the median MASE ratio (model / seasonal-naive; below 1 beats the baseline). The baseline's
period is the one the backtest finds for the model (a model without a season is judged against
plain naive, period 1). ``--lstm`` adds
the LSTM forecaster (needs the ``lstm`` extra, PyTorch).
"""

from __future__ import annotations

import argparse
import statistics
import time

from allele.analytics.forecast import ARIMAForecaster, BaseForecaster, backtest
from allele.analytics.synthetic import trend_season_series


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--lstm", action="store_true")
    args = ap.parse_args()
    models: list[tuple[str, type[BaseForecaster], dict[str, object]]] = [
        ("arima", ARIMAForecaster, {"seasonal_period": 24})]
    if args.lstm:
        from allele.analytics.forecast import LSTMForecaster
        models.append(("lstm", LSTMForecaster, {"seed": 0}))
    print(f"seed  {'model':40s}  period    MASE  naive MASE  ratio   sMAPE  naive sMAPE")
    for label, cls, kwargs in models:
        ratios = []
        t0 = time.perf_counter()
        for seed in range(args.seeds):
            y = trend_season_series(n=240, period=24, slope=0.05, seed=seed)
            res = backtest(cls(**kwargs), y, horizon=24, folds=3)  # type: ignore[arg-type]
            ratios.append(res.relative_mase)
            print(f"{seed:4d}  {res.model[:40]:40s}  {res.period:6d}  {res.mase:6.3f}  "
                  f"{res.baseline_mase:10.3f}  {res.relative_mase:5.2f}  {res.smape:6.2f}  "
                  f"{res.baseline_smape:11.2f}")
        print(f"{label}: median MASE ratio {statistics.median(ratios):.2f} "
              f"(< 1 beats seasonal-naive; {sum(r < 1 for r in ratios)}/{len(ratios)} seeds), "
              f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
