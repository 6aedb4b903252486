"""Change points of one series of runs: rank-based, dependence-aware, with a search over both
the split and the segment end.

Pure numerics over arrays; no I/O (:mod:`allele.bench.regress` follows a history of runs with
it). The series is taken on the log scale (a run's location, :func:`allele.bench.runlevel.
run_locations`, or any positive values), and:

1. **the statistic** of a segment ``[a, b)`` is the largest t statistic (variance pooled
   within the parts) of the difference of mean robust scores (:func:`robust_scores`: Huber's
   psi of the values, clipped at 2.5 noise standard deviations) between a left part ``[a,
   tau)`` and a right part ``[tau, kappa)``, over every split ``tau`` and a geometric grid of
   right lengths ``kappa - tau`` (plus ``kappa = b``). Clipping makes it robust: a run that was
   1.3x slower because the machine was busy counts as "high", not as 30%; isolated spikes are
   also left out beforehand (:func:`spikes`). Searching the end finds a change that did not
   last to the end of the segment, which a split statistic with the end fixed dilutes; the
   split found is then refined by least absolute deviations (:func:`refine`);
2. **dependence**: a history's runs are autocorrelated (a slow week), which looks like level
   shifts to a test that assumes independence (9% false change points on flat AR(1) histories
   with phi 0.5). The lag-1 autocorrelation ``phi`` is estimated robustly from the successive
   differences (a step moves one difference; ``corr(dx_t, dx_t-1) = -(1 - phi) / 2``) and the
   statistic divided by the square root of the long-run variance factor ``(1 + phi)/(1 - phi)``;
3. **significance**: a p-value from the permutation distribution of the statistic for ``n``
   exchangeable values (simulated once over permutations of normal scores, which the
   standardized robust scores of independent runs follow closely;
   :mod:`allele.bench._cp_null` holds the table for size 3, made by
   ``scripts/cp_null_table.py``), with a peaks-over-threshold tail so that p-values below 1e-3
   exist for false-discovery control over many series;
4. **segmentation**: binary segmentation at a level ``alpha`` (the caller's share of a
   false-discovery rate), then pruning: every change point is re-tested between its
   neighbours; the weakest that fails is removed and only its two neighbours are re-tested.
   A change point also needs a relative change of at least ``min_magnitude`` (medians of the
   two segments).

:class:`ChangePointState` keeps what was found so that a new run re-tests only the tail (from the
last change point on). 5,000 points take well under a second (``benchmarks/changepoint_speed.py``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats

from allele.errors import ValidationError

F = NDArray[np.float64]
DEFAULT_ALPHA = 0.01
DEFAULT_MIN_SIZE = 3
DEFAULT_MIN_MAGNITUDE = 0.05
MAX_PHI = 0.9
NULL_DRAWS = 2000
MIN_P = 1e-12
"""The smallest p-value the extrapolated tail gives: beyond it the table says nothing."""


@dataclass(frozen=True, slots=True)
class SegmentStats:
    """The two segments either side of a change point (locations: medians on the original
    scale) and the p-value of the change."""

    mean_before: float
    mean_after: float
    std_before: float
    std_after: float
    n_before: int
    n_after: int
    p_value: float

    @property
    def rel_change(self) -> float:
        """``(after - before) / |before|``; +-inf when ``before`` is 0 and ``after`` is not."""
        if self.mean_before == 0.0:
            return 0.0 if self.mean_after == 0.0 else math.copysign(math.inf, self.mean_after)
        return (self.mean_after - self.mean_before) / abs(self.mean_before)


@dataclass(frozen=True, slots=True)
class ChangePoint:
    """A change point: ``index`` is the first point of the new level."""

    index: int
    stats: SegmentStats

    @property
    def magnitude(self) -> float:
        return self.stats.rel_change


# --- the statistic ------------------------------------------------------------------------------


def right_lengths(n: int, min_size: int) -> list[int]:
    """The grid of right-part lengths searched besides "to the segment end": twice
    ``min_size``, growing by half each step, below ``n - min_size``. An episode shorter than
    that is more often a busy spell of the machine (two or three slow runs in a row) than a
    change of the code and its revert."""
    out: list[int] = []
    x = float(2 * min_size)
    while round(x) <= n - 2 * min_size:
        v = round(x)
        if not out or v > out[-1]:
            out.append(v)
        x *= 1.5
    return out


@lru_cache(maxsize=512)
def candidates(n: int, min_size: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Every ``(tau, kappa)`` the statistic of a segment of ``n`` points looks at: each split
    with the right part to the segment end, and each split with a right part of each length of
    :func:`right_lengths`."""
    taus, kaps = [], []
    for n2 in [None, *right_lengths(n, min_size)]:
        tau = np.arange(min_size, (n - min_size + 1) if n2 is None else (n - n2 + 1))
        taus.append(tau)
        kaps.append(np.full(tau.size, n) if n2 is None else tau + n2)
    tau_all = np.concatenate(taus).astype(np.int64)
    kap_all = np.concatenate(kaps).astype(np.int64)
    tau_all.setflags(write=False)
    kap_all.setflags(write=False)
    return tau_all, kap_all


