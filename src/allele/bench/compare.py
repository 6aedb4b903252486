"""Pairwise comparison of two runs: did HEAD make anything slower or worse than BASE?

Pure statistics over arrays and :class:`~allele.store.model.RunRecord` values; no I/O. For every
cell and metric present in both runs:

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
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from allele.bench.format import param_variation
from allele.bench.history import History, as_history
from allele.bench.metrics import Direction, direction_of, resolution_of
from allele.errors import ValidationError
from allele.store.model import CellResult, RunInfo, RunRecord

Verdict = Literal["regressed", "improved", "unchanged", "inconclusive"]
TestName = Literal["wilcoxon", "mannwhitneyu", "none"]
VERDICTS: tuple[Verdict, ...] = ("regressed", "improved", "inconclusive", "unchanged")
"""Every verdict, in the order tables list them."""
VERDICT_RANK: dict[str, int] = {v: i for i, v in enumerate(VERDICTS)}
FailOn = Literal["regressed", "inconclusive", "never"]

DEFAULT_Q = 0.05
DEFAULT_FLOOR = 0.05
DEFAULT_N_BOOT = 1000
_POWER_Z = 0.8416212335729143  # z of 80% power, used by the minimum detectable effect
_EXACT_MAX_N = 50
_CHUNK = 256  # comparisons per bootstrap block (bounds memory at chunk x n_boot floats)


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


@dataclass(frozen=True, slots=True)
class MetricComparison:
    """One cell and metric of a run comparison."""

    key: str
    target: str
    params: dict[str, Any]
    metric: str
    estimate: Estimate

    @property
    def verdict(self) -> Verdict:
        return self.estimate.verdict


@dataclass(frozen=True, slots=True)
class CellFailure:
    """A cell present in both runs that did not finish ``ok`` in at least one of them."""

    key: str
    target: str
    params: dict[str, Any]
    base_status: str
    head_status: str
    error: str | None


@dataclass(slots=True)
class Comparison:
    """Everything :func:`compare_runs` found, in a stable order (cell key, metric)."""

    base: RunInfo
    head: RunInfo
    q: float
    floor: float
    rows: list[MetricComparison] = field(default_factory=list)
    failures: list[CellFailure] = field(default_factory=list)
    only_in_base: list[str] = field(default_factory=list)
    only_in_head: list[str] = field(default_factory=list)

    def by_verdict(self, verdict: Verdict) -> list[MetricComparison]:
        return [r for r in self.rows if r.verdict == verdict]

    def counts(self) -> dict[Verdict, int]:
        out: dict[Verdict, int] = dict.fromkeys(VERDICTS, 0)
        for r in self.rows:
            out[r.verdict] += 1
        return out

    def fails(self, fail_on: FailOn = "regressed") -> bool:
        """Whether this comparison fails a CI gate: on any regression (the default), also on
        any inconclusive row, or never."""
        if fail_on == "never":
            return False
        counts = self.counts()
        if fail_on == "regressed":
            return counts["regressed"] > 0
        return counts["regressed"] > 0 or counts["inconclusive"] > 0

    def noise_note(self) -> str | None:
        """A sentence when some rows were judged with a floor raised by their history."""
        raised = [r.estimate.floor for r in self.rows if r.estimate.floor > self.floor + 1e-12]
        if not raised:
            return None
        return (f"{len(raised)} of {len(self.rows)} cell metrics move between identical runs "
                f"by more than the {self.floor:.0%} floor (run-to-run noise in their history); "
                f"each was judged against its own floor, up to {max(raised):.0%}")

    @property
    def warnings(self) -> list[str]:
        """What may distort this comparison besides the code (e.g. a busier machine)."""
        note = conditions_warning(self.base, self.head)
        return [note] if note else []

    @property
    def regressed(self) -> list[MetricComparison]:
        return self.by_verdict("regressed")

    @property
    def improved(self) -> list[MetricComparison]:
        return self.by_verdict("improved")

    @property
    def inconclusive(self) -> list[MetricComparison]:
        return self.by_verdict("inconclusive")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite floats become ``None``)."""

        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        rows = []
        for r in self.rows:
            d = {"key": r.key, "target": r.target, "params": r.params, "metric": r.metric}
            d.update(asdict(r.estimate))
            rows.append(d)
        out: dict[str, Any] = clean({
            "base": {"id": self.base.id, "name": self.base.name},
            "head": {"id": self.head.id, "name": self.head.name},
            "q": self.q,
            "floor": self.floor,
            "counts": dict(self.counts()),
            "rows": rows,
            "failures": [asdict(f) for f in self.failures],
            "only_in_base": list(self.only_in_base),
            "only_in_head": list(self.only_in_head),
            "warnings": self.warnings,
        })
        return out


