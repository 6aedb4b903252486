"""A report's content: the run, its baseline, their comparison and the change points of the
history, gathered once (:func:`load_report_data` reads the store, :func:`report_data` computes)
and rendered by :mod:`.html` or :mod:`.markdown`; plus the small views both renderers share.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from allele.bench.compare import (
    VERDICT_RANK,
    Comparison,
    MetricComparison,
    compare_runs,
    row_params,
    split_params,
)
from allele.bench.explain import CellExplanation, explain_records
from allele.bench.format import params_text
from allele.bench.history import HISTORY_RUNS, History, as_history, load_history
from allele.bench.regress import ChangeGroup, find_changes
from allele.store.model import CellResult, RunRecord

if TYPE_CHECKING:
    from allele.store import ResultStore


def _by_target(cells: Sequence[CellResult]) -> dict[str, list[CellResult]]:
    out: dict[str, list[CellResult]] = {}
    for c in cells:
        out.setdefault(c.target, []).append(c)
    return dict(sorted(out.items()))


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested environment entries as (dotted key, readable value) rows: a list of records
    (the BLAS libraries, say) becomes one row per record, ``key: value`` pairs joined, never a
    Python repr; a missing value shows as an em dash."""
    out: list[tuple[str, Any]] = []
    for k in sorted(d, key=str):
        v = d[k]
        if isinstance(v, dict) and v:
            out.extend(_flatten(v, f"{prefix}{k}."))
        elif isinstance(v, list | tuple) and v and all(isinstance(x, dict) for x in v):
            for i, item in enumerate(v, 1):
                out.append((f"{prefix}{k} #{i}", ", ".join(
                    f"{kk}: {'—' if vv is None else vv}" for kk, vv in sorted(item.items()))))
        elif isinstance(v, list | tuple):
            out.append((f"{prefix}{k}", ", ".join(str(x) for x in v) if v else "—"))
        else:
            out.append((f"{prefix}{k}", "—" if v is None else v))
    return out


def _params_text(params: dict[str, Any]) -> str:
    return params_text(params, empty="(no params)")


class _ShownParams:
    """A comparison's rows show the parameters that vary within their target; the ones every
    cell of a target shares are said once (:func:`allele.bench.compare.split_params`)."""

    def __init__(self, comp: Comparison) -> None:
        self.split = split_params(comp.rows)

    def text(self, r: MetricComparison) -> str:
        return _params_text(row_params(self.split, r))

    def fixed_lines(self) -> list[str]:
        return [f"{target}, in every cell: {_params_text(fixed)}"
                for target, (_, fixed) in self.split.items() if fixed]


def _sorted_rows(comp: Comparison) -> list[MetricComparison]:
    return sorted(comp.rows, key=lambda r: (VERDICT_RANK[r.verdict],
                                            -abs(math.log(r.estimate.ratio))
                                            if r.estimate.ratio > 0
                                            and math.isfinite(r.estimate.ratio) else -math.inf,
                                            r.key, r.metric))



@dataclass(slots=True)
class ReportData:
    """Everything a report shows; built by :func:`build_report` or by hand in tests."""

    run: RunRecord
    baseline: RunRecord | None = None
    comparison: Comparison | None = None
    changes: list[ChangeGroup] = field(default_factory=list)
    history_runs: int = 0
    generated_at: float = field(default_factory=time.time)
    explanations: list[CellExplanation] = field(default_factory=list)
    """Why the instruction counts of regressed cells changed (:mod:`allele.bench.explain`)."""


def report_data(run: RunRecord, baseline: RunRecord | None = None, *,
                history: History | Sequence[RunRecord] = (), q: float = 0.05,
                floor: float = 0.05, seed: int = 0) -> ReportData:
    """Compare ``run`` with ``baseline`` (if any; with the run-level model over ``history``,
    or as an A/B session when the two are its halves) and look for change points in
    ``history`` (runs up to and including ``run``). ``seed`` is kept for callers; the
    comparison no longer resamples."""
    del seed
    past = as_history(history)
    comparison = (compare_runs(baseline, run, q=q, floor=floor, history=past)
                  if baseline is not None else None)
    changes = find_changes(past) if len(past) >= 6 else []
    return ReportData(run, baseline, comparison, changes, len(past))



def load_report_data(store: ResultStore, run_ref: str, baseline_ref: str | None = None, *,
                     q: float = 0.05, floor: float = 0.05, seed: int = 0,
                     history_runs: int = HISTORY_RUNS) -> ReportData:
    """The runs :func:`build_report` needs from ``store``, compared and analysed; a run whose
    runner was killed shows as ``interrupted`` (:func:`allele.bench.lease.shown_status`)."""
    from allele.bench.lease import record_with_shown_status

    run = record_with_shown_status(store, store.load_run(run_ref))
    baseline = (record_with_shown_status(store, store.load_run(baseline_ref))
                if baseline_ref is not None else None)
    history = load_history(store, run.info, history_runs)
    data = report_data(run, baseline, history=history, q=q, floor=floor, seed=seed)
    if baseline is not None:
        profiles = (store.instruction_profiles(baseline.info.id),
                    store.instruction_profiles(run.info.id))
        if profiles[0] and profiles[1]:
            exp = explain_records(baseline, run, profiles, top=5)
            data.explanations = [c for c in exp.cells if c.verdict == "regressed"]
    return data



def _failures(data: ReportData) -> list[CellResult]:
    return [c for c in data.run.cells if c.status != "ok"]

