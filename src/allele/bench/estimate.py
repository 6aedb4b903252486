"""The estimate of one BASE/HEAD comparison row and its verdict, from arrays.

Pure statistics; no I/O. A row is one cell and metric. Its evidence has two parts:

* **within**: how far HEAD is from BASE inside the blocks that share conditions, on the log scale
  (a ratio of 1.10 is ``log 1.10``): the mean of winsorized paired log-differences (pairs by
  ``(seed, repeat)``), of round means in an A/B session (:func:`block_within`: a round is the
  block, so its shared conditions count once), or Welch's difference of winsorized means when the
  samples do not pair. Its variance is moderated across the rows of the same metric
  (:func:`allele.bench.stats.squeeze_var`);
* **between**: the run-level variance that two runs measured apart add (:mod:`allele.bench.
  runlevel`): zero in an A/B session, where both versions share every round.

:func:`judge` turns the evidence of a whole matrix into verdicts with the right nulls:

* ``regressed`` / ``improved``: the interval null ``|log ratio| <= log(1 + floor)`` is rejected
  (:func:`allele.bench.stats.interval_pvalue`) after Benjamini-Hochberg over the rows that can
  reach significance (the *family*);
* ``unchanged``: only from an equivalence test (TOST at level ``q``) inside the floor;
* a row without spread (a checksum) is exact: no noise can make it a false discovery, so it
  is judged against the floor outside the family (in benchmarks/aa_real.py three checksum
  rows had made a family of nine timed and memory rows a third larger);
* ``inconclusive`` otherwise, with its reason: ``too few samples`` (a side has fewer than 2
  samples, an A/B row fewer than 2 rounds: nothing to test), ``too noisy`` (its own noise is so
  large that even a doubling could not reach significance: it is left out of the family),
  ``below resolution``, ``noise`` (its own noise hides whether it moved by more than the floor),
  ``run-level noise`` (it would have a verdict if two runs did not differ by themselves),
  ``run-level noise unknown`` (two runs, no history of the cell and too few cells to estimate
  it) or ``not deterministic``.

The interval is the t interval on the log-ratio, with the moderated degrees of freedom; the
minimum detectable effect (MDE) is the change the row's test finds with 80% power at the level
Benjamini-Hochberg applied. Deterministic metrics (instruction counts) never enter the family:
their tolerance is their floor (:func:`deterministic_rows`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from allele.bench.deterministic import deterministic_rows
from allele.bench.format import pct
from allele.bench.metrics import Direction
from allele.bench.stats import (
    FloatArray,
    bh,
    equivalent,
    interval_pvalue,
    log_floor,
    null_share,
    pad_rows,
    power_noncentrality,
    satterthwaite,
    t_interval,
)
from allele.bench.within import (
    EXACT_SD,
    Within,
    block_within,
    location,
    log_scale,
    paired_within,
    to_scale,
    unpaired_within,
)
from allele.errors import ValidationError

Verdict = Literal["regressed", "improved", "unchanged", "inconclusive"]
Reason = Literal["", "too few samples", "too noisy", "below resolution", "noise",
                 "run-level noise", "run-level noise unknown", "not deterministic"]
Design = Literal["ab", "paired", "unpaired", "deterministic", "none"]
Scale = Literal["log", "difference", "tolerance", "none"]
VERDICTS: tuple[Verdict, ...] = ("regressed", "improved", "inconclusive", "unchanged")
"""Every verdict, in the order tables list them."""
VERDICT_RANK: dict[str, int] = {v: i for i, v in enumerate(VERDICTS)}
REASONS: tuple[Reason, ...] = ("", "too few samples", "too noisy", "below resolution", "noise",
                               "run-level noise", "run-level noise unknown", "not deterministic")
R_NONE, R_FEW, R_NOISY, R_RESOLUTION, R_NOISE, R_RUN, R_UNKNOWN, R_NONDET = range(8)
V_REGRESSED, V_IMPROVED, V_INCONCLUSIVE, V_UNCHANGED = range(4)

DEFAULT_Q = 0.05
DEFAULT_FLOOR = 0.05
MAX_MDE = 1.0
"""A row whose test could not see less than a doubling (+100%) at the level of a lone discovery
cannot reach significance: it is left out of the family (and said so)."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """The statistics of one BASE/HEAD comparison row (one cell and metric), without identity."""

    direction: Direction
    n_base: int
    n_head: int
    paired: bool
    design: Design
    """``ab`` (rounds of an A/B session), ``paired`` / ``unpaired`` (two runs), ``deterministic``
    (compared against the metric's tolerance) or ``none`` (nothing to compare)."""
    median_base: float
    median_head: float
    base: float
    """BASE's location: the geometric mean of its winsorized samples (arithmetic when a sample is
    not positive); likewise HEAD's."""
    head: float
    ratio: float
    """The change the verdict used, as HEAD/BASE: ``exp`` of the log-ratio estimate, after the
    run-wide shift (``shift``) was taken out in a two-run comparison. NaN when there is no
    relative change to show: a location below the metric's resolution, or BASE's location 0
    with HEAD's not (the verdict stands; see :func:`relative`)."""
    ci_low: float
    ci_high: float
    p_value: float
    """p-value of "moved by more than the floor" (NaN outside the family)."""
    q_value: float
    """Benjamini-Hochberg adjusted p-value over the family (NaN outside it)."""
    mde: float
    """Relative change found with 80% power at the level BH applied (0.10 = 10%); ``inf``
    outside the family (an exact row's: its floor)."""
    verdict: Verdict
    reason: Reason = ""
    """Why an ``inconclusive`` row is inconclusive (empty for the other verdicts)."""
    floor: float = DEFAULT_FLOOR
    """The practical floor of this row (a deterministic metric's tolerance)."""
    se_within: float = math.nan
    """Standard error of the log-ratio from within the blocks."""
    se_between: float = 0.0
    """Standard error the run level adds (0 in an A/B session; NaN when unknown)."""
    df: float = math.nan
    """Degrees of freedom of the t reference."""
    shift: float = 1.0
    """The run-wide shift taken out of ``ratio`` (1.0: none)."""
    in_family: bool = False
    """Whether the row counted in the false-discovery-rate family."""
    scale: Scale = "log"
    """``log``, ``difference`` (a sample <= 0), ``tolerance`` or ``none`` (no relative change:
    see ``ratio``)"""

    @property
    def change(self) -> float:
        """Relative change of HEAD against BASE (``ratio - 1``)."""
        return self.ratio - 1.0

    @property
    def interval_text(self) -> str:
        """The 95% interval of the change as tables print it (``[-1.2%, +3.4%]``), or ``n/a``
        with the reason when there is none (``n/a (below resolution)``)."""
        if not (math.isfinite(self.ci_low) and math.isfinite(self.ci_high)):
            why: str = self.reason if self.reason in ("below resolution", "too few samples") else ""
            if not why and self.base == 0 != self.head and self.scale in ("none", "tolerance"):
                why = "base 0"
            return f"n/a ({why})" if why else "n/a"
        return f"[{pct(self.ci_low)}, {pct(self.ci_high)}]"

    @property
    def test(self) -> str:
        """The test behind the verdict, in words."""
        return {"ab": "t (rounds)", "paired": "t (pairs)", "unpaired": "Welch t",
                "deterministic": "tolerance", "none": "none"}[self.design]


# --- a matrix's evidence and its verdicts ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Judgement:
    """Verdicts of a matrix of rows (arrays over rows; codes index :data:`VERDICTS` and
    :data:`REASONS`)."""

    est: FloatArray
    verdict: NDArray[np.int64]
    reason: NDArray[np.int64]
    p: FloatArray
    q: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    mde: FloatArray
    """In log units beyond 0 (``exp(mde) - 1`` is the relative MDE)."""
    se: FloatArray
    df: FloatArray
    in_family: NDArray[np.bool_]


def judge(est: ArrayLike, var_within: ArrayLike, df_within: ArrayLike, *,
          worse: ArrayLike, floor: ArrayLike, q: float = DEFAULT_Q,
          var_between: ArrayLike = 0.0, df_between: ArrayLike = np.inf,
          blocked: ArrayLike | None = None, null: ArrayLike | None = None) -> Judgement:
    """Verdicts for every row (last axis) of one or many matrices (leading axes).

    ``est`` is the log-ratio HEAD/BASE, ``worse`` +1 where a larger value is worse (time) and -1
    where it is better (fitness), ``floor`` the relative practical floor. ``var_between`` is
    the run-level variance (NaN: unknown, which makes the row ``run-level noise unknown``).
    ``blocked`` holds a reason code (:data:`REASONS`) for rows that cannot be judged a priori
    (``R_NONE`` for the others); they stay out of the family.

    ``null`` (``... x rows x values``, or ``... x 1 x values`` for all rows; NaN-padded) holds
    what a history recorded of identical code: each change from one run to the next, as its
    absolute log size where it stood out from its cell's own noise and 0 elsewhere
    (:attr:`allele.bench.runlevel.HistoryNoise.null`). A row's p-value is then at least the
    share of them at least as large as its own ``|est| - floor``: on a machine where a cell runs
    twice as slow in 1% of runs, the t reference alone read every such run in HEAD as a certain
    regression. Beyond anything the history shows, the t reference stands alone.
    """
    e = np.asarray(est, dtype=np.float64)
    shape = e.shape
    vw = np.broadcast_to(np.asarray(var_within, dtype=np.float64), shape)
    vb_raw = np.broadcast_to(np.asarray(var_between, dtype=np.float64), shape)
    delta = np.broadcast_to(log_floor(floor), shape)
    sign = np.broadcast_to(np.asarray(worse, dtype=np.float64), shape)
    reason = (np.zeros(shape, dtype=np.int64) if blocked is None
              else np.broadcast_to(np.asarray(blocked, dtype=np.int64), shape).copy())
    reason = np.where((reason == R_NONE) & np.isnan(vb_raw), R_UNKNOWN, reason)
    vb = np.nan_to_num(vb_raw, nan=0.0)
    var = vw + vb
    se = np.sqrt(var)
    dfb = np.broadcast_to(np.asarray(df_between, dtype=np.float64), shape)
    # an estimated run-level variance (finite df) bounds the degrees of freedom of the total,
    # even when its point estimate is 0: "no run-level noise seen in 12 cells" is not certainty
    df = np.minimum(satterthwaite((vw, df_within), (vb, dfb)),
                    np.where(np.isfinite(dfb), dfb, np.inf))
    finite = np.isfinite(e) & np.isfinite(se) & (df >= 1.0)
    reason = np.where((reason == R_NONE) & ~finite, R_FEW, reason)
    # a row without any spread (every pair differs by the same amount: a checksum, a count)
    # is exact: no noise can make it a false discovery, so it is judged against its floor
    # outside the family, like a deterministic metric, instead of diluting it
    exact = (reason == R_NONE) & (se <= EXACT_SD)
    eligible = (reason == R_NONE) & ~exact
    # the family: rows whose test could see less than MAX_MDE at the level of a lone discovery
    m0 = np.maximum(eligible.sum(axis=-1, keepdims=True), 1)
    lone = delta + power_noncentrality(q / m0, df) * se
    family = eligible & (lone <= math.log1p(MAX_MDE))
    lone_within = delta + power_noncentrality(q / m0, df_within) * np.sqrt(vw)
    out = eligible & ~family
    reason = np.where(out, np.where((vb > 0) & (lone_within <= math.log1p(MAX_MDE)), R_RUN,
                                    R_NOISY), reason)
    p = np.where(family, interval_pvalue(e, se, df, delta), np.nan)
    if null is not None:
        p = np.where(family, np.maximum(p, null_share(null, np.abs(e) - delta)), p)
    qv = bh(p)
    significant = family & (qv <= q)
    m = np.maximum(family.sum(axis=-1, keepdims=True), 1)
    applied = np.maximum(q / m, np.max(np.where(significant, p, 0.0), axis=-1, keepdims=True))
    mde = np.where(family, delta + power_noncentrality(applied, df) * se,
                   np.where(exact, delta, np.inf))
    same = family & ~significant & equivalent(e, se, df, delta, q)
    verdict = np.full(shape, V_INCONCLUSIVE, dtype=np.int64)
    verdict = np.where(significant, np.where(e * sign > 0, V_REGRESSED, V_IMPROVED), verdict)
    verdict = np.where(same, V_UNCHANGED, verdict)
    moved = np.abs(e) > delta
    verdict = np.where(exact, np.where(moved, np.where(e * sign > 0, V_REGRESSED, V_IMPROVED),
                                       V_UNCHANGED), verdict)
    # why the rest is inconclusive: would the within-block evidence alone have decided it?
    sw = np.sqrt(vw)
    alone = (interval_pvalue(e, sw, df_within, delta) <= applied) | equivalent(
        e, sw, df_within, delta, q)
    open_rows = family & (verdict == V_INCONCLUSIVE)
    reason = np.where(open_rows, np.where((vb > 0) & alone, R_RUN, R_NOISE), reason)
    reason = np.where(verdict == V_INCONCLUSIVE, reason, R_NONE)
    lo, hi = t_interval(e, se, df)
    return Judgement(e, verdict, reason, p, qv, lo, hi, mde, se, df, family)


# --- samples to rows ---------------------------------------------------------------------------


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


# --- rows of a comparison ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One comparison row, its samples arranged for its design.

    ``paired`` and ``ab``: ``base[i]`` and ``head[i]`` belong together (``ab`` also gives each
    pair's ``blocks[i]``, its round); ``unpaired``: two independent samples; ``deterministic``:
    judged against ``tolerance``. ``group`` names the rows whose variances are moderated
    together and whose run-level model is shared (the metric)."""

    design: Design
    base: NDArray[np.float64]
    head: NDArray[np.float64]
    direction: Direction
    group: str = ""
    floor: float = DEFAULT_FLOOR
    resolution: float = 0.0
    tolerance: float | None = None
    blocks: NDArray[np.int64] | None = None
    paired: bool = False
    """A deterministic row whose ``base[i]`` and ``head[i]`` are the same seed (and repeat)."""


@dataclass(frozen=True, slots=True)
class Between:
    """The run-level part of a group's rows: the run-wide shift taken out (log), and each row's
    run-level variance (NaN: unknown) with its degrees of freedom."""

    shift: float
    var: FloatArray
    df: FloatArray
    null: FloatArray = field(default_factory=lambda: np.zeros(0))
    """The history's record of how far identical code moved (log sizes of its outlying
    changes, 0 for the others; :func:`judge`'s ``null``), shared by the group's rows."""


BetweenModel = Callable[[str, Within, list[int]], Between]
"""Gives a group's rows their run-level part from their within evidence (group name, evidence,
row indices in the comparison)."""


def _row_within(row: Row, logs: bool, scale: float) -> tuple[FloatArray, str]:
    """The scaled data of one row, padded later: ``(values, kind)``; kind is the design."""
    b = to_scale(row.base, logs, scale)
    h = to_scale(row.head, logs, scale)
    if row.design == "unpaired":
        return np.stack([_pad(b, max(b.size, h.size)), _pad(h, max(b.size, h.size))]), "unpaired"
    return h - b, row.design


def _pad(x: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    out = np.full(n, np.nan)
    out[:x.size] = x
    return out


def _group_within(rows: list[Row], idx: list[int], logs: list[bool],
                  scales: list[float]) -> Within:
    """The within evidence of rows sharing one design, moderated across them."""
    data = [_row_within(rows[i], logs[i], scales[i])[0] for i in idx]
    design = rows[idx[0]].design
    if design == "unpaired":
        n = max(d.shape[1] for d in data)
        arr = np.stack([np.stack([_pad(d[0][np.isfinite(d[0])], n),
                                  _pad(d[1][np.isfinite(d[1])], n)]) for d in data])
        return unpaired_within(arr[:, 0], arr[:, 1]).moderated()
    if design == "ab":
        per_row = []
        for i, d in zip(idx, data, strict=True):
            blocks = rows[i].blocks
            assert blocks is not None
            ids = np.unique(blocks)
            per_row.append([d[blocks == b] for b in ids])
        r = max(len(p) for p in per_row)
        m = max((len(x) for p in per_row for x in p), default=1)
        arr = np.full((len(idx), r, m), np.nan)
        for j, p in enumerate(per_row):
            for k, x in enumerate(p):
                arr[j, k, :x.size] = x
        return block_within(arr).moderated()
    n = max(d.size for d in data)
    return paired_within(np.stack([_pad(d, n) for d in data])).moderated()


def _locations(rows: Sequence[Row]) -> tuple[list[bool], FloatArray, FloatArray, list[float]]:
    logs = [log_scale([r.base, r.head]) for r in rows]
    loc_b = np.array([location(r.base, lg) for r, lg in zip(rows, logs, strict=True)])
    loc_h = np.array([location(r.head, lg) for r, lg in zip(rows, logs, strict=True)])
    scales = [abs(b) if b != 0 and math.isfinite(b) else (abs(h) if h != 0 and math.isfinite(h)
                                                          else 1.0)
              for b, h in zip(loc_b.tolist(), loc_h.tolist(), strict=True)]
    return logs, loc_b, loc_h, scales


def _blocked(rows: Sequence[Row], loc_b: FloatArray, loc_h: FloatArray) -> NDArray[np.int64]:
    """Reason codes of rows that cannot be judged before any test: too few samples, or a
    location below the metric's resolution (a ratio of two near-zero timings means nothing)."""
    out = np.zeros(len(rows), dtype=np.int64)
    for i, r in enumerate(rows):
        few = r.design == "none" or min(r.base.size, r.head.size) < 2
        if r.design == "ab" and r.blocks is not None:
            few = few or np.unique(r.blocks).size < 2
        if few:
            out[i] = R_FEW
        elif r.resolution > 0 and min(abs(loc_b[i]), abs(loc_h[i])) < r.resolution:
            out[i] = R_RESOLUTION
    return out


def estimate_rows(rows: Sequence[Row], *, q: float = DEFAULT_Q,
                  between: BetweenModel | None = None) -> list[Estimate]:
    """Estimates and verdicts of every row, as one false-discovery-rate family.

    Rows of one ``group`` and design are estimated together (their variances moderated across
    them); ``between``, when given, adds each group's run-level part (two runs measured apart);
    without it the rows are judged on their within evidence alone (an A/B session, or samples
    known to be independent)."""
    if not 0.0 < q < 1.0:
        raise ValidationError(f"q must be in (0, 1), got {q}")
    rows = [_finite(r) for r in rows]
    k = len(rows)
    logs, loc_b, loc_h, scales = _locations(rows)
    blocked = _blocked(rows, loc_b, loc_h)
    stat = [i for i in range(k) if rows[i].design != "deterministic"]
    est, vw, dfw = np.full(k, np.nan), np.full(k, np.nan), np.full(k, np.nan)
    vb, dfb, shift = np.zeros(k), np.full(k, np.inf), np.zeros(k)
    nulls: dict[int, FloatArray] = {}
    groups: dict[tuple[str, str], list[int]] = {}
    for i in stat:
        if blocked[i] != R_FEW:
            groups.setdefault((rows[i].group, rows[i].design), []).append(i)
    for idx in groups.values():
        w = _group_within(list(rows), idx, logs, scales)
        est[idx], vw[idx], dfw[idx] = w.est, w.var, w.df
    if between is not None:
        for name in dict.fromkeys(g for g, _ in groups):
            idx = [i for (g, _), ids in groups.items() if g == name for i in ids]
            nulls.update(dict.fromkeys(idx, _run_level(between, name, idx, logs, loc_b, est,
                                                       vw, dfw, (vb, dfb, shift))))
    worse = np.array([1.0 if rows[i].direction == "lower" else -1.0 for i in stat])
    floors = np.array([rows[i].floor if logs[i] else math.expm1(rows[i].floor) for i in stat])
    out: list[Estimate | None] = [None] * k
    if stat:  # (a comparison of deterministic metrics alone has no family to judge)
        j = judge(est[stat], vw[stat], dfw[stat], worse=worse, floor=floors, q=q,
                  var_between=vb[stat], df_between=dfb[stat], blocked=blocked[stat],
                  null=pad_rows([nulls.get(i, np.zeros(0)) for i in stat]))
    for n, i in enumerate(stat):
        out[i] = _estimate(rows[i], logs[i], float(loc_b[i]), float(loc_h[i]), j, n,
                           float(shift[i]), float(vw[i]), float(vb[i]))
    det = [i for i in range(k) if rows[i].design == "deterministic"]
    for i, (verdict, why, ratio) in zip(det, deterministic_rows(
            [rows[i].base for i in det], [rows[i].head for i in det],
            [rows[i].tolerance or 0.0 for i in det],
            [1.0 if rows[i].direction == "lower" else -1.0 for i in det],
            [rows[i].paired for i in det]), strict=True):
        out[i] = _deterministic_estimate(rows[i], ratio, verdict, why)
    return [e for e in out if e is not None]


def _run_level(between: BetweenModel, name: str, idx: list[int], logs: list[bool],
               loc_b: FloatArray, est: FloatArray, vw: FloatArray, dfw: FloatArray,
               out: tuple[FloatArray, FloatArray, FloatArray]) -> FloatArray:
    """Give the rows ``idx`` of one group their run-level part, in place: ``out`` holds the
    run-level variance, its df and the shift taken out (log) of every row. Returns the group's
    :attr:`Between.null`.

    The model works on log-ratios: rows on the difference scale (a sample <= 0) take no part in
    estimating it, but get its run-level variance (a log-ratio's is, to first order, that of a
    relative difference) and its shift, taken out as a factor (HEAD divided by it). A row whose
    BASE location is 0 has no relative change for a shift to scale; its estimate is HEAD's
    difference relative to HEAD itself, which a factor on HEAD does not move."""
    vb, dfb, shift = out
    rel = [i for i in idx if logs[i]]
    mask = np.array([logs[i] for i in idx])
    part = between(name, Within(np.where(mask, est[idx], np.nan), vw[idx], dfw[idx],
                                np.ones(len(idx))), idx)
    vb[idx], dfb[idx] = part.var, part.df
    if not part.shift:
        return part.null
    est[rel] -= part.shift
    shift[rel] = part.shift
    diff = [i for i in idx if not logs[i] and loc_b[i] != 0 and math.isfinite(loc_b[i])]
    factor = math.exp(-part.shift)
    est[diff] = (1.0 + est[diff]) * factor - 1.0
    vw[diff] *= factor * factor
    shift[diff] = part.shift
    return part.null


def _finite(row: Row) -> Row:
    """The row without its non-finite samples (a target that returned NaN or inf for a seed),
    as ``allele bench show`` counts them: a pair loses both halves."""
    b, h = row.base, row.head
    fb, fh = np.isfinite(b), np.isfinite(h)
    if bool(np.all(fb)) and bool(np.all(fh)):
        return row
    if b.size == h.size and (row.design in ("paired", "ab") or row.paired):
        keep = fb & fh
        blocks = row.blocks[keep] if row.blocks is not None else None
        return replace(row, base=b[keep], head=h[keep], blocks=blocks)
    return replace(row, base=b[fb], head=h[fh])


def _estimate(row: Row, logs: bool, loc_b: float, loc_h: float, j: Judgement, n: int,
              shift: float, var_w: float, var_b: float) -> Estimate:
    back = (lambda x: math.exp(x)) if logs else (lambda x: 1.0 + x)
    verdict_code, reason_code = int(j.verdict[n]), int(j.reason[n])
    # a change smaller than the resolution is not one, whatever its ratio
    if (verdict_code in (V_REGRESSED, V_IMPROVED) and row.resolution > 0
            and abs(loc_h - loc_b) < row.resolution):
        verdict_code, reason_code = V_INCONCLUSIVE, R_RESOLUTION
    mde = float(j.mde[n])
    lo, hi, scale = _interval(row, logs, back(float(j.ci_low[n])), back(float(j.ci_high[n])),
                              reason_code)
    ratio = back(float(j.est[n]))
    if not relative(row, loc_b, loc_h):
        ratio, lo, hi, scale = math.nan, math.nan, math.nan, "none"
    elif scale == "difference" and nonnegative(row):
        ratio = max(ratio, 0.0)  # as the interval: a non-negative metric cannot fall by > 100%
    return Estimate(
        direction=row.direction, n_base=int(row.base.size), n_head=int(row.head.size),
        paired=row.design in ("paired", "ab"), design=row.design,
        median_base=_median(row.base), median_head=_median(row.head), base=loc_b, head=loc_h,
        ratio=ratio, ci_low=lo, ci_high=hi,
        p_value=float(j.p[n]), q_value=float(j.q[n]),
        mde=(math.expm1(mde) if logs else mde) if math.isfinite(mde) else math.inf,
        verdict=VERDICTS[verdict_code], reason=REASONS[reason_code], floor=row.floor,
        se_within=math.sqrt(var_w) if var_w >= 0 else math.nan,
        se_between=math.sqrt(var_b) if math.isfinite(var_b) and var_b >= 0 else math.nan,
        df=float(j.df[n]), shift=math.exp(shift), in_family=bool(j.in_family[n]),
        scale=scale)


def _interval(row: Row, logs: bool, lo: float, hi: float,
              reason: int) -> tuple[float, float, Scale]:
    """The interval a row reports, as HEAD/BASE: the t interval of the log-ratio; none (NaN)
    below the metric's resolution, where a t interval of a few timer ticks and zeros printed
    -292% .. +673% for a real ``cpu_sys_s``; ``1 + (HEAD - BASE) / |BASE location|`` on the
    difference scale, cut at 0 when no sample is negative (a cut to the parameter space keeps
    the coverage)."""
    if reason == R_RESOLUTION:
        return math.nan, math.nan, "none"
    if logs:
        return lo, hi, "log"
    if nonnegative(row):
        lo, hi = max(lo, 0.0), max(hi, 0.0)
    return lo, hi, "difference"


def nonnegative(row: Row) -> bool:
    """Whether no sample of ``row`` is negative (a time, a count: its ratio is never < 0)."""
    return all(v.size == 0 or bool(np.all(v >= 0)) for v in (row.base, row.head))


def relative(row: Row, loc_b: float, loc_h: float) -> bool:
    """Whether ``row`` has a relative change to show: not when a location is below the metric's
    resolution (a ratio of two near-zero timings means nothing: 1.2 us -> 15 us is not
    +1,200%), nor when BASE's location is 0 and HEAD's is not (0 -> 999 is no percentage; the
    row is still judged, on the difference relative to HEAD's location)."""
    if row.resolution > 0 and min(abs(loc_b), abs(loc_h)) < row.resolution:
        return False
    return not (loc_b == 0 and loc_h != 0)


def _deterministic_estimate(row: Row, ratio: float, verdict: Verdict, why: Reason) -> Estimate:
    tol = row.tolerance or 0.0
    return Estimate(
        direction=row.direction, n_base=int(row.base.size), n_head=int(row.head.size),
        paired=False, design="deterministic", median_base=_median(row.base),
        median_head=_median(row.head), base=_median(row.base), head=_median(row.head),
        ratio=ratio, ci_low=ratio, ci_high=ratio, p_value=math.nan, q_value=math.nan, mde=tol,
        verdict=verdict, reason=why, floor=tol, se_within=0.0, se_between=0.0, df=math.inf,
        scale="tolerance")


def _median(x: NDArray[np.float64]) -> float:
    return float(np.median(x)) if x.size else math.nan


def compare_samples(base: Sequence[ArrayLike] | ArrayLike, head: Sequence[ArrayLike] | ArrayLike,
                    *, direction: Direction | Sequence[Direction] = "lower",
                    paired: bool | Sequence[bool] = False, q: float = DEFAULT_Q,
                    floor: float | Sequence[float] = DEFAULT_FLOOR,
                    resolution: float | Sequence[float] = 0.0) -> list[Estimate]:
    """Compare ``k`` BASE/HEAD sample sets as one FDR family, every sample taken as its own
    block (independent of the others: say so only when it is true, e.g. each sample from its
    own process at its own time; samples of one run are not, see :mod:`allele.bench.compare`).

    ``base`` and ``head`` are each a sequence of ``k`` 1-D sample arrays (or a ``k x n`` array,
    or one 1-D array for ``k = 1``); ``paired[i]`` means ``base[i][j]`` and ``head[i][j]``
    belong together. Variances are moderated across all ``k`` rows."""
    bases, heads = _as_list(base), _as_list(head)
    k = len(bases)
    if len(heads) != k:
        raise ValidationError(f"{k} base sample sets but {len(heads)} head sample sets")
    dirs = [direction] * k if isinstance(direction, str) else list(direction)
    pairs = [paired] * k if isinstance(paired, bool) else list(paired)
    res = [float(resolution)] * k if isinstance(resolution, int | float) else list(resolution)
    floors = [float(floor)] * k if isinstance(floor, int | float) else list(floor)
    if len(dirs) != k or len(pairs) != k or len(res) != k or len(floors) != k:
        raise ValidationError("direction, paired, resolution and floor need one entry per "
                              "comparison")
    if any(not f >= 0.0 for f in floors):
        raise ValidationError(f"floor must be >= 0, got {min(floors)}")
    rows = []
    for i in range(k):
        if not (np.all(np.isfinite(bases[i])) and np.all(np.isfinite(heads[i]))):
            raise ValidationError(f"comparison {i}: samples must be finite numbers")
        if pairs[i] and bases[i].size != heads[i].size:
            raise ValidationError(f"comparison {i}: paired samples need equal lengths "
                                  f"({bases[i].size} vs {heads[i].size})")
        rows.append(Row("paired" if pairs[i] else "unpaired", bases[i], heads[i], dirs[i],
                        floor=floors[i], resolution=float(res[i])))
    return estimate_rows(rows, q=q)
