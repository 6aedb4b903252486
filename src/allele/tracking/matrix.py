"""Benchmark matrix runs in MLflow: the bridge from the bench runner.

A matrix run becomes a parent run (its spec and environment as artifacts, the environment's
fingerprint as a tag) and every finished cell a nested child run (its params, every sample of
every metric at the step of its index, and ``<metric>.median``). :class:`MlflowProgress` is the
runner progress sink that does it while the runner runs; :func:`run_matrix_tracked` plugs it in
and ends the parent with the runner's final status.

The runner hands the sink the run header it recorded (``start(..., run=info)``), so nothing here
reads the result store: tracking only mirrors what the runner reports. This is the one module of
:mod:`allele.tracking` that knows the bench data model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from allele.errors import TrackingError
from allele.tracking._common import TAG_KIND, RunEndStatus, end_status_for, error_text, now_ms

if TYPE_CHECKING:
    from allele.store.model import CellResult, RunInfo
    from allele.tracking.runs import TrackedRun
    from allele.tracking.tracker import MlflowTracker

_BENCH_STATUS: dict[str, RunEndStatus] = {
    "finished": "FINISHED",
    "failed": "FAILED",
    "interrupted": "KILLED",
}


def environment_fingerprint(environment: Mapping[str, Any]) -> str:
    """A short stable hash of an environment description (the bench ``environment`` JSON),
    leaving out what describes the moment (load average, current CPU frequency)."""
    from allele.bench.environment import stable_view

    text = json.dumps(stable_view(dict(environment)), sort_keys=True, default=str,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]



def start_matrix_run(tracker: MlflowTracker, info: RunInfo) -> TrackedRun:
    """The work of :meth:`MlflowTracker.start_matrix_run
    <allele.tracking.tracker.MlflowTracker.start_matrix_run>`."""
    fp = environment_fingerprint(info.environment)
    run = tracker.start_run(
        info.name,
        tags={TAG_KIND: "matrix", "allele.bench_run_id": info.id,
              "allele.spec": info.spec_name, "allele.target": info.target,
              "allele.env_fingerprint": fp},
        params={"spec_name": info.spec_name, "target": info.target,
                "cell_count": info.cell_count},
        start_time_ms=int(info.created_at * 1000) if info.created_at else None,
    )
    run.log_text(json.dumps(info.spec, indent=2, sort_keys=True, default=str), "spec.json")
    run.log_text(json.dumps(info.environment, indent=2, sort_keys=True, default=str),
                 "environment.json")
    tracker._matrix, tracker._matrix_fp = run, fp
    return run


def log_cell(tracker: MlflowTracker, cell: CellResult, matrix: TrackedRun | None) -> TrackedRun:
    """The work of :meth:`MlflowTracker.log_cell
    <allele.tracking.tracker.MlflowTracker.log_cell>`."""
    parent = matrix or tracker._matrix
    if parent is None:
        raise TrackingError("log_cell needs a matrix run: call start_matrix_run first")
    seeds = sorted({s.seed for s in cell.samples})
    started = int(cell.started_at * 1000) if cell.started_at else None
    finished = int(cell.finished_at * 1000) if cell.finished_at else now_ms()
    tags: dict[str, Any] = {TAG_KIND: "cell", "allele.target": cell.target,
                            "allele.cell_key": cell.key, "allele.cell_status": cell.status,
                            "allele.seed": ",".join(str(s) for s in seeds)}
    if tracker._matrix_fp is not None and parent is tracker._matrix:
        tags["allele.env_fingerprint"] = tracker._matrix_fp
    child = tracker.start_run(_cell_run_name(cell), parent=parent, tags=tags,
                              params=cell.params or None, start_time_ms=started)
    rows: list[list[Any]] = []
    for metric in cell.metrics():
        values = cell.values(metric)
        rows.extend([metric, v, finished, i] for i, v in enumerate(values))
        finite = sorted(v for v in values if math.isfinite(v))
        if finite:
            rows.append([f"{metric}.median", _median(finite), finished, 0])
    if rows:
        tracker._enqueue_log(child.key, rows, {}, {})
    if cell.profile:
        child.log_text(cell.profile, "profile.txt")
    ok = cell.status == "ok"
    child.end("FINISHED" if ok else "FAILED",
              None if ok else (cell.error or cell.status), end_time_ms=finished)
    return child


def end_matrix_run(tracker: MlflowTracker, status: str,
                   report_path: str | os.PathLike[str] | None, matrix: TrackedRun | None,
                   error: str | None) -> None:
    """The work of :meth:`MlflowTracker.end_matrix_run
    <allele.tracking.tracker.MlflowTracker.end_matrix_run>`."""
    run = matrix or tracker._matrix
    if run is None:
        raise TrackingError("end_matrix_run without a matrix run")
    mapped = _BENCH_STATUS.get(status, status.upper())
    if mapped == "RUNNING":
        raise TrackingError("end_matrix_run needs a final status, not 'running'")
    if report_path is not None:
        run.log_artifact(report_path)
    run.end(mapped, error)
    if run is tracker._matrix:
        tracker._matrix = None


def _median(sorted_values: list[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    return sorted_values[mid] if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2


def _cell_run_name(cell: CellResult) -> str:
    parts = ",".join(f"{k}={v}" for k, v in sorted(cell.params.items()))
    name = f"{cell.target}[{parts}]" if parts else cell.target
    return name if len(name) <= 200 else name[:197] + "..."


class MlflowProgress:
    """A bench runner progress sink that mirrors the run into MLflow (and forwards to ``inner``).

    ``start`` opens the matrix (parent) run from the run header the runner passes along
    (``run``), ``cell_finished`` logs each cell as a child run. The parent is ended by
    :func:`run_matrix_tracked` (the runner knows the final status only after the sink stops).
    """

    def __init__(self, tracker: MlflowTracker, inner: Any = None) -> None:
        self.tracker = tracker
        self.inner = inner
        self.matrix: TrackedRun | None = None

    def start(self, run_name: str, total: int, already_done: int,
              run: RunInfo | None = None) -> None:
        if run is None:
            raise TrackingError(f"the runner gave no header for run {run_name!r}: MlflowProgress "
                                "needs allele.bench.runner.Runner (its start passes run=)")
        self.matrix = self.tracker.start_matrix_run(run)
        if already_done:
            self.matrix.set_tags({"allele.resumed_with_done_cells": already_done})
        if self.inner is not None:
            self.inner.start(run_name, total, already_done, run=run)

    def cell_started(self, task: Any) -> None:
        if self.inner is not None:
            self.inner.cell_started(task)

    def cell_finished(self, task: Any, result: CellResult) -> None:
        if self.matrix is not None:
            self.tracker.log_cell(result, self.matrix)
        if self.inner is not None:
            self.inner.cell_finished(task, result)

    def stop(self) -> None:
        if self.inner is not None:
            self.inner.stop()


def run_matrix_tracked(tracker: MlflowTracker, runner: Any, suite: Any = None, *,
                       name: str | None = None, filters: Sequence[str] = (),
                       resume: str | None = None,
                       report_path: str | os.PathLike[str] | None = None) -> Any:
    """Run (or with ``resume`` continue) a matrix with ``runner`` and mirror it into MLflow.

    The runner's progress sink is wrapped for the duration of the call; the matrix run ends
    FINISHED, FAILED (the error as a tag) or KILLED (the runner's ``interrupted``). Returns the
    runner's :class:`~allele.bench.runner.RunSummary`.
    """
    sink = MlflowProgress(tracker, runner.progress)
    runner.progress = sink
    try:
        if resume is not None:
            summary = runner.resume(resume)
        else:
            summary = runner.run(suite, name=name, filters=filters)
    except BaseException as exc:
        if sink.matrix is not None:
            tracker.end_matrix_run(end_status_for(exc), matrix=sink.matrix,
                                   error=None if isinstance(exc, KeyboardInterrupt)
                                   else error_text(exc))
        raise
    finally:
        runner.progress = sink.inner
    if sink.matrix is not None:
        sink.matrix.set_tags({"allele.failed_cells": summary.failed,
                              "allele.bench_status": summary.status})
        tracker.end_matrix_run(summary.status, report_path, matrix=sink.matrix)
    return summary