def split_params(rows: Sequence[MetricComparison]) -> dict[str, tuple[list[str], dict[str, Any]]]:
    """Per target: the parameters whose value differs between its compared cells (sorted), and
    the ones every cell shares with their value. Tables show the first and mention the second
    once, instead of repeating ``generations=30, target_fitness=0.97`` on every row."""
    by_target: dict[str, list[MetricComparison]] = {}
    for r in rows:
        by_target.setdefault(r.target, []).append(r)
    out: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for target, group in by_target.items():
        counts = param_variation(r.params for r in group)
        varying = sorted(k for k, n in counts.items() if n > 1)
        fixed = {k: group[0].params[k] for k in sorted(counts) if k not in varying}
        out[target] = (varying, fixed)
    return out


def row_params(split: Mapping[str, tuple[list[str], dict[str, Any]]],
                   row: MetricComparison) -> dict[str, Any]:
    """The parameters of ``row`` that vary within its target (``split`` from
    :func:`split_params`)."""
    return {k: row.params[k] for k in split[row.target][0] if k in row.params}


def _load_1m(info: RunInfo) -> float | None:
    load = (info.environment or {}).get("load")
    value = load.get("1m") if isinstance(load, dict) else None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def conditions_warning(base: RunInfo, head: RunInfo) -> str | None:
    """A sentence when one run started on a clearly busier machine than the other: its 1-minute
    load average (recorded in the environment) was higher by at least half a process and by at
    least a quarter of the usable CPUs. None otherwise, or when a run has no load recorded."""
    a, b = _load_1m(base), _load_1m(head)
    if a is None or b is None:
        return None
    cpus = _usable_cpus(head) or _usable_cpus(base)
    if abs(a - b) < max(0.5, 0.25 * (cpus or 1)):
        return None
    busy, calm = (base, head) if a > b else (head, base)
    on = f" on {cpus} CPU{'s' if cpus != 1 else ''}" if cpus else ""
    return (f"the machine was busier when {busy.name} started (load average {max(a, b):.2f}"
            f"{on}) than when {calm.name} started ({min(a, b):.2f}): time and memory verdicts "
            "may reflect that rather than the code")


def _usable_cpus(info: RunInfo) -> int | None:
    cpu = (info.environment or {}).get("cpu")
    n = (cpu.get("usable") or cpu.get("logical")) if isinstance(cpu, dict) else None
    return n if isinstance(n, int) and n > 0 else None


# --------------------------------------------------------------------------------------------
# array statistics


@dataclass(frozen=True, slots=True)
class _Batch:
    """Raw statistics of a batch of comparisons sharing sample sizes and pairing."""

    median_base: NDArray[np.float64]
    median_head: NDArray[np.float64]
    mean_base: NDArray[np.float64]
    mean_head: NDArray[np.float64]
    ratio: NDArray[np.float64]
    ci_low: NDArray[np.float64]
    ci_high: NDArray[np.float64]
    se: NDArray[np.float64]
    p_value: NDArray[np.float64]
    min_p: float


