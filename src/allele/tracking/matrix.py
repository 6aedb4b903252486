"""Benchmark matrix runs in MLflow: the bridge from the bench runner.

A matrix run becomes a parent run (its spec and environment as artifacts, the environment's
fingerprint as a tag) and every stored cell a nested child run (its params, every sample of
every metric at the step of its index, and ``<metric>.median``): one child per cell, written once
the whole cell (all its rounds) is committed to the store. :class:`MlflowProgress` is the runner
progress sink that does it while the runner runs; :func:`run_matrix_tracked` plugs it in and ends
the parent with the runner's final status, logging ``cell_count`` and ``failed_cells`` then.

Nothing is lost when the runner dies. Runs have deterministic keys (``bench-<run id>``, and
``cell-<run id>-<hash of the cell key>``), so writing a cell again finds its child run instead of
making a second one, and a resumed run continues its parent run (RUNNING again, then ended with
the resumed run's status). Once a cell's records are delivered to MLflow (or safely in the
spool), the result store records it (``cell_deliveries``); ``--resume`` re-sends every stored
cell without that record, which covers cells that were still in the tracker's memory when the
process was killed. Re-sending is harmless: metrics carry the cell's own timestamps, and MLflow
drops a metric it already holds.

The runner hands the sink the run header it recorded (``start(..., run=info)``), so tracking
never reads run headers back; the store is used only for the delivery records and, on resume,
the cells to re-send. This is the one module of :mod:`allele.tracking` that knows the bench data
model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from allele.bench.metrics import LOOPS_METRIC, loops_label, measurements
from allele.errors import TrackingError
from allele.tracking._common import (
    TAG_KIND,
    RunEndStatus,
    end_status_for,
    error_text,
    now_ms,
    param_value,
)

if TYPE_CHECKING:
    from allele.store.model import CellResult, RunInfo, RunRecord
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



def matrix_run_key(run_id: str) -> str:
    """The ``allele.run_key`` of a bench run's parent run (the same for every invocation)."""
    return f"bench-{run_id}"


def cell_run_key(run_id: str, cell_key: str) -> str:
    """The ``allele.run_key`` of one cell's child run."""
    return f"cell-{run_id}-{hashlib.sha256(cell_key.encode()).hexdigest()[:24]}"


def delivery_sink(tracker: MlflowTracker) -> str:
    """The name under which the store records cells delivered to this tracker's experiment."""
    return f"mlflow:{tracker.tracking_uri}#{tracker.experiment}"


def start_matrix_run(tracker: MlflowTracker, info: RunInfo, new: bool = False) -> TrackedRun:
    """The work of :meth:`MlflowTracker.start_matrix_run
    <allele.tracking.tracker.MlflowTracker.start_matrix_run>`; ``new``: the bench run was just
    created, so neither its parent run nor any child can exist in MLflow yet."""
    fp = environment_fingerprint(info.environment)
    run = tracker.start_run(
        info.name,
        tags={TAG_KIND: "matrix", "allele.bench_run_id": info.id,
              "allele.spec": info.spec_name, "allele.target": info.target,
              "allele.env_fingerprint": fp},
        params={"spec_name": info.spec_name, "target": info.target},
        start_time_ms=int(info.created_at * 1000) if info.created_at else None,
        key=matrix_run_key(info.id), reopen=True, new=new,
    )
    run.log_text(json.dumps(info.spec, indent=2, sort_keys=True, default=str), "spec.json")
    run.log_text(json.dumps(info.environment, indent=2, sort_keys=True, default=str),
                 "environment.json")
    tracker._matrix, tracker._matrix_fp = run, fp
    return run


def log_cell(tracker: MlflowTracker, cell: CellResult, matrix: TrackedRun | None,
             on_durable: Callable[[list[str]], None] | None = None,
             new: bool = False, extra_tags: Mapping[str, Any] | None = None) -> TrackedRun:
    """The work of :meth:`MlflowTracker.log_cell
    <allele.tracking.tracker.MlflowTracker.log_cell>`; ``on_durable`` gets the cell's key once
    all its records are delivered or spooled; ``new``: the cell was just stored, so its child
    run cannot exist yet."""
    parent = matrix or tracker._matrix
    if parent is None:
        raise TrackingError("log_cell needs a matrix run: call start_matrix_run first")
    bench_id = parent.key[len("bench-"):] if parent.key.startswith("bench-") else None
    seeds = sorted({s.seed for s in cell.samples})
    started = int(cell.started_at * 1000) if cell.started_at else None
    finished = int(cell.finished_at * 1000) if cell.finished_at else now_ms()
    tags: dict[str, Any] = {TAG_KIND: "cell", "allele.target": cell.target,
                            "allele.cell_key": cell.key, "allele.cell_status": cell.status,
                            "allele.seed": ",".join(str(s) for s in seeds)}
    if tracker._matrix_fp is not None and parent is tracker._matrix:
        tags["allele.env_fingerprint"] = tracker._matrix_fp
    loops = loops_label(cell.values(LOOPS_METRIC))
    if loops:  # how a sample was timed, not a measurement: a tag, never a metric
        tags["allele.loops"] = loops
    tags.update(extra_tags or {})
    child = tracker.start_run(_cell_run_name(cell), parent=parent, tags=tags,
                              start_time_ms=started, new=new,
                              key=cell_run_key(bench_id, cell.key) if bench_id else None)
    rows: list[list[Any]] = []
    for metric in measurements(cell.metrics()):
        values = cell.values(metric)
        rows.extend([metric, v, finished, i] for i, v in enumerate(values))
        finite = sorted(v for v in values if math.isfinite(v))
        if finite:
            rows.append([f"{metric}.median", _median(finite), finished, 0])
    if rows or cell.params:  # params and samples in one batch
        tracker._enqueue_log(child.key, rows, {str(k): param_value(v)
                                               for k, v in cell.params.items()}, {})
    if cell.profile:
        child.log_text(cell.profile, "profile.txt")
    ok = cell.status == "ok"
    child.end("FINISHED" if ok else "FAILED",
              None if ok else (cell.error or cell.status), end_time_ms=finished)
    if on_durable is not None:
        tracker._ack_when_durable(on_durable, cell.key)
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


