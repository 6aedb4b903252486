"""(Seasonal) ARIMA from statsmodels, with the order chosen by KPSS and AIC when not given."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from allele.analytics._common import FloatArray, check_positive_int
from allele.analytics.forecast.base import BaseForecaster
from allele.analytics.forecast.baselines import _baseline_for
from allele.errors import AnalyticsError

__all__ = ["ARIMAForecaster"]


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
