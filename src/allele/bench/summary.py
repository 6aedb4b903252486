"""Per-cell summaries of raw samples: median, interquartile range and a bootstrap 95% CI.

The confidence interval is a *percentile bootstrap of the median*: ``resamples`` (default 2000)
resamples with replacement drawn from ``numpy.random.default_rng(seed)`` (default seed 0, so the
same samples always give the same interval), the median of each, and the 2.5th / 97.5th
percentiles of those medians. Under :data:`MIN_CI_SAMPLES` samples there is no interval
(``None``): no interval of the median from so few reaches 95 % (the widest, from the smallest to
the largest sample, holds the median with probability ``1 - 2 / 2**n``: 50 % for 2 samples,
94 % for 5), and the bootstrap's "interval" of 2 samples was their range. Non-finite samples
(NaN, inf) are left out and counted in ``dropped``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from allele.store.model import CellResult

MIN_CI_SAMPLES = 6
CI_METHOD = ("percentile bootstrap of the median (2000 resamples, seed 0; none under "
             f"{MIN_CI_SAMPLES} samples)")


@dataclass(frozen=True)
class MetricSummary:
    """Summary statistics of one metric's samples in one cell."""

    metric: str
    n: int
    median: float
    q25: float
    q75: float
    mean: float
    ci_low: float | None
    ci_high: float | None
    dropped: int = 0

    @property
    def iqr(self) -> float:
        """Interquartile range ``q75 - q25``."""
        return self.q75 - self.q25


def summarize(metric: str, values: Sequence[float], *, confidence: float = 0.95,
              resamples: int = 2000, seed: int = 0) -> MetricSummary:
    """Summarise one metric's samples (see the module docstring)."""
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    dropped = int(arr.size - finite.size)
    if finite.size == 0:
        nan = math.nan
        return MetricSummary(metric, 0, nan, nan, nan, nan, None, None, dropped)
    q25, med, q75 = np.percentile(finite, [25.0, 50.0, 75.0])
    lo: float | None = None
    hi: float | None = None
    if finite.size >= MIN_CI_SAMPLES:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, finite.size, size=(resamples, finite.size))
        medians = np.median(finite[idx], axis=1)
        alpha = (1.0 - confidence) / 2.0
        lo_v, hi_v = np.percentile(medians, [100 * alpha, 100 * (1 - alpha)])
        lo, hi = float(lo_v), float(hi_v)
    return MetricSummary(metric, int(finite.size), float(med), float(q25), float(q75),
                         float(finite.mean()), lo, hi, dropped)


def summarize_cell(cell: CellResult, metrics: Sequence[str] | None = None
                   ) -> list[MetricSummary]:
    """A summary per metric of a cell (all its metrics, or those named, in that order)."""
    present = cell.metrics()
    if metrics is None:
        names = present
    else:
        have = set(present)
        names = [m for m in metrics if m in have]
    return [summarize(m, cell.values(m)) for m in names]