def scan(z: F, min_size: int) -> tuple[F, NDArray[np.int64], NDArray[np.int64]]:
    """The statistic of segments of scores ``z`` (``... x n``, each row mean 0 and sd 1):
    ``(max |T|, tau, kappa)`` per row, ``T`` the t statistic of the difference between the mean
    of ``[tau, kappa)`` and of ``[0, tau)``, with the variance pooled within the parts of the
    fitted model (``[0, tau)``, ``[tau, kappa)`` and, when ``kappa < n``, ``[kappa, n)``): the
    likelihood-ratio statistic of one change, or of an "epidemic" change that ends at kappa.
    All candidates of :func:`candidates` at once."""
    n = z.shape[-1]
    lead = z.shape[:-1]
    if n < 2 * min_size:
        return np.zeros(lead), np.zeros(lead, dtype=np.int64), np.full(lead, n, dtype=np.int64)
    tau, kap = candidates(n, min_size)
    s = np.concatenate([np.zeros((*lead, 1)), np.cumsum(z, axis=-1)], axis=-1)
    total2 = np.sum(z * z, axis=-1, keepdims=True)
    s1 = s[..., tau]
    s2 = s[..., kap] - s1
    s3 = s[..., n:n + 1] - s[..., kap]
    n1, n2 = tau.astype(np.float64), (kap - tau).astype(np.float64)
    n3 = (n - kap).astype(np.float64)
    fitted = s1 * s1 / n1 + s2 * s2 / n2 + s3 * s3 / np.maximum(n3, 1.0)
    within = np.maximum(total2 - fitted, 1e-12) / (n - 2.0 - (n3 > 0))
    t = np.abs(s2 / n2 - s1 / n1) / np.sqrt(within * (1.0 / n1 + 1.0 / n2))
    i = np.argmax(t, axis=-1)
    best = np.take_along_axis(t, i[..., None], axis=-1)[..., 0]
    return best, tau[i], kap[i]


def normal_scores(x: F) -> F:
    """Van der Waerden scores of ``x`` (ties share their mean rank), standardized to mean 0 and
    sd 1: the exchangeable values whose permutations give the null table."""
    order = np.argsort(x, kind="stable")
    r = np.empty(x.size)
    r[order] = np.arange(1.0, x.size + 1.0)
    if np.any(np.diff(x[order]) == 0):  # ties share their mean rank
        r = stats.rankdata(x)
    return _standard(special.ndtri(r / (x.size + 1.0)))


PSI_CLIP = 2.5
"""Robust scores are clipped at this many noise standard deviations (Huber's psi)."""


def robust_scores(x: F) -> F:
    """Huber scores of ``x``: ``(x - median) / s`` clipped at +-:data:`PSI_CLIP`, with ``s`` the
    noise scale from the successive differences (which a step barely moves), standardized to
    mean 0 and sd 1. Like ranks, a busy run counts as "high", never as +30%; unlike ranks, a
    clean 20% step over 2% noise is as far from its neighbours as it looks, so ten runs can
    show it (ranks cap the evidence of 6 against 4 runs at p ~ 0.005). Normal scores when
    there is no scale (constant differences)."""
    d = np.diff(x)
    scale = (float(np.median(np.abs(d - np.median(d)))) * 1.482602218505602 / math.sqrt(2.0)
             if d.size > 2 else 0.0)
    if not scale > 0:
        return normal_scores(x)
    return _standard(np.clip((x - np.median(x)) / scale, -PSI_CLIP, PSI_CLIP))


