"""Forecasting of metric series, with one API for every model.

Every forecaster takes its configuration in ``__init__``, learns in :meth:`BaseForecaster.fit`
(``fit(y, timestamps=None)``) and answers :meth:`BaseForecaster.predict` (``predict(horizon)``)
with a :class:`Forecast`: the mean path and a prediction interval at the forecaster's ``level``.
After ``fit`` the attribute ``model_`` names the model that was actually used, which matters
because of the documented fallbacks:

* An empty series or one with NaN/inf raises :class:`~allele.errors.AnalyticsError`.
* A constant series, or one too short for the requested model, is forecast by a baseline instead
  (:class:`NaiveForecaster`, or :class:`SeasonalNaiveForecaster` when at least one season is
  available). ``model_`` and :attr:`Forecast.model` then say e.g.
  ``"naive (fallback: constant series)"``. No forecaster ever crashes on short or constant input.

Models: :class:`NaiveForecaster`, :class:`SeasonalNaiveForecaster` (baselines,
:mod:`~allele.analytics.forecast.baselines`), :class:`ARIMAForecaster` (statsmodels, order chosen
by AIC over a small grid when not given, seasonal when a period is given;
:mod:`~allele.analytics.forecast.arima`) and :class:`LSTMForecaster` (PyTorch, optional extra;
seeded and deterministic on CPU; :mod:`~allele.analytics.forecast.lstm`). :func:`backtest`
(:mod:`~allele.analytics.forecast.backtest`) evaluates any of them by rolling origin with MASE
and sMAPE against the seasonal-naive baseline.

:class:`AutoRegForecaster` (a long autoregression by least squares,
:mod:`~allele.analytics.forecast.autoreg`), :class:`ExpSmoothingForecaster` and
:class:`ThetaForecaster` (:mod:`~allele.analytics.forecast.smoothing`) are further candidates.

:class:`AutoForecaster` (:mod:`~allele.analytics.forecast.auto`) chooses among them by
rolling-origin backtest against naive, drift and seasonal-naive at every season found
(:func:`~allele.analytics._season.seasonal_periods`: several at once), keeping the best baseline
unless a model beats it consistently across origins, and refuses degenerate fits
(:func:`degenerate_reason`); :class:`HorizonForecaster`
(:mod:`~allele.analytics.forecast.horizons`) gives its forecasts at several horizons.

Beside the package: :class:`~allele.analytics.trend.PredictiveAnalyzer` describes a series
(trend as a Theil-Sen slope with a Mann-Kendall test, seasonality, level shifts and the time until
a threshold is crossed); its names are importable from here too.
"""

from __future__ import annotations

from allele.analytics.forecast.arima import ARIMAForecaster
from allele.analytics.forecast.auto import AutoForecaster
from allele.analytics.forecast.autoreg import AutoRegForecaster
from allele.analytics.forecast.backtest import BacktestResult, backtest, mase, smape
from allele.analytics.forecast.base import BaseForecaster, Forecast
from allele.analytics.forecast.baselines import (
    DriftForecaster,
    NaiveForecaster,
    SeasonalNaiveForecaster,
)
from allele.analytics.forecast.checks import degenerate_reason
from allele.analytics.forecast.horizons import HorizonForecaster, HorizonPrediction
from allele.analytics.forecast.lstm import LSTMForecaster
from allele.analytics.forecast.smoothing import ExpSmoothingForecaster, ThetaForecaster
from allele.analytics.trend import (
    LevelShift,
    PredictiveAnalyzer,
    Seasonality,
    SeriesAnalysis,
    ThresholdCrossing,
    Trend,
    detect_level_shifts,
    detect_seasonality,
    mann_kendall,
    theil_sen_trend,
    time_to_threshold,
)

__all__ = [
    "ARIMAForecaster",
    "AutoForecaster",
    "AutoRegForecaster",
    "BacktestResult",
    "BaseForecaster",
    "DriftForecaster",
    "ExpSmoothingForecaster",
    "Forecast",
    "HorizonForecaster",
    "HorizonPrediction",
    "LSTMForecaster",
    "LevelShift",
    "NaiveForecaster",
    "PredictiveAnalyzer",
    "SeasonalNaiveForecaster",
    "Seasonality",
    "SeriesAnalysis",
    "ThetaForecaster",
    "ThresholdCrossing",
    "Trend",
    "backtest",
    "degenerate_reason",
    "detect_level_shifts",
    "detect_seasonality",
    "mann_kendall",
    "mase",
    "smape",
    "theil_sen_trend",
    "time_to_threshold",
]

