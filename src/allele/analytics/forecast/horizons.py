"""Multi-horizon forecasts of a component metric (:class:`HorizonForecaster`).

It was called ``PerformancePredictor`` until that name went to the predictor of a cell's metrics
from its configuration (:mod:`allele.analytics.predict`)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from numpy.typing import ArrayLike

from allele.analytics._common import as_series, check_positive_int
from allele.analytics.forecast.auto import AutoForecaster
from allele.analytics.forecast.base import BaseForecaster
from allele.errors import AnalyticsError, NotFittedError

__all__ = ["HorizonForecaster", "HorizonPrediction"]


@dataclass(frozen=True)
class HorizonPrediction:
    """The forecast ``horizon`` steps ahead, with its interval."""

    horizon: int
    mean: float
    lower: float
    upper: float
    timestamp: float | None
    model: str


class HorizonForecaster:
    """Forecasts of a component metric at several horizons (default 1, 6 and 24 steps).

    Without an explicit ``forecaster``, an :class:`AutoForecaster` chooses the model by backtest
    at the longest horizon (seasons detected, baselines when nothing beats them).
    """

    def __init__(
        self,
        horizons: Sequence[int] = (1, 6, 24),
        level: float = 0.9,
        forecaster: BaseForecaster | None = None,
    ) -> None:
        self.horizons = tuple(horizons)
        self.level = level
        self.forecaster = forecaster

    def fit(self, y: ArrayLike, timestamps: ArrayLike | None = None) -> Self:
        """Fit the forecaster on the history of the metric."""
        if not self.horizons:
            raise AnalyticsError("horizons must not be empty")
        for h in self.horizons:
            check_positive_int(h, "horizon")
        arr = as_series(y, name="y")
        if self.forecaster is not None:
            model = copy.deepcopy(self.forecaster)
        else:
            model = AutoForecaster(horizon=max(self.horizons), level=self.level)
        self.forecaster_ = model.fit(arr, timestamps)
        return self

    def predict(self) -> list[HorizonPrediction]:
        """One :class:`HorizonPrediction` per configured horizon."""
        if not hasattr(self, "forecaster_"):
            raise NotFittedError("HorizonForecaster.predict called before fit")
        fc = self.forecaster_.predict(max(self.horizons))
        out = []
        for h in self.horizons:
            i = h - 1
            ts = None if fc.timestamps is None else float(fc.timestamps[i])
            out.append(HorizonPrediction(h, float(fc.mean[i]), float(fc.lower[i]),
                                         float(fc.upper[i]), ts, fc.model))
        return out
