"""Model choice by backtest: :class:`AutoForecaster` against the best of several baselines."""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Sequence

import numpy as np

from allele.analytics._common import FloatArray, check_positive_int
from allele.analytics._season import seasonal_periods
from allele.analytics.forecast.arima import ARIMAForecaster
from allele.analytics.forecast.backtest import mase
from allele.analytics.forecast.base import BaseForecaster, Forecast
from allele.analytics.forecast.baselines import (
    DriftForecaster,
    NaiveForecaster,
    SeasonalNaiveForecaster,
)
from allele.errors import AnalyticsError

__all__ = ["AutoForecaster"]

_MIN_TRAIN = 10


class AutoForecaster(BaseForecaster):
    """The model that forecast this series best in a rolling-origin backtest, or a baseline.

    Seasons: ``seasonal_periods`` if given, else every season found by
    :func:`~allele.analytics._season.seasonal_periods` (several at once: 24 and 168 in hourly
    data). Candidates:

    * baselines: naive, drift, and seasonal-naive at every season;
    * ARIMA on the seasonally adjusted series (STL, or MSTL for several seasons) and plain ARIMA,
      each with its degenerate fits refused (:class:`ARIMAForecaster`);
    * the mean of the best model and the best baseline (a combination of two different errors is
      often better than either; the backtest decides).

    Each candidate forecasts ``horizon`` steps from ``folds`` rolling origins at the end of the
    series given to ``fit`` and is scored by MASE (scale: in-sample seasonal-naive at the
    shortest season, the same for all). The lowest mean MASE wins; a model must beat the best
    baseline strictly, so ties go to the baseline. ARIMA orders are chosen once, on the points
    before the first origin, and kept through the folds (the final fit chooses again on all
    points). If the final fit of the winner is refused or falls back, the best baseline is used
    and ``refused_`` says why. Nothing after the series given to ``fit`` is seen: to judge the
    choice, hold out a final window yourself (``benchmarks/analytics_real_forecast.py`` does).

    ``horizon`` defaults to the longest season (at least 8 steps), or 8 without one; a short
    series shortens the horizon and then the number of folds; under ``10 + folds`` points there
    is no backtest and the forecast is drift (naive for fewer than 3 points), saying so.

    Intervals: the chosen model's own, widened (never narrowed) by ``widen_``, the factor that
    makes them cover the model's own backtest errors at ``level`` (split-conformal on the ratio
    of each error to its interval's half-width): a model's interval assumes the model is right,
    and the backtest shows how wrong it was.

    Learned: ``periods_``, ``scores_`` (candidate -> backtest MASE), ``chosen_`` (the winning
    candidate), ``baseline_`` (best baseline), ``choice_`` (a sentence), ``backtest_horizon_``,
    ``folds_``, ``widen_``.
    """

    def __init__(
        self,
        horizon: int | None = None,
        folds: int = 3,
        seasonal_periods: Sequence[int] | None = None,
        level: float = 0.9,
        nonnegative: bool | None = None,
        max_obs: int = 2000,
        combine: bool = True,
    ) -> None:
        super().__init__(level, nonnegative)
        self.horizon = horizon
        self.folds = folds
        self.seasonal_periods = seasonal_periods
        self.max_obs = max_obs
        self.combine = combine

    def _fit(self, y: FloatArray) -> None:
        k = check_positive_int(self.folds, "folds")
        periods = (sorted({check_positive_int(m, "seasonal_period", 2)
                           for m in self.seasonal_periods})
                   if self.seasonal_periods is not None else seasonal_periods(y))
        h = self.horizon if self.horizon is not None else max([8, *periods[-1:]])
        h = check_positive_int(h, "horizon")
        self.refused_ = ()
        self.scores_: dict[str, float] = {}
        self.widen_ = 1.0
        plan = _plan(y.size, h, k)
        if plan is None or np.ptp(y) == 0:
            self._short(y, "constant series" if np.ptp(y) == 0 else
                        f"only {y.size} points, a backtest needs {_MIN_TRAIN + k}")
            return
        h, k = plan
        first = y.size - h * k
        self.periods_ = [m for m in periods if m <= first]
        self.backtest_horizon_, self.folds_ = h, k
        makers = self._candidates(y[:first])
        paths: dict[str, list[Forecast]] = {}
        for name, make in makers.items():
            path = self._backtest(make, y, first, h, k)
            if path is not None:
                paths[name] = path
        scale_m = self.periods_[0] if self.periods_ else 1
        origins = [first + i * h for i in range(k)]

        def score(folds: list[Forecast]) -> float:
            return float(np.mean([mase(y[o:o + h], f.mean, y[:o], scale_m)
                                  for o, f in zip(origins, folds, strict=True)]))

        self.scores_ = {name: score(p) for name, p in paths.items()}
        bases = [n for n in self.scores_ if _is_baseline(n)]
        self.baseline_ = min(bases, key=lambda n: self.scores_[n])
        models = [n for n in self.scores_ if not _is_baseline(n)]
        if self.combine and models:
            best_model = min(models, key=lambda n: self.scores_[n])
            combo = f"mean of {best_model} and {self.baseline_}"
            paths[combo] = [_mean_forecast(a, b) for a, b in
                            zip(paths[best_model], paths[self.baseline_], strict=True)]
            self.scores_[combo] = score(paths[combo])
            makers[combo] = _Combined.maker(makers[best_model], makers[self.baseline_])
        self._choose(y, makers)
        self.widen_ = _widening(y, origins, paths[self.chosen_], self.level)

    def _choose(self, y: FloatArray, makers: dict[str, Callable[[], BaseForecaster]]) -> None:
        base_score = self.scores_[self.baseline_]
        winner = min(self.scores_, key=lambda n: (self.scores_[n], not _is_baseline(n)))
        if not self.scores_[winner] < base_score:
            winner = self.baseline_
        model = makers[winner]()
        if isinstance(model, ARIMAForecaster):
            model.order = None  # the final fit chooses its order on every point
        model.fit(y)
        refused = list(getattr(model, "refused_", ()))
        if "fallback" in model.model_ and winner != self.baseline_:
            refused.append(f"{winner}: {model.model_}")
            winner, model = self.baseline_, makers[self.baseline_]().fit(y)
        self._model = model
        self.chosen_ = winner
        self.refused_ = tuple(refused)
        self.model_ = model.model_
        self.choice_ = (f"{model.model_}: backtest MASE {self.scores_[winner]:.3g} against "
                        f"{base_score:.3g} for the best baseline ({self.baseline_}), "
                        f"{self.folds_} folds of {self.backtest_horizon_} steps")

    def _short(self, y: FloatArray, reason: str) -> None:
        model: BaseForecaster = (DriftForecaster(level=self.level) if y.size >= 3 and np.ptp(y)
                                 else NaiveForecaster(level=self.level))
        self._model = model.fit(y)
        self.periods_ = []
        self.baseline_ = self.chosen_ = self._model.model_
        self.model_ = f"{self._model.model_} (fallback: {reason})"
        self.choice_ = self.model_
        self.backtest_horizon_, self.folds_ = 0, 0

    def _candidates(self, train: FloatArray) -> dict[str, Callable[[], BaseForecaster]]:
        lv = self.level
        out: dict[str, Callable[[], BaseForecaster]] = {
            "naive": lambda: NaiveForecaster(level=lv),
            "drift": lambda: DriftForecaster(level=lv),
        }
        for m in self.periods_:
            out[f"seasonal-naive[{m}]"] = functools.partial(SeasonalNaiveForecaster, m, level=lv)
        stl = [m for m in self.periods_ if train.size >= 2 * m + 4]
        specs = [("ARIMA", ())] + ([(("STL" if len(stl) == 1 else "MSTL")
                                     + f"[{','.join(map(str, stl))}] + ARIMA", tuple(stl))]
                                   if stl else [])
        for label, seasons in specs:
            probe = ARIMAForecaster(seasonal_periods=seasons or None, level=lv,
                                    max_obs=self.max_obs).fit(train)
            if probe.order_ is None:
                continue
            out[label] = functools.partial(
                ARIMAForecaster, order=probe.order_, seasonal_periods=seasons or None, level=lv,
                max_obs=self.max_obs)
        return out

    @staticmethod
    def _backtest(make: Callable[[], BaseForecaster], y: FloatArray, first: int, h: int,
                  k: int) -> list[Forecast] | None:
        out = []
        for i in range(k):
            origin = first + i * h
            try:
                out.append(make().fit(y[:origin]).predict(h))
            except AnalyticsError:
                return None
        return out

    def _predict(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        mean, lower, upper = self._model._predict(horizon)
        f = self.widen_
        return mean, mean - f * (mean - lower), mean + f * (upper - mean)


class _Combined(BaseForecaster):
    """The mean of two forecasters' paths; the interval is the mean of their bounds (an
    approximation: it assumes the two errors move together)."""

    def __init__(self, a: BaseForecaster, b: BaseForecaster, level: float = 0.9) -> None:
        super().__init__(level)
        self.a, self.b = a, b

    @staticmethod
    def maker(ma: Callable[[], BaseForecaster],
              mb: Callable[[], BaseForecaster]) -> Callable[[], BaseForecaster]:
        def make() -> BaseForecaster:
            a, b = ma(), mb()
            return _Combined(a, b, a.level)
        return make

    def _fit(self, y: FloatArray) -> None:
        a, b = copy.deepcopy(self.a), copy.deepcopy(self.b)
        if isinstance(a, ARIMAForecaster):
            a.order = None
        self._a, self._b = a.fit(y), b.fit(y)
        self.refused_ = tuple(getattr(self._a, "refused_", ()))
        self.model_ = f"mean of {self._a.model_} and {self._b.model_}"

    def _predict(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        pa, pb = self._a._predict(horizon), self._b._predict(horizon)
        mean, lower, upper = (0.5 * (u + v) for u, v in zip(pa, pb, strict=True))
        return mean, lower, upper


def _mean_forecast(a: Forecast, b: Forecast) -> Forecast:
    return Forecast(0.5 * (a.mean + b.mean), 0.5 * (a.lower + b.lower), 0.5 * (a.upper + b.upper),
                    a.level, f"mean of {a.model} and {b.model}")


def _widening(y: FloatArray, origins: list[int], folds: list[Forecast], level: float) -> float:
    """How much the chosen model's intervals must widen to cover its own backtest errors at
    ``level`` (split-conformal on the ratio of each error to its half-width; never narrower)."""
    ratios = []
    for o, f in zip(origins, folds, strict=True):
        actual = y[o:o + f.mean.size]
        err = actual - f.mean
        half = np.where(err >= 0, f.upper - f.mean, f.mean - f.lower)
        ok = half > 0
        ratios.append(np.abs(err[ok]) / half[ok])
    r = np.sort(np.concatenate(ratios)) if ratios else np.empty(0)
    if r.size == 0:
        return 1.0
    rank = min(r.size, math.ceil((r.size + 1) * level))
    return max(1.0, float(r[rank - 1]))


def _is_baseline(name: str) -> bool:
    return name in ("naive", "drift") or name.startswith("seasonal-naive")


def _plan(n: int, h: int, k: int) -> tuple[int, int] | None:
    """(horizon, folds) that leave at least ``_MIN_TRAIN`` points before the first origin."""
    while k >= 1:
        hh = min(h, (n - _MIN_TRAIN) // k)
        if hh >= 1:
            return hh, k
        k -= 1
    return None