def _standard(z: F) -> F:
    sd = float(z.std())
    return (z - z.mean()) / sd if sd > 0 else np.zeros_like(z)


def lag1_phi(x: F) -> float:
    """The lag-1 autocorrelation of ``x`` from its differences (see :func:`pooled_phi`, of
    which this is the one-series case)."""
    return pooled_phi([x])


RESIDUAL_MARGIN = 0.15
"""How much more autocorrelation than its residuals show a series may have (see
:func:`series_phi`)."""


def residual_phi(x: F, min_size: int = 3) -> float:
    """The lag-1 autocorrelation of ``x``'s residuals around its strongest split (medians of
    the parts), clipped at 0. It reads a clean step as no autocorrelation at all, but takes
    part of a slow wander for a step, so it errs low."""
    if x.size < 2 * min_size + 2:
        return 0.0
    _, tau, kap = scan(robust_scores(x), min_size)
    t = refine(x, int(tau), int(kap), min_size)
    r = x.copy()
    edges = [0, t, *([int(kap)] if int(kap) < x.size else []), x.size]
    for a, b in itertools.pairwise(edges):
        r[a:b] -= np.median(r[a:b])
    return float(max(0.0, 2.0 * math.sin(math.pi * _spearman(r[1:], r[:-1]) / 6.0)))


def series_phi(x: F, shared: float | None = None, min_size: int = 3) -> float:
    """The autocorrelation a series is tested with: ``shared`` when a matrix's series gave it
    (pooled, it is precise), else the series' own difference-based estimate, but no more than
    its residuals around its strongest split show plus :data:`RESIDUAL_MARGIN`. The
    difference-based estimate of one series of 30 runs varies by +-0.4 and can drown a
    10-sigma step (found within a run in 71% of series with it alone, 87% with the bound); on
    one series the bound cannot hide a real wander (flat AR(0.5) series: 1.7% false change
    points with it, 1.3% without), but over the 20 series of a matrix it let one in five
    matrices through, so a shared estimate is used as it is."""
    if shared is not None:
        return shared
    return min(lag1_phi(x), residual_phi(x, min_size) + RESIDUAL_MARGIN)


def pooled_phi(series: Sequence[F]) -> float:
    """The lag-1 autocorrelation shared by ``series``, from their successive differences, so
    that level steps barely move it: ``phi = 1 + 2 rho`` where ``rho = corr(dx_t, dx_t-1) =
    -(1 - phi) / 2``, ``rho`` from Spearman's rank correlation of the pairs of all series
    (``2 sin(pi r / 6)``; each series' differences scaled by their own MAD, robust to a
    spike); clipped to ``[0, MAX_PHI]`` (negative correlation does not make false change
    points).

    One series of 30 runs gives ``phi`` to +-0.4 (white noise reads 0.47 or more one time in
    ten), which either misses the wander of a slow month or drowns a real step; ten series
    pooled give it to +-0.15."""
    us, vs = [], []
    for x in series:
        d = np.diff(np.asarray(x, dtype=np.float64))
        if d.size < 6:
            continue
        scale = float(np.median(np.abs(d - np.median(d))))
        if scale <= 0:
            continue
        us.append(d[1:] / scale)
        vs.append(d[:-1] / scale)
    if not us:
        return 0.0
    r = _spearman(np.concatenate(us), np.concatenate(vs))
    phi = 1.0 + 4.0 * math.sin(math.pi * r / 6.0)
    return float(min(MAX_PHI, max(0.0, phi)))


def _spearman(u: F, v: F) -> float:
    """Spearman's rank correlation (ties broken by position: the differences of timings are
    continuous), ten times faster than scipy's for short series."""
    ru = np.empty(u.size)
    rv = np.empty(v.size)
    ru[np.argsort(u, kind="stable")] = np.arange(u.size)
    rv[np.argsort(v, kind="stable")] = np.arange(v.size)
    ru -= ru.mean()
    rv -= rv.mean()
    den = math.sqrt(float(ru @ ru) * float(rv @ rv))
    return float(ru @ rv) / den if den > 0 else 0.0