def _rel_ratio(head: NDArray[np.float64], base: NDArray[np.float64]) -> NDArray[np.float64]:
    """``1 + (head - base) / |base|``; 1 when both are 0, +-inf when only base is 0."""
    if np.all(base > 0):
        return np.asarray(head / base, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 1.0 + (head - base) / np.abs(base)
    both_zero = (base == 0) & (head == 0)
    if np.any(both_zero):
        r[both_zero] = 1.0
    return np.asarray(r, dtype=np.float64)


def _boot_counts(rng: np.random.Generator, n: int, n_boot: int) -> NDArray[np.float64]:
    """``n_boot`` x ``n`` multinomial resample weights (each row sums to 1)."""
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)
    return np.asarray(counts, dtype=np.float64) / n


def _min_p_mwu(n1: int, n2: int) -> float:
    if max(n1, n2) <= _EXACT_MAX_N:
        return min(1.0, 2.0 / math.comb(n1 + n2, n1))
    # asymptotic: complete separation
    u = n1 * n2 / 2.0
    sd = math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0)
    return float(2.0 * stats.norm.sf((u - 0.5) / sd))


def _min_p_wilcoxon(n: int) -> float:
    if n <= _EXACT_MAX_N:
        return min(1.0, 2.0 / 2.0**n)
    mean = n * (n + 1) / 4.0
    sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)
    return float(2.0 * stats.norm.sf(mean / sd))


def _pvalues(base: NDArray[np.float64], head: NDArray[np.float64],
             paired: bool) -> NDArray[np.float64]:
    m = base.shape[0]
    p = np.ones(m, dtype=np.float64)
    if base.shape[1] < 2 or head.shape[1] < 2:
        return np.full(m, np.nan)
    if paired:
        diff = head - base
        nonzero = np.any(diff != 0, axis=1)
        # The exact null distribution holds without zero or tied differences; otherwise the
        # normal approximation with tie correction. (scipy's method="auto" would run a
        # permutation test for those rows: 20+ s for a hundred rows of twelve pairs.)
        mag = np.sort(np.abs(diff), axis=1)
        clean = ~np.any(mag == 0, axis=1) & ~np.any(mag[:, 1:] == mag[:, :-1], axis=1)
        for rows, method in ((nonzero & clean & (diff.shape[1] <= _EXACT_MAX_N), "exact"),
                             (nonzero & ~(clean & (diff.shape[1] <= _EXACT_MAX_N)), "approx")):
            if np.any(rows):
                with np.errstate(divide="ignore", invalid="ignore"):
                    res = stats.wilcoxon(head[rows], base[rows], axis=1,
                                         zero_method="wilcox", method=method)
                p[rows] = np.asarray(res.pvalue, dtype=np.float64)
        return np.nan_to_num(p, nan=1.0)
    pooled = np.concatenate([base, head], axis=1)
    constant = np.all(pooled == pooled[:, :1], axis=1)
    srt = np.sort(pooled, axis=1)
    ties = np.any(srt[:, 1:] == srt[:, :-1], axis=1)
    exact = ~ties & ~constant & (max(base.shape[1], head.shape[1]) <= _EXACT_MAX_N)
    asym = ~exact & ~constant
    if np.any(exact):
        p[exact] = stats.mannwhitneyu(head[exact], base[exact], axis=1,
                                      method="exact").pvalue
    if np.any(asym):
        p[asym] = stats.mannwhitneyu(head[asym], base[asym], axis=1,
                                     method="asymptotic").pvalue
    return np.nan_to_num(p, nan=1.0)


FAR_OUT = 3.0
"""Tukey's far-out fences: values beyond ``Q1 - 3 IQR`` / ``Q3 + 3 IQR`` are clipped."""


def clip_far_outliers(x: NDArray[np.float64], k: float = FAR_OUT) -> NDArray[np.float64]:
    """Each row with its far-out values clipped to the row's fences (Tukey, ``k`` IQRs).

    Timing samples have heavy right tails (a page fault, a busy neighbour): one 100x round
    moves a mean by 10% in a sample of 1000. Clipping only what lies beyond the far-out
    fences leaves well-behaved samples (nearly) untouched - for normal data a fence is 4.7
    standard deviations from the median, though with 10 samples the quartiles are rough and
    about 1% of values get clipped by a fraction of a standard deviation - and makes the mean
    robust against gross outliers.
    """
    if x.shape[1] < 4:
        return x
    q1, q3 = np.percentile(x, [25.0, 75.0], axis=1, keepdims=True)
    iqr = q3 - q1
    return np.clip(x, q1 - k * iqr, q3 + k * iqr)


