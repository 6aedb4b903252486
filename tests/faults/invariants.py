"""What must hold after any fault: the store and MLflow agree, cell for cell.

Each check returns the problems it found (an empty list: the invariant holds), so a fault
test can report every broken invariant of a trial at once."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from allele.bench.metrics import LOOPS_METRIC, measurements
from allele.store import open_store
from allele.store.model import RunRecord


def _median(values: list[float]) -> float:
    finite = sorted(v for v in values if math.isfinite(v))
    n = len(finite)
    return finite[n // 2] if n % 2 else (finite[n // 2 - 1] + finite[n // 2]) / 2


def store_problems(store_url: str, planned: int | None = None) -> tuple[RunRecord | None,
                                                                     list[str]]:
    """Every run finished (none left ``running``), every planned cell stored exactly once."""
    problems: list[str] = []
    with open_store(store_url, read_only=True) as st:
        runs = st.list_runs()
        if len(runs) != 1:
            return None, [f"{len(runs)} runs in the store, expected 1"]
        rec = st.load_run(runs[0].id)
        lease = st.lease(rec.info.id)
    if rec.info.status != "finished":
        problems.append(f"run left {rec.info.status}")
    keys = [c.key for c in rec.cells]
    if len(keys) != len(set(keys)):
        problems.append("a cell is stored twice")
    if planned is not None and len(keys) != planned:
        problems.append(f"{len(keys)} cells stored, {planned} planned")
    if rec.info.cell_count != len(keys):
        problems.append(f"cell_count {rec.info.cell_count} != {len(keys)} cells")
    if lease is not None:
        problems.append(f"lease left held by pid {lease.pid}")
    return rec, problems


def mlflow_problems(client: Any, experiment: str, rec: RunRecord,
                    history_metric: str | None = "v") -> list[str]:
    """One parent run for the bench run, FINISHED; one child per stored cell, none twice, none
    extra; each child's status, medians, and (for ``history_metric``) every sample as stored;
    ``cell_count`` logged at the end."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return [f"experiment {experiment} missing"]
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parents = [r for r in runs if r.data.tags.get("allele.kind") == "matrix"
               and r.data.tags.get("allele.bench_run_id") == rec.info.id]
    if len(parents) != 1:
        return [f"{len(parents)} parent runs in MLflow, expected 1"]
    parent = parents[0]
    problems: list[str] = []
    if parent.info.status != "FINISHED":
        problems.append(f"parent run {parent.info.status}")
    if parent.data.params.get("cell_count") != str(len(rec.cells)):
        problems.append(f"parent cell_count param {parent.data.params.get('cell_count')!r}, "
                        f"{len(rec.cells)} cells stored")
    if parent.data.metrics.get("cell_count") != float(len(rec.cells)):
        problems.append(f"parent cell_count metric {parent.data.metrics.get('cell_count')}")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    keys = [c.data.tags.get("allele.cell_key") for c in children]
    stored = {c.key: c for c in rec.cells}
    if len(keys) != len(set(keys)):
        problems.append(f"{len(keys) - len(set(keys))} cells have more than one child run")
    if set(keys) != set(stored):
        problems.append(f"MLflow children {len(set(keys))} != stored cells {len(stored)} "
                        f"(missing {len(set(stored) - set(keys))}, "
                        f"extra {len(set(keys) - set(stored))})")
    for child in children:
        cell = stored.get(child.data.tags.get("allele.cell_key", ""))
        if cell is None:
            continue
        want = "FINISHED" if cell.status == "ok" else "FAILED"
        if child.info.status != want:
            problems.append(f"child of {cell.key} is {child.info.status}, expected {want}")
        for metric in measurements(cell.metrics()):
            got = child.data.metrics.get(f"{metric}.median")
            if got != _median(cell.values(metric)):
                problems.append(f"{cell.key} {metric}.median {got} != stored")
        # The inner-loop count says how a sample was timed: a tag, never a metric.
        loops = sorted({int(v) for v in cell.values(LOOPS_METRIC)})
        tag = child.data.tags.get("allele.loops")
        if tag != (None if not loops else str(loops[0]) if len(loops) == 1
                   else f"{loops[0]}-{loops[-1]}"):
            problems.append(f"{cell.key} allele.loops tag {tag!r}, stored counts {loops}")
        if LOOPS_METRIC in child.data.metrics or f"{LOOPS_METRIC}.median" in child.data.metrics:
            problems.append(f"{cell.key}: the loop count was logged as a metric")
        if history_metric is not None and history_metric in cell.metrics():
            hist = sorted(client.get_metric_history(child.info.run_id, history_metric),
                          key=lambda m: m.step)
            if [m.value for m in hist] != cell.values(history_metric):
                problems.append(f"{cell.key}: {len(hist)} {history_metric} points in MLflow, "
                                f"{len(cell.values(history_metric))} stored")
    return problems


def webhook_problems(received: list[dict[str, Any]], serve_output: str, alerts: int = 5
                     ) -> list[str]:
    """Every alert the sender notified (its log names each key) arrived at least once; one id
    never carried two different contents; the ids are the alerts' (one per alert)."""
    problems: list[str] = []
    logged = set(re.findall(r"alert Always\d+ FIRING .*\(key ([^)]+)\)", serve_output))
    bodies: dict[str, set[str]] = {}
    for r in received:
        bodies.setdefault(str(r["key"]), set()).add(json.dumps(r["body"], sort_keys=True))
        if r["body"].get("key") != r["key"]:
            problems.append(f"header id {r['key']} != body id {r['body'].get('key')}")
    if len(logged) != alerts:
        problems.append(f"the sender logged {len(logged)} alerts, expected {alerts}")
    missing = logged - set(bodies)
    if missing:
        problems.append(f"{len(missing)} notified alerts never arrived: {sorted(missing)[:3]}")
    for key, contents in bodies.items():
        if len(contents) > 1:
            problems.append(f"id {key} arrived with {len(contents)} different contents")
    names = {json.loads(next(iter(c)))["alert"]["name"] for c in bodies.values()}
    if len(names) != len(bodies):
        problems.append(f"{len(bodies)} ids for {len(names)} alerts: an alert changed its id")
    return problems