def spikes(x: F, k: float = 4.0, width: int = 5) -> NDArray[np.bool_]:
    """Isolated spikes of ``x``: points farther than ``k`` noise standard deviations (from the
    successive differences, which a step barely moves) from the running median of ``width``
    points. A run the machine made 1.3x slower is one; a step is not (a running median keeps
    it). They are left out of the test and of the segment locations."""
    if x.size < width:
        return np.zeros(x.size, dtype=bool)
    d = np.diff(x)
    scale = float(np.median(np.abs(d - np.median(d)))) * 1.482602218505602 / math.sqrt(2.0)
    if scale <= 0:
        return np.zeros(x.size, dtype=bool)
    pad = width // 2
    padded = np.concatenate([np.full(pad, x[0]), x, np.full(pad, x[-1])])
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    return np.asarray(np.abs(x - np.median(windows, axis=1)) > k * scale)


# --- the null distribution ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NullTail:
    """The null distribution of the statistic for one length: quantiles at 50/80/90% and the
    mean excess over the 90% quantile (an exponential tail beyond it)."""

    q50: float
    q80: float
    q90: float
    excess: float

    def pvalue(self, t: float) -> float:
        if t >= self.q90:
            return max(MIN_P, 0.1 * math.exp(-(t - self.q90) / self.excess))
        pts = ((0.0, 1.0), (self.q50, 0.5), (self.q80, 0.2), (self.q90, 0.1))
        for (x0, p0), (x1, p1) in itertools.pairwise(pts):
            if t <= x1:
                w = (t - x0) / (x1 - x0) if x1 > x0 else 1.0
                return math.exp(math.log(p0) + w * (math.log(p1) - math.log(p0)))
        return 0.1  # pragma: no cover - t < q90 is handled above


