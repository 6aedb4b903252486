"""Comparing BASE and HEAD samples: the estimate of each comparison and its verdict.

Pure statistics over arrays; no I/O. For every comparison (in a run comparison: every cell and
metric present in both runs):

* medians and means of both sides, and the **ratio** HEAD/BASE of the means with a
  **bootstrap 95% confidence interval** (percentile bootstrap, vectorised: a resample is a row of
  multinomial counts, so all resample means of a batch are one matrix product). Means are taken
  after clipping far-out values to Tukey's fences (``Q1 - 3 IQR``, ``Q3 + 3 IQR``), which leaves
  well-behaved samples untouched and stops a stray 100x timing round from moving the mean;
* a **p-value**: Wilcoxon signed-rank when the samples pair up (both runs measured the same
  ``(seed, repeat)`` keys over at least two seeds), Mann-Whitney U otherwise;
* **Benjamini-Hochberg** false-discovery-rate control across every cell x metric of the
  comparison (``q``);
* a **verdict**: ``regressed`` / ``improved`` only when significant after FDR *and* the whole
  confidence interval lies beyond the practical ``floor`` in the worse / better direction of the
  metric (:func:`allele.bench.metrics.direction_of`); ``unchanged`` when the interval lies within
  the floor; otherwise ``inconclusive``, with the minimum detectable effect of the cell.

Why the ratio of means and not of medians: the interval has to lie beyond the floor for a
verdict, so its width decides the power. With 10 samples and 3% noise the bootstrap interval of a
median ratio is about 30% wider than that of a mean ratio, which drops the power to flag a 10%
slowdown from about 95% to about 82%. Robustness against a stray outlier comes from the rank test
that every verdict also needs. Medians are still reported.

Why seeds, not repeats, decide pairing: the repeats of one seed are exchangeable, so pairing
repeat ``i`` of BASE with repeat ``i`` of HEAD carries no information, and a signed-rank test on
``n`` pairs can never give ``p < 2 / 2**n`` (about 0.002 for 10 pairs) - too coarse to survive
FDR control over a matrix. With one seed the samples are compared unpaired.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from allele.bench.metrics import Direction
from allele.bench.stats import batch_stats, bh
from allele.errors import ValidationError

Verdict = Literal["regressed", "improved", "unchanged", "inconclusive"]
TestName = Literal["wilcoxon", "mannwhitneyu", "none"]
VERDICTS: tuple[Verdict, ...] = ("regressed", "improved", "inconclusive", "unchanged")
"""Every verdict, in the order tables list them."""
VERDICT_RANK: dict[str, int] = {v: i for i, v in enumerate(VERDICTS)}

DEFAULT_Q = 0.05
DEFAULT_FLOOR = 0.05
DEFAULT_N_BOOT = 1000
_POWER_Z = 0.8416212335729143  # z of 80% power, used by the minimum detectable effect


@dataclass(frozen=True, slots=True)
class Estimate:
    """The statistics of one BASE/HEAD comparison (one cell and metric), without identity."""

    direction: Direction
    n_base: int
    n_head: int
    paired: bool
    test: TestName
    median_base: float
    median_head: float
    mean_base: float
    """Mean after clipping far-out values (see :func:`clip_far_outliers`); likewise HEAD's."""
    mean_head: float
    ratio: float
    """HEAD/BASE of the means, as ``1 + (mean_head - mean_base) / |mean_base|``."""
    ci_low: float
    ci_high: float
    p_value: float
    q_value: float
    """Benjamini-Hochberg adjusted p-value within the comparison's family."""
    mde: float
    """Minimum detectable relative effect (0.10 = 10%) of this cell at the significance level BH
    applied in this comparison (``q / m`` when nothing was significant); ``inf`` when the test
    cannot reach that level with this many samples."""
    verdict: Verdict
    floor: float = DEFAULT_FLOOR
    """The practical floor this row was judged with: the comparison's, or higher when the cell's
    history shows it moving that much between identical runs (:func:`run_to_run_noise`)."""

    @property
    def change(self) -> float:
        """Relative change of HEAD against BASE (``ratio - 1``)."""
        return self.ratio - 1.0



