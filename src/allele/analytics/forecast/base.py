"""What every forecaster shares: the :class:`Forecast` it answers with and the
:class:`BaseForecaster` API (``fit(y, timestamps=None)`` then ``predict(horizon)``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from allele.analytics._common import (
    FloatArray,
    as_series,
    as_timestamps,
    check_level,
    check_positive_int,
    median_step,
)
from allele.errors import NotFittedError

__all__ = ["BaseForecaster", "Forecast", "data_resolution"]


@dataclass(frozen=True)
class Forecast:
    """A forecast path with its prediction interval.

    ``lower``/``upper`` bound a central interval at probability ``level``; ``timestamps`` are the
    future times when the series was fitted with timestamps; ``model`` names the model used;
    ``refused`` lists the models that were fitted but refused (``"ARIMA(2,1,2): oscillating
    forecast"``), so a fallback is never silent.
    """

    mean: FloatArray
    lower: FloatArray
    upper: FloatArray
    level: float
    model: str
    timestamps: FloatArray | None = None
    refused: tuple[str, ...] = ()

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
            "refused": list(self.refused),
        }


def _z(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2.0))


def data_resolution(y: FloatArray) -> float:
    """The smallest change the series ``y`` can show: the smallest gap between two of its
    distinct values; for a constant series, the unit of its value's last decimal digit (1 for
    5.0, 0.01 for 0.25; 1e-15 of the value when 15 decimals do not reach it); 0 only for an empty
    series. The floor of every interval's width (:class:`BaseForecaster`)."""
    finite = np.unique(y[np.isfinite(y)])
    if finite.size > 1:
        return float(np.min(np.diff(finite)))
    if finite.size == 0:
        return 0.0
    v = float(finite[0])
    for k in range(16):
        if round(v, k) == v:
            return float(10.0 ** -k)
    return abs(v) * 1e-15


class BaseForecaster(ABC):
    """The shared forecaster API: ``fit(y, timestamps=None)`` then ``predict(horizon)``.

    ``nonnegative``: keep the forecast and its interval at or above 0. None (the default) does
    when every fitted value is >= 0 (a count, a size, a duration: a negative lower bound for
    them is nonsense, and a symmetric interval produces one whenever the series is near 0);
    False never does. A lower bound below 0 becomes 0. A step whose forecast is below 0 (a
    falling line extrapolated past the floor) is moved up onto 0 with its interval: the forecast
    is 0 and the interval runs from 0 to the model's upper half-width, so it keeps its width and
    grows with the horizon, where clipping all three at 0 gave ``0 | 0 | 0``.

    Intervals never have zero width: each half is at least ``z * resolution_ / 2 * sqrt(h)`` at
    step ``h``, with ``resolution_`` the data's resolution (:func:`data_resolution`: the
    smallest gap between two distinct values, or the last decimal digit of a constant value). A
    model that fits the points exactly (a straight line, a constant) has seen no error, which is
    not evidence of none. ``refused_`` lists the models fitted and refused (empty for most
    forecasters).
    """

    level: float
    model_: str
    n_obs_: int
    refused_: tuple[str, ...] = ()

    def __init__(self, level: float = 0.9, nonnegative: bool | None = None) -> None:
        self.level = level
        self.nonnegative = nonnegative
        self._fitted = False
        self._timestamps: FloatArray | None = None

    # -- public API -------------------------------------------------------------------------
    def fit(self, y: ArrayLike, timestamps: ArrayLike | None = None) -> Self:
        """Learn from the series ``y`` (oldest first); ``timestamps`` in seconds are optional."""
        check_level(self.level)
        arr = as_series(y, name="y")
        self._timestamps = as_timestamps(timestamps, arr.size)
        self.n_obs_ = int(arr.size)
        self._clip = (bool(np.min(arr) >= 0.0) if self.nonnegative is None
                      else bool(self.nonnegative))
        self.resolution_ = data_resolution(arr)
        self._fit(arr)
        self._fitted = True
        return self

    def predict(self, horizon: int) -> Forecast:
        """Forecast the next ``horizon`` steps with a central interval at ``level``."""
        if not self._fitted:
            raise NotFittedError(f"{type(self).__name__}.predict called before fit")
        h = check_positive_int(horizon, "horizon")
        mean, lower, upper = self._predict(h)
        floor = _z(self.level) * self.resolution_ / 2.0 * np.sqrt(np.arange(1, h + 1))
        lower = np.minimum(lower, mean - floor)
        upper = np.maximum(upper, mean + floor)
        if self._clip:
            below = np.minimum(mean, 0.0)  # moves a step forecast below 0 up onto 0
            mean, lower, upper = mean - below, np.maximum(lower - below, 0.0), upper - below
        ts = None
        step = median_step(self._timestamps)
        if self._timestamps is not None and step is not None:
            ts = self._timestamps[-1] + step * np.arange(1, h + 1, dtype=np.float64)
        return Forecast(mean=mean, lower=lower, upper=upper, level=self.level, model=self.model_,
                        timestamps=ts, refused=tuple(self.refused_))

    # -- for subclasses ---------------------------------------------------------------------
    @abstractmethod
    def _fit(self, y: FloatArray) -> None: ...

    @abstractmethod
    def _predict(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]: ...