def track_stored_run(tracker: MlflowTracker, run: RunRecord,
                     tags: Mapping[str, Any] | None = None,
                     cell_tags: Mapping[str, Mapping[str, Any]] | None = None) -> TrackedRun:
    """Mirror a run already in the result store into MLflow after the fact (an A/B session's
    halves): the parent run with ``tags``, every cell as a child with ``cell_tags[cell key]``
    (e.g. its verdicts), ended with the run's stored status. Keys are the same as for a run
    tracked while it ran, so tracking a run twice updates it instead of copying it."""
    matrix = start_matrix_run(tracker, run.info)
    if tags:
        matrix.set_tags(tags)
    for cell in run.cells:
        log_cell(tracker, cell, matrix, extra_tags=(cell_tags or {}).get(cell.key))
    status = run.info.status if run.info.status != "running" else "interrupted"
    end_matrix_run(tracker, status, None, matrix, None)
    return matrix


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

    ``start`` opens (or, for a resumed run, reopens) the matrix parent run from the run header the
    runner passes along (``run``) and, given ``store``, re-sends the run's stored cells that the
    store does not record as delivered to this experiment; ``cell_stored`` logs each cell as a
    child run once it is committed, and the store records it as delivered once its records are
    out. The parent is ended by :func:`run_matrix_tracked` (the runner knows the final status
    only after the sink stops).
    """

    def __init__(self, tracker: MlflowTracker, inner: Any = None, store: Any = None,
                 new_run: bool = False) -> None:
        self.tracker = tracker
        self.inner = inner
        self.store = store
        self.new_run = new_run
        """The runner creates the run now (not a resume): nothing of it is in MLflow yet."""
        self.matrix: TrackedRun | None = None
        self.run_id: str | None = None
        self.resent = 0
        """Stored cells re-sent at start because MLflow was not known to hold them."""

    def _acknowledge(self, keys: list[str]) -> None:
        if self.store is not None and self.run_id is not None:
            self.store.mark_delivered(self.run_id, delivery_sink(self.tracker), keys)

    def start(self, run_name: str, total: int, already_done: int,
              run: RunInfo | None = None) -> None:
        if run is None:
            raise TrackingError(f"the runner gave no header for run {run_name!r}: MlflowProgress "
                                "needs allele.bench.runner.Runner (its start passes run=)")
        self.run_id = run.id
        self.matrix = self.tracker.start_matrix_run(run, new=self.new_run)
        if already_done:
            self.matrix.set_tags({"allele.resumed_with_done_cells": already_done})
            self._resend(run)
        if self.inner is not None:
            self.inner.start(run_name, total, already_done, run=run)

    def _resend(self, run: RunInfo) -> None:
        """Log the stored cells that MLflow is not recorded to hold (a crash kept them back)."""
        if self.store is None:
            return
        keys = set(self.store.undelivered_cells(run.id, delivery_sink(self.tracker)))
        if not keys:
            return
        for cell in self.store.load_run(run.id).cells:
            if cell.key in keys:
                self.tracker.log_cell(cell, self.matrix, on_durable=self._acknowledge)
                self.resent += 1

    def cell_started(self, task: Any) -> None:
        if self.inner is not None:
            self.inner.cell_started(task)

    def cell_finished(self, task: Any, result: CellResult) -> None:
        if self.inner is not None:
            self.inner.cell_finished(task, result)

    def cell_stored(self, result: CellResult) -> None:
        if self.matrix is not None:  # stored just now: no earlier process can have logged it
            self.tracker.log_cell(result, self.matrix, on_durable=self._acknowledge, new=True)
        stored = getattr(self.inner, "cell_stored", None)
        if stored is not None:
            stored(result)

    def stop(self) -> None:
        if self.inner is not None:
            self.inner.stop()


def run_matrix_tracked(tracker: MlflowTracker, runner: Any, suite: Any = None, *,
                       name: str | None = None, filters: Sequence[str] = (),
                       resume: str | None = None,
                       report_path: str | os.PathLike[str] | None = None) -> Any:
    """Run (or with ``resume`` continue) a matrix with ``runner`` and mirror it into MLflow.

    The runner's progress sink is wrapped for the duration of the call; the matrix run ends
    FINISHED, FAILED (the error as a tag) or KILLED (the runner's ``interrupted``), with the
    stored ``cell_count`` and ``failed_cells`` as metrics (and ``cell_count`` as a parameter
    once the run is finished). Returns the runner's :class:`~allele.bench.run_protocols.RunSummary`.
    """
    sink = MlflowProgress(tracker, runner.progress, getattr(runner, "store", None),
                          new_run=resume is None)
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
        _log_counts(sink, summary)
        tracker.end_matrix_run(summary.status, report_path, matrix=sink.matrix)
    return summary


def _log_counts(sink: MlflowProgress, summary: Any) -> None:
    """The stored run's cell counts, known only at the end (a parameter cannot change later,
    so it is logged once the run is finished; the metrics follow every invocation)."""
    if sink.matrix is None or sink.store is None:
        return
    info = sink.store.get_run(summary.run_id)
    sink.matrix.log_metrics({"cell_count": info.cell_count, "failed_cells": info.failed_count})
    if summary.status == "finished":
        sink.matrix.log_params({"cell_count": info.cell_count})
