"""A/A calibration: run a spec as K pairs of runs on unchanged code and measure what `compare`
does with them.

Every ``regressed`` or ``improved`` row of an A/A comparison is a false verdict. What a CI gate
cares about is whether a *matrix* gets any (the gate fails on one), so the figure is the share
of pairs with at least one, with its exact binomial 95% interval; the per-row rates, per target
and metric, say where the noise is. Each pair is compared exactly as ``allele bench compare``
compares two runs: the run-level model with the store's history up to the pair (the pair
itself left out), which includes the earlier calibration runs.

The runs stay in the store as ordinary runs (named ``calibrate-...``): they are A/A
history for every later comparison, so ``compare`` uses what calibration measured. The
calibration also reports each cell's run-level spread, how much its level moves between
identical runs (:func:`run_spread`).

Deterministic metrics (instruction counts) stay out of the rate: a false verdict there is a
broken counter, not noise (they are listed separately).
"""

from __future__ import annotations

import math
import secrets
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from allele.bench.compare import Comparison, MetricComparison, compare_runs
from allele.bench.history import History, load_history
from allele.bench.metrics import metric_info
from allele.bench.runlevel import MIN_SHIFT_CELLS, environment_sensitive, run_locations
from allele.bench.stats import clopper_pearson
from allele.bench.targets import include_working_directory
from allele.errors import AlleleError, ValidationError

if TYPE_CHECKING:
    from allele.bench.run_protocols import ProgressSink
    from allele.bench.spec import SuiteSpec
    from allele.store.results import ResultStore

DEFAULT_PAIRS = 10
HISTORY = 22
"""Runs of history each pair's comparison reads (``compare``'s default of 20 plus the pair)."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """The false verdicts of one target over all pairs."""

    target: str
    comparisons: int
    false_positives: int
    """Rows reported ``regressed`` or ``improved`` although nothing changed."""
    inconclusive: int
    cells: int
    false_positives_by_metric: dict[str, int] = field(default_factory=dict)
    """Flagged rows per metric (every metric of the target, zeros included)."""

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / self.comparisons if self.comparisons else 0.0

    @property
    def inconclusive_rate(self) -> float:
        return self.inconclusive / self.comparisons if self.comparisons else 0.0


def _flagged(r: MetricComparison) -> bool:
    return r.verdict in ("regressed", "improved")


def calibration(comps: Comparison | Sequence[Comparison]) -> list[Calibration]:
    """Per-target false verdicts of A/A comparisons (same code on both sides); deterministic
    metrics left out."""
    rows = [r for c in ([comps] if isinstance(comps, Comparison) else comps) for r in c.rows
            if r.estimate.design != "deterministic"]
    by_target: dict[str, list[MetricComparison]] = {}
    for r in rows:
        by_target.setdefault(r.target, []).append(r)
    out = []
    for target, group in sorted(by_target.items()):
        per_metric: dict[str, int] = {}
        for r in group:
            per_metric[r.metric] = per_metric.get(r.metric, 0) + _flagged(r)
        out.append(Calibration(
            target=target, comparisons=len(group),
            false_positives=sum(_flagged(r) for r in group),
            inconclusive=sum(r.verdict == "inconclusive" for r in group),
            cells=len({r.key for r in group}),
            false_positives_by_metric=dict(sorted(per_metric.items()))))
    return out


@dataclass(frozen=True, slots=True)
class CellSpread:
    """How much one cell's level moves between identical runs."""

    key: str
    target: str
    params: dict[str, Any]
    metric: str
    runs: int
    spread: float
    """Standard deviation of the run's log-location, as a relative figure (0.05 = 5%), after
    the run-wide shift of time metrics is taken out."""
    within: float
    """What sampling alone explains of it (the location's standard error, relative)."""


def run_spread(history: History) -> list[CellSpread]:
    """Every statistical cell and metric's run-to-run spread over ``history`` (at least 3
    runs), with each run's shift (median over the cells) taken out of time metrics."""
    out = []
    by_metric: dict[str, list[Any]] = {}
    for s in history:
        by_metric.setdefault(s.metric, []).append(s)
    pos = {r.id: j for j, r in enumerate(history.runs)}
    for metric, series in sorted(by_metric.items()):
        info = metric_info(metric)
        if info.deterministic:
            continue
        loc = np.full((len(series), len(history.runs)), np.nan)
        w = np.full_like(loc, np.nan)
        for i, s in enumerate(series):
            m, v = run_locations(s)
            cols = [pos[r] for r in s.run_ids]
            loc[i, cols], w[i, cols] = m, v
        if environment_sensitive(info) and len(series) >= MIN_SHIFT_CELLS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # runs without the metric
                dev = loc - np.nanmedian(loc, axis=1, keepdims=True)
                shift = np.nanmedian(dev, axis=0)
            loc = loc - np.where(np.isfinite(shift), shift, 0.0)
        for i, s in enumerate(series):
            ok = np.isfinite(loc[i])
            if ok.sum() < 3:
                continue
            out.append(CellSpread(s.key, s.target, dict(s.params), metric, int(ok.sum()),
                                  math.expm1(float(np.std(loc[i, ok], ddof=1))),
                                  math.expm1(math.sqrt(float(np.mean(w[i, ok]))))))
    return out


