"""The baselines every model must beat, and the documented fallback to them.

:class:`NaiveForecaster` (random walk) and :class:`SeasonalNaiveForecaster` (last season
repeated); :func:`_baseline_for` is the fallback ARIMA and the LSTM use on a constant or too
short series.
"""

from __future__ import annotations

import numpy as np

from allele.analytics._common import FloatArray, check_positive_int
from allele.analytics.forecast.base import BaseForecaster, _z

__all__ = ["DriftForecaster", "NaiveForecaster", "SeasonalNaiveForecaster"]


class NaiveForecaster(BaseForecaster):
    """Random-walk baseline: every future value equals the last one.

    The interval widens with ``sqrt(h)`` from the spread of one-step changes (zero for a constant
    series, so the interval collapses onto the mean).
    """

    def __init__(self, level: float = 0.9, nonnegative: bool | None = None) -> None:
        super().__init__(level, nonnegative)

    def _fit(self, y: FloatArray) -> None:
        self._last = float(y[-1])
        diffs = np.diff(y)
        self._sigma = float(np.sqrt(np.mean(diffs**2))) if diffs.size else 0.0
        self.model_ = "naive"

    def _predict(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        mean = np.full(horizon, self._last)
        width = _z(self.level) * self._sigma * np.sqrt(np.arange(1, horizon + 1))
        return mean, mean - width, mean + width


class SeasonalNaiveForecaster(BaseForecaster):
    """Seasonal baseline: each future value repeats the value one season (``period`` steps) earlier.

    Fallback: with fewer than ``period`` observations it forecasts like :class:`NaiveForecaster`
    and ``model_`` says ``"naive (fallback: shorter than one season)"``.
    """

    def __init__(self, period: int, level: float = 0.9, nonnegative: bool | None = None) -> None:
        super().__init__(level, nonnegative)
        self.period = period

    def _fit(self, y: FloatArray) -> None:
        m = check_positive_int(self.period, "period")
        if y.size < m or m == 1:
            self._season = y[-1:].copy()
            diffs = np.diff(y)
            self.model_ = "naive" if m == 1 else "naive (fallback: shorter than one season)"
        else:
            self._season = y[-m:].copy()
            diffs = y[m:] - y[:-m]
            self.model_ = f"seasonal-naive[{m}]"
        self._sigma = float(np.sqrt(np.mean(diffs**2))) if diffs.size else 0.0

    def _predict(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        m = self._season.size
        idx = np.arange(horizon)
        mean = self._season[idx % m].astype(np.float64)
        k = idx // m + 1  # how many seasons ahead
        width = _z(self.level) * self._sigma * np.sqrt(k)
        return mean, mean - width, mean + width


class DriftForecaster(BaseForecaster):
    """Random walk with drift: the line through the first and the last value, extended.

    The interval is that of a random walk with an estimated drift,
    ``z * sigma * sqrt(h * (1 + h / (n - 1)))``, with ``sigma`` the spread of the one-step changes
    around the drift (Hyndman and Athanasopoulos, *Forecasting: principles and practice*, 5.5).
    """

    def __init__(self, level: float = 0.9, nonnegative: bool | None = None) -> None:
        super().__init__(level, nonnegative)

    def _fit(self, y: FloatArray) -> None:
        self._last = float(y[-1])
        self._n = int(y.size)
        diffs = np.diff(y)
        self._slope = float(np.mean(diffs)) if diffs.size else 0.0
        resid = diffs - self._slope
        self._sigma = float(np.sqrt(np.sum(resid**2) / max(diffs.size - 1, 1))) if diffs.size \
            else 0.0
        self.model_ = "drift"

    def _predict(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        h = np.arange(1, horizon + 1, dtype=np.float64)
        mean = self._last + self._slope * h
        width = _z(self.level) * self._sigma * np.sqrt(h * (1.0 + h / max(self._n - 1, 1)))
        return mean, mean - width, mean + width


def _baseline_for(y: FloatArray, period: int | None, level: float, reason: str) -> BaseForecaster:
    """The documented fallback model, already fitted, with ``model_`` naming the reason."""
    if period is not None and period > 1 and y.size >= period and np.ptp(y) > 0:
        base: BaseForecaster = SeasonalNaiveForecaster(period, level=level)
        base.fit(y)
        base.model_ = f"{base.model_} (fallback: {reason})"
    else:
        base = NaiveForecaster(level=level)
        base.fit(y)
        base.model_ = f"naive (fallback: {reason})"
    return base