def _verdict(direction: Direction, q_value: float, lo: float, hi: float, q: float,
             floor: float, unchanged_floor: float | None = None) -> Verdict:
    """``floor`` decides regressed / improved; ``unchanged_floor`` (default ``floor``) decides
    unchanged. A floor raised by run-to-run noise makes a verdict harder to earn, but a CI
    inside it does not show that nothing changed: that stays inconclusive."""
    significant = bool(np.isfinite(q_value) and q_value <= q)
    worse_up = direction == "lower"
    if significant and lo > 1.0 + floor:
        return "regressed" if worse_up else "improved"
    if significant and hi < 1.0 - floor:
        return "improved" if worse_up else "regressed"
    still = floor if unchanged_floor is None else min(floor, unchanged_floor)
    if lo >= 1.0 - still and hi <= 1.0 + still:
        return "unchanged"
    return "inconclusive"


def compare_samples(base: Sequence[ArrayLike] | ArrayLike, head: Sequence[ArrayLike] | ArrayLike,
                    *, direction: Direction | Sequence[Direction] = "lower",
                    paired: bool | Sequence[bool] = False, q: float = DEFAULT_Q,
                    floor: float | Sequence[float] = DEFAULT_FLOOR, seed: int = 0,
                    n_boot: int = DEFAULT_N_BOOT,
                    resolution: float | Sequence[float] = 0.0,
                    unchanged_floor: float | None = None) -> list[Estimate]:
    """Compare ``k`` BASE/HEAD sample pairs as one FDR family.

    ``base`` and ``head`` are each a sequence of ``k`` 1-D sample arrays (or a ``k x n`` array, or
    a single 1-D array for ``k = 1``). ``paired[i]`` means ``base[i][j]`` and ``head[i][j]``
    belong together (equal lengths required). Comparisons with equal sample sizes are computed
    together in one vectorised batch. The result keeps the input order. ``resolution[i]`` is the
    metric's absolute resolution: when the mean of one side lies below it and the two means
    differ by less than it, the verdict is ``unchanged`` whatever the ratio (0 -> 14 us of system
    CPU time is not a regression of infinite size, nor 43 us -> 0 an improvement of 100%).
    ``floor`` is the practical floor, one for all or one per comparison; ``unchanged_floor``,
    when given, caps the floor within which a CI counts as ``unchanged`` (rows whose ``floor``
    was raised for noise are then ``inconclusive`` rather than ``unchanged``).
    """
    if not 0.0 < q < 1.0:
        raise ValidationError(f"q must be in (0, 1), got {q}")
    if n_boot < 100:
        raise ValidationError(f"n_boot must be >= 100, got {n_boot}")
    family = _family(base, head, direction, paired, resolution, floor)
    cols, min_p = _family_stats(family, n_boot, np.random.default_rng(seed))
    qv = bh(cols["p_value"])
    n_tests = int(np.sum(np.isfinite(cols["p_value"])))
    # the p-value level BH actually applied in this family: that of a lone discovery (q/m), or
    # the largest p-value it declared significant
    significant = np.isfinite(qv) & (qv <= q)
    alpha_one = q / max(1, n_tests)
    if np.any(significant):
        alpha_one = max(alpha_one, float(np.max(cols["p_value"][significant])))
    z_one = float(stats.norm.isf(alpha_one / 2.0))
    return [_estimate(family, i, cols, float(qv[i]), bool(min_p[i] > alpha_one), z_one, q,
                      unchanged_floor) for i in range(len(family.bases))]


@dataclass(frozen=True, slots=True)
class _Family:
    """A family of comparisons, validated: one entry per comparison in every list."""

    bases: list[NDArray[np.float64]]
    heads: list[NDArray[np.float64]]
    dirs: list[Direction]
    pairs: list[bool]
    resolutions: list[float]
    floors: list[float]


def _family(base: Sequence[ArrayLike] | ArrayLike, head: Sequence[ArrayLike] | ArrayLike,
            direction: Direction | Sequence[Direction], paired: bool | Sequence[bool],
            resolution: float | Sequence[float], floor: float | Sequence[float]) -> _Family:
    bases = _as_list(base)
    heads = _as_list(head)
    k = len(bases)
    if len(heads) != k:
        raise ValidationError(f"{k} base sample sets but {len(heads)} head sample sets")
    dirs = [direction] * k if isinstance(direction, str) else list(direction)
    pairs = [paired] * k if isinstance(paired, bool) else list(paired)
    resolutions = ([float(resolution)] * k if isinstance(resolution, int | float)
                   else [float(r) for r in resolution])
    floors = ([float(floor)] * k if isinstance(floor, int | float)
              else [float(f) for f in floor])
    if len(dirs) != k or len(pairs) != k or len(resolutions) != k or len(floors) != k:
        raise ValidationError("direction, paired, resolution and floor need one entry per "
                              "comparison")
    if any(not f >= 0.0 for f in floors):
        raise ValidationError(f"floor must be >= 0, got {min(floors)}")
    for i in range(k):
        if pairs[i] and len(bases[i]) != len(heads[i]):
            raise ValidationError(f"comparison {i}: paired samples need equal lengths "
                                  f"({len(bases[i])} vs {len(heads[i])})")
        if not (np.all(np.isfinite(bases[i])) and np.all(np.isfinite(heads[i]))):
            raise ValidationError(f"comparison {i}: samples must be finite numbers")
    return _Family(bases, heads, dirs, pairs, resolutions, floors)