@dataclass(frozen=True, slots=True)
class CalibrationResult:
    """K A/A pairs: their runs, the share with any false verdict and where the noise is."""

    suite: str
    pairs: list[tuple[str, str]]
    q: float
    floor: float
    flagged_pairs: int
    targets: list[Calibration]
    spreads: list[CellSpread] = field(default_factory=list)
    deterministic_flags: int = 0
    """Deterministic rows flagged (a broken counter: never part of the rate)."""

    @property
    def rate(self) -> float:
        """Share of pairs with any false verdict."""
        return self.flagged_pairs / len(self.pairs) if self.pairs else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """Clopper-Pearson 95% interval of :attr:`rate`."""
        return clopper_pearson(self.flagged_pairs, len(self.pairs))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``allele bench calibrate --json``)."""
        lo, hi = self.interval
        return {
            "suite": self.suite, "pairs": [list(p) for p in self.pairs], "q": self.q,
            "floor": self.floor, "flagged_pairs": self.flagged_pairs, "rate": self.rate,
            "rate_ci": [lo, hi], "deterministic_flags": self.deterministic_flags,
            "targets": [{"target": c.target, "cells": c.cells, "comparisons": c.comparisons,
                         "false_positives": c.false_positives,
                         "false_positive_rate": c.false_positive_rate,
                         "inconclusive_rate": c.inconclusive_rate,
                         "false_positives_by_metric": c.false_positives_by_metric}
                        for c in self.targets],
            "spreads": [{"key": c.key, "target": c.target, "params": c.params,
                         "metric": c.metric, "runs": c.runs, "spread": c.spread,
                         "within": c.within} for c in self.spreads],
        }


def summarise(suite: str, comps: Sequence[Comparison], history: History, q: float,
              floor: float) -> CalibrationResult:
    """The calibration figures of A/A comparisons ``comps`` and the runs of ``history``."""
    flagged = sum(any(_flagged(r) for r in c.rows if r.estimate.design != "deterministic")
                  for c in comps)
    det = sum(_flagged(r) for c in comps for r in c.rows if r.estimate.design == "deterministic")
    return CalibrationResult(suite, [(c.base.name, c.head.name) for c in comps], q, floor,
                             flagged, calibration(comps), run_spread(history), det)


def calibrate(store: ResultStore, suite: SuiteSpec, *, pairs: int = DEFAULT_PAIRS,
              executor: str = "local", workers: int | None = None,
              progress: ProgressSink | None = None, q: float = 0.05,
              floor: float = 0.05) -> CalibrationResult:
    """Run ``suite`` as ``pairs`` A/A pairs into ``store`` (named ``calibrate-<suite>-<time>-<tag>-
    <k>a`` / ``-<k>b``) and compare each pair as ``compare`` does."""
    from allele.bench.runner import Runner

    if pairs < 1:
        raise ValidationError(f"--pairs must be >= 1, got {pairs}")
    # checked before anything runs: a bad --q used to end the first A/A pair, minutes later
    if not 0.0 < q < 1.0:
        raise ValidationError(f"q must be in (0, 1), got {q}")
    if not 0.0 <= floor < 1.0:
        raise ValidationError(f"floor must be in [0, 1), got {floor}")
    include_working_directory()
    # the time and a random tag: two calibrations started within one second get distinct names
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    runner = Runner(store, executor=executor, workers=workers, progress=progress)
    comps = []
    ids: list[str] = []
    for k in range(pairs):
        pair = []
        for side in ("a", "b"):
            summary = runner.run(suite, name=f"calibrate-{suite.name}-{stamp}-{k + 1}{side}")
            if summary.status != "finished":
                raise AlleleError(f"calibration run {summary.name} ended {summary.status}")
            pair.append(store.load_run(summary.run_id))
            ids.append(summary.run_id)
        history = load_history(store, pair[1].info, HISTORY)
        comps.append(compare_runs(pair[0], pair[1], q=q, floor=floor, history=history))
    mine = History([store.get_run(i) for i in ids], store.histories(ids))
    return summarise(suite.name, comps, mine, q, floor)