def simulate_null(n: int, min_size: int, draws: int, seed: int = 0) -> NullTail:
    """The null of :func:`scan` for ``n`` exchangeable values, from ``draws`` permutations."""
    rng = np.random.default_rng(seed + 7919 * n + min_size)
    base = stats.norm.ppf(np.arange(1, n + 1) / (n + 1.0))
    base = (base - base.mean()) / base.std()
    maxima = []
    chunk = max(1, min(draws, 4_000_000 // max(candidates(n, min_size)[0].size, 1)))
    for start in range(0, draws, chunk):
        k = min(chunk, draws - start)
        z = base[np.argsort(rng.random((k, n)), axis=1)]
        maxima.append(scan(z, min_size)[0])
    m = np.sort(np.concatenate(maxima))
    q50, q80, q90 = (float(v) for v in np.quantile(m, [0.5, 0.8, 0.9]))
    excess = float(np.mean(m[m > q90] - q90)) if np.any(m > q90) else 0.1
    return NullTail(q50, q80, q90, max(excess, 1e-3))


@lru_cache(maxsize=256)
def _null_runtime(n: int, min_size: int) -> NullTail:
    return simulate_null(n, min_size, NULL_DRAWS)


def null_tail(n: int, min_size: int) -> NullTail:
    """The null tail for length ``n``: from the shipped table (minimum size 3), at the next
    tabulated length at or above ``n`` (the statistic grows with ``n``, so this errs on the
    safe side), else simulated once and cached."""
    if min_size == 3:
        from allele.bench._cp_null import TABLE

        lengths = sorted(TABLE)
        if n <= lengths[-1]:
            at = next(v for v in lengths if v >= n)
            if at == n or n > 64:
                return NullTail(*TABLE[at])
    return _null_runtime(n, min_size)


REFINE = 5
"""Runs either side of the rank statistic's split searched for the best-fitting one."""


def refine(x: F, tau: int, kap: int, min_size: int) -> int:
    """The split near ``tau`` (within :data:`REFINE` runs) with the smallest sum of absolute
    deviations from the two parts' medians over ``[0, kap)``. Ranks decide *whether* there is
    a change; they know only the order of the values, so a 25% step next to two runs that are
    1% high can rank best two runs early. The absolute deviations see the size."""
    ts = np.arange(max(min_size, tau - REFINE), min(kap - min_size, tau + REFINE) + 1)
    if ts.size <= 1:
        return tau
    seg = x[:kap]
    idx = np.arange(kap)
    left = np.where(idx[None, :] < ts[:, None], seg[None, :], np.nan)
    right = np.where(idx[None, :] >= ts[:, None], seg[None, :], np.nan)
    cost = (np.nansum(np.abs(left - _median_rows(left)[:, None]), axis=1)
            + np.nansum(np.abs(right - _median_rows(right)[:, None]), axis=1))
    return int(ts[int(np.argmin(cost))])


def _median_rows(a: F) -> F:
    """Per-row median ignoring NaN (NaN sorts last)."""
    srt = np.sort(a, axis=1)
    n = np.sum(np.isfinite(srt), axis=1)
    rows = np.arange(a.shape[0])
    return np.asarray(0.5 * (srt[rows, (n - 1) // 2] + srt[rows, n // 2]))


def segment_test(x: F, min_size: int, phi: float) -> tuple[float, int, int]:
    """``(p, tau, kappa)`` of the strongest change in segment ``x`` (positions relative to
    it), the statistic deflated for autocorrelation ``phi``."""
    n = x.size
    if n < 2 * min_size:
        return 1.0, 0, n
    t, tau, kap = scan(robust_scores(x), min_size)
    lrv = (1.0 + phi) / (1.0 - phi)
    return null_tail(n, min_size).pvalue(float(t) / math.sqrt(lrv)), int(tau), int(kap)


# --- segmentation -------------------------------------------------------------------------------


def _location(x: F) -> float:
    return float(np.median(x)) if x.size else math.nan


def _stats(v: F, logs: bool, lo: int, cp: int, hi: int, p: float) -> SegmentStats:
    before, after = v[lo:cp], v[cp:hi]
    back = np.exp if logs else (lambda y: y)
    mb, ma = float(back(_location(before))), float(back(_location(after)))
    sb = float(np.std(back(before), ddof=1)) if before.size > 1 else 0.0
    sa = float(np.std(back(after), ddof=1)) if after.size > 1 else 0.0
    return SegmentStats(mb, ma, sb, sa, int(before.size), int(after.size), p)


def _magnitude_ok(v: F, logs: bool, lo: int, cp: int, hi: int, min_magnitude: float) -> bool:
    diff = _location(v[cp:hi]) - _location(v[lo:cp])
    if logs:
        return abs(math.expm1(diff)) >= min_magnitude
    base = abs(_location(v[lo:cp]))
    return base == 0 or abs(diff) / base >= min_magnitude


def _segment(v: F, lo: int, hi: int, min_size: int, phi: float, alpha: float,
             out: set[int]) -> None:
    """Binary segmentation of ``v[lo:hi]`` at level ``alpha`` into ``out``."""
    todo = [(lo, hi)]
    while todo:
        a, b = todo.pop()
        if b - a < 2 * min_size:
            continue
        p, tau, kap = segment_test(v[a:b], min_size, phi)
        if p > alpha:
            continue
        tau = refine(v[a:b], tau, kap, min_size)
        if kap < b - a:  # the episode's end, refined the same way within [tau, b)
            kap = tau + refine(v[a + tau:b], kap - tau, b - a - tau, min_size)
        cuts = [a + tau] + ([a + kap] if kap < b - a and b - (a + kap) >= min_size else [])
        out.update(cuts)
        edges = [a, *cuts, b]
        todo.extend(itertools.pairwise(edges))


def _prune(v: F, cps: list[int], lo: int, hi: int, min_size: int, phi: float, alpha: float,
           logs: bool, min_magnitude: float) -> list[tuple[int, float]]:
    """Keep change points that hold between their neighbours: test each with its segment
    ``[previous, next)``; drop the weakest failing one and re-test only its two neighbours."""
    cps = sorted(cps)
    pvals: dict[int, float] = {}

    def test(i: int) -> float:
        a = cps[i - 1] if i > 0 else lo
        b = cps[i + 1] if i + 1 < len(cps) else hi
        c = cps[i]
        if c - a < min_size or b - c < min_size or not _magnitude_ok(v, logs, a, c, b,
                                                                      min_magnitude):
            return 1.0
        p, _, _ = segment_test(v[a:b], min_size, phi)
        return p

    for i in range(len(cps)):
        pvals[cps[i]] = test(i)
    while cps:
        worst = max(range(len(cps)), key=lambda i: pvals[cps[i]])
        if pvals[cps[worst]] <= alpha:
            break
        del pvals[cps[worst]]
        del cps[worst]
        for i in (worst - 1, worst):  # the neighbours of the removed one, now adjacent
            if 0 <= i < len(cps):
                pvals[cps[i]] = test(i)
    return [(c, pvals[c]) for c in cps]


def _prepare(series: ArrayLike) -> tuple[F, bool, NDArray[np.int64]]:
    """The series on the log scale (when positive) without its spikes, whether logs were
    taken, and the original position of every point kept."""
    v = np.asarray(series, dtype=np.float64).ravel()
    if not np.all(np.isfinite(v)):
        raise ValidationError("series must contain finite numbers only")
    logs = bool(v.size) and bool(np.all(v > 0))
    x = np.log(v) if logs else v
    keep = np.flatnonzero(~spikes(x))
    return x[keep], logs, keep.astype(np.int64)


def series_pvalue(series: ArrayLike, *, min_size: int = DEFAULT_MIN_SIZE,
                  phi: float | None = None) -> float:
    """The p-value of "this series has a change point somewhere" (its first segment test):
    what false-discovery control over the series of a matrix ranks."""
    v, _, _ = _prepare(series)
    return segment_test(v, min_size, series_phi(v, phi, min_size))[0]


def detect_change_points(series: ArrayLike, *, alpha: float = DEFAULT_ALPHA,
                         min_magnitude: float = DEFAULT_MIN_MAGNITUDE,
                         min_size: int = DEFAULT_MIN_SIZE, phi: float | None = None,
                         start: int = 0, fixed: Sequence[int] = ()) -> list[ChangePoint]:
    """Change points of ``series`` (oldest first; positive values are taken as logs), sorted.

    ``phi`` is the lag-1 autocorrelation shared by a matrix's series, which
    :func:`allele.bench.regress.find_changes` pools (default: the series' own); either is
    bounded by the series' residuals (:func:`series_phi`). ``start``
    and ``fixed`` serve the incremental path: only ``[start, n)`` is segmented anew, ``fixed``
    change points before it are kept as they are."""
    if min_size < 2:
        raise ValidationError(f"need min_size >= 2, got {min_size}")
    if not 0.0 < alpha < 1.0:
        raise ValidationError(f"alpha must be in (0, 1), got {alpha}")
    v, logs, pos = _prepare(series)
    n = v.size
    if n < 2 * min_size:
        return []
    ph = series_phi(v, phi, min_size)
    at = int(np.searchsorted(pos, start))
    fixed_r = [int(np.searchsorted(pos, c)) for c in fixed]
    found: set[int] = set()
    _segment(v, at, n, min_size, ph, alpha, found)
    kept = _prune(v, sorted(found | {c for c in fixed_r if c > at}), at, n, min_size, ph,
                  alpha, logs, min_magnitude)
    out = [(c, 0.0) for c in fixed_r if c <= at] + kept
    bounds = [0, *(c for c, _ in out), n]
    return [ChangePoint(int(pos[c]), _stats(v, logs, bounds[i], c, bounds[i + 2], p))
            for i, (c, p) in enumerate(out)]


@dataclass
class ChangePointState:
    """Incremental detection on a growing series: :meth:`update` with the whole series so far
    re-tests only the tail from the last change point on (and that change point itself
    against its new neighbour); earlier change points stay as they were."""

    alpha: float = DEFAULT_ALPHA
    min_magnitude: float = DEFAULT_MIN_MAGNITUDE
    min_size: int = DEFAULT_MIN_SIZE
    change_points: list[ChangePoint] = field(default_factory=list)
    length: int = 0

    def update(self, series: ArrayLike) -> list[ChangePoint]:
        v = np.asarray(series, dtype=np.float64).ravel()
        if v.size < self.length:
            raise ValidationError("a series can only grow between updates")
        fixed = [c.index for c in self.change_points]
        start = fixed[-2] if len(fixed) >= 2 else 0
        self.change_points = detect_change_points(
            v, alpha=self.alpha, min_magnitude=self.min_magnitude, min_size=self.min_size,
            start=start, fixed=fixed)
        self.length = int(v.size)
        return self.change_points
