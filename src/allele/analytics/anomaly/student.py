"""The half-t tail of the anomaly pipeline's weighed (spike) columns: the values of a pool
above its median as the upper half of a Student-t whose degrees of freedom are not known,
mixed over :data:`DF_GRID` with the posterior weights of a flat prior (see the module notes of
:mod:`~allele.analytics.anomaly.tail`, which fits and scores the columns)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from allele.analytics._common import FloatArray

__all__ = ["DF_GRID", "STUDENT_SPAN", "HalfT", "StudentTail", "fit_student_tail",
           "log_evidence", "posterior", "student_scores", "surprise_scores"]

DF_GRID = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0,
           50.0)
"""Degrees of freedom a weighed column's half-t may have (50: as good as normal)."""
STUDENT_SPAN = 2000  # a weighed column's fit reads the last this many values its pool kept
_NEWTON_STEPS = 30  # at most this many Newton steps of each half-t's log scale ...
_NEWTON_TOLERANCE = 1e-10  # ... until none moves by more than this
_NEGLIGIBLE = 1e-9  # grid points whose posterior weight is under this share of the largest
# are dropped: together they add at most 2e-8 to a probability, 0.02 % of the default risk


@dataclass(frozen=True, slots=True)
class StudentTail:
    """A weighed column's fitted upper tail (module notes): the values above ``centre`` as half
    Student-t's with degrees of freedom ``dfs`` and scales ``scales``, mixed with the
    posterior ``weights``."""

    centre: float
    dfs: FloatArray
    scales: FloatArray
    weights: FloatArray

    @property
    def xi(self) -> float:
        """The tail's posterior mean shape (a Student-t with ``nu`` degrees of freedom has the
        tail of a GPD of shape ``1 / nu``)."""
        return float(np.sum(self.weights / self.dfs))

    def log_probability(self, s: FloatArray) -> FloatArray:
        """``log P(X > s)`` of each value under the mixture."""
        z = (np.asarray(s, dtype=np.float64) - self.centre)[None, :] / self.scales[:, None]
        p = self.weights @ special.stdtr(self.dfs[:, None], -z)
        out: FloatArray = np.log(np.clip(p, 1e-300, 1.0))
        return out

    def quantile(self, risk: float) -> float:
        """The value exceeded with probability ``risk`` (by bisection: the mixture has no closed
        form)."""
        lo = self.centre
        hi = self.centre + float(np.max(self.scales))
        target = math.log(risk)
        while self.log_probability(np.array([hi]))[0] > target:
            hi = self.centre + 2.0 * (hi - self.centre)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if self.log_probability(np.array([mid]))[0] > target:
                lo = mid
            else:
                hi = mid
        return hi


def fit_student_tail(pool: FloatArray) -> StudentTail | None:
    """The half-t tail of ``pool``'s values above its median (module notes), or None with fewer
    than 2 of them or no spread."""
    fit = HalfT.fit(pool)
    return None if fit is None else fit.tail(posterior(fit.loglik))


@dataclass(frozen=True, slots=True)
class HalfT:
    """One pool's half-t fit at every degrees of freedom of :data:`DF_GRID`: the centre, the
    maximum-likelihood squared scales and the log-likelihoods."""

    centre: float
    s2: FloatArray
    loglik: FloatArray

    @classmethod
    def fit(cls, pool: FloatArray) -> HalfT | None:
        x = np.asarray(pool, dtype=np.float64)
        centre = float(np.median(x))
        d2 = np.square(x[x > centre] - centre)
        start = float(np.mean(d2)) if d2.size else 0.0
        if d2.size < 2 or not start > 0.0:
            return None
        nu = np.asarray(DF_GRID)
        s2 = _half_t_scales(d2, nu)
        loglik = (d2.size * (special.gammaln((nu + 1.0) / 2.0) - special.gammaln(nu / 2.0)
                             - 0.5 * np.log(nu * math.pi * s2))
                  - (nu + 1.0) / 2.0 * np.sum(
                      np.log1p(d2[None, :] / (nu[:, None] * s2[:, None])), axis=1))
        return cls(centre, s2, loglik)

    def tail(self, weights: FloatArray) -> StudentTail:
        """The mixture over the grid with the posterior ``weights`` (summing to 1): this
        fit's own (:func:`posterior` of its ``loglik``), or one shared with the other spike
        column (``tail._shared_half_t``)."""
        keep = weights > _NEGLIGIBLE * float(np.max(weights))
        w = weights[keep] / np.sum(weights[keep])
        return StudentTail(self.centre, np.asarray(DF_GRID)[keep], np.sqrt(self.s2[keep]), w)


def posterior(loglik: FloatArray) -> FloatArray:
    """The posterior over :data:`DF_GRID` of log-likelihoods ``loglik`` under a flat prior."""
    w = np.exp(loglik - np.max(loglik))
    out: FloatArray = w / np.sum(w)
    return out


def log_evidence(loglik: FloatArray) -> float:
    """``log`` of the mean likelihood over the grid (the evidence under a flat prior)."""
    top = float(np.max(loglik))
    return top + math.log(float(np.mean(np.exp(loglik - top))))


def _half_t_scales(d2: FloatArray, nu: FloatArray) -> FloatArray:
    """The maximum-likelihood squared scale of a half-t with each of the degrees of freedom
    ``nu``, given the squared distances ``d2`` from its centre: the root of
    ``mean((nu + 1) r / (1 + r)) = 1`` with ``r = d2 / (nu s2)`` (the fixed point of the EM
    steps ``s2 = mean(w d2)``), by Newton's method on ``log s2`` from the median of ``d2``: six
    or seven steps where EM takes forty."""
    u = np.full(nu.size, math.log(float(np.median(d2)) or float(np.mean(d2))))
    for _ in range(_NEWTON_STEPS):
        r = d2[None, :] / (nu[:, None] * np.exp(u)[:, None])
        q = (nu[:, None] + 1.0) * r / (1.0 + r)  # decreasing in log s2, with derivative -q/(1+r)
        step = np.clip((np.mean(q, axis=1) - 1.0) / np.mean(q / (1.0 + r), axis=1), -2.0, 2.0)
        u += step
        if float(np.max(np.abs(step))) < _NEWTON_TOLERANCE:
            break
    out: FloatArray = np.exp(u)
    return out


def student_scores(col: FloatArray, tail: StudentTail, log_risk: float) -> FloatArray:
    """Scores of ``col`` under a weighed column's tail, with ``log_risk = log(1 / risk)``: 0
    at or under its centre, where the half-t says nothing (the values far under it are the
    other spike column's)."""
    above = np.isfinite(col) & (col > tail.centre)
    surprise = np.zeros(col.shape)
    surprise[above] = -tail.log_probability(col[above])
    return surprise_scores(col, surprise, log_risk)


def surprise_scores(col: FloatArray, surprise: FloatArray, log_risk: float) -> FloatArray:
    """``a / (1 + a)`` with ``a = log(1/p) / log(1/risk)`` (``surprise`` is ``log(1/p)``; see
    :mod:`~allele.analytics.anomaly.tail`), 0 where the statistic is not finite."""
    a = surprise / log_risk
    out: FloatArray = np.where(np.isfinite(col), a / (1.0 + a), 0.0)
    return out