def _batch_stats(base: NDArray[np.float64], head: NDArray[np.float64], *, paired: bool,
                 n_boot: int, rng: np.random.Generator) -> _Batch:
    """Statistics for ``m`` comparisons: ``base`` is m x n1, ``head`` m x n2."""
    m, n1 = base.shape
    n2 = head.shape[1]
    medians = np.median(base, axis=1), np.median(head, axis=1)
    pv = _pvalues(base, head, paired)  # rank tests on the raw samples
    base = clip_far_outliers(base)
    head = clip_far_outliers(head)
    mean_b = base.mean(axis=1)
    mean_h = head.mean(axis=1)
    ratio = _rel_ratio(mean_h, mean_b)
    # n x n_boot weights; einsum rather than BLAS: the products are small, and threaded BLAS
    # spends more time synchronising its threads than multiplying
    cb = np.ascontiguousarray(_boot_counts(rng, n1, n_boot).T)
    ch = cb if paired else np.ascontiguousarray(_boot_counts(rng, n2, n_boot).T)
    lo_i = math.floor(0.025 * (n_boot - 1))
    hi_i = math.ceil(0.975 * (n_boot - 1))
    ci_low = np.empty(m)
    ci_high = np.empty(m)
    se = np.empty(m)
    for start in range(0, m, _CHUNK):
        sl = slice(start, min(m, start + _CHUNK))
        rb = np.einsum("ij,jk->ik", base[sl], cb)  # (chunk, n_boot) resample means
        rh = np.einsum("ij,jk->ik", head[sl], ch)
        r = np.partition(_rel_ratio(rh, rb), (lo_i, hi_i), axis=1)
        ci_low[sl] = r[:, lo_i]
        ci_high[sl] = r[:, hi_i]
        finite = np.isfinite(r)
        if np.all(finite):
            se[sl] = r.std(axis=1)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-inf rows give NaN
                se[sl] = np.nanstd(np.where(finite, r, np.nan), axis=1)
    min_p = _min_p_wilcoxon(n1) if paired else _min_p_mwu(n1, n2)
    if n1 < 2 or n2 < 2:
        min_p = 1.0
    return _Batch(medians[0], medians[1], mean_b, mean_h, ratio, ci_low, ci_high, se, pv, min_p)


