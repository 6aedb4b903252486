"""Tail calibration by peaks over threshold (SPOT, Siffer et al., KDD 2017).

A statistic that is large when something is wrong has, under the normal behaviour of a series,
an upper tail that the generalised Pareto distribution (GPD) describes above a high threshold
``u`` (Pickands-Balkema-de Haan). :func:`spot_scores` fits that tail on the values seen so far,
turns every new value into a tail probability ``p`` and a score, and refits at checkpoints
whose positions depend only on the start of scoring (never on the series' length), so a score
never changes when more data arrives.

* Peaks: the values above the 90% quantile of the pool (the learning rows, then every later row
  that was not an alarm: an alarm never teaches the tail that it is normal, as in SPOT), by
  more than a relative 1e-9: a value that floating-point error put a hair above the quantile is
  a tie with it, not a peak.
* Excursion gate (the columns passed as ``gated``): a row above the tail's threshold ``u``
  joins the pool only once its excursion (the run of rows above ``u`` it belongs to) has
  ended, and not at all if the excursion raised an alarm. A slow statistic (a rolling median
  under a drift ramp, a rolling variance as the noise widens) climbs through ``u`` for tens
  of rows before it alarms; in plain SPOT those rows join the pool on the way and raise the
  threshold ahead of the excursion, which then alarms late or not at all. Under the null an
  excursion ends, and unless it held a false alarm its rows all join, a few rows late (a false
  alarm now keeps its whole excursion out, not only itself). The anomaly pipeline gates its
  variance and drift columns only: a spike or a shift alarms at its onset, so there is
  nothing to protect there, and gating those columns too raised the false alarms on the
  recorded histories (``benchmarks/analytics_real.py``, see ``docs/analytics.md``).
* Fit: the shape ``xi`` from the excesses by probability-weighted moments (Hosking & Wallis
  1987), or, for the columns passed as ``zhang_stephens``, by the profile-likelihood average
  of Zhang & Stephens (2009, see :func:`zhang_stephens_shape`), which is less biased on short
  heavy tails; then clipped to [0, 0.9] and shrunk towards 0.25 with the weight of 15 peaks (a
  dozen peaks say little about a shape). A negative shape (a bounded tail, what the maximum
  of Gaussian-like noise gives in small samples) is treated as exponential: the tail is judged
  heavier than it looks, never lighter, which only costs recall. The scale is floored at
  ``min_scale`` (quantised statistics make ties).
* Probability: ``p = (N_u / N) (1 + xi (s - u) / sigma) ** (-1 / xi)`` (exponential for
  ``xi = 0``); the alarm threshold is where ``p`` equals ``risk``.
* Normal columns (``normal``, the spike-up statistic of a right-skewed noise read in logs by
  the anomaly pipeline): no GPD but a normal upper tail, centred on the pool's median, its
  scale the root mean square of the pool's values above the median (the upper half alone: the
  lower half of a log-read statistic says nothing about its upper tail), and the probability
  that of Student's t with as many degrees of freedom as values above the median, less one
  (the predictive distribution of a normal value whose scale is estimated). On a light tail a
  GPD above the 90 % quantile, its shape shrunk towards 0.25, puts the 1e-4 threshold far out
  (Gaussian noise: the spike statistic's true 1e-4 quantile is 3.8, the fitted one 4.8 late
  in a series); the normal tail uses the whole upper half of the pool instead of a dozen
  peaks.
* Weighed columns (``weighed``: the anomaly pipeline's spike statistics). Once
  :data:`WEIGH_AFTER` values of the column have been seen (alarms included), the last
  :data:`WEIGH_SPAN` of them judge its tail by :func:`tail_weight`. A light tail (at most
  :data:`LIGHT_WEIGHT`) takes the normal tail above: a GPD whose shape is shrunk towards 0.25
  puts a Gaussian noise's 1e-4 threshold at 4.8 where the truth is 3.8, and misses spikes.
  The cut separates the spike statistic's samples of 300 values well: 95 % of Gaussian and
  AR(0.8) ones weigh under 4.0-4.2 (injected spikes included), 95 % of Student-t(3) ones over
  4.3. A Student-t(3) column wrongly judged light raises alarms at every large value; alarms
  count in the judgement so that they cannot keep a column looking light.
* Until it is judged, and where it is judged heavy, a weighed column takes a half-t tail
  (:mod:`~allele.analytics.anomaly.student`): the values of the pool above its median are the
  upper half of a Student-t centred on the median, whose degrees of freedom are not known. For
  each of :data:`~allele.analytics.anomaly.student.DF_GRID` the scale is fitted by maximum
  likelihood, and the tail probability of a value is the average of the grid's, each weighted by
  its likelihood (the posterior under a flat prior on the grid). That is the predictive
  probability: it counts what the pool cannot say about the tail's weight, where a plug-in
  threshold scatters from series to series and is then crossed more often than the risk. On
  Student-t(3) noise a GPD above the 90 % quantile, its shape prior weighing 60 peaks, was crossed
  2.2-2.8 times as often as the risk after 300-700 values; the half-t 1.5-2.3 times. The fit reads
  the last :data:`~allele.analytics.anomaly.student.STUDENT_SPAN` values the pool kept.
* The two weighed columns, when both take a half-t in a block, lend each other evidence
  (:func:`_shared_half_t`). They are the two sides of one statistic (the spike-up and
  spike-down pools hold its values above and below the centre), and one side of a short pool
  (12 values above the median in a series of 100 points) leaves the tail's weight nearly
  open. Each column's weights over the degrees of freedom average two models by their
  evidence, at equal odds before the data: one posterior for both sides (their
  log-likelihoods summed) and the column's own (a skewed noise has one heavy side). Each
  column keeps its own centre and scales.
* Alternates (``alternate``, ``{i: j}``): in the blocks where a weighed column is judged
  heavy, column ``i``'s scores are column ``j``'s; ``j`` is scored and learns in every block
  (through the gate if it is gated), so its tail is ready when it is needed, and its own
  scores are 0. In a series too short for any judgement, ``j`` is not scored at all. The
  anomaly pipeline scores its variance column by the mean absolute deviation where the noise
  is heavy-tailed (``series._HEAVY_VARIANCE``).
* Score: ``a / (1 + a)`` with ``a = log(1/p) / log(1/risk)``: 0.5 exactly at the alarm
  threshold, increasing with the evidence (``p = risk^2`` scores 0.67, ``risk^4`` 0.8), so
  scores rank events instead of saturating at 1.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy import special

from allele.analytics._common import FloatArray
from allele.analytics.anomaly._kernels import merge_sorted
from allele.analytics.anomaly.student import (
    STUDENT_SPAN,
    HalfT,
    StudentTail,
    fit_student_tail,
    log_evidence,
    posterior,
    student_scores,
    surprise_scores,
)

__all__ = ["GpdTail", "StudentTail", "fit_student_tail", "fit_tail", "normal_scores",
           "spot_scores", "student_scores", "tail_probability", "tail_weight",
           "zhang_stephens_shape"]

PEAK_QUANTILE = 0.9
XI_MAX = 0.9
XI_PRIOR = 0.25
PRIOR_PEAKS = 15
_CUT_QUANTILE = 0.85  # a pool's top starts at this quantile when rebuilt ...
_TOP_LIMIT = 0.25  # ... and is rebuilt when it holds more than this share of the pool
_TIE = 1e-9  # relative distance under which a value equals the peak threshold u
_ZS_POINTS = 256  # more peaks than this reach the Zhang-Stephens likelihood condensed
WEIGH_AFTER = 300  # a weighed column's tail is judged once this many values were seen ...
WEIGH_SPAN = 1000  # ... on the last this many of them
LIGHT_WEIGHT = 4.0  # (q99 - q01) / (q75 - q25) at most this: a light tail (normal: 3.45)


@dataclass(frozen=True, slots=True)
class GpdTail:
    """A fitted upper tail: threshold ``u``, its exceedance share ``zeta = N_u / N``, GPD shape
    ``xi`` and scale ``sigma``."""

    u: float
    zeta: float
    xi: float
    sigma: float

    def quantile(self, risk: float) -> float:
        """The value exceeded with probability ``risk``."""
        r = min(risk / self.zeta, 1.0)
        if self.xi > 1e-9:
            return float(self.u + self.sigma / self.xi * (r ** (-self.xi) - 1.0))
        return self.u - self.sigma * math.log(r)


def fit_tail(pool: FloatArray, min_scale: float, shape: Literal["pwm", "zs"] = "pwm") -> GpdTail:
    """GPD tail of ``pool`` above its 90% quantile (see the module notes); ``shape`` picks the
    shape estimator: probability-weighted moments or Zhang-Stephens."""
    return _fit_sorted_tail(np.sort(np.asarray(pool, dtype=np.float64)), min_scale,
                            shape=shape)


def zhang_stephens_shape(excesses: FloatArray) -> float:
    """GPD shape of sorted positive ``excesses`` by Zhang & Stephens (2009), without a prior.

    In the parametrisation ``theta = -xi / sigma`` the likelihood profiled over ``xi`` has a
    closed form: for a given ``theta`` the best shape is ``mean(log(1 - theta x))``. The
    estimate averages ``theta`` over a grid, each point weighted by its profile likelihood (a
    posterior mean under the grid as prior), and reads the shape off the average. Unlike a
    moment method it uses the whole likelihood, so a few large peaks count for what they say
    about a heavy tail. On the spike statistic of Student-t(3) noise, late in a series, it
    raised the median fitted 1e-4 threshold from 70% to 78% of the true one, and the true
    exceedance from 5.1 to 4.0 times the risk (``benchmarks/anomaly_tail_calibration.py``).

    The grid: ``20 + floor(sqrt(n))`` points from just under ``1 / max(x)`` (the largest
    ``theta`` for which every excess is in the support) down towards heavy tails, spaced by
    the first quartile of the excesses as in the paper. Beyond :data:`_ZS_POINTS` excesses the
    profile likelihood reads them condensed (:func:`_condensed`); the final shape reads them
    all.
    """
    x = np.asarray(excesses, dtype=np.float64)
    n = x.size
    if n < 2 or not x[-1] > 0.0:
        return 0.0
    vals, wts = _condensed(x)
    m = 20 + math.isqrt(n)
    quartile = float(x[max(int(n / 4 + 0.5) - 1, 0)])
    if not quartile > 0.0:
        quartile = float(np.mean(x))
    grid = np.arange(1, m + 1, dtype=np.float64)
    theta = 1.0 / float(x[-1]) + (1.0 - np.sqrt(m / (grid - 0.5))) / (3.0 * quartile)
    k = np.log1p(-theta[:, None] * vals[None, :]) @ wts / n
    with np.errstate(divide="ignore", invalid="ignore"):
        loglik = n * (np.log(-theta / k) - k - 1.0)
    ok = np.isfinite(loglik)
    if not ok.any():
        return 0.0
    w = np.exp(loglik[ok] - loglik[ok].max())
    theta_hat = float(np.sum(w * theta[ok]) / np.sum(w))
    return float(np.mean(np.log1p(-theta_hat * x)))


def _sorted_quantile(top: FloatArray, q: float, below: int = 0, cut: float = math.nan) -> float:
    """``np.quantile(pool, q)`` (the default linear method) of a pool given as its sorted top
    ``top`` and ``below`` more values at or under ``cut``: the same interpolation,
    with the same arithmetic, without a partition of the whole pool. The ranks read must be
    ``>= below`` or fall on values equal to ``cut`` (the caller's :class:`_Pool` sees to it)."""
    n = top.size + below
    v = (n - 1) * q
    i = math.floor(v)
    if i >= n - 1:
        return float(top[-1]) if top.size else cut
    a = float(top[i - below]) if i >= below else cut
    b = float(top[i + 1 - below]) if i + 1 >= below else cut
    g = v - i
    d = b - a
    return b - d * (1.0 - g) if g >= 0.5 else a + d * g


def _condensed(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Sorted ``x`` as at most :data:`_ZS_POINTS` values with weights (how many each stands
    for): its ``_ZS_POINTS // 4`` largest values exactly, where a heavy tail's few large values
    carry the likelihood, and the rest as the means of equal runs of neighbours, whose spread
    is small against their level (``log1p(-theta x)`` is smooth there, so a run's mean stands
    for it). A test compares the shape it gives with the full likelihood's."""
    n = x.size
    if n <= _ZS_POINTS:
        return x, np.ones(n)
    top = _ZS_POINTS // 4
    bounds = np.linspace(0, n - top, _ZS_POINTS - top + 1).round().astype(np.intp)
    sums = np.add.reduceat(x[:n - top], bounds[:-1])
    sizes = np.diff(bounds).astype(np.float64)
    return (np.concatenate([sums / sizes, x[n - top:]]),
            np.concatenate([sizes, np.ones(top)]))


def _fit_sorted_tail(top: FloatArray, min_scale: float, below: int = 0,
                     cut: float = math.nan, shape: Literal["pwm", "zs"] = "pwm") -> GpdTail:
    """:func:`fit_tail` of a pool given as its sorted top ``top`` and the count ``below`` of
    its other values, at or under ``cut`` (0: ``top`` is the whole pool)."""
    u = _sorted_quantile(top, PEAK_QUANTILE, below, cut)
    # A value above u by floating-point error alone is a tie with u, not a peak: a near-zero
    # excess would drag the shape estimate (Zhang-Stephens reads its grid off the excesses'
    # first quartile), and repeated values (a metric whose seeds repeat) make many such ties.
    srt = top[np.searchsorted(top, u + _TIE * max(1.0, abs(u)), side="right"):] - u
    zeta = max(srt.size, 1) / max(top.size + below, 1)
    if srt.size < 2:
        return GpdTail(u, zeta, 0.0, min_scale)
    m = srt.size
    a0 = float(np.mean(srt))
    if shape == "zs":
        xi = zhang_stephens_shape(srt)
    else:
        # Probability-weighted moments (Hosking & Wallis 1987): unlike the ordinary moments
        # they exist for shapes up to 1 and are less biased on short, heavy tails.
        a1 = float(np.mean((1.0 - (np.arange(1, m + 1) - 0.35) / m) * srt))
        den = a0 - 2.0 * a1
        xi = 2.0 - a0 / den if den > 0 else XI_MAX
    # A shape estimated from a dozen peaks is mostly noise, and an underestimated shape is a
    # stream of false alarms: shrink it towards XI_PRIOR with the weight of PRIOR_PEAKS peaks.
    xi = (m * min(max(xi, 0.0), XI_MAX) + PRIOR_PEAKS * XI_PRIOR) / (m + PRIOR_PEAKS)
    sigma = max(a0 * (1.0 - xi), min_scale)
    return GpdTail(u, zeta, xi, sigma)


def tail_probability(s: FloatArray, tail: GpdTail) -> FloatArray:
    """Tail probability of each value under ``tail`` (values below ``u`` get more than
    ``zeta``, capped at 1)."""
    d = (s - tail.u) / tail.sigma
    if tail.xi > 1e-9:
        base = np.maximum(1.0 + tail.xi * d, 1e-300)
        logp = math.log(tail.zeta) - np.log(base) / tail.xi
    else:
        logp = math.log(tail.zeta) - d
    out: FloatArray = np.exp(np.minimum(logp, 0.0))
    return out


def _checkpoints(start: int, n: int, block: int) -> list[int]:
    """Refit positions from ``start``: every ``block`` points, then every 10% of the points seen
    (fixed by ``start`` and ``block`` alone, so independent of ``n``)."""
    out = [start]
    while out[-1] < n:
        out.append(out[-1] + max(block, out[-1] // 10))
    out[-1] = n
    return out


def spot_scores(stats: FloatArray, calib_start: int, learn_end: int, risk: float, *,
                block: int = 25, min_scale: float = 0.25,
                gated: Collection[int] = (), zhang_stephens: Collection[int] = (),
                normal: Collection[int] = (), normal_risk: float | None = None,
                weighed: Collection[int] = (), alternate: Mapping[int, int] | None = None,
                tails: list[tuple[int, int, GpdTail | StudentTail]] | None = None,
                rebase: Rebase | None = None) -> FloatArray:
    """Causal SPOT scores in [0, 1] of each column of ``stats`` (n x k; NaN rows score 0).

    Rows ``[calib_start, learn_end)`` are the learning pool (score 0); from ``learn_end`` on, the
    rows of each block are scored with the tails fitted before the block, and those not alarmed
    (score <= 0.5) join the pool; in the columns ``gated``, through the excursion gate (see the
    module notes). The columns in ``zhang_stephens`` estimate their tail's shape by
    :func:`zhang_stephens_shape`, the others by probability-weighted moments. The columns in
    ``normal`` take a normal upper tail instead of a GPD (see the module notes), at
    ``normal_risk`` (default ``risk``). The columns in ``weighed`` take the half-t tail of
    :func:`fit_student_tail`, and in the blocks where one of them weighs heavy, each column
    ``i`` of ``alternate`` takes the scores of its column ``j``, whose own scores are 0 (see
    the module notes). Returns the per-column scores (n x k). A list passed as ``tails``
    receives ``(first row, column, tail)`` for every refit of a GPD or half-t tail, for
    diagnostics (``benchmarks/anomaly_tail_calibration.py``). A ``rebase`` (:class:`Rebase`)
    reads each block's scores before any row of it joins a pool, and may rewrite its columns
    from a row on; those rows are scored again with the block's tails.
    """
    x = np.nan_to_num(np.asarray(stats, dtype=np.float64), nan=-np.inf)
    n, k = x.shape
    scores = np.zeros((n, k))
    if learn_end >= n:
        return scores
    log_risk = math.log(1.0 / risk)
    log_normal_risk = math.log(1.0 / (risk if normal_risk is None else normal_risk))
    pools = [_Pool(x[calib_start:learn_end, j]) for j in range(k)]
    gates = {j: _Excursion() for j in gated}
    marks = _checkpoints(learn_end, n, block)
    # Alternates are only ever shown once a weighed column is judged: in a series too short for
    # that (or with no weighed column), they are not scored at all.
    judged = any(j not in normal for j in weighed) and marks[-2] - calib_start >= WEIGH_AFTER
    idle = set() if judged else set((alternate or {}).values())
    for lo, hi in itertools.pairwise(marks):
        heavy = {j: _heavy(x[max(calib_start, lo - WEIGH_SPAN):lo, j])
                 for j in weighed if j not in normal}
        fits: dict[int, _Fit] = {}
        half_t = _shared_half_t(pools, heavy, idle)
        for j in range(k):
            if pools[j].n < 10 or j in idle:
                continue
            fits[j] = fit = _fit_column(pools[j], j, heavy, normal, zhang_stephens, min_scale,
                                        log_normal_risk if j in normal else log_risk,
                                        half_t.get(j))
            if tails is not None and fit.tail is not None:
                tails.append((lo, j, fit.tail))
            scores[lo:hi, j] = fit.score(x[lo:hi, j])
        start = lo
        while rebase is not None and (start := rebase(x, scores, start, hi)) < hi:
            for j in rebase.columns:  # rows after a re-baseline: their new values, same tails
                if j in fits:
                    scores[start:hi, j] = fits[j].score(x[start:hi, j])
        for j, fit in fits.items():
            col, sc = x[lo:hi, j], scores[lo:hi, j]
            gate = gates.get(j)
            pools[j].add(col[sc <= 0.5] if gate is None or not isinstance(fit.tail, GpdTail)
                         else gate.settled(col, col > fit.tail.u, sc > 0.5))
        for i, j in (alternate or {}).items():
            if any(heavy.values()):
                scores[lo:hi, i] = scores[lo:hi, j]
            scores[lo:hi, j] = 0.0
    return scores


class Rebase(Protocol):
    """The ``rebase`` of :func:`spot_scores` (:mod:`~allele.analytics.anomaly.rebase`): reads
    the scores of rows ``[start, stop)``; returns ``stop``, or ``t + 1`` after rewriting its
    ``columns`` of ``stats`` from row ``t + 1`` on (rows that are then scored again)."""

    columns: tuple[int, ...]

    def __call__(self, stats: FloatArray, scores: FloatArray, start: int, stop: int) -> int: ...


@dataclass(frozen=True, slots=True)
class _Fit:
    """One column's tail for one block: a GPD, a half-t, or (``tail`` None) the normal tail of
    ``pool``."""

    tail: GpdTail | StudentTail | None
    pool: FloatArray | None
    log_risk: float

    def score(self, col: FloatArray) -> FloatArray:
        if isinstance(self.tail, StudentTail):
            return student_scores(col, self.tail, self.log_risk)
        if isinstance(self.tail, GpdTail):
            p = np.maximum(tail_probability(col, self.tail), 1e-300)
            return surprise_scores(col, np.log(1.0 / p), self.log_risk)
        assert self.pool is not None
        return normal_scores(col, self.pool, self.log_risk)


def _shared_half_t(pools: list[_Pool], heavy: Mapping[int, bool | None],
                   idle: Collection[int]) -> dict[int, StudentTail]:
    """The half-t tails of the weighed columns that take one in this block (``heavy`` holds
    the weighed columns not read as normal; those not judged light take a half-t).

    The spike-up and spike-down pools are the two sides of one statistic, and one side of a
    short pool leaves its tail's weight open (module notes). Whether both sides have the same
    degrees of freedom is itself uncertain (a skewed noise has one heavy side), so each
    column's weights average two models by their evidence, equal odds before the data: one
    posterior for both (their log-likelihoods summed) and the column's own."""
    halves = {j: HalfT.fit(pools[j].values()[-STUDENT_SPAN:]) for j, h in heavy.items()
              if h is not False and pools[j].n >= 10 and j not in idle}
    fitted = {j: h for j, h in halves.items() if h is not None}
    if len(fitted) < 2:
        return {j: h.tail(posterior(h.loglik)) for j, h in fitted.items()}
    both = np.sum([h.loglik for h in fitted.values()], axis=0)
    apart = sum(log_evidence(h.loglik) for h in fitted.values())
    same = 1.0 / (1.0 + math.exp(min(apart - log_evidence(both), 700.0)))
    shared = posterior(both)
    return {j: h.tail(same * shared + (1.0 - same) * posterior(h.loglik))
            for j, h in fitted.items()}


def _fit_column(pool: _Pool, j: int, heavy: Mapping[int, bool | None], normal: Collection[int],
                zhang_stephens: Collection[int], min_scale: float, log_risk: float,
                student: StudentTail | None) -> _Fit:
    """Column ``j``'s tail before a block (see :func:`spot_scores`); ``student`` its half-t
    (:func:`_shared_half_t`), if it has one."""
    if j in normal or heavy.get(j) is False:  # a light weighed tail: the normal fit
        return _Fit(None, pool.values(), log_risk)
    # A weighed tail not judged yet, or judged heavy: the half-t, unless the pool has fewer
    # than two values above its median (ties), which only a GPD can read.
    if student is not None:
        return _Fit(student, None, log_risk)
    return _Fit(_fit_sorted_tail(pool.top, min_scale, pool.below, pool.cut,
                                 "zs" if j in zhang_stephens else "pwm"), None, log_risk)


def _heavy(seen: FloatArray) -> bool | None:
    """A weighed column's judgement from the values ``seen`` before a block: None (fewer than
    :data:`WEIGH_AFTER` finite ones: not yet judged), True (heavy) or False (light)."""
    seen = seen[np.isfinite(seen)]
    return None if seen.size < WEIGH_AFTER else tail_weight(seen) > LIGHT_WEIGHT


def tail_weight(values: FloatArray) -> float:
    """``(q99 - q01) / (q75 - q25)`` of ``values``: how far the 1 % tails reach in units of the
    interquartile range (3.45 for a normal sample, 5.9 for Student's t with 3 degrees of
    freedom); infinite when the quartiles are equal. A handful of outliers in a few hundred
    values moves it little, unlike the kurtosis (one 8-sd value among 300 normal ones lifts
    that from 3 to about 16)."""
    a, b, c, d = np.quantile(values, [0.01, 0.25, 0.75, 0.99])
    return float((d - a) / (c - b)) if c > b else math.inf


def normal_scores(col: FloatArray, pool: FloatArray, log_risk: float) -> FloatArray:
    """Scores of ``col`` under the normal upper tail of ``pool`` (see the module notes), with
    ``log_risk = log(1 / risk)``."""
    mid = float(np.median(pool))
    up = pool[pool > mid] - mid
    scale = math.sqrt(float(np.mean(up * up))) if up.size else 0.0
    if up.size < 2 or not scale > 0.0:
        return np.zeros(col.shape)
    with np.errstate(invalid="ignore", divide="ignore"):  # sf 0 far out: clamped below
        # special.stdtr is the t cdf without scipy.stats' wrapping (about 40 % less time)
        logp = np.log(special.stdtr(up.size - 1, (mid - col) / scale))
    return surprise_scores(col, -np.minimum(np.maximum(logp, math.log(1e-300)), 0.0), log_risk)


class _Excursion:
    """The excursion gate of one column (see the module notes): which rows of each scored block
    join the pool, given which are above the tail's threshold and which alarmed. An excursion
    still going on at the end of a block is held (its rows that did not alarm, and whether
    any did) until a later block ends it."""

    __slots__ = ("alarmed", "held")

    def __init__(self) -> None:
        self.held: list[FloatArray] = []
        self.alarmed = False

    def settled(self, col: FloatArray, above: NDArray[np.bool_],
                alarm: NDArray[np.bool_]) -> FloatArray:
        """The rows of this block, and of a held excursion that ends in it, that join the pool."""
        out: list[FloatArray] = []
        start = 0
        if self.held:  # an excursion carried over: it runs until the first row under u
            ends = np.flatnonzero(~above)
            start = int(ends[0]) if ends.size else col.size
            self.held.append(col[:start][~alarm[:start]])
            self.alarmed = self.alarmed or bool(alarm[:start].any())
            if start == col.size:
                return col[:0]
            if not self.alarmed:
                out.extend(self.held)
            self.held, self.alarmed = [], False
        col, above, alarm = col[start:], above[start:], alarm[start:]
        under = np.flatnonzero(~above)
        end = int(under[-1]) + 1 if under.size else 0
        if end < col.size:  # an excursion still going on at the end of the block: hold it
            self.held = [col[end:][~alarm[end:]]]
            self.alarmed = bool(alarm[end:].any())
        col, above, alarm = col[:end], above[:end], alarm[:end]
        if col.size:
            run = np.cumsum(np.concatenate(([True], above[1:] & ~above[:-1])))
            bad = np.zeros(int(run[-1]) + 1, dtype=bool)
            bad[run[alarm]] = True  # runs above u with an alarm in them stay out
            out.append(col[~above | ~bad[run]])
        return np.concatenate(out) if out else col[:0]


class _Pool:
    """A growing pool of finite values kept as what a tail fit reads: its values above a cut,
    sorted (``top``), how many are at or under the cut (``below``) and how many equal it
    (``ties``).

    Merging every new block into the whole sorted pool costs ``O(pool)`` per refit and column;
    the top holds about a sixth of it. The cut is the pool's 85% quantile when the top is
    rebuilt (from all the values, kept unsorted), which happens only when the 90% quantile
    would fall below the cut or the top grows past a quarter of the pool.
    """

    __slots__ = ("below", "blocks", "cut", "n", "ties", "top")

    def __init__(self, values: FloatArray) -> None:
        self.blocks = [values[np.isfinite(values)]]
        self.n = int(self.blocks[0].size)
        self._rebuild()

    def _rebuild(self) -> None:
        allv = np.concatenate(self.blocks) if len(self.blocks) > 1 else self.blocks[0]
        self.blocks = [allv]
        self.cut, self.top, self.below, self.ties = -math.inf, allv, 0, 0
        if allv.size == 0:
            return
        rank = int(_CUT_QUANTILE * (allv.size - 1))
        self.cut = float(np.partition(allv, rank)[rank])
        self.top = np.sort(allv[allv > self.cut])
        self.below = int(allv.size - self.top.size)
        self.ties = int(np.count_nonzero(allv == self.cut))

    def values(self) -> FloatArray:
        """Every value of the pool, unsorted."""
        if len(self.blocks) > 1:
            self.blocks = [np.concatenate(self.blocks)]
        return self.blocks[0]

    def add(self, values: FloatArray) -> None:
        """Add the finite ones of ``values``."""
        new = np.sort(values[np.isfinite(values)])
        if new.size == 0:
            return
        self.blocks.append(new)
        self.n += int(new.size)
        under = int(np.searchsorted(new, self.cut, side="left"))
        at_or_under = int(np.searchsorted(new, self.cut, side="right"))
        self.ties += at_or_under - under
        self.below += at_or_under
        self.top = merge_sorted(self.top, new[at_or_under:])
        if (math.floor((self.n - 1) * PEAK_QUANTILE) < self.below - self.ties
                or self.top.size > _TOP_LIMIT * self.n):
            self._rebuild()
