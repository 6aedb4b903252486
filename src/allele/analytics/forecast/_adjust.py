"""Seasonal adjustment shared by the models that forecast a non-seasonal series.

:func:`remove_seasons` takes the seasonal components out (robust STL for one season, MSTL for
several); :func:`add_seasons` puts the last season of each back onto a forecast. The seasonal
estimate is treated as known: the interval is the one of the adjusted series.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from allele.analytics._common import FloatArray


def remove_seasons(y: FloatArray, periods: Sequence[int]) -> tuple[FloatArray, list[FloatArray]]:
    """The seasonally adjusted series and the last season of each seasonal component.

    A robust STL costs more than most models fitted after it, and a backtest fits several models
    on the same points: the last few decompositions are cached (by content).
    """
    if not periods:
        return y, []
    parts = _components(y.tobytes(), tuple(periods))
    tails = [parts[-m:, i].copy() for i, m in enumerate(periods)]
    adjusted: FloatArray = y - parts.sum(axis=1)
    return adjusted, tails


@functools.lru_cache(maxsize=8)
def _components(data: bytes, periods: tuple[int, ...]) -> FloatArray:
    """The seasonal components, one column per period (read-only: the result is cached)."""
    from statsmodels.tsa.seasonal import MSTL, STL

    y = np.frombuffer(data, dtype=np.float64)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        if len(periods) == 1:
            parts = np.asarray(STL(y, period=periods[0], robust=True).fit().seasonal,
                               dtype=np.float64)[:, None]
        else:
            parts = np.asarray(MSTL(y, periods=list(periods)).fit().seasonal,
                               dtype=np.float64).reshape(y.size, -1)
    parts = parts.copy()
    parts.setflags(write=False)
    return parts


def add_seasons(path: tuple[FloatArray, FloatArray, FloatArray],
                tails: Sequence[FloatArray]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(mean, lower, upper)`` with each season's last cycle repeated and added."""
    mean, lower, upper = path
    for tail in tails:
        add = tail[np.arange(mean.size) % tail.size]
        mean, lower, upper = mean + add, lower + add, upper + add
    return mean, lower, upper


def season_label(periods: Sequence[int]) -> str:
    """``"STL[12] + "`` or ``"MSTL[24,168] + "`` (empty without a season)."""
    if not periods:
        return ""
    return ("STL" if len(periods) == 1 else "MSTL") + f"[{','.join(map(str, periods))}] + "
