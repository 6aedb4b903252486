"""Read models for the dashboards: what one page needs, from the services, in one call.

Each function composes the services a face would otherwise compose itself (the store's reads,
:mod:`allele.bench.history`, :mod:`allele.bench.compare`, :mod:`allele.bench.regress`, the
report's chart data) and returns JSON-ready values, so the web and terminal dashboards stay
faces and every rule here is tested without a browser:

* :func:`run_list`: runs with filters (status, spec, a text in the name or id) and paging;
* :func:`run_overview`: one run's cells with the median of each metric, its targets, the
  parameters that vary (what the heatmap and scaling curves are drawn over) and its failures;
* :func:`run_heatmap` / :func:`run_scaling`: the report's heatmap grid and scaling curves;
* :func:`cell_detail`: one cell's raw samples, profile and error;
* :func:`cell_history`: one cell and metric across runs: per-run medians and quartiles, the
  change points (:func:`allele.bench.changepoint.detect_change_points`) and the noise
  band of each segment between them (its mean +- 2 standard deviations of the run medians);
* :func:`run_comparison`: what ``allele bench compare`` computes (with the history's run-to-run
  noise).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from allele.bench.format import metric_value, param_variation
from allele.bench.metrics import declarations_from_doc, measurements, quality_metrics, unit_of
from allele.errors import ValidationError

if TYPE_CHECKING:
    from allele.bench.compare import Comparison
    from allele.store.model import CellResult, RunInfo
    from allele.store.results import ResultStore

RUN_STATUSES = ("running", "finished", "interrupted", "failed")


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def run_header(info: RunInfo) -> dict[str, Any]:
    """A run's header without its spec and environment documents."""
    env = info.environment or {}
    git = env.get("git") or {}
    return {"id": info.id, "name": info.name, "spec": info.spec_name, "target": info.target,
            "status": info.status, "created_at": info.created_at,
            "finished_at": info.finished_at, "cells": info.cell_count,
            "failed": info.failed_count, "commit": (git.get("commit") or "")[:12] or None}


