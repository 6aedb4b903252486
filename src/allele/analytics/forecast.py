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

Models: :class:`NaiveForecaster`, :class:`SeasonalNaiveForecaster` (baselines),
:class:`ARIMAForecaster` (statsmodels, order chosen by AIC over a small grid when not given,
seasonal when a period is given) and :class:`LSTMForecaster` (PyTorch, optional extra; seeded and
deterministic on CPU). :func:`backtest` evaluates any of them by rolling origin with MASE and
sMAPE against the seasonal-naive baseline. :class:`PerformancePredictor` gives multi-horizon
forecasts of a component metric and :class:`PredictiveAnalyzer` describes a series: trend
(Theil-Sen slope with a Mann-Kendall test), seasonality, level shifts and the time until a
threshold is crossed.
"""

from __future__ import annotations

import copy
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats
from threadpoolctl import threadpool_limits

from allele.analytics._common import (
    FloatArray,
    as_series,
    as_timestamps,
    check_level,
    check_positive_int,
    format_value,
    humanize_duration,
    median_step,
)
from allele.analytics._season import seasonal_period
from allele.errors import AnalyticsError, NotFittedError

__all__ = [
    "ARIMAForecaster",
    "BacktestResult",
    "BaseForecaster",
    "Forecast",
    "HorizonPrediction",
    "LSTMForecaster",
    "LevelShift",
    "NaiveForecaster",
    "PerformancePredictor",
    "PredictiveAnalyzer",
    "SeasonalNaiveForecaster",
    "Seasonality",
    "SeriesAnalysis",
    "ThresholdCrossing",
    "Trend",
    "backtest",
    "detect_level_shifts",
    "detect_seasonality",
    "mann_kendall",
    "mase",
    "smape",
    "theil_sen_trend",
    "time_to_threshold",
]


@dataclass(frozen=True)
class Forecast:
    """A forecast path with its prediction interval.

    ``lower``/``upper`` bound a central interval at probability ``level``; ``timestamps`` are the
    future times when the series was fitted with timestamps; ``model`` names the model used.
    """

    mean: FloatArray
    lower: FloatArray
    upper: FloatArray
    level: float
    model: str
    timestamps: FloatArray | None = None

    @property
    def horizon(self) -> int:
        """Number of steps forecast."""
        return int(self.mean.size)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "model": self.model,
            "level": self.level,
            "mean": self.mean.tolist(),
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "timestamps": None if self.timestamps is None else self.timestamps.tolist(),
        }


def _z(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2.0))


class BaseForecaster(ABC):
    """The shared forecaster API: ``fit(y, timestamps=None)`` then ``predict(horizon)``."""

    level: float
    model_: str
    n_obs_: int

    def __init__(self, level: float = 0.9) -> None:
        self.level = level
        self._fitted = False
        self._timestamps: FloatArray | None = None

    # -- public API -------------------------------------------------------------------------
    def fit(self, y: ArrayLike, timestamps: ArrayLike | None = None) -> Self:
        """Learn from the series ``y`` (oldest first); ``timestamps`` in seconds are optional."""
        check_level(self.level)
        arr = as_series(y, name="y")
        self._timestamps = as_timestamps(timestamps, arr.size)
        self.n_obs_ = int(arr.size)
        self._fit(arr)
        self._fitted = True
        return self

    def predict(self, horizon: int) -> Forecast:
        """Forecast the next ``horizon`` steps with a central interval at ``level``."""
        if not self._fitted:
            raise NotFittedError(f"{type(self).__name__}.predict called before fit")
        h = check_positive_int(horizon, "horizon")
        mean, lower, upper = self._predict(h)
        ts = None
        step = median_step(self._timestamps)
        if self._timestamps is not None and step is not None:
            ts = self._timestamps[-1] + step * np.arange(1, h + 1, dtype=np.float64)
        return Forecast(mean=mean, lower=lower, upper=upper, level=self.level, model=self.model_,
                        timestamps=ts)

    # -- for subclasses ---------------------------------------------------------------------
    @abstractmethod
    def _fit(self, y: FloatArray) -> None: ...

    @abstractmethod
    def _predict(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]: ...


class NaiveForecaster(BaseForecaster):
    """Random-walk baseline: every future value equals the last one.

    The interval widens with ``sqrt(h)`` from the spread of one-step changes (zero for a constant
    series, so the interval collapses onto the mean).
    """

    def __init__(self, level: float = 0.9) -> None:
        super().__init__(level)

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

    def __init__(self, period: int, level: float = 0.9) -> None:
        super().__init__(level)
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


class ARIMAForecaster(BaseForecaster):
    """(Seasonal) ARIMA from statsmodels.

    ``order=(p, d, q)`` fixes the model; when it is None, ``d`` is chosen by a KPSS stationarity
    test and ``(p, q)`` by AIC over ``0..max_p`` x ``0..max_q``. A linear drift term is added when
    the total differencing is one, a constant when it is zero. ``order_``, ``seasonal_order_`` and
    ``aic_`` hold the chosen model.

    Seasonality, when ``seasonal_period=m`` is given, is handled by ``seasonal_method``:

    * ``"stl"`` (default, fast): a robust STL decomposition removes the seasonal component, the
      ARIMA is fitted to the seasonally adjusted series and the last season of the seasonal
      component is added back to its forecast. The interval is the ARIMA interval of the adjusted
      series (the seasonal estimate is treated as known).
    * ``"sarima"``: a full seasonal ARIMA (``seasonal_order`` if given, otherwise the best by AIC
      of ``(0,1,1)`` and ``(1,1,0)``). Exact, but slow for long seasons (state size grows with m).

    Fallbacks (documented; ``model_`` says which): a constant series, fewer than ``min_obs``
    observations (default 10, or two seasons plus 4 when seasonal), or no candidate that
    statsmodels can fit -> :class:`SeasonalNaiveForecaster` / :class:`NaiveForecaster`.
    """

    def __init__(
        self,
        order: tuple[int, int, int] | None = None,
        seasonal_period: int | None = None,
        seasonal_order: tuple[int, int, int] | None = None,
        seasonal_method: str = "stl",
        max_p: int = 2,
        max_q: int = 2,
        max_d: int = 1,
        level: float = 0.9,
        min_obs: int | None = None,
    ) -> None:
        super().__init__(level)
        self.order = order
        self.seasonal_period = seasonal_period
        self.seasonal_order = seasonal_order
        self.seasonal_method = seasonal_method
        self.max_p = max_p
        self.max_q = max_q
        self.max_d = max_d
        self.min_obs = min_obs

    def _fit(self, y: FloatArray) -> None:
        m = self.seasonal_period
        if m is not None:
            check_positive_int(m, "seasonal_period", 2)
        seasonal = m is not None
        min_obs = self.min_obs if self.min_obs is not None else (2 * m + 4 if m else 10)
        self._fallback: BaseForecaster | None = None
        self.order_: tuple[int, int, int] | None = None
        self.seasonal_order_: tuple[int, int, int, int] | None = None
        self.aic_: float = math.nan
        if np.ptp(y) == 0:
            self._use_fallback(y, "constant series")
            return
        if y.size < min_obs:
            self._use_fallback(y, f"only {y.size} observations, ARIMA needs {min_obs}")
            return
        if self.seasonal_method not in ("stl", "sarima"):
            raise AnalyticsError(
                f"seasonal_method must be 'stl' or 'sarima', got {self.seasonal_method!r}")
        self._season_tail: FloatArray | None = None
        use_stl = seasonal and self.seasonal_method == "stl"
        if use_stl:
            assert m is not None
            from statsmodels.tsa.seasonal import STL

            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")
                seasonal_part = np.asarray(STL(y, period=m, robust=True).fit().seasonal,
                                           dtype=np.float64)
            self._season_tail = seasonal_part[-m:].copy()
            y = y - seasonal_part
        candidates = self._candidates(y, use_seasonal=seasonal and not use_stl)
        best: tuple[float, Any, tuple[int, int, int], tuple[int, int, int, int]] | None = None
        for order, sorder in candidates:
            res = self._fit_one(y, order, sorder)
            if res is None:
                continue
            aic = float(res.aic)
            if math.isfinite(aic) and (best is None or aic < best[0]):
                best = (aic, res, order, sorder)
        if best is None:
            self._use_fallback(y, "no ARIMA candidate could be fitted")
            return
        self.aic_, self._res, self.order_, self.seasonal_order_ = best
        p, d, q = self.order_
        if use_stl:
            self.model_ = f"STL[{m}] + ARIMA({p},{d},{q})"
        elif seasonal:
            sp, sd, sq, sm = self.seasonal_order_
            self.model_ = f"ARIMA({p},{d},{q})({sp},{sd},{sq})[{sm}]"
        else:
            self.model_ = f"ARIMA({p},{d},{q})"

    def _use_fallback(self, y: FloatArray, reason: str) -> None:
        self._fallback = _baseline_for(y, self.seasonal_period, self.level, reason)
        self.model_ = self._fallback.model_

    def _candidates(
        self, y: FloatArray, use_seasonal: bool
    ) -> list[tuple[tuple[int, int, int], tuple[int, int, int, int]]]:
        m = self.seasonal_period if use_seasonal else None
        if m is not None:
            sorders = ([self.seasonal_order] if self.seasonal_order is not None
                       else [(0, 1, 1), (1, 1, 0)])
            s_list = [(a, b, c, m) for a, b, c in sorders]
        else:
            s_list = [(0, 0, 0, 0)]
        if self.order is not None:
            return [(self.order, s) for s in s_list]
        sd = s_list[0][1]
        base = y[m:] - y[:-m] if (m is not None and sd > 0) else y
        d = _choose_d(base, self.max_d)
        out = []
        for s in s_list[:1]:
            for p in range(self.max_p + 1):
                for q in range(self.max_q + 1):
                    out.append(((p, d, q), s))
        # Alternative seasonal structures are compared with a mid-size regular part only.
        for s in s_list[1:]:
            out.append(((min(1, self.max_p), d, min(1, self.max_q)), s))
        return out

    @staticmethod
    def _fit_one(
        y: FloatArray, order: tuple[int, int, int], sorder: tuple[int, int, int, int]
    ) -> Any:
        from statsmodels.tsa.arima.model import ARIMA

        diff_total = order[1] + sorder[1]
        trend = "c" if diff_total == 0 else ("t" if diff_total == 1 else "n")
        try:
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")
                model = ARIMA(y, order=order, seasonal_order=sorder, trend=trend)
                return model.fit()
        except (ValueError, np.linalg.LinAlgError, IndexError):
            return None

    def _predict(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        if self._fallback is not None:
            return self._fallback._predict(horizon)
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            fc = self._res.get_forecast(horizon)
            mean = np.asarray(fc.predicted_mean, dtype=np.float64)
            ci = np.asarray(fc.conf_int(alpha=1.0 - self.level), dtype=np.float64)
        lower, upper = ci[:, 0], ci[:, 1]
        if self._season_tail is not None:
            tail = self._season_tail
            add = tail[np.arange(horizon) % tail.size]
            mean, lower, upper = mean + add, lower + add, upper + add
        bad = ~np.isfinite(lower) | ~np.isfinite(upper)
        lower = np.where(bad, mean, lower)
        upper = np.where(bad, mean, upper)
        return mean, lower, upper


def _choose_d(y: FloatArray, max_d: int) -> int:
    """Smallest differencing order whose series passes a KPSS level-stationarity test (5%)."""
    from statsmodels.tsa.stattools import kpss

    series = y
    for d in range(max_d + 1):
        if series.size < 8 or np.ptp(series) == 0:
            return d
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                p_value = float(kpss(series, regression="c", nlags="auto")[1])
            except (ValueError, np.linalg.LinAlgError, OverflowError):
                return d
        if p_value > 0.05:
            return d
        series = np.diff(series)
    return max_d


class LSTMForecaster(BaseForecaster):
    """A small LSTM (PyTorch) trained on sliding windows, forecasting recursively.

    Needs the ``lstm`` extra (``pip install 'allele[lstm]'``); without torch, ``fit`` raises
    :class:`~allele.errors.AnalyticsError`. Training is seeded and deterministic on CPU: it runs
    inside a forked torch RNG seeded with ``seed``, with deterministic algorithms on and one
    thread (the previous global settings are restored afterwards).

    With ``difference=True`` (the default) the network models the first differences and the
    forecast integrates them from the last value: a network of saturating units cannot
    extrapolate a level it never saw, so on a trending series a model of the levels bends back
    towards the training range, while the differences of a trend plus a season are stationary.
    ``difference=False`` models the levels (for series without a trend). The modelled series
    is standardised; the interval comes from the in-sample one-step residuals (the same in
    levels and differences), widened with ``sqrt(h)``.

    Fallback (documented; ``model_`` says so): a constant series, or fewer than
    ``window + min_windows`` modelled observations -> :class:`NaiveForecaster`; differences that
    are all equal (a straight line) -> that line.
    """

    def __init__(
        self,
        window: int = 24,
        hidden_size: int = 16,
        epochs: int = 200,
        learning_rate: float = 0.01,
        seed: int = 0,
        level: float = 0.9,
        min_windows: int = 8,
        difference: bool = True,
    ) -> None:
        super().__init__(level)
        self.window = window
        self.hidden_size = hidden_size
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.seed = seed
        self.min_windows = min_windows
        self.difference = difference

    def _fit(self, y: FloatArray) -> None:
        w = check_positive_int(self.window, "window")
        check_positive_int(self.epochs, "epochs")
        self._fallback: BaseForecaster | None = None
        self._line: float | None = None
        if np.ptp(y) == 0:
            self._fallback = _baseline_for(y, None, self.level, "constant series")
            self.model_ = self._fallback.model_
            return
        series = np.diff(y) if self.difference else y
        if series.size < w + self.min_windows:
            self._fallback = _baseline_for(
                y, None, self.level,
                f"only {y.size} observations, LSTM needs "
                f"{w + self.min_windows + int(self.difference)}")
            self.model_ = self._fallback.model_
            return
        self._last = float(y[-1])
        if np.ptp(series) == 0:  # differences all equal: the series is a straight line
            self._line = float(series[0])
            self.model_ = "line (fallback: constant differences)"
            return
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise AnalyticsError(
                "LSTMForecaster needs PyTorch: pip install 'allele[lstm]'") from exc

        self._mu = float(np.mean(series))
        self._sd = float(np.std(series))
        z = (series - self._mu) / self._sd
        windows = np.lib.stride_tricks.sliding_window_view(z[:-1], w)
        targets = z[w:]
        threads = torch.get_num_threads()
        deterministic = torch.are_deterministic_algorithms_enabled()
        try:
            torch.set_num_threads(1)
            torch.use_deterministic_algorithms(True)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                net = _make_lstm(self.hidden_size)
                xb = torch.tensor(windows[:, :, None], dtype=torch.float32)
                yb = torch.tensor(targets[:, None], dtype=torch.float32)
                opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
                loss_fn = torch.nn.MSELoss()
                for _ in range(self.epochs):
                    opt.zero_grad()
                    loss = loss_fn(net(xb), yb)
                    loss.backward()
                    opt.step()
                net.eval()
                with torch.no_grad():
                    fitted = net(xb).numpy()[:, 0].astype(np.float64)
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)
        self._net = net
        self._resid_sd = float(np.std(targets - fitted))
        self._tail = z[-w:].copy()
        self.final_loss_ = float(np.mean((targets - fitted) ** 2))
        self.model_ = (f"LSTM(window={w}, hidden={self.hidden_size}"
                       f"{', differences' if self.difference else ''})")

    def _predict(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        if self._fallback is not None:
            return self._fallback._predict(horizon)
        steps = np.arange(1, horizon + 1, dtype=np.float64)
        if self._line is not None:
            line: FloatArray = self._last + self._line * steps
            return line, line.copy(), line.copy()
        import torch

        buf = list(self._tail)
        out = np.empty(horizon)
        with torch.no_grad():
            for i in range(horizon):
                x = torch.tensor(np.asarray(buf[-self.window:])[None, :, None],
                                 dtype=torch.float32)
                out[i] = float(self._net(x)[0, 0])
                buf.append(out[i])
        modelled = out * self._sd + self._mu
        mean = self._last + np.cumsum(modelled) if self.difference else modelled
        width = _z(self.level) * self._resid_sd * self._sd * np.sqrt(steps)
        return mean, mean - width, mean + width


def _make_lstm(hidden: int) -> Any:
    import torch

    class _Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(1, hidden, batch_first=True)
            self.head = torch.nn.Linear(hidden, 1)

        def forward(self, x: Any) -> Any:
            out, _ = self.lstm(x)
            return self.head(out[:, -1, :])

    return _Net()


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Series description: trend, seasonality, level shifts, threshold crossing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trend:
    """Theil-Sen slope (per step) with its confidence band and a Mann-Kendall test."""

    slope: float
    intercept: float
    slope_low: float
    slope_high: float
    tau: float
    mk_z: float
    p_value: float
    direction: str
    """'increasing', 'decreasing' or 'none' (not significant at ``alpha``)."""


def mann_kendall(y: ArrayLike) -> tuple[float, float, float, float]:
    """Mann-Kendall trend test: ``(S, z, two-sided p-value, Kendall tau)`` with tie correction."""
    arr = as_series(y, name="y", min_length=3)
    n = arr.size
    s = 0.0
    for k in range(1, n):
        s += float(np.sum(np.sign(arr[k:] - arr[:-k])))
    _, counts = np.unique(arr, return_counts=True)
    ties = counts[counts > 1].astype(np.float64)
    var = (n * (n - 1) * (2 * n + 5) - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))) / 18.0
    if var <= 0:
        return s, 0.0, 1.0, 0.0
    z = (s - np.sign(s)) / math.sqrt(var)
    p = float(2.0 * stats.norm.sf(abs(z)))
    tau = s / (n * (n - 1) / 2.0)
    return s, float(z), p, float(tau)


def theil_sen_trend(y: ArrayLike, alpha: float = 0.05) -> Trend:
    """Robust linear trend of ``y`` against its index, tested with Mann-Kendall at ``alpha``."""
    arr = as_series(y, name="y", min_length=3)
    x = np.arange(arr.size, dtype=np.float64)
    if np.ptp(arr) == 0:
        return Trend(0.0, float(arr[0]), 0.0, 0.0, 0.0, 0.0, 1.0, "none")
    res = stats.theilslopes(arr, x, alpha=1.0 - alpha)
    _, z, p, tau = mann_kendall(arr)
    direction = "none"
    if p < alpha:
        direction = "increasing" if z > 0 else "decreasing"
    return Trend(float(res.slope), float(res.intercept), float(res.low_slope),
                 float(res.high_slope), tau, z, p, direction)


@dataclass(frozen=True)
class Seasonality:
    """A detected season: ``period`` in steps (None when there is none) and ACF ``strength``."""

    period: int | None
    strength: float


def detect_seasonality(
    y: ArrayLike, max_period: int | None = None, min_strength: float = 0.3
) -> Seasonality:
    """Find the dominant season.

    Candidate periods are the highest autocorrelation peaks of the series (and their neighbours
    and divisors), refined by how well a Fourier profile of each period explains the detrended
    series (:func:`allele.analytics._season.seasonal_period`; sharper than the ACF peak alone,
    which is often one step off). The period (2..``max_period``, default ``n // 3``) is kept when
    its detrended ACF exceeds both ``min_strength`` and the 95% white-noise band
    ``1.96 / sqrt(n)``; ``strength`` is that ACF value.
    """
    arr = as_series(y, name="y")
    n = arr.size
    if n < 8 or np.ptp(arr) == 0:
        return Seasonality(None, 0.0)
    max_lag = min(max_period if max_period is not None else n // 3, n - 2)
    if max_lag < 3:
        return Seasonality(None, 0.0)
    period = seasonal_period(arr, min_period=2, max_period=max_lag)
    if period is None:
        return Seasonality(None, 0.0)
    x = np.arange(n, dtype=np.float64)
    slope, intercept = np.polyfit(x, arr, 1)
    resid = arr - (slope * x + intercept)
    resid = resid - resid.mean()
    denom = float(resid @ resid)
    strength = float(resid[period:] @ resid[:-period]) / denom if denom > 0 else 0.0
    if strength <= max(min_strength, 1.96 / math.sqrt(n)):
        return Seasonality(None, 0.0)
    return Seasonality(period, strength)


@dataclass(frozen=True)
class LevelShift:
    """A persistent change of the mean at ``index`` (first point of the new level)."""

    index: int
    before: float
    after: float
    z: float
    timestamp: float | None = None

    @property
    def size(self) -> float:
        """``after - before``."""
        return self.after - self.before


def _robust_sigma(y: FloatArray) -> float:
    d = np.diff(y)
    if d.size == 0:
        return 0.0
    mad = float(np.median(np.abs(d - np.median(d))))
    sigma = 1.4826 * mad / math.sqrt(2.0)
    if sigma == 0.0:
        sigma = float(np.std(d)) / math.sqrt(2.0)
    return sigma


def detect_level_shifts(
    y: ArrayLike,
    timestamps: ArrayLike | None = None,
    min_size: int = 8,
    z_threshold: float | None = None,
    max_shifts: int = 10,
) -> list[LevelShift]:
    """Binary segmentation of the mean with a two-sample z test.

    The noise scale is estimated robustly from first differences (MAD), so shifts themselves do
    not inflate it. A split is kept when its z statistic exceeds ``z_threshold`` (default
    ``sqrt(2 ln n) + 2``, a Bonferroni-like bound for scanning n positions) and both sides have
    at least ``min_size`` points. Remove trend and season first when the series has them.
    """
    arr = as_series(y, name="y")
    ts = as_timestamps(timestamps, arr.size)
    n = arr.size
    sigma = _robust_sigma(arr)
    if n < 2 * min_size or sigma == 0.0:
        if n >= 2 * min_size and np.ptp(arr) > 0:
            sigma = float(np.ptp(arr)) * 1e-6
        else:
            return []
    thr = z_threshold if z_threshold is not None else math.sqrt(2.0 * math.log(n)) + 2.0
    found: list[tuple[int, float]] = []
    stack = [(0, n)]
    while stack and len(found) < max_shifts:
        lo, hi = stack.pop()
        seg = arr[lo:hi]
        m = seg.size
        if m < 2 * min_size:
            continue
        csum = np.cumsum(seg)
        k = np.arange(min_size, m - min_size + 1)
        left_mean = csum[k - 1] / k
        right_mean = (csum[-1] - csum[k - 1]) / (m - k)
        zs = np.abs(left_mean - right_mean) / (sigma * np.sqrt(1.0 / k + 1.0 / (m - k)))
        best = int(np.argmax(zs))
        if zs[best] > thr:
            split = lo + int(k[best])
            found.append((split, float(zs[best])))
            stack.append((lo, split))
            stack.append((split, hi))
    found.sort()
    shifts: list[LevelShift] = []
    bounds = [0] + [s for s, _ in found] + [n]
    for i, (split, z) in enumerate(found):
        before = float(np.mean(arr[bounds[i]:split]))
        after = float(np.mean(arr[split:bounds[i + 2]]))
        shifts.append(LevelShift(split, before, after, z,
                                 None if ts is None else float(ts[split])))
    return shifts


@dataclass(frozen=True)
class ThresholdCrossing:
    """When the trend line reaches ``threshold``: in ``steps`` (and ``seconds`` with timestamps)."""

    threshold: float
    steps: float | None
    seconds: float | None
    already: bool
    message: str


def time_to_threshold(
    trend: Trend,
    n: int,
    threshold: float,
    *,
    step_seconds: float | None = None,
    metric: str = "value",
    unit: str = "",
) -> ThresholdCrossing:
    """Extrapolate the Theil-Sen line of a series of ``n`` points to ``threshold``.

    Only a significant trend (Mann-Kendall) heading towards the threshold gives a crossing time.
    The message reads like ``"rss reaches 8 GB in about 2 h"``.
    """
    current = trend.intercept + trend.slope * (n - 1)
    thr_txt = format_value(threshold, unit)
    up = threshold > current
    if (up and current >= threshold) or (not up and current <= threshold) or current == threshold:
        return ThresholdCrossing(threshold, 0.0, 0.0, True,
                                 f"{metric} is already at {thr_txt}")
    heading = (trend.direction == "increasing" and up) or (trend.direction == "decreasing"
                                                           and not up)
    if not heading or trend.slope == 0:
        word = "upward" if up else "downward"
        return ThresholdCrossing(threshold, None, None, False,
                                 f"{metric} is not expected to reach {thr_txt} "
                                 f"(no significant {word} trend)")
    steps = (threshold - current) / trend.slope
    if step_seconds is not None:
        secs = steps * step_seconds
        return ThresholdCrossing(threshold, steps, secs, False,
                                 f"{metric} reaches {thr_txt} in about {humanize_duration(secs)}")
    return ThresholdCrossing(threshold, steps, None, False,
                             f"{metric} reaches {thr_txt} in about {round(steps)} steps")


@dataclass(frozen=True)
class SeriesAnalysis:
    """Everything :class:`PredictiveAnalyzer` found in one series."""

    n: int
    trend: Trend
    seasonality: Seasonality
    level_shifts: list[LevelShift]
    crossing: ThresholdCrossing | None

    def summary(self) -> list[str]:
        """Human-readable findings, one per line."""
        lines = []
        t = self.trend
        if t.direction == "none":
            lines.append(f"no significant trend (Mann-Kendall p={t.p_value:.3g})")
        else:
            lines.append(f"{t.direction} trend: {t.slope:+.4g} per step "
                         f"(Theil-Sen, band {t.slope_low:+.3g}..{t.slope_high:+.3g}; "
                         f"Mann-Kendall p={t.p_value:.3g})")
        if self.seasonality.period is not None:
            lines.append(f"seasonal with period {self.seasonality.period} "
                         f"(ACF {self.seasonality.strength:.2f})")
        for s in self.level_shifts:
            lines.append(f"level shift at {s.index}: {s.before:.4g} -> {s.after:.4g} "
                         f"(z={s.z:.1f})")
        if self.crossing is not None:
            lines.append(self.crossing.message)
        return lines


class PredictiveAnalyzer:
    """Describes a metric series: trend, seasonality, level shifts and a threshold crossing.

    ``analyze`` removes the detected seasonal profile (and a significant trend) before looking
    for level shifts, so that a season or a ramp is not mistaken for a shift.
    """

    def __init__(self, alpha: float = 0.05, max_period: int | None = None,
                 shift_min_size: int = 8) -> None:
        self.alpha = alpha
        self.max_period = max_period
        self.shift_min_size = shift_min_size

    def analyze(
        self,
        y: ArrayLike,
        timestamps: ArrayLike | None = None,
        *,
        threshold: float | None = None,
        metric: str = "value",
        unit: str = "",
    ) -> SeriesAnalysis:
        """Analyse ``y`` (at least 3 points) and optionally when it crosses ``threshold``."""
        arr = as_series(y, name="y", min_length=3)
        ts = as_timestamps(timestamps, arr.size)
        trend = theil_sen_trend(arr, self.alpha)
        season = detect_seasonality(arr, self.max_period)
        resid = arr.copy()
        if trend.direction != "none":
            resid = resid - trend.slope * np.arange(arr.size)
        if season.period is not None:
            m = season.period
            phase = np.arange(arr.size) % m
            profile = np.array([np.median(resid[phase == k]) for k in range(m)])
            resid = resid - profile[phase] + float(np.median(profile))
        shifts = detect_level_shifts(resid, ts, min_size=self.shift_min_size)
        crossing = None
        if threshold is not None:
            crossing = time_to_threshold(trend, arr.size, threshold,
                                         step_seconds=median_step(ts), metric=metric, unit=unit)
        return SeriesAnalysis(arr.size, trend, season, shifts, crossing)


# ---------------------------------------------------------------------------------------------
# Multi-horizon prediction of a component metric
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HorizonPrediction:
    """The forecast ``horizon`` steps ahead, with its interval."""

    horizon: int
    mean: float
    lower: float
    upper: float
    timestamp: float | None
    model: str


class PerformancePredictor:
    """Forecasts of a component metric at several horizons (default 1, 6 and 24 steps).

    Without an explicit ``forecaster``, the season is detected (:func:`detect_seasonality`) and an
    :class:`ARIMAForecaster` with that season is used (with its documented fallbacks).
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
            period = detect_seasonality(arr).period if arr.size >= 8 else None
            if period is not None and arr.size < 2 * period + 4:
                period = None
            model = ARIMAForecaster(seasonal_period=period, level=self.level,
                                    max_p=1 if period else 2, max_q=1 if period else 2)
        self.forecaster_ = model.fit(arr, timestamps)
        return self

    def predict(self) -> list[HorizonPrediction]:
        """One :class:`HorizonPrediction` per configured horizon."""
        if not hasattr(self, "forecaster_"):
            raise NotFittedError("PerformancePredictor.predict called before fit")
        fc = self.forecaster_.predict(max(self.horizons))
        out = []
        for h in self.horizons:
            i = h - 1
            ts = None if fc.timestamps is None else float(fc.timestamps[i])
            out.append(HorizonPrediction(h, float(fc.mean[i]), float(fc.lower[i]),
                                         float(fc.upper[i]), ts, fc.model))
        return out
