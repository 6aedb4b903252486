"""Season-length estimation shared by forecasting and anomaly detection."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from allele.analytics._common import FloatArray, as_series


def _fourier_design(t: FloatArray, period: int, harmonics: int) -> FloatArray:
    cols = [np.ones_like(t), t / max(t.size, 1)]
    for k in range(1, harmonics + 1):
        ang = 2.0 * np.pi * k * t / period
        cols += [np.sin(ang), np.cos(ang)]
    return np.stack(cols, axis=1)


def _period_candidates(arr: FloatArray, min_period: int, hi: int, shortlist: int
                       ) -> tuple[FloatArray, set[int]]:
    """``arr`` less its least-squares line, and the candidate periods in ``[min_period, hi]``:
    the ``shortlist`` highest local peaks of its autocorrelation, their neighbours (+-2), and
    their halves and thirds."""
    n = arr.size
    t = np.arange(n, dtype=np.float64)
    line = np.stack([np.ones(n), t / n], axis=1)
    base_res: FloatArray = arr - line @ np.linalg.lstsq(line, arr, rcond=None)[0]
    spec = np.fft.rfft(base_res, 2 * n)
    acf = np.fft.irfft(spec * np.conj(spec))[: hi + 2]
    acf = acf / acf[0]
    peaks = [m for m in range(max(2, min_period), hi + 1)
             if acf[m] >= acf[m - 1] and acf[m] >= acf[m + 1] and acf[m] > 0]
    peaks.sort(key=lambda m: -acf[m])
    cands = {c for m in peaks[:shortlist] for c in range(m - 2, m + 3) if min_period <= c <= hi}
    cands |= {m // k for m in list(cands) for k in (2, 3) if m % k == 0 and m // k >= min_period}
    return base_res, cands


def _smallest_divisor(fits: dict[int, float], best_m: int) -> int:
    """A multiple of the true period fits as well: the smallest divisor of ``best_m`` whose fit
    is within 0.02 of the best."""
    for m in sorted(fits):
        if m < best_m and best_m % m == 0 and fits[m] >= fits[best_m] - 0.02:
            return m
    return best_m


def seasonal_period(y: ArrayLike, min_period: int = 4, max_period: int | None = None,
                    harmonics: int = 3, min_r2: float = 0.3, max_points: int = 4096,
                    shortlist: int = 5, held_out: float | None = None) -> int | None:
    """The integer period whose Fourier fit (``harmonics`` terms plus a line) explains ``y`` best.

    Candidates run from ``min_period`` to ``max_period`` (default ``n // 2``, so at least two
    cycles are seen): the ``shortlist`` highest local peaks of the autocorrelation and their
    neighbours (+-2) are refined by the Fourier fit, which is sharper than an ACF peak on short
    series. Only the last ``max_points`` points are used. Returns None when the best fit explains
    less than ``min_r2`` of the variance left after the line.

    In-sample, a three-harmonic fit explains 30 % of autocorrelated noise at some period. With
    ``held_out``, a candidate must also explain that share out of sample
    (:func:`held_out_strength`). Over 200 series of 150 points each, in-sample alone found a
    "season" in 138 of AR(0.8) noise and in 64 random walks; with ``held_out=0.2``, in 37 and
    22. On the learning periods of real series it found a 44-quarter season in US inflation
    (its 1970s hump), 49 and 45 in GDP and unemployment, and 71 hours in electricity demand,
    where the day (24) is the season that repeats out of sample; held out, none, none, none
    and 24.
    """
    arr = as_series(y, name="y")[-max_points:]
    n = arr.size
    hi = min(max_period if max_period is not None else n // 2, n // 2)
    if hi < min_period or np.ptp(arr) == 0:
        return None
    base_res, cands = _period_candidates(arr, min_period, hi, shortlist)
    sst = float(base_res @ base_res)
    if sst == 0.0:
        return None
    t = np.arange(n, dtype=np.float64)
    r2s: dict[int, float] = {}
    for m in sorted(cands):
        design = _fourier_design(t, m, min(harmonics, m // 2))
        res = arr - design @ np.linalg.lstsq(design, arr, rcond=None)[0]
        r2s[m] = 1.0 - float(res @ res) / sst
    if held_out is not None:
        r2s = {m: r2 for m, r2 in r2s.items()
               if r2 >= min_r2 and held_out_strength(arr, m, harmonics) >= held_out}
    if not r2s:
        return None
    best_m = max(r2s, key=lambda m: r2s[m])
    return None if r2s[best_m] < min_r2 else _smallest_divisor(r2s, best_m)


def held_out_strength(y: ArrayLike, period: int, harmonics: int = 3) -> float:
    """The share of ``y``'s variance about its least-squares line that a Fourier profile of
    ``period`` (``harmonics`` terms and a level) fitted on one half of ``y`` explains on the
    other half, both ways round (1: the season repeats exactly; 0 or less: no better than the
    half's mean). A hump or the wander of a random walk is fitted by one half's profile and not
    repeated by the other's; a season is."""
    arr = as_series(y, name="y")
    n = arr.size
    t = np.arange(n, dtype=np.float64)
    line = np.stack([np.ones(n), t / n], axis=1)
    res = arr - line @ np.linalg.lstsq(line, arr, rcond=None)[0]
    sst = float(np.sum((res - res.mean()) ** 2))
    if sst <= 0.0 or n < 4:
        return 0.0
    design = _fourier_design(t, period, min(harmonics, period // 2))
    design[:, 1] = 0.0  # the line is gone already: a level and the harmonics
    half = n // 2
    ss_out = 0.0
    for fit, test in ((slice(0, half), slice(half, n)), (slice(half, n), slice(0, half))):
        coef = np.linalg.lstsq(design[fit], res[fit], rcond=None)[0]
        ss_out += float(np.sum((res[test] - design[test] @ coef) ** 2))
    return 1.0 - ss_out / sst


# ---------------------------------------------------------------------------------------------
# Several seasons at once
# ---------------------------------------------------------------------------------------------


def _centred_ma(y: FloatArray, m: int) -> tuple[FloatArray, int]:
    """The centred moving average of length ``m`` (2 x m for even m) and its offset into ``y``.

    It removes any season of period ``m`` exactly, and a trend that is smooth over one season.
    """
    c = np.concatenate([[0.0], np.cumsum(y)])
    ma = (c[m:] - c[:-m]) / m  # ma[i] = mean(y[i:i+m])
    if m % 2 == 1:
        return ma, m // 2
    return 0.5 * (ma[:-1] + ma[1:]), m // 2


def season_profile(y: ArrayLike, period: int) -> tuple[FloatArray, float, float]:
    """The phase-mean seasonal profile of ``period`` (every harmonic, centred on 0), with its
    cross-validated strength and the F-test p-value of "no season".

    The series is detrended by a centred moving average of one season (classical decomposition),
    so any trend that is smooth over a season drops out; the profile is the mean of the detrended
    values at each phase. Strength is the share of the detrended variance that the profile
    explains out of sample: the profile of the even-numbered cycles predicts the odd ones and
    the other way round. In-sample, ``m - 1`` free phase means fit autocorrelated noise too (a
    period of 673 hours, four weeks and an hour, "explained" the Victoria electricity demand
    better than the week in-sample and worse out of sample). A three-harmonic Fourier fit cannot
    draw a daily shape inside a weekly season of hourly data: at period 168 on that series (after
    a line) it explains 11% of the variance, all 84 harmonics 68%; the phase means after the
    moving average explain 75% out of sample.
    """
    from scipy import stats

    arr = as_series(y, name="y")
    m = int(period)
    trend, off = _centred_ma(arr, m)
    d = arr[off:off + trend.size] - trend
    idx = np.arange(d.size) + off
    phase, cycle = idx % m, idx // m
    counts = np.bincount(phase, minlength=m).astype(np.float64)
    if d.size < 2 * m or np.any(counts == 0):
        return np.zeros(m), 0.0, 1.0
    d = d - d.mean()
    means = np.bincount(phase, weights=d, minlength=m) / counts
    means -= means.mean()
    resid = d - means[phase]
    sst, ssr = float(d @ d), float(resid @ resid)
    if sst <= 0.0:
        return means, 0.0, 1.0
    dof = max(d.size - m, 1)
    f = ((sst - ssr) / (m - 1)) / (ssr / dof) if ssr > 0 else math.inf
    p = float(stats.f.sf(f, m - 1, dof)) if math.isfinite(f) else 0.0
    ss_out = 0.0
    for part in (0, 1):
        train, test = cycle % 2 == part, cycle % 2 != part
        c = np.bincount(phase[train], minlength=m).astype(np.float64)
        prof = np.divide(np.bincount(phase[train], weights=d[train], minlength=m), c,
                         out=np.zeros(m), where=c > 0)
        ss_out += float(np.sum((d[test] - prof[phase[test]]) ** 2))
    return means, 1.0 - ss_out / sst, p


def _candidate_periods(arr: FloatArray, lo: int, hi: int, shortlist: int) -> set[int]:
    """Periods worth testing: the highest ACF peaks of the series and of its differences, and the
    highest periodogram peaks, each with its neighbours (+-1)."""
    n = arr.size
    t = np.arange(n, dtype=np.float64)
    line = np.stack([np.ones(n), t / n], axis=1)
    res = arr - line @ np.linalg.lstsq(line, arr, rcond=None)[0]
    cands: set[int] = set()
    for series in (res, np.diff(arr)):
        s = series - series.mean()
        if not np.any(s):
            continue
        spec = np.fft.rfft(s, 2 * s.size)
        acf = np.fft.irfft(spec * np.conj(spec))[: hi + 2]
        acf = acf / acf[0]
        peaks = [k for k in range(max(2, lo), min(hi, acf.size - 2) + 1)
                 if acf[k] >= acf[k - 1] and acf[k] >= acf[k + 1] and acf[k] > 0]
        peaks.sort(key=lambda k: -acf[k])
        cands |= set(peaks[:shortlist])
    power = np.abs(np.fft.rfft(res)) ** 2
    freqs = np.arange(power.size)
    order = [k for k in np.argsort(-power) if k > 0]
    for k in order[:shortlist]:
        period = n / freqs[k]
        cands |= {math.floor(period), math.ceil(period)}
    out = {c + d for c in cands for d in (-1, 0, 1)}
    return {c for c in out if lo <= c <= hi}


def seasonal_periods(y: ArrayLike, min_period: int = 2, max_period: int | None = None,
                     max_seasons: int = 3, min_strength: float = 0.2, alpha: float = 0.01,
                     max_points: int = 8192, shortlist: int = 6) -> list[int]:
    """Every season of ``y`` that explains a real share of its variance, shortest first.

    Several seasons at once (24 and 168 in hourly data, 7 and 365 in daily data): candidates come
    from the autocorrelation peaks of the series and of its differences and from the periodogram
    (:func:`_candidate_periods`), each tested by its phase-mean profile (:func:`season_profile`,
    every harmonic). Greedy: the strongest season is taken, or a divisor of it that explains at
    least half as much (the day inside a week), its profile is removed, and the search repeats on
    what is left, where a multiple of a found season (the week after the day) may now explain
    the difference between days. A later season must be at least twice as long as every season
    found and not a near-multiple of one (no 10 beside 11 in the sunspots' quasi-cycle). A season
    is kept when its cross-validated strength reaches ``min_strength`` and its F-test rejects
    "no season" at ``alpha`` divided by the number of candidates tried (Bonferroni); its
    differences must show the season too, at 5% (the slow wiggles of a random walk pass the
    first test, and a phase-mean profile of a few cycles fits them: 2 of 10 walks of 300 points
    had a "season" of 35 or 60 steps; their differences are white noise, and a season of steps,
    such as quiet weekends, leaves only two jumps a week in the differences, hence the looser
    level). So white noise and random walks find none: on 203 quarters of US unemployment the
    business cycle's best "season" (42 quarters) explained 18% out of sample, below the default
    0.2. A period needs three cycles
    (``max_period`` is at most ``n // 3``). Only the last ``max_points`` points are used.
    """
    arr = as_series(y, name="y")[-max_points:]
    n = arr.size
    hi = min(max_period if max_period is not None else n // 3, n // 3)
    lo = max(2, min_period)
    if hi < lo or np.ptp(arr) == 0:
        return []
    cands = _candidate_periods(arr, lo, hi, shortlist)
    found: list[int] = []
    work = arr.copy()
    steps = np.diff(arr)
    for _ in range(max_seasons):
        tried = {m for m in cands
                 if all(m >= 2 * f and not _near_multiple(f, m) for f in found)}
        tried |= {f * k for f in found for k in range(2, 8) if lo <= f * k <= hi}
        if not tried:
            break
        scored = {m: season_profile(work, m) for m in sorted(tried)}
        cut = alpha / len(scored)
        ok = {m: s for m, (_, s, p) in scored.items() if p < cut and s >= min_strength
              and season_profile(steps, m)[2] < 0.05}
        if not ok:
            break
        best = max(ok, key=lambda m: ok[m])
        for d in sorted(ok):
            if d < best and _near_divisor(d, best) and ok[d] >= 0.5 * ok[best]:
                best = d
                break
        found.append(best)
        prof = scored[best][0]
        work = work - prof[np.arange(n) % best]
        steps = np.diff(work)
    return sorted(found)


def _near_multiple(f: int, m: int) -> bool:
    """Whether ``m`` is within two steps of, but not exactly, ``k * f`` for ``k`` in 2..7: what a
    season of a fractional length (52.18 weeks) leaves behind once its integer profile is
    removed, not a season of its own (co2 gave 106 weeks after 52)."""
    k = round(m / f)
    return 2 <= k <= 7 and 0 < abs(m - k * f) <= 2


def _near_divisor(d: int, m: int) -> bool:
    """Whether ``m`` is about ``k * d`` for an integer ``k >= 2`` (within half a step per cycle:
    313 weeks is six years of 52.18 weeks, and 52 is its near-divisor)."""
    k = round(m / d)
    return k >= 2 and abs(m / k - d) <= 0.5
