"""Exponential smoothing (simple, damped trend) and the Theta method, on the seasonally adjusted
series when seasons are given.

:class:`ExpSmoothingForecaster` is ETS(A,N,N) (simple exponential smoothing) or ETS(A,Ad,N)
(additive damped trend), fitted by statsmodels' ``ETSModel``; :class:`ThetaForecaster` is the
Theta method of Assimakopoulos and Nikolopoulos (2000) in its equivalent form, simple exponential
smoothing with a drift of half the slope of the fitted line (Hyndman and Billah, 2003). Both are
local-level models: where an ARIMA learns a long-run mean or trend and returns to it, these follow
the last level, which is what a series with breaks needs.

Intervals are analytic for the additive-error models (Hyndman et al., *Forecasting with
exponential smoothing*, 2008, table 6.1): the variance at step ``h`` is
``sigma^2 * (1 + sum_{j<h} c_j^2)`` with ``c_j = alpha`` (simple) or
``alpha + beta * (phi + ... + phi^j)`` (damped). Seasons, when given, are removed by STL (MSTL for
several) and their last cycle added back to the forecast.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from allele.analytics._common import FloatArray, check_positive_int
from allele.analytics.forecast._adjust import add_seasons, remove_seasons, season_label
from allele.analytics.forecast.base import BaseForecaster, _z
from allele.analytics.forecast.baselines import _baseline_for
from allele.analytics.forecast.checks import degenerate_reason

__all__ = ["ExpSmoothingForecaster", "ThetaForecaster"]


def _fit_ets(y: FloatArray, damped: bool) -> Any:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    with warnings.catch_warnings(), threadpool_limits(1), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if damped:
            model = ETSModel(y, error="add", trend="add", damped_trend=True)
        else:
            model = ETSModel(y, error="add")
        return model.fit(disp=False)


class _Smoother(BaseForecaster):
    """Seasonal adjustment, the minimum length, the fallback and the refusal shared by both."""

    name = ""

    def __init__(self, seasonal_periods: Sequence[int] | None = None, level: float = 0.9,
                 nonnegative: bool | None = None, min_obs: int = 10) -> None:
        super().__init__(level, nonnegative)
        self.seasonal_periods = seasonal_periods
        self.min_obs = min_obs

    def _fit(self, y: FloatArray) -> None:
        periods = sorted({check_positive_int(m, "seasonal_period", 2)
                          for m in self.seasonal_periods or ()})
        self._fallback: BaseForecaster | None = None
        self.refused_ = ()
        need = max(self.min_obs, 2 * max(periods) + 4) if periods else self.min_obs
        if np.ptp(y) == 0 or y.size < need:
            why = "constant series" if np.ptp(y) == 0 else \
                f"only {y.size} observations, {self.name} needs {need}"
            self._fallback = _baseline_for(y, max(periods) if periods else None, self.level, why)
            self.model_ = self._fallback.model_
            return
        adjusted, self._tails = remove_seasons(y, periods)
        self._smooth(adjusted)
        self.model_ = season_label(periods) + self._label()
        mean, lower, upper = self._path(max(24, 4))
        reason = degenerate_reason(adjusted, mean, lower, upper)
        if reason is not None:
            self.refused_ = (f"{self.model_}: {reason}",)
            self._fallback = _baseline_for(y, max(periods) if periods else None, self.level,
                                           f"{self.model_} refused ({reason})")
            self.model_ = self._fallback.model_

    def _predict(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        if self._fallback is not None:
            return self._fallback._predict(horizon)
        return add_seasons(self._path(horizon), self._tails)

    def _smooth(self, y: FloatArray) -> None:
        raise NotImplementedError

    def _label(self) -> str:
        raise NotImplementedError

    def _path(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        raise NotImplementedError


class ExpSmoothingForecaster(_Smoother):
    """Simple exponential smoothing (``trend=False``) or an additive damped trend
    (``trend=True``, ETS(A,Ad,N)), on the seasonally adjusted series when ``seasonal_periods``
    are given. ``params_`` holds ``alpha`` (and ``beta``, ``phi``); fewer than ``min_obs`` points
    (or two seasons plus 4) or a constant series fall back to a baseline, as ARIMA does."""

    def __init__(self, trend: bool = True, seasonal_periods: Sequence[int] | None = None,
                 level: float = 0.9, nonnegative: bool | None = None, min_obs: int = 10) -> None:
        super().__init__(seasonal_periods, level, nonnegative, min_obs)
        self.trend = trend
        self.name = "ETS"

    def _smooth(self, y: FloatArray) -> None:
        res = _fit_ets(y, self.trend)
        self._res = res
        alpha = float(res.smoothing_level)
        self.params_ = {"alpha": alpha}
        if self.trend:
            self.params_ |= {"beta": float(res.smoothing_trend), "phi": float(res.damping_trend)}
        self._sigma = float(np.sqrt(max(float(res.mse), 0.0)))

    def _label(self) -> str:
        return "ETS(A,Ad,N)" if self.trend else "ETS(A,N,N)"

    def _path(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            mean = np.asarray(self._res.forecast(horizon), dtype=np.float64)
        j = np.arange(horizon, dtype=np.float64)  # j = 0 .. h-1
        alpha = self.params_["alpha"]
        if self.trend:
            beta, phi = self.params_["beta"], self.params_["phi"]
            phis = phi * (1.0 - phi**j) / (1.0 - phi) if phi < 1.0 else j
            c = alpha + beta * phis
        else:
            c = np.full(horizon, alpha)
        c[0] = 0.0
        var = self._sigma**2 * (1.0 + np.cumsum(c**2))
        half = _z(self.level) * np.sqrt(var)
        return mean, mean - half, mean + half


class ThetaForecaster(_Smoother):
    """The Theta method: simple exponential smoothing plus a drift of half the least-squares
    slope, ``b/2 * (h - 1 + 1/alpha - (1 - alpha)^n / alpha)`` at step ``h`` (Hyndman and Billah,
    2003); the interval is that of simple exponential smoothing. On the seasonally adjusted
    series when ``seasonal_periods`` are given (the classical Theta deseasonalises too)."""

    def __init__(self, seasonal_periods: Sequence[int] | None = None, level: float = 0.9,
                 nonnegative: bool | None = None, min_obs: int = 10) -> None:
        super().__init__(seasonal_periods, level, nonnegative, min_obs)
        self.name = "Theta"

    def _smooth(self, y: FloatArray) -> None:
        res = _fit_ets(y, damped=False)
        self._res = res
        t = np.arange(y.size, dtype=np.float64)
        slope = float(np.polyfit(t, y, 1)[0])
        self.params_ = {"alpha": max(float(res.smoothing_level), 1e-6), "slope": slope}
        self._n = y.size
        self._sigma = float(np.sqrt(max(float(res.mse), 0.0)))

    def _label(self) -> str:
        return "Theta"

    def _path(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            level = np.asarray(self._res.forecast(horizon), dtype=np.float64)
        alpha, slope = self.params_["alpha"], self.params_["slope"]
        h = np.arange(1, horizon + 1, dtype=np.float64)
        mean = level + 0.5 * slope * (h - 1.0 + 1.0 / alpha - (1.0 - alpha)**self._n / alpha)
        var = self._sigma**2 * (1.0 + (h - 1.0) * alpha**2)
        half = _z(self.level) * np.sqrt(var)
        return mean, mean - half, mean + half