_STAT_COLUMNS = ("median_base", "median_head", "mean_base", "mean_head", "ratio", "ci_low",
                 "ci_high", "se", "p_value")


def _family_stats(family: _Family, n_boot: int, rng: np.random.Generator
                  ) -> tuple[dict[str, NDArray[np.float64]], NDArray[np.float64]]:
    """Every comparison's raw statistics, computed in batches of equal sample sizes and
    pairing, and the smallest p-value each comparison's test can reach."""
    k = len(family.bases)
    groups: dict[tuple[int, int, bool], list[int]] = {}
    for i in range(k):
        groups.setdefault((len(family.bases[i]), len(family.heads[i]), family.pairs[i]),
                          []).append(i)
    cols = {name: np.full(k, np.nan) for name in _STAT_COLUMNS}
    min_p = np.ones(k)
    for (n1, n2, pr), idx in sorted(groups.items()):
        if n1 == 0 or n2 == 0:
            continue
        b = np.stack([family.bases[i] for i in idx])
        h = np.stack([family.heads[i] for i in idx])
        res = batch_stats(b, h, paired=pr, n_boot=n_boot, rng=rng)
        for name in _STAT_COLUMNS:
            cols[name][idx] = getattr(res, name)
        min_p[idx] = res.min_p
    return cols, min_p


def _estimate(family: _Family, i: int, cols: dict[str, NDArray[np.float64]], q_value: float,
              blind: bool, z_one: float, q: float, unchanged_floor: float | None) -> Estimate:
    """Comparison ``i`` of the family as an :class:`Estimate` with its verdict; ``blind`` when
    its test cannot reach the level BH applied (its MDE is then infinite)."""
    floor = family.floors[i]
    lo, hi = float(cols["ci_low"][i]), float(cols["ci_high"][i])
    se = float(cols["se"][i])
    if not np.isfinite(cols["p_value"][i]) or blind or not np.isfinite(se):
        mde = math.inf
    else:
        mde = max(floor + 0.5 * (hi - lo), (z_one + _POWER_Z) * se)
    nb, nh = len(family.bases[i]), len(family.heads[i])
    paired = family.pairs[i]
    test: TestName = "none" if nb < 2 or nh < 2 else "wilcoxon" if paired else "mannwhitneyu"
    if nb == 0 or nh == 0:
        lo = hi = math.nan
    # a side whose mean sits at the resolution floor carries no signal, and neither does a
    # change smaller than the resolution: sys time 43 us -> 0 is not "-100%, improved"
    mb, mh = float(cols["mean_base"][i]), float(cols["mean_head"][i])
    res = family.resolutions[i]
    tiny = bool(res > 0 and nb and nh and abs(mh - mb) < res and min(abs(mb), abs(mh)) < res)
    verdict: Verdict = ("unchanged" if tiny else
                        "inconclusive" if test == "none" or math.isnan(lo)
                        else _verdict(family.dirs[i], q_value, lo, hi, q, floor,
                                      unchanged_floor))
    return Estimate(
        direction=family.dirs[i], n_base=nb, n_head=nh, paired=paired, test=test,
        median_base=float(cols["median_base"][i]), median_head=float(cols["median_head"][i]),
        mean_base=mb, mean_head=mh, ratio=float(cols["ratio"][i]), ci_low=lo, ci_high=hi,
        p_value=float(cols["p_value"][i]), q_value=q_value, mde=mde, verdict=verdict,
        floor=floor)


def _as_list(x: Sequence[ArrayLike] | ArrayLike) -> list[NDArray[np.float64]]:
    if isinstance(x, np.ndarray):
        if x.ndim == 1:
            return [x.astype(np.float64)]
        if x.ndim == 2:
            return [row.astype(np.float64) for row in x]
        raise ValidationError(f"samples must be 1-D or 2-D, got {x.ndim}-D")
    seq = list(x)  # type: ignore[arg-type]
    if seq and all(isinstance(v, int | float | np.number) for v in seq):
        return [np.asarray(seq, dtype=np.float64)]
    return [np.asarray(v, dtype=np.float64).ravel() for v in seq]