def _bh(p: NDArray[np.float64]) -> NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values; NaN p-values stay NaN and are not counted."""
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if np.any(ok):
        q[ok] = stats.false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    return q


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
    rng = np.random.default_rng(seed)
    groups: dict[tuple[int, int, bool], list[int]] = {}
    for i in range(k):
        groups.setdefault((len(bases[i]), len(heads[i]), pairs[i]), []).append(i)
    keys = ["median_base", "median_head", "mean_base", "mean_head", "ratio", "ci_low",
            "ci_high", "se", "p_value"]
    cols = {name: np.full(k, np.nan) for name in keys}
    min_p = np.ones(k)
    for (n1, n2, pr), idx in sorted(groups.items()):
        if n1 == 0 or n2 == 0:
            continue
        b = np.stack([bases[i] for i in idx])
        h = np.stack([heads[i] for i in idx])
        res = _batch_stats(b, h, paired=pr, n_boot=n_boot, rng=rng)
        for name in keys:
            cols[name][idx] = getattr(res, name)
        min_p[idx] = res.min_p
    qv = _bh(cols["p_value"])
    n_tests = int(np.sum(np.isfinite(cols["p_value"])))
    # the p-value level BH actually applied in this family: that of a lone discovery (q/m), or
    # the largest p-value it declared significant
    significant = np.isfinite(qv) & (qv <= q)
    alpha_one = q / max(1, n_tests)
    if np.any(significant):
        alpha_one = max(alpha_one, float(np.max(cols["p_value"][significant])))
    z_one = float(stats.norm.isf(alpha_one / 2.0))
    out: list[Estimate] = []
    for i in range(k):
        lo, hi = float(cols["ci_low"][i]), float(cols["ci_high"][i])
        se = float(cols["se"][i])
        if not np.isfinite(cols["p_value"][i]) or min_p[i] > alpha_one or not np.isfinite(se):
            mde = math.inf
        else:
            mde = max(floors[i] + 0.5 * (hi - lo), (z_one + _POWER_Z) * se)
        nb, nh = len(bases[i]), len(heads[i])
        test: TestName = ("none" if nb < 2 or nh < 2 else
                          "wilcoxon" if pairs[i] else "mannwhitneyu")
        if nb == 0 or nh == 0:
            lo = hi = math.nan
        # a side whose mean sits at the resolution floor carries no signal, and neither does a
        # change smaller than the resolution: sys time 43 us -> 0 is not "-100%, improved"
        mb, mh = float(cols["mean_base"][i]), float(cols["mean_head"][i])
        tiny = bool(resolutions[i] > 0 and nb and nh
                    and abs(mh - mb) < resolutions[i]
                    and min(abs(mb), abs(mh)) < resolutions[i])
        verdict: Verdict = ("unchanged" if tiny else
                            "inconclusive" if test == "none" or math.isnan(lo)
                            else _verdict(dirs[i], float(qv[i]), lo, hi, q, floors[i],
                                          unchanged_floor))
        out.append(Estimate(
            direction=dirs[i], n_base=nb, n_head=nh, paired=pairs[i], test=test,
            median_base=float(cols["median_base"][i]), median_head=float(cols["median_head"][i]),
            mean_base=float(cols["mean_base"][i]), mean_head=float(cols["mean_head"][i]),
            ratio=float(cols["ratio"][i]), ci_low=lo, ci_high=hi,
            p_value=float(cols["p_value"][i]), q_value=float(qv[i]), mde=mde, verdict=verdict,
            floor=floors[i],
        ))
    return out


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


# --------------------------------------------------------------------------------------------
# runs


def _pairing(b: dict[tuple[int, int], float],
             h: dict[tuple[int, int], float]) -> tuple[bool, list[float], list[float]]:
    """Aligned samples and whether they pair: same (seed, repeat) keys over >= 2 seeds."""
    kb = sorted(b)
    kh = sorted(h)
    paired = kb == kh and len({s for s, _ in kb}) >= 2
    return paired, [b[k] for k in kb], [h[k] for k in kh]


NOISE_Z = 2.0
"""A change must exceed this many standard deviations of the difference between two identical
runs (``sqrt(2)`` times a cell's run-to-run spread) before the history lets it count."""
MIN_NOISE_RUNS = 5
"""Runs of a cell :func:`run_to_run_noise` needs before it estimates anything."""


def run_to_run_noise(history: History | Sequence[RunRecord], *,
                     min_runs: int = MIN_NOISE_RUNS) -> dict[tuple[str, str], float]:
    """How much each cell's median moves between runs, from a history of runs.

    Per (cell key, metric) with a positive median in at least ``min_runs`` runs (``ok`` cells,
    oldest first): ``sigma`` of the log-median from its successive differences, ``median |d| /
    (0.6745 sqrt 2)``, which one real step in the history barely moves. Returned as a relative
    spread, ``exp(sigma) - 1``. On a quiet machine it is small, and the comparison's own floor
    rules. On a shared machine a millisecond cell can swing by 30% between identical runs, and
    a comparison of two runs cannot see that from their samples: within one run they share its
    conditions.
    """
    out: dict[tuple[str, str], float] = {}
    for series in as_history(history):
        # a median at the metric's resolution floor carries no signal (system CPU time of 0 or
        # a few microseconds): its log would swing by orders of magnitude
        floor = resolution_of(series.metric)
        logs = [math.log(m) for m in series.medians().tolist()
                if m > floor and math.isfinite(m)]
        if len(logs) >= min_runs:
            sigma = float(np.median(np.abs(np.diff(logs)))) / (0.6745 * math.sqrt(2.0))
            out[(series.key, series.metric)] = math.exp(sigma) - 1.0
    return out


MAX_NOISE_FLOOR = 1.0
"""The history never raises a floor beyond +100% (a cell that doubles still gets a verdict)."""


def noise_floor(floor: float, noise: float | None) -> float:
    """The practical floor of one row: ``floor``, or the history's noise bound when larger
    (at most :data:`MAX_NOISE_FLOOR`, or ``floor`` if that is larger still)."""
    if noise is None:
        return floor
    bound = math.exp(NOISE_Z * math.sqrt(2.0) * math.log1p(noise)) - 1.0
    return max(floor, min(bound, MAX_NOISE_FLOOR))


def compare_runs(base: RunRecord, head: RunRecord, *, q: float = DEFAULT_Q,
                 floor: float = DEFAULT_FLOOR, seed: int = 0, n_boot: int = DEFAULT_N_BOOT,
                 metrics: Sequence[str] | None = None,
                 noise: Mapping[tuple[str, str], float] | None = None) -> Comparison:
    """Compare every cell and metric measured ``ok`` in both runs (one FDR family).

    Cells in only one run are listed in ``only_in_base`` / ``only_in_head``; cells that did not
    finish ``ok`` in one of the runs are listed in ``failures``. ``noise`` (from
    :func:`run_to_run_noise`) raises the practical floor of the rows whose history moves more
    than ``floor`` between runs (:func:`noise_floor`).
    """
    head_cells = {c.key: c for c in head.cells}
    base_cells = {c.key: c for c in base.cells}
    comp = Comparison(base=base.info, head=head.info, q=q, floor=floor)
    comp.only_in_base = sorted(set(base_cells) - set(head_cells))
    comp.only_in_head = sorted(set(head_cells) - set(base_cells))
    ident: list[tuple[CellResult, str]] = []
    b_samples: list[list[float]] = []
    h_samples: list[list[float]] = []
    pairs: list[bool] = []
    dirs: list[Direction] = []
    res: list[float] = []
    floors: list[float] = []
    wanted = set(metrics) if metrics is not None else None
    for key in sorted(set(base_cells) & set(head_cells)):
        cb, ch = base_cells[key], head_cells[key]
        if cb.status != "ok" or ch.status != "ok":
            comp.failures.append(CellFailure(key, ch.target, dict(ch.params), cb.status,
                                             ch.status, ch.error or cb.error))
            continue
        for metric in sorted(set(cb.metrics()) & set(ch.metrics())):
            if wanted is not None and metric not in wanted:
                continue
            pr, bv, hv = _pairing(cb.keyed(metric), ch.keyed(metric))
            ident.append((ch, metric))
            b_samples.append(bv)
            h_samples.append(hv)
            pairs.append(pr)
            dirs.append(direction_of(metric))
            res.append(resolution_of(metric))
            floors.append(noise_floor(floor, (noise or {}).get((key, metric))))
    if not ident:
        return comp
    ests = compare_samples(b_samples, h_samples, direction=dirs, paired=pairs, q=q,
                           floor=floors, seed=seed, n_boot=n_boot, resolution=res,
                           unchanged_floor=floor)
    comp.rows = [MetricComparison(c.key, c.target, dict(c.params), metric, est)
                 for (c, metric), est in zip(ident, ests, strict=True)]
    return comp


def environment_diff(base: dict[str, Any], head: dict[str, Any],
                     prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Flattened ``(path, base_value, head_value)`` for every differing environment entry."""
    out: list[tuple[str, Any, Any]] = []
    for k in sorted(set(base) | set(head), key=str):
        path = f"{prefix}{k}"
        bv, hv = base.get(k), head.get(k)
        if isinstance(bv, dict) and isinstance(hv, dict):
            out.extend(environment_diff(bv, hv, path + "."))
        elif bv != hv:
            out.append((path, bv, hv))
    return out
