"""(Seasonal) ARIMA from statsmodels, with the order chosen by KPSS and AIC when not given."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from allele.analytics._common import FloatArray, check_positive_int
from allele.analytics.forecast._adjust import remove_seasons
from allele.analytics.forecast.base import BaseForecaster
from allele.analytics.forecast.baselines import _baseline_for
from allele.analytics.forecast.checks import degenerate_reason
from allele.errors import AnalyticsError

__all__ = ["ARIMAForecaster"]


class ARIMAForecaster(BaseForecaster):
    """(Seasonal) ARIMA from statsmodels.

    ``order=(p, d, q)`` fixes the model; when it is None, ``d`` is chosen by a KPSS stationarity
    test and ``(p, q)`` by AIC over ``0..max_p`` x ``0..max_q``. A linear drift term is added when
    the total differencing is one, a constant when it is zero. ``order_``, ``seasonal_order_`` and
    ``aic_`` hold the chosen model.

    Seasonality, when ``seasonal_period=m`` (or several, ``seasonal_periods=(24, 168)``) is given,
    is handled by ``seasonal_method``:

    * ``"stl"`` (default, fast): a robust STL decomposition (MSTL from statsmodels for several
      seasons) removes the seasonal components, the ARIMA is fitted to the seasonally adjusted
      series and the last season of each seasonal component is added back to its forecast. The
      interval is the ARIMA interval of the adjusted series (the seasonal estimate is treated as
      known).
    * ``"sarima"``: a full seasonal ARIMA (``seasonal_order`` if given, otherwise the best by AIC
      of ``(0,1,1)`` and ``(1,1,0)``). Exact, but slow for long seasons (state size grows with m);
      one season only.

    ``params`` (with ``order``): parameters estimated before, e.g. ``params_`` of an earlier fit;
    the model is then only run over the data (a Kalman filter, no likelihood optimisation: a
    rolling backtest re-uses the parameters estimated before its first origin).

    Only the last ``max_obs`` points of the adjusted series feed the ARIMA (default 2000: the
    dynamics an ARIMA models are local, and a fit on 3,600 hourly points costs seconds), and the
    STL sees only the last ``max(max_obs, 10 * m)`` points (a robust STL of 100,000 points
    takes 20 s).

    Refusals (``refused_`` and :attr:`Forecast.refused` name them): the forecast of every fitted
    candidate, best AIC first, is checked over ``check_horizon`` steps by
    :func:`~allele.analytics.forecast.checks.degenerate_reason` (non-finite, zero-width interval,
    explosive, oscillating); a degenerate fit is refused and the next candidate tried.

    Fallbacks (documented; ``model_`` says which): a constant series, fewer than ``min_obs``
    observations (default 10, or two seasons plus 4 when seasonal), or no candidate that
    statsmodels can fit or that passes the checks -> :class:`SeasonalNaiveForecaster` /
    :class:`NaiveForecaster`.
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
        seasonal_periods: Sequence[int] | None = None,
        max_obs: int = 2000,
        check_horizon: int = 24,
        nonnegative: bool | None = None,
        params: Sequence[float] | None = None,
    ) -> None:
        super().__init__(level, nonnegative)
        self.order = order
        self.seasonal_period = seasonal_period
        self.seasonal_order = seasonal_order
        self.seasonal_method = seasonal_method
        self.max_p = max_p
        self.max_q = max_q
        self.max_d = max_d
        self.min_obs = min_obs
        self.seasonal_periods = seasonal_periods
        self.max_obs = max_obs
        self.check_horizon = check_horizon
        self.params = params

    def _periods(self) -> tuple[int, ...]:
        periods = tuple(self.seasonal_periods or ())
        if self.seasonal_period is not None:
            periods = tuple(sorted({*periods, self.seasonal_period}))
        for m in periods:
            check_positive_int(m, "seasonal_period", 2)
        if len(periods) > 1 and self.seasonal_method == "sarima":
            raise AnalyticsError("seasonal_method='sarima' takes one season; use 'stl' for "
                                 f"several ({', '.join(map(str, periods))})")
        return periods

    def _fit(self, y: FloatArray) -> None:
        periods = self._periods()
        m = max(periods) if periods else None
        min_obs = self.min_obs if self.min_obs is not None else (2 * m + 4 if m else 10)
        self._fallback: BaseForecaster | None = None
        self._orig = y
        self.order_: tuple[int, int, int] | None = None
        self.seasonal_order_: tuple[int, int, int, int] | None = None
        self.aic_: float = math.nan
        self.params_: FloatArray | None = None
        self.refused_ = ()
        if np.ptp(y) == 0:
            self._use_fallback("constant series")
            return
        if y.size < min_obs:
            self._use_fallback(f"only {y.size} observations, ARIMA needs {min_obs}")
            return
        if self.seasonal_method not in ("stl", "sarima"):
            raise AnalyticsError(
                f"seasonal_method must be 'stl' or 'sarima', got {self.seasonal_method!r}")
        self._season_tails: list[FloatArray] = []
        use_stl = bool(periods) and self.seasonal_method == "stl"
        if use_stl:
            assert m is not None
            y = y[-max(self.max_obs, 10 * m):] if self.max_obs else y
            y = y - self._remove_seasons(y, periods)
        y = y[-self.max_obs:] if self.max_obs and y.size > self.max_obs else y
        self._select(y, self._candidates(y, use_seasonal=bool(periods) and not use_stl))
        if self._fallback is not None:
            return
        assert self.order_ is not None and self.seasonal_order_ is not None
        p, d, q = self.order_
        if use_stl:
            label = "STL" if len(periods) == 1 else "MSTL"
            self.model_ = f"{label}[{','.join(map(str, periods))}] + ARIMA({p},{d},{q})"
        elif periods:
            sp, sd, sq, sm = self.seasonal_order_
            self.model_ = f"ARIMA({p},{d},{q})({sp},{sd},{sq})[{sm}]"
        else:
            self.model_ = f"ARIMA({p},{d},{q})"

    def _remove_seasons(self, y: FloatArray, periods: tuple[int, ...]) -> FloatArray:
        """The seasonal components (STL for one season, MSTL for several), summed; the last
        season of each is kept for the forecast."""
        adjusted, self._season_tails = remove_seasons(y, periods)
        total: FloatArray = y - adjusted
        return total

    def _select(self, y: FloatArray,
                candidates: list[tuple[tuple[int, int, int], tuple[int, int, int, int]]]) -> None:
        """Fit every candidate; keep the best AIC whose forecast passes the checks."""
        fitted: list[tuple[float, Any, tuple[int, int, int], tuple[int, int, int, int]]] = []
        for order, sorder in candidates:
            res = self._fit_one(y, order, sorder)
            if res is not None and math.isfinite(float(res.aic)):
                fitted.append((float(res.aic), res, order, sorder))
        if not fitted:
            self._use_fallback("no ARIMA candidate could be fitted")
            return
        fitted.sort(key=lambda item: item[0])
        refused: list[str] = []
        h = max(self.check_horizon, *(t.size for t in self._season_tails), 4)
        for aic, res, order, sorder in fitted:
            mean, lower, upper = self._arima_path(res, h)
            reason = degenerate_reason(y, mean, lower, upper)
            if reason is None:
                self.aic_, self._res, self.order_, self.seasonal_order_ = aic, res, order, sorder
                self.params_ = np.asarray(res.params, dtype=np.float64)
                self.refused_ = tuple(refused)
                return
            refused.append(f"{_order_text(order, sorder)}: {reason}")
        self.refused_ = tuple(refused)
        self._use_fallback(f"every ARIMA fit refused ({refused[0]})")

    def _arima_path(self, res: Any, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        with warnings.catch_warnings(), threadpool_limits(1), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            fc = res.get_forecast(horizon)
            mean = np.asarray(fc.predicted_mean, dtype=np.float64)
            ci = np.asarray(fc.conf_int(alpha=1.0 - self.level), dtype=np.float64)
        return mean, ci[:, 0], ci[:, 1]

    def _use_fallback(self, reason: str) -> None:
        """Forecast the original series by the documented baseline, naming ``reason``."""
        periods = self._periods()
        self._fallback = _baseline_for(self._orig, max(periods) if periods else None,
                                       self.level, reason)
        self.model_ = self._fallback.model_

    def _candidates(
        self, y: FloatArray, use_seasonal: bool
    ) -> list[tuple[tuple[int, int, int], tuple[int, int, int, int]]]:
        m = self.seasonal_period if use_seasonal else None
        if use_seasonal and m is None:
            m = self._periods()[0]
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

    def _fit_one(
        self, y: FloatArray, order: tuple[int, int, int], sorder: tuple[int, int, int, int]
    ) -> Any:
        from statsmodels.tsa.arima.model import ARIMA

        diff_total = order[1] + sorder[1]
        trend = "c" if diff_total == 0 else ("t" if diff_total == 1 else "n")
        try:
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")
                model = ARIMA(y, order=order, seasonal_order=sorder, trend=trend)
                if self.params is not None and self.order is not None:
                    return model.filter(np.asarray(self.params, dtype=np.float64))
                return model.fit()
        except (ValueError, np.linalg.LinAlgError, IndexError):
            return None

    def _predict(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        if self._fallback is not None:
            return self._fallback._predict(horizon)
        mean, lower, upper = self._arima_path(self._res, horizon)
        for tail in self._season_tails:
            add = tail[np.arange(horizon) % tail.size]
            mean, lower, upper = mean + add, lower + add, upper + add
        bad = ~np.isfinite(lower) | ~np.isfinite(upper)
        lower = np.where(bad, mean, lower)
        upper = np.where(bad, mean, upper)
        return mean, lower, upper


def _order_text(order: tuple[int, int, int], sorder: tuple[int, int, int, int]) -> str:
    p, d, q = order
    if sorder[3]:
        return f"ARIMA({p},{d},{q})({sorder[0]},{sorder[1]},{sorder[2]})[{sorder[3]}]"
    return f"ARIMA({p},{d},{q})"


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
