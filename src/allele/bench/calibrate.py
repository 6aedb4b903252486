"""A/A calibration: run a spec twice on unchanged code and count what the comparison flags.

Every ``regressed`` or ``improved`` row of an A/A comparison is a false alarm, so the share of
flagged rows per target (and per metric) measures how far this machine's noise gets past the
comparison's floor and FDR control. :func:`calibrate` runs the two runs and compares them;
:func:`calibration` counts a comparison's false alarms.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from allele.bench.compare import Comparison, MetricComparison, compare_runs
from allele.bench.targets import include_working_directory
from allele.errors import AlleleError

if TYPE_CHECKING:
    from allele.bench.runner import ProgressSink
    from allele.bench.spec import SuiteSpec
    from allele.store.results import ResultStore


@dataclass(frozen=True, slots=True)
class Calibration:
    """An A/A comparison's error rates for one target: every flagged cell is a false alarm."""

    target: str
    comparisons: int
    false_positives: int
    """Cells x metrics reported ``regressed`` or ``improved`` although nothing changed."""
    inconclusive: int
    cells: int
    false_positives_by_metric: dict[str, int] = field(default_factory=dict)
    """Flagged comparisons per metric (every metric of the target, zeros included): shows
    which measurements are noisy on this machine, e.g. wall time against a checksum."""

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / self.comparisons if self.comparisons else 0.0

    @property
    def inconclusive_rate(self) -> float:
        return self.inconclusive / self.comparisons if self.comparisons else 0.0


def calibration(comp: Comparison) -> list[Calibration]:
    """Per-target empirical false-positive rates of an A/A comparison (same code twice)."""
    by_target: dict[str, list[MetricComparison]] = {}
    for r in comp.rows:
        by_target.setdefault(r.target, []).append(r)
    out = []
    for target, rows in sorted(by_target.items()):
        per_metric: dict[str, int] = {}
        for r in rows:
            per_metric[r.metric] = (per_metric.get(r.metric, 0)
                                    + (r.verdict in ("regressed", "improved")))
        out.append(Calibration(
            target=target, comparisons=len(rows),
            false_positives=sum(r.verdict in ("regressed", "improved") for r in rows),
            inconclusive=sum(r.verdict == "inconclusive" for r in rows),
            cells=len({r.key for r in rows}),
            false_positives_by_metric=dict(sorted(per_metric.items()))))
    return out


@dataclass(frozen=True, slots=True)
class CalibrationResult:
    """An A/A calibration: the two runs, the comparison's settings and its false alarms."""

    suite: str
    runs: tuple[str, str]
    q: float
    floor: float
    targets: list[Calibration]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``allele bench calibrate --json``)."""
        return {
            "runs": list(self.runs), "q": self.q, "floor": self.floor,
            "targets": [{"target": c.target, "cells": c.cells, "comparisons": c.comparisons,
                         "false_positives": c.false_positives,
                         "false_positive_rate": c.false_positive_rate,
                         "inconclusive_rate": c.inconclusive_rate,
                         "false_positives_by_metric": c.false_positives_by_metric}
                        for c in self.targets],
        }


def calibrate(store: ResultStore, suite: SuiteSpec, *, executor: str = "local",
              workers: int | None = None, progress: ProgressSink | None = None,
              q: float = 0.05, floor: float = 0.05) -> CalibrationResult:
    """Run ``suite`` twice into ``store`` (named ``calibrate-<suite>-<time>-a`` / ``-b``) and
    count the false alarms of their comparison."""
    from allele.bench.runner import Runner

    include_working_directory()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runner = Runner(store, executor=executor, workers=workers, progress=progress)
    ids = []
    for side in ("a", "b"):
        summary = runner.run(suite, name=f"calibrate-{suite.name}-{stamp}-{side}")
        if summary.status != "finished":
            raise AlleleError(f"calibration run {summary.name} ended {summary.status}")
        ids.append(summary.run_id)
    first, second = store.load_run(ids[0]), store.load_run(ids[1])
    comp = compare_runs(first, second, q=q, floor=floor)
    return CalibrationResult(suite.name, (first.info.name, second.info.name), q, floor,
                             calibration(comp))