def run_list(store: ResultStore, *, status: str | None = None, spec: str | None = None,
             text: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """Runs, newest first, filtered and paged: ``{"total", "runs"}``. A run whose runner is
    gone shows (and filters) as ``interrupted`` (:func:`allele.bench.lease.shown_status`)."""
    if status is not None and status not in RUN_STATUSES:
        raise ValidationError(f"status {status!r}: expected one of {', '.join(RUN_STATUSES)}")
    if limit < 1 or offset < 0:
        raise ValidationError("limit must be >= 1 and offset >= 0")
    from allele.bench.lease import with_shown_status

    needle = (text or "").lower()
    rows = [i for i in with_shown_status(store, store.list_runs())
            if (status is None or i.status == status) and (spec is None or i.spec_name == spec)
            and (not needle or needle in i.name.lower() or i.id.startswith(needle))]
    return {"total": len(rows), "runs": [run_header(i) for i in rows[offset:offset + limit]]}


def sample_count(cell: CellResult) -> int:
    """A cell's samples: its measured calls (one per seed and repeat, whatever metrics each
    gave), not its metric values (a call of 5 metrics is one sample)."""
    return len({(s.seed, s.repeat) for s in cell.samples})


def _medians(cell: CellResult) -> dict[str, float | None]:
    return {m: _finite(float(np.median(cell.values(m)))) for m in measurements(cell.metrics())}


def _median_texts(cell: CellResult, units: dict[str, str]) -> dict[str, str]:
    """Each metric's median written in its unit (:func:`allele.bench.format.metric_value`)."""
    return {m: metric_value(float(np.median(cell.values(m))), m, units.get(m))
            for m in measurements(cell.metrics())}


def run_overview(store: ResultStore, ref: str) -> dict[str, Any]:
    """One run: header, cells (params, status, medians), targets with their varying
    parameters, metrics and quality metrics (the target's own, higher is better: what the
    Recommendations form offers first)."""
    from allele.bench.lease import with_shown_status
    from allele.bench.report.charts import size_param, varying_params

    record = store.load_run(ref)
    (info,) = with_shown_status(store, [record.info])
    by_target: dict[str, list[CellResult]] = {}
    for c in record.cells:
        by_target.setdefault(c.target, []).append(c)
    declared = declarations_from_doc(record.info.spec)
    targets = []
    for target, cells in sorted(by_target.items()):
        metrics = sorted({m for c in cells for m in measurements(c.metrics())})
        targets.append({"target": target, "cells": len(cells),
                        "varying": varying_params(cells), "size_param": size_param(cells),
                        "metrics": metrics,
                        "quality": quality_metrics(metrics, declared)})
    units = {n: d.unit for n, d in declared.items()}
    cells_out = [{"key": c.key, "target": c.target, "params": c.params, "status": c.status,
                  "error": c.error, "seconds": c.finished_at - c.started_at,
                  "n_samples": sample_count(c), "medians": _medians(c),
                  "median_texts": _median_texts(c, units)} for c in record.cells]
    return {"run": run_header(info), "targets": targets, "cells": cells_out}


def _target_cells(store: ResultStore, ref: str, target: str | None) -> list[CellResult]:
    record = store.load_run(ref)
    targets = sorted({c.target for c in record.cells})
    if target is None:
        if not targets:
            raise ValidationError(f"run {record.info.name!r} has no cells")
        target = targets[0]
    if target not in targets:
        raise ValidationError(f"run {record.info.name!r} has no target {target!r} "
                              f"(it has {', '.join(targets) or 'none'})")
    return [c for c in record.cells if c.target == target]


def run_heatmap(store: ResultStore, ref: str, metric: str, x: str, y: str,
                target: str | None = None) -> dict[str, Any]:
    """Median ``metric`` over the (x, y) parameter grid of one target of a run."""
    from allele.bench.report.charts import heatmap_grid

    cells = _target_cells(store, ref, target)
    for name in (x, y):
        if not any(name in c.params for c in cells):
            raise ValidationError(f"no cell has a parameter {name!r}")
    g = heatmap_grid(cells, metric, x, y)
    return {"metric": g.metric, "x": g.x, "y": g.y, "xs": g.xs, "ys": g.ys,
            "z": [[None if v is None else _finite(v) for v in row] for row in g.z],
            "unit": unit_of(metric)}  # the colour bar's (its values are in seconds, not ms)


def run_scaling(store: ResultStore, ref: str, metric: str, size: str | None = None,
                target: str | None = None) -> dict[str, Any]:
    """Scaling curves of ``metric`` over a size parameter (the detected one by default)."""
    from allele.bench.report.charts import scaling_series, size_param

    cells = _target_cells(store, ref, target)
    size = size or size_param(cells)
    if size is None:
        raise ValidationError("no numeric parameter with three or more values to scale over")
    curves = scaling_series(cells, metric, size)
    return {"metric": metric, "size": size,
            "series": [{"label": s.label, "sizes": s.sizes, "values": s.values,
                        "slope": s.slope} for s in curves]}


def cell_detail(store: ResultStore, ref: str, key: str) -> dict[str, Any]:
    """One cell of a run with every raw sample."""
    record = store.load_run(ref)
    cell = record.cell(key)
    if cell is None:
        raise ValidationError(f"run {record.info.name!r} has no cell {key!r}")
    samples: dict[str, dict[str, list[float]]] = {}
    for s in cell.samples:
        d = samples.setdefault(s.metric, {"value": [], "seed": [], "repeat": []})
        d["value"].append(s.value)
        d["seed"].append(float(s.seed))
        d["repeat"].append(float(s.repeat))
    return {"run": run_header(record.info), "key": cell.key, "target": cell.target,
            "params": cell.params, "status": cell.status, "error": cell.error,
            "started_at": cell.started_at, "finished_at": cell.finished_at,
            "profile": cell.profile, "medians": _medians(cell), "samples": samples}


def _segments(medians: np.ndarray, cps: Sequence[int]) -> list[dict[str, Any]]:
    bounds = [0, *cps, len(medians)]
    out = []
    for lo, hi in itertools.pairwise(bounds):
        seg = medians[lo:hi]
        mean = float(seg.mean())
        sd = float(seg.std(ddof=1)) if seg.size > 1 else 0.0
        out.append({"start": lo, "end": hi, "mean": mean, "low": mean - 2 * sd,
                    "high": mean + 2 * sd})
    return out


def cell_history(store: ResultStore, key: str, metric: str, limit: int = 200
                 ) -> dict[str, Any]:
    """One cell and metric across runs, with change points and the noise band."""
    from allele.bench.regress import detect_change_points

    if limit < 1:
        raise ValidationError("limit must be >= 1")
    h = store.metric_history(key, metric, limit=limit)
    if len(h) == 0:
        raise ValidationError(f"no run has samples of {metric!r} for cell {key!r}")
    per_run = [h.run_values(i) for i in range(len(h))]
    med = np.array([float(np.median(v)) for v in per_run])
    q25 = [float(np.percentile(v, 25)) for v in per_run]
    q75 = [float(np.percentile(v, 75)) for v in per_run]
    cps = detect_change_points(med) if np.all(np.isfinite(med)) else []
    return {"key": key, "metric": metric, "target": h.target, "params": h.params,
            "runs": [{"id": i, "name": n, "created_at": float(t), "status": s}
                     for i, n, t, s in zip(h.run_ids, h.run_names, h.created_at.tolist(),
                                           h.statuses, strict=True)],
            "median": med.tolist(), "q25": q25, "q75": q75,
            "n": [int(v.size) for v in per_run],
            "change_points": [{"index": c.index, "run": h.run_names[c.index],
                               "magnitude": _finite(c.magnitude),
                               "p_value": c.stats.p_value} for c in cps],
            "segments": _segments(med, [c.index for c in cps])}


def run_comparison(store: ResultStore, base: str, head: str, *, q: float = 0.05,
                   floor: float = 0.05, history: int = 20, seed: int = 0) -> Comparison:
    """BASE against HEAD as ``allele bench compare`` judges it (the run-level model with up
    to ``history`` earlier runs; ``seed`` is kept for callers, nothing is resampled)."""
    from allele.bench.compare import compare_runs
    from allele.bench.history import load_history

    del seed

    if not 0 < q < 1 or not 0 <= floor < 1 or history < 0:
        raise ValidationError("need 0 < q < 1, 0 <= floor < 1 and history >= 0")
    b = store.load_run(base)
    h = store.load_run(head)
    if b.info.id == h.info.id:
        raise ValidationError(f"BASE and HEAD are the same run ({b.info.name})")
    past = load_history(store, h.info, history + 2) if history else None
    return compare_runs(b, h, q=q, floor=floor, history=past)


def varying(cells: Sequence[dict[str, Any]]) -> list[str]:
    """Parameter names whose value differs between these cells' ``params``."""
    return [k for k, n in param_variation(c["params"] for c in cells).items() if n > 1]
