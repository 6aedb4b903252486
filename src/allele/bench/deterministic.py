"""Verdicts of deterministic metrics (instruction counts): exact comparisons against a
tolerance, no statistics (:mod:`allele.bench.estimate` calls it for the rows whose design is
``deterministic``; they never enter the false-discovery-rate family)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from allele.bench.estimate import Reason, Verdict


def deterministic_rows(base: Sequence[NDArray[np.float64]], head: Sequence[NDArray[np.float64]],
                       tolerance: Sequence[float], worse: Sequence[float],
                       paired: Sequence[bool] | None = None
                       ) -> list[tuple[Verdict, Reason, float]]:
    """Verdicts of deterministic metrics against their tolerance.

    Paired rows (``base[i]`` and ``head[i]`` are the same seed): each seed's HEAD/BASE ratio is
    its own exact comparison (seeds legitimately count differently: another random path);
    ``regressed`` / ``improved`` when every seed moved beyond the tolerance the same way,
    ``unchanged`` when none did, else ``inconclusive`` (``not deterministic``: the seeds
    disagree); the ratio shown is their geometric mean. Unpaired rows: HEAD/BASE of the
    medians, ``not deterministic`` when a side's own samples spread by more than the tolerance.
    ``too few samples`` when a side is empty. Never in the family: a count that does not move
    by itself needs no false-discovery control."""
    out: list[tuple[Verdict, Reason, float]] = []
    pairs = list(paired) if paired is not None else [False] * len(base)
    for b, h, tol, sgn, pr in zip(base, head, tolerance, worse, pairs, strict=True):
        if b.size == 0 or h.size == 0:
            out.append(("inconclusive", "too few samples", math.nan))
            continue
        if pr and b.size == h.size and bool(np.all(b > 0)) and bool(np.all(h > 0)):
            out.append(_paired_deterministic(b, h, tol, sgn))
            continue
        mb, mh = float(np.median(b)), float(np.median(h))
        # from a BASE of 0 the change has no ratio (NaN, shown '–'), only a direction
        ratio = mh / mb if mb != 0 else (1.0 if mh == 0 else math.nan)
        spread = max(_spread(b), _spread(h))
        if spread > tol:
            out.append(("inconclusive", "not deterministic", ratio))
        elif math.isnan(ratio):
            out.append(("regressed" if mh * sgn > 0 else "improved", "", ratio))
        elif ratio <= 0 or abs(math.log(ratio)) > math.log1p(tol):
            out.append(("regressed" if (ratio - 1.0) * sgn > 0 else "improved", "", ratio))
        else:
            out.append(("unchanged", "", ratio))
    return out


def _paired_deterministic(b: NDArray[np.float64], h: NDArray[np.float64], tol: float,
                          sgn: float) -> tuple[Verdict, Reason, float]:
    logs = np.log(h) - np.log(b)
    ratio = float(np.exp(np.mean(logs)))
    limit = math.log1p(tol)
    if bool(np.all(np.abs(logs) <= limit)):
        return ("unchanged", "", ratio)
    for side in (1.0, -1.0):
        if bool(np.all(logs * side > limit)):
            return ("regressed" if side * sgn > 0 else "improved", "", ratio)
    return ("inconclusive", "not deterministic", ratio)


def _spread(x: NDArray[np.float64]) -> float:
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo == hi:
        return 0.0
    return (hi - lo) / abs(lo) if lo != 0 else math.inf
