"""A long autoregression fitted by least squares: :class:`AutoRegForecaster`.

An AR(p) of an order up to ``max_lag`` can follow a cycle that no integer season describes (the
sunspot cycle of about 11 years, whose length varies from 9 to 14), and it costs one
least-squares solve per order instead of a likelihood optimisation.
"""

from __future__ import annotations

import numpy as np

from allele.analytics._common import FloatArray, check_positive_int
from allele.analytics.forecast.base import BaseForecaster, _z
from allele.analytics.forecast.baselines import _baseline_for
from allele.analytics.forecast.checks import degenerate_reason

__all__ = ["AutoRegForecaster"]


class AutoRegForecaster(BaseForecaster):
    """AR(p) with a constant, by ordinary least squares on the levels.

    ``order=p`` fixes the order; when None, ``p`` is chosen by AIC over ``1..max_lag``, every
    order fitted on the same rows (default ``max_lag``: ``min(24, n // 10)``, at least 1). The
    interval is ``z * sigma * sqrt(sum of squared psi weights)`` (the moving-average form of the
    fitted AR), with ``sigma`` the residual spread. ``order_`` and ``coef_`` (constant first)
    hold the fit; only the last ``max_obs`` points are used.

    Refusal and fallback, as for ARIMA: a constant series or fewer than ``min_obs`` points (10)
    fall back to naive; a fit whose forecast fails
    :func:`~allele.analytics.forecast.checks.degenerate_reason` (explosive roots, oscillation,
    zero width) is refused and ``refused_`` names it.
    """

    def __init__(self, order: int | None = None, max_lag: int | None = None, level: float = 0.9,
                 nonnegative: bool | None = None, min_obs: int = 10, max_obs: int = 2000,
                 check_horizon: int = 24) -> None:
        super().__init__(level, nonnegative)
        self.order = order
        self.max_lag = max_lag
        self.min_obs = min_obs
        self.max_obs = max_obs
        self.check_horizon = check_horizon

    def _fit(self, y: FloatArray) -> None:
        self._fallback: BaseForecaster | None = None
        self.refused_ = ()
        self.order_: int | None = None
        y = y[-self.max_obs:] if self.max_obs and y.size > self.max_obs else y
        if np.ptp(y) == 0 or y.size < self.min_obs:
            why = ("constant series" if np.ptp(y) == 0
                   else f"only {y.size} observations, AR needs {self.min_obs}")
            self._use_fallback(y, why)
            return
        if self.order is not None:
            p = check_positive_int(self.order, "order")
        else:
            top = self.max_lag if self.max_lag is not None else min(24, y.size // 10)
            p = _aic_order(y, max(1, min(check_positive_int(max(top, 1), "max_lag"),
                                         y.size // 3)))
        p = min(p, max(1, y.size // 3))
        self._y = y
        self._coef, self._sigma = _ols(y, p, p)
        self.order_, self.coef_ = p, self._coef.copy()
        self.model_ = f"AR({p})"
        mean, lower, upper = self._path(max(self.check_horizon, 4))
        reason = degenerate_reason(y, mean, lower, upper)
        if reason is not None:
            self.refused_ = (f"AR({p}): {reason}",)
            self._use_fallback(y, f"AR({p}) refused ({reason})")

    def _use_fallback(self, y: FloatArray, reason: str) -> None:
        self._fallback = _baseline_for(y, None, self.level, reason)
        self.model_ = self._fallback.model_

    def _path(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        coef = self._coef
        p = coef.size - 1
        phi = coef[1:]
        hist = list(self._y[-p:][::-1])  # most recent first
        mean = np.empty(horizon)
        for i in range(horizon):
            value = float(coef[0] + phi @ np.asarray(hist[:p]))
            mean[i] = value
            hist.insert(0, value)
        psi = np.zeros(horizon)
        psi[0] = 1.0
        for j in range(1, horizon):
            k = min(j, p)
            psi[j] = float(phi[:k] @ psi[j - 1::-1][:k])
        half = _z(self.level) * self._sigma * np.sqrt(np.cumsum(psi**2))
        return mean, mean - half, mean + half

    def _predict(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        if self._fallback is not None:
            return self._fallback._predict(horizon)
        return self._path(horizon)


def _lagged(y: FloatArray, p: int, start: int) -> tuple[FloatArray, FloatArray]:
    """The design ``[1, y[t-1], ..., y[t-p]]`` and the target ``y[t]`` for ``t >= start``."""
    n = y.size
    cols = [np.ones(n - start)] + [y[start - k:n - k] for k in range(1, p + 1)]
    return np.stack(cols, axis=1), y[start:]


def _ols(y: FloatArray, p: int, start: int) -> tuple[FloatArray, float]:
    x, target = _lagged(y, p, start)
    coef: FloatArray = np.asarray(np.linalg.lstsq(x, target, rcond=None)[0], dtype=np.float64)
    resid = target - x @ coef
    dof = max(target.size - p - 1, 1)
    return coef, float(np.sqrt(resid @ resid / dof))


def _aic_order(y: FloatArray, top: int) -> int:
    """The order in ``1..top`` with the lowest AIC, every order on the rows from ``top`` on."""
    x, target = _lagged(y, top, top)
    best, best_aic = 1, np.inf
    for p in range(1, top + 1):
        coef = np.linalg.lstsq(x[:, :p + 1], target, rcond=None)[0]
        resid = target - x[:, :p + 1] @ coef
        rss = float(resid @ resid)
        if rss <= 0.0:
            return p
        aic = target.size * np.log(rss / target.size) + 2.0 * (p + 1)
        if aic < best_aic:
            best, best_aic = p, aic
    return best
