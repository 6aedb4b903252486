"""Forecasts on real series: the model AutoForecaster chooses against the best seasonal-naive.

    PYTHONPATH=src .venv/bin/python benchmarks/analytics_real_forecast.py [--forecast-only NAME ...]
        [--forecast-back K]
    PYTHONPATH=src .venv/bin/python benchmarks/analytics_real.py --task forecast

The series are the public ones of the real-data fixture (``benchmarks/realdata.py``: co2,
elec_equip, sunspots, nile, macrodata's realgdp/unemp/infl and the hourly Victoria electricity
demand). For each, the last ``horizon`` points (one season, or 10 years for nile, 8 quarters for
macrodata) are a final held-out window that nothing sees before the score: the forecaster
chooses its model by backtest on the points before it, then forecasts the window once. The
chance baselines, fitted on the same points: seasonal-naive at every season the series is known
to have and at every season the detector found, and naive (seasonal-naive with period 1); "best
SN" is the best of them on the held-out window, in hindsight; "bt base" is the baseline the
backtest preferred (no hindsight), scored on the same window; "cover" is the share of the
window inside the 90% interval; "s" the seconds to choose, fit and forecast. MASE is scaled by the in-sample
seasonal-naive error at the series' shortest known season (1 without one), the same for all.

The harness (``benchmarks/analytics_real.py --task forecast``) imports it: :func:`run` prints
the table and returns one :class:`realdata.Row` per series (the chosen model's MASE, with the
best seasonal-naive's as its chance figure); :func:`results` gives the full dicts.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from realdata import RealSeries, Row, public_series

from allele.analytics.forecast import (
    AutoForecaster,
    DriftForecaster,
    NaiveForecaster,
    SeasonalNaiveForecaster,
    mase,
)

HORIZON = {"co2": 52, "elec_equip": 12, "sunspots": 11, "nile": 10, "macro_realgdp": 8,
           "macro_unemp": 8, "macro_infl": 8, "elec_vic_hourly": 168}


def evaluate(series: RealSeries, horizon: int, folds: int | None = None) -> dict[str, Any]:
    """Fit on all but the last ``horizon`` points, score the forecast of those against the
    baselines fitted on the same points."""
    y = np.asarray(series.values, dtype=np.float64)
    train, test = y[:-horizon], y[-horizon:]
    scale_m = min(series.seasons) if series.seasons else 1
    t0 = time.perf_counter()
    auto = AutoForecaster(horizon=horizon, folds=folds,
                          nonnegative=series.nonnegative or None).fit(train)
    fc = auto.predict(horizon)
    seconds = time.perf_counter() - t0
    seasons = sorted({1, *series.seasons, *auto.periods_})
    sn: dict[str, float] = {}
    for m in seasons:
        if m > train.size:
            continue
        base = NaiveForecaster() if m == 1 else SeasonalNaiveForecaster(m)
        name = "naive" if m == 1 else f"SN[{m}]"
        sn[name] = mase(test, base.fit(train).predict(horizon).mean, train, scale_m)
    best_sn = min(sn, key=lambda k: sn[k])
    drift = mase(test, DriftForecaster().fit(train).predict(horizon).mean, train, scale_m)
    chosen = mase(test, fc.mean, train, scale_m)
    # The baseline the backtest itself preferred (no hindsight).
    bname = auto.baseline_
    bmodel = (NaiveForecaster() if bname == "naive" else DriftForecaster() if bname == "drift"
              else SeasonalNaiveForecaster(int(bname.split("[")[1].rstrip("]"))))
    bt_base = mase(test, bmodel.fit(train).predict(horizon).mean, train, scale_m)
    inside = float(np.mean((test >= fc.lower) & (test <= fc.upper)))
    return {"series": series.name, "n": int(y.size), "horizon": horizon,
            "known_seasons": list(series.seasons), "found_seasons": list(auto.periods_),
            "model": fc.model, "refused": list(fc.refused), "mase": chosen,
            "best_sn": best_sn, "best_sn_mase": sn[best_sn], "sn": sn, "drift_mase": drift,
            "backtest_baseline": bname, "backtest_baseline_mase": bt_base,
            "backtest_scores": dict(auto.scores_), "coverage": inside, "level": fc.level,
            "ok": chosen <= sn[best_sn], "seconds": seconds}


def results(only: list[str] | None = None, back: int = 0) -> list[dict[str, Any]]:
    """One result per public series of the fixture (or those named in ``only``).

    ``back=k`` scores the window that ends ``k`` horizons before the end instead (the points
    after it are dropped): a check that the choice rule holds on earlier windows too, not only
    on the final one that the acceptance of issue 14 names."""
    series = public_series()
    names = [n for n in HORIZON if n in series and (not only or n in only)]
    out = []
    for n in names:
        s = series[n]
        if back:
            s = replace(s, values=s.values[:s.values.size - back * HORIZON[n]])
        out.append(evaluate(s, HORIZON[n]))
    return out


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The harness' options for this task."""
    ap.add_argument("--forecast-only", nargs="*", default=None, metavar="SERIES",
                    help="forecast task: only these series")
    ap.add_argument("--forecast-back", type=int, default=0, metavar="K",
                    help="forecast task: score the window ending K horizons before the end")


def run(args: argparse.Namespace | None = None) -> list[Row]:
    """Print the table; one Row per series: the chosen model's held-out MASE beside the best
    seasonal-naive's (in hindsight)."""
    rows = results(getattr(args, "forecast_only", None), getattr(args, "forecast_back", 0))
    print(f"{'series':16s} {'n':>5s} {'h':>4s} {'seasons':>9s} {'chosen model':44s} "
          f"{'MASE':>6s} {'best SN':>9s} {'MASE':>6s} {'drift':>6s} {'bt base':>8s} {'cover':>5s} "
          f"{'s':>5s} ok")
    for r in rows:
        found = ",".join(map(str, r["found_seasons"])) or "-"
        print(f"{r['series']:16s} {r['n']:5d} {r['horizon']:4d} {found:>9s} {r['model'][:44]:44s} "
              f"{r['mase']:6.3f} {r['best_sn']:>9s} {r['best_sn_mase']:6.3f} "
              f"{r['drift_mase']:6.3f} {r['backtest_baseline_mase']:8.3f} {r['coverage']:5.2f} "
              f"{r['seconds']:5.1f} {'yes' if r['ok'] else 'NO'}")
        for why in r["refused"]:
            print(f"{'':16s} refused: {why}")
    wins = sum(r["ok"] for r in rows)
    print(f"chosen model at most the best seasonal-naive (in hindsight) on {wins} of {len(rows)} "
          f"held-out windows; {sum(r['seconds'] for r in rows):.0f} s\n")
    return [Row("forecast", r["series"], "held-out MASE", r["mase"], r["best_sn_mase"],
                f"{r['model']} vs {r['best_sn']}") for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    run(ap.parse_args())


if __name__ == "__main__":
    main()
