"""Point masses in a metric series: a value (typically 0) that holds at least 30% of the
learning period. :func:`~allele.analytics.anomaly.series.detect_series` scores the other points
as a series of their own; this module finds the mass, holds an episode's scores through the
mass points inside it, and scores the points beyond a mass that bounds the learning period."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from allele.analytics._common import FloatArray

__all__ = ["hold_episodes", "past_bound", "point_mass"]


def point_mass(learn_values: FloatArray, share: float = 0.3) -> float | None:
    """The value holding at least ``share`` of the learning period, if one does."""
    vals, counts = np.unique(learn_values, return_counts=True)
    i = int(np.argmax(counts))
    return float(vals[i]) if counts[i] >= share * learn_values.size else None


def past_bound(y: FloatArray, learn: int, mass: float) -> FloatArray:
    """Scores of the points beyond a point mass that bounds the learning period (its smallest
    value, as the zeros of a count or a timer, or its largest, as a score at its ceiling): 0
    elsewhere, and everywhere when the mass is inside the learning values or they never left it.

    In the learning period no value ever fell on that side of the mass, though the mass held
    30% of it: the side looks closed (a count below 0, an accuracy above 1), and any point on it
    is news, ranked by its depth ``d`` in the scale ``s`` of the learning points off the mass
    (their median distance from it): ``a = 1 + log10(1 + d / (s / 1000))``, so that the score
    ``a / (1 + a)`` is just above 0.5 at a hair past the mass and 0.8 at ``d = s``. A depth under
    ``s / 1e6`` is rounding, and scores 0.
    """
    out = np.zeros(y.size)
    lv = y[:learn]
    off = lv[lv != mass]
    if off.size == 0:
        return out
    if mass <= float(np.min(off)):
        depth = mass - y[learn:]
    elif mass >= float(np.max(off)):
        depth = y[learn:] - mass
    else:
        return out
    scale = float(np.median(np.abs(off - mass)))
    past = depth > 1e-6 * scale
    a = 1.0 + np.log10(1.0 + depth[past] / (1e-3 * scale))
    out[learn:][past] = a / (1.0 + a)
    return out


def hold_episodes(scores: FloatArray, stats: FloatArray, other: NDArray[np.intp],
                   sub_stats: FloatArray) -> None:
    """In place: the mass points after an other point whose shift, variance or drift scored
    above 0.5 take those scores (the spike's left at 0) until the next other point.

    Without this, the zeros inside an episode (the return from a level shift, which the other
    points' rolling windows take tens of points to forget) cut it into many short runs of
    alarms. It is causal: a held score depends only on the point that alarmed before it.
    """
    episode = sub_stats.copy()
    episode[:, 0] = 0.0  # a spike is one point: nothing to hold
    level = episode.max(axis=1)
    following = np.append(other[1:], scores.size)
    for k in np.flatnonzero(level > 0.5):
        scores[other[k] + 1:following[k]] = level[k]
        stats[other[k] + 1:following[k]] = episode[k]
