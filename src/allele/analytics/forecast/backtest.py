"""Evaluation: MASE, sMAPE and the rolling-origin :func:`backtest` against seasonal-naive."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from allele.analytics._common import as_series, check_positive_int
from allele.analytics._season import seasonal_period
from allele.analytics.forecast.base import BaseForecaster
from allele.analytics.forecast.baselines import SeasonalNaiveForecaster
from allele.errors import AnalyticsError

__all__ = ["BacktestResult", "backtest", "mase", "smape"]


def mase(actual: ArrayLike, predicted: ArrayLike, train: ArrayLike, period: int = 1) -> float:
    """Mean absolute scaled error: forecast MAE over the in-sample seasonal-naive MAE of ``train``.

    A perfectly flat training set gives 0 for a perfect forecast and ``inf`` otherwise.
    """
    a = as_series(actual, name="actual")
    p = as_series(predicted, name="predicted")
    t = as_series(train, name="train", min_length=2)
    m = period if t.size > period else 1
    scale = float(np.mean(np.abs(t[m:] - t[:-m])))
    mae = float(np.mean(np.abs(a - p)))
    if scale == 0.0:
        return 0.0 if mae == 0.0 else math.inf
    return mae / scale


def smape(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Symmetric MAPE in percent (0..200); points where both values are zero count as 0."""
    a = as_series(actual, name="actual")
    p = as_series(predicted, name="predicted")
    denom = np.abs(a) + np.abs(p)
    ratio = np.divide(2.0 * np.abs(a - p), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(100.0 * np.mean(ratio))


@dataclass(frozen=True)
class BacktestResult:
    """Rolling-origin evaluation of one forecaster against the seasonal-naive baseline."""

    model: str
    horizon: int
    folds: int
    period: int
    mase: float
    smape: float
    baseline_mase: float
    baseline_smape: float
    fold_mase: tuple[float, ...] = field(default=())
    fold_smape: tuple[float, ...] = field(default=())

    @property
    def relative_mase(self) -> float:
        """Model MASE over baseline MASE (< 1 means better than seasonal-naive)."""
        if self.baseline_mase == 0:
            return 1.0 if self.mase == 0 else math.inf
        return self.mase / self.baseline_mase

    @property
    def beats_baseline(self) -> bool:
        """Whether the model's MASE is strictly below the seasonal-naive MASE."""
        return self.mase < self.baseline_mase

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "model": self.model, "horizon": self.horizon, "folds": self.folds,
            "period": self.period, "mase": self.mase, "smape": self.smape,
            "baseline_mase": self.baseline_mase, "baseline_smape": self.baseline_smape,
            "relative_mase": self.relative_mase,
        }


def backtest(
    forecaster: BaseForecaster,
    y: ArrayLike,
    horizon: int,
    folds: int,
    period: int | None = None,
) -> BacktestResult:
    """Rolling-origin backtest: ``folds`` origins, each forecasting the next ``horizon`` points.

    Fold ``i`` trains on everything before ``n - (folds - i) * horizon`` and is scored on the next
    ``horizon`` points. The forecaster is deep-copied per fold (the caller's object is untouched).
    ``period`` is the season of the seasonal-naive baseline and of the MASE scale. Default: the
    forecaster's ``seasonal_period`` or ``period`` attribute; for a model that declares none
    (the LSTM), the season detected in the points before the first origin, else 1. So every
    model faces the same seasonal-naive baseline on a seasonal series. Reported MASE/sMAPE are the
    means over folds; ``model`` is the model used in the last fold.
    """
    arr = as_series(y, name="y")
    h = check_positive_int(horizon, "horizon")
    k = check_positive_int(folds, "folds")
    first_origin = arr.size - k * h
    if period is None:
        period = (getattr(forecaster, "seasonal_period", None)
                  or getattr(forecaster, "period", None))
        if period is None and first_origin >= 8:
            period = seasonal_period(arr[:first_origin])
    m = check_positive_int(int(period or 1), "period")
    if first_origin < 2:
        raise AnalyticsError(
            f"series of {arr.size} points is too short for {k} folds of horizon {h}")
    f_mase: list[float] = []
    f_smape: list[float] = []
    b_mase: list[float] = []
    b_smape: list[float] = []
    model_name = ""
    for i in range(k):
        origin = first_origin + i * h
        train, test = arr[:origin], arr[origin:origin + h]
        model = copy.deepcopy(forecaster)
        pred = model.fit(train).predict(h).mean
        model_name = model.model_
        base = SeasonalNaiveForecaster(m).fit(train).predict(h).mean
        f_mase.append(mase(test, pred, train, m))
        f_smape.append(smape(test, pred))
        b_mase.append(mase(test, base, train, m))
        b_smape.append(smape(test, base))
    return BacktestResult(
        model=model_name, horizon=h, folds=k, period=m,
        mase=float(np.mean(f_mase)), smape=float(np.mean(f_smape)),
        baseline_mase=float(np.mean(b_mase)), baseline_smape=float(np.mean(b_smape)),
        fold_mase=tuple(f_mase), fold_smape=tuple(f_smape),
    )
