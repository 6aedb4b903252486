"""Model choice by backtest: :class:`AutoForecaster` against the best of several baselines."""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from allele.analytics._common import FloatArray, check_positive_int
from allele.analytics._season import seasonal_periods
from allele.analytics.forecast.arima import ARIMAForecaster
from allele.analytics.forecast.autoreg import AutoRegForecaster
from allele.analytics.forecast.backtest import mase
from allele.analytics.forecast.base import BaseForecaster, Forecast
from allele.analytics.forecast.baselines import (
    DriftForecaster,
    NaiveForecaster,
    SeasonalNaiveForecaster,
)
from allele.analytics.forecast.smoothing import ExpSmoothingForecaster, ThetaForecaster
from allele.errors import AnalyticsError

__all__ = ["AutoForecaster"]

_MIN_TRAIN = 10
_MIN_FOLDS = 3
_FOLD_BUDGET = 6000  # points: folds x series length, so that long series stay affordable
_TOP = 3

Maker = Callable[[], BaseForecaster]


class AutoForecaster(BaseForecaster):
    """The model that forecast this series best in a rolling-origin backtest, or a baseline.

    Seasons: ``seasonal_periods`` if given, else every season found by
    :func:`~allele.analytics._season.seasonal_periods` (several at once: 24 and 168 in hourly
    data). Candidates:

    * baselines: naive, drift, and seasonal-naive at every season;
    * models: ARIMA, on the seasonally adjusted series (STL, or MSTL for several seasons) when
      there are seasons, with its degenerate fits refused (:class:`ARIMAForecaster`); a long
      autoregression (:class:`AutoRegForecaster`, order by AIC, for cycles no integer season
      describes); simple exponential smoothing, a damped trend and the Theta method
      (:mod:`~allele.analytics.forecast.smoothing`, seasonally adjusted when there are seasons);
    * combinations (``combine``): the mean of the best model and the best baseline, and the
      median of the ``3`` best models (a combination of different errors is often better than
      any of them; the backtest decides).

    Each candidate forecasts ``horizon`` steps from ``folds`` rolling origins at the end of the
    series given to ``fit``, one after the other without overlap, and is scored by MASE at each
    origin (scale: in-sample seasonal-naive at the shortest season, the same for all). ``folds``
    defaults to as many origins as leave the first half of the series for training, between 3
    and ``max_folds``, and no more than 6,000 / n (each origin refits every model: on 300 points
    8 origins, on 2,000 or more 3). ARIMA orders are chosen once, on the points before the first
    origin, and kept through the folds and for the final fit (an order search costs nine
    likelihood fits); in the folds, ARIMA also keeps the parameters estimated on those points
    and is only run forward over the data up to each origin (the final fit estimates them).

    Choice: the best baseline (lowest mean MASE) is kept unless a model or combination beats it
    *consistently*: its mean MASE is lower and a one-sided paired t-test of the per-origin MASE
    differences (a Diebold-Mariano test on the per-origin mean losses) gives ``p < alpha``.
    Among those that pass, the lowest mean wins. A model that is better on average only because
    of one lucky origin does not replace the baseline; ``p_values_`` holds the test of every
    candidate. If the final fit of the winner is refused or falls back, the best baseline is
    used and ``refused_`` says why. Nothing after the series given to ``fit`` is seen: to judge
    the choice, hold out a final window yourself (``benchmarks/analytics_real_forecast.py``
    does).

    ``horizon`` defaults to the longest season (at least 8 steps), or 8 without one; a short
    series shortens the horizon and then the number of folds; under 11 points there is no
    backtest and the forecast is drift (naive for fewer than 3 points), saying so.

    ``refused_`` names every ARIMA fit refused: those of the order search on the points before
    the first origin (which leave no ARIMA candidate when all are refused) and those of the
    final fit of the chosen model.

    Only the last ``max_history`` points (10,000) are used: the models forecast from recent
    dynamics, and a robust STL or an ETS fit on a million points takes many minutes (on 100,000
    hourly-like points the choice took 90 s, on 10,000 a few seconds); ``choice_`` says so.

    Intervals: the chosen model's own, widened (never narrowed) by ``widen_``, the factor that
    makes them cover the model's own backtest errors at ``level`` (split-conformal on the ratio
    of each error to its interval's half-width): a model's interval assumes the model is right,
    and the backtest shows how wrong it was.

    Learned: ``periods_``, ``scores_`` (candidate -> mean backtest MASE), ``fold_scores_``
    (candidate -> MASE per origin), ``p_values_``, ``chosen_`` (the winning candidate),
    ``baseline_`` (best baseline), ``choice_`` (a sentence), ``backtest_horizon_``, ``folds_``,
    ``widen_``.
    """

    def __init__(
        self,
        horizon: int | None = None,
        folds: int | None = None,
        seasonal_periods: Sequence[int] | None = None,
        level: float = 0.9,
        nonnegative: bool | None = None,
        max_obs: int = 2000,
        combine: bool = True,
        alpha: float = 0.1,
        max_folds: int = 8,
        max_history: int = 10_000,
    ) -> None:
        super().__init__(level, nonnegative)
        self.horizon = horizon
        self.folds = folds
        self.seasonal_periods = seasonal_periods
        self.max_obs = max_obs
        self.combine = combine
        self.alpha = alpha
        self.max_folds = max_folds
        self.max_history = max_history

    def _fit(self, y: FloatArray) -> None:
        n_all = y.size
        y = y[-check_positive_int(self.max_history, "max_history", 20):]
        periods = (sorted({check_positive_int(m, "seasonal_period", 2)
                           for m in self.seasonal_periods})
                   if self.seasonal_periods is not None else seasonal_periods(y))
        h = self.horizon if self.horizon is not None else max([8, *periods[-1:]])
        h = check_positive_int(h, "horizon")
        self.refused_ = ()
        self.scores_: dict[str, float] = {}
        self.fold_scores_: dict[str, FloatArray] = {}
        self.p_values_: dict[str, float] = {}
        self.widen_ = 1.0
        plan = _plan(y.size, h, self._folds(y.size, h))
        if plan is None or np.ptp(y) == 0:
            self._short(y, "constant series" if np.ptp(y) == 0 else
                        f"only {y.size} points, a backtest needs {_MIN_TRAIN + 1}")
            return
        h, k = plan
        first = y.size - h * k
        self.periods_ = [m for m in periods if m <= first]
        self._dropped = [f"season {m}: longer than the {first} points before the backtest"
                         for m in periods if m > first and self.seasonal_periods is not None]
        self.backtest_horizon_, self.folds_ = h, k
        self._probe_refused: list[str] = []
        makers = self._candidates(y[:first])
        paths: dict[str, list[Forecast]] = {}
        for name, make in makers.items():
            path = _backtest(make, y, first, h, k)
            if path is not None:
                paths[name] = path
        origins = [first + i * h for i in range(k)]
        scale_m = self.periods_[0] if self.periods_ else 1

        def score(folds: list[Forecast]) -> FloatArray:
            return np.array([mase(y[o:o + h], f.mean, y[:o], scale_m)
                             for o, f in zip(origins, folds, strict=True)])

        self.fold_scores_ = {name: score(p) for name, p in paths.items()}
        self.scores_ = {name: float(np.mean(s)) for name, s in self.fold_scores_.items()}
        bases = [n for n in self.scores_ if _is_baseline(n)]
        self.baseline_ = min(bases, key=lambda n: self.scores_[n])
        if self.combine:
            for name, parts, how in self._combinations():
                paths[name] = [_combine_forecasts([paths[p][i] for p in parts], how)
                               for i in range(k)]
                self.fold_scores_[name] = score(paths[name])
                self.scores_[name] = float(np.mean(self.fold_scores_[name]))
                makers[name] = _Combined.maker([makers[p] for p in parts], how)
        self._choose(y, makers)
        if y.size < n_all:
            self.choice_ += f", on the last {y.size:,} of {n_all:,} points"
        self.widen_ = _widening(y, origins, paths[self.chosen_], self.level)

    def _folds(self, n: int, h: int) -> int:
        if self.folds is not None:
            return check_positive_int(self.folds, "folds")
        fit = (n - max(_MIN_TRAIN, n // 2)) // h
        cost = _FOLD_BUDGET // n  # every origin refits every model on about n points
        return max(_MIN_FOLDS, min(check_positive_int(self.max_folds, "max_folds"), fit, cost))

    def _combinations(self) -> list[tuple[str, list[str], str]]:
        models = sorted((n for n in self.scores_ if not _is_baseline(n)),
                        key=lambda n: self.scores_[n])
        out: list[tuple[str, list[str], str]] = []
        if models:
            out.append((f"mean of {models[0]} and {self.baseline_}",
                        [models[0], self.baseline_], "mean"))
        if len(models) >= _TOP:
            top = models[:_TOP]
            out.append((f"median of {', '.join(top)}", top, "median"))
        return out

    def _choose(self, y: FloatArray, makers: dict[str, Maker]) -> None:
        base_score = self.scores_[self.baseline_]
        base_folds = self.fold_scores_[self.baseline_]
        passed = []
        for name, folds in self.fold_scores_.items():
            if _is_baseline(name):
                continue
            self.p_values_[name] = _p_better(folds - base_folds)
            if self.scores_[name] < base_score and self.p_values_[name] < self.alpha:
                passed.append(name)
        winner = min(passed, key=lambda n: self.scores_[n]) if passed else self.baseline_
        model = makers[winner]()
        for part in [model, *getattr(model, "parts", [])]:
            if isinstance(part, ARIMAForecaster):
                part.params = None  # the final fit estimates them on every point
        model.fit(y)
        refused = [*self._dropped, *self._probe_refused, *getattr(model, "refused_", ())]
        if "fallback" in model.model_ and winner != self.baseline_:
            refused.append(f"{winner}: {model.model_}")
            winner, model = self.baseline_, makers[self.baseline_]().fit(y)
        self._model = model
        self.chosen_ = winner
        self.refused_ = tuple(refused)
        self.model_ = model.model_
        test = ("" if winner == self.baseline_ else
                f", better at p={self.p_values_[winner]:.2g} across origins")
        self.choice_ = (f"{model.model_}: backtest MASE {self.scores_[winner]:.3g} against "
                        f"{base_score:.3g} for the best baseline ({self.baseline_}){test}, "
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

    def _candidates(self, train: FloatArray) -> dict[str, Maker]:
        lv = self.level
        out: dict[str, Maker] = {
            "naive": lambda: NaiveForecaster(level=lv),
            "drift": lambda: DriftForecaster(level=lv),
        }
        for m in self.periods_:
            out[f"seasonal-naive[{m}]"] = functools.partial(SeasonalNaiveForecaster, m, level=lv)
        stl = tuple(m for m in self.periods_ if train.size >= 2 * m + 4)
        tag = (("STL" if len(stl) == 1 else "MSTL") + f"[{','.join(map(str, stl))}] + "
               if stl else "")
        # One ARIMA: on the seasonally adjusted series when there are seasons (a plain ARIMA
        # cannot draw a season; the long AR and the smoothers cover the rest).
        for label, seasons in [(f"{tag}ARIMA", stl)]:
            probe = ARIMAForecaster(seasonal_periods=seasons or None, level=lv,
                                    max_obs=self.max_obs).fit(train)
            self._probe_refused = [f"{r} (on the first {train.size} points)"
                                   for r in probe.refused_]
            if probe.order_ is None or probe.params_ is None:
                continue
            out[label] = functools.partial(
                ARIMAForecaster, order=probe.order_, seasonal_periods=seasons or None, level=lv,
                max_obs=self.max_obs, params=tuple(probe.params_))
        out["AR"] = functools.partial(AutoRegForecaster, level=lv, max_obs=self.max_obs)
        out[f"{tag}ETS(A,N,N)"] = functools.partial(ExpSmoothingForecaster, trend=False,
                                                    seasonal_periods=stl, level=lv)
        out[f"{tag}ETS(A,Ad,N)"] = functools.partial(ExpSmoothingForecaster, trend=True,
                                                     seasonal_periods=stl, level=lv)
        out[f"{tag}Theta"] = functools.partial(ThetaForecaster, seasonal_periods=stl, level=lv)
        return out

    def _predict(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        mean, lower, upper = self._model._predict(horizon)
        f = self.widen_
        return mean, mean - f * (mean - lower), mean + f * (upper - mean)


class _Combined(BaseForecaster):
    """The mean or median of several forecasters' paths; the interval is the same statistic of
    their bounds (an approximation: it assumes the errors move together)."""

    def __init__(self, parts: Sequence[BaseForecaster], how: str = "mean",
                 level: float = 0.9) -> None:
        super().__init__(level)
        self.parts = list(parts)
        self.how = how

    @staticmethod
    def maker(makers: Sequence[Maker], how: str) -> Maker:
        def make() -> BaseForecaster:
            parts = [m() for m in makers]
            return _Combined(parts, how, parts[0].level)
        return make

    def _fit(self, y: FloatArray) -> None:
        fitted = []
        refused: list[str] = []
        for part in self.parts:
            p = copy.deepcopy(part).fit(y)
            fitted.append(p)
            refused += list(getattr(p, "refused_", ()))
        self._fitted_parts = fitted
        self.refused_ = tuple(refused)
        names = [p.model_ for p in fitted]
        self.model_ = (f"mean of {' and '.join(names)}" if self.how == "mean"
                       else f"median of {', '.join(names)}")

    def _predict(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        paths = [p._predict(horizon) for p in self._fitted_parts]
        reduce = np.mean if self.how == "mean" else np.median
        mean, lower, upper = (np.asarray(reduce(np.stack([p[i] for p in paths]), axis=0))
                              for i in range(3))
        return mean, lower, upper


def _combine_forecasts(parts: list[Forecast], how: str) -> Forecast:
    reduce = np.mean if how == "mean" else np.median
    mean, lower, upper = (np.asarray(reduce(np.stack(v), axis=0)) for v in
                          ([f.mean for f in parts], [f.lower for f in parts],
                           [f.upper for f in parts]))
    return Forecast(mean, lower, upper, parts[0].level,
                    f"{how} of {', '.join(f.model for f in parts)}")


def _backtest(make: Maker, y: FloatArray, first: int, h: int, k: int) -> list[Forecast] | None:
    out = []
    for i in range(k):
        origin = first + i * h
        try:
            out.append(make().fit(y[:origin]).predict(h))
        except AnalyticsError:
            return None
    return out


def _p_better(diff: FloatArray) -> float:
    """One-sided p-value that the mean of the per-origin differences ``diff`` is below 0 (a
    paired t-test; with one origin, or differences all equal, it is 0 or 1 by their sign)."""
    d = diff[np.isfinite(diff)]
    if d.size == 0:
        return 1.0
    sd = float(np.std(d, ddof=1)) if d.size > 1 else 0.0
    mean = float(np.mean(d))
    if sd == 0.0:
        return 0.0 if mean < 0 else 1.0
    t = mean / (sd / math.sqrt(d.size))
    return float(stats.t.cdf(t, d.size - 1))


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
