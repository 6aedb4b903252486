"""Stores with a known answer, shared by the tests of the diagnose service
(tests/bench/test_diagnose.py) and of its face, ``allele analyze`` (tests/analytics/test_cli_analyze.py).
Each function fills the store at ``url`` and returns what the answer should be."""

from __future__ import annotations

from typing import Any

import numpy as np

from allele.analytics.synthetic import (
    anomaly_benchmark,
    regression_trial,
    root_cause_trial,
)
from allele.analytics.synthetic_answers import matrix_trial, quick_matrix_trial, seed_surface
from allele.observe.metrics import MetricPoint
from allele.store import open_store
from allele.store.model import CellResult, Sample, cell_key


def series_store(url: str) -> None:
    """600 points of ``gen_time`` (component evolution), every 10 s: a period-48 season with
    spikes."""
    s = anomaly_benchmark(n_series=1, n=600, seed=2, kinds=["spike"])[0]
    with open_store(url) as st:
        st.write_metric_points(MetricPoint("gen_time", "evolution", (), 1000.0 + 10 * i, float(v))
                               for i, v in enumerate(s.values))


def grid_store(url: str, seeds: int = 4, null: bool = False, name: str = "grid"
               ) -> dict[str, Any]:
    """A run ``grid`` of evolution cells over a response surface (or, with ``null``, quality
    that no parameter changes) with best_fitness and wall_s for ``seeds`` seeds; returns the
    optimum configuration."""
    params, quality, cost, ids, optimum = seed_surface(seed=0, seeds=seeds, null=null)
    by_cell: dict[str, CellResult] = {}
    for p, q, c, sd in zip(params, quality, cost, ids, strict=True):
        key = cell_key("evolution", p)
        cell = by_cell.setdefault(key, CellResult(key, "evolution", p, "ok", []))
        cell.samples += [Sample("best_fitness", float(q), int(sd), 0),
                         Sample("wall_s", float(c), int(sd), 0)]
    with open_store(url) as st:
        rid = st.create_run(name, "spec", "evolution", {}, {})
        st.save_cells(rid, list(by_cell.values()))
        st.finish_run(rid, "finished")
    return optimum


def store_runs(url: str, cells: list[dict[str, Any]],
               runs: list[tuple[str, Any, dict[str, Any]]]) -> None:
    """Evolution runs of one wall_s sample per cell: (name, values, environment) each."""
    with open_store(url) as st:
        for name, values, env in runs:
            rid = st.create_run(name, "spec", "evolution", {}, env)
            st.save_cells(rid, [CellResult(cell_key("evolution", p), "evolution", p, "ok",
                                           [Sample("wall_s", float(v), 0, 0)])
                                for p, v in zip(cells, values, strict=True)])
            st.finish_run(rid, "finished")


def regression_store(url: str) -> str:
    """Runs ``base`` and ``new``: one parameter value slows its cells, and numpy changed;
    returns the parameter."""
    cells, before, after, cause = regression_trial(4, repeats=1)
    store_runs(url, cells, [("base", before, {"numpy": "1.26"}),
                            ("new", after, {"numpy": "2.1"})])
    return str(cause)


def common_shift_store(url: str) -> None:
    """Runs ``calm`` and ``busy``: every cell 30% slower, the 1-minute load 0.2 -> 2.0."""
    cells = [{"population_size": n, "selection": s} for n in (50, 250, 1000)
             for s in ("rank", "tournament")]
    rng = np.random.default_rng(8)
    base = rng.uniform(0.01, 0.05, len(cells))
    busy = base * 1.3 * np.exp(rng.normal(0, 0.01, 6))
    store_runs(url, cells, [("calm", base, {"python": "3.11", "load": {"1m": 0.2}}),
                            ("busy", busy, {"python": "3.11", "load": {"1m": 2.0}})])


def telemetry_trial_store(url: str) -> tuple[str, str, list[str], int]:
    """System metrics every 5 s from t=100 where one metric moves before the target's anomaly;
    returns (cause, target, the other metrics, anomaly index)."""
    metrics, cause, target, at = root_cause_trial(3)
    with open_store(url) as st:
        st.write_metric_points(MetricPoint(name, "system", (), 100.0 + 5 * i, float(v))
                               for name, series in metrics.items()
                               for i, v in enumerate(series))
    return cause, target, [m for m in metrics if m != target], at


def noise_store(url: str, seed: int = 1) -> None:
    """Runs ``aa-base`` and ``aa-new`` of the 18-cell matrix with realistic noise and no cause
    (:func:`~allele.analytics.synthetic_answers.matrix_trial`; per-cell medians over 3 seeds).
    One trial: the rate of "no clear cause" over 50 is tests/analytics/test_rca.py's; seed 0 is
    one of its false causes."""
    rows, before, after, _ = matrix_trial(seed)
    cells = rows[::3]
    store_runs(url, cells, [("aa-base", np.median(before.reshape(-1, 3), axis=1), {}),
                            ("aa-new", np.median(after.reshape(-1, 3), axis=1), {})])


def quick_store(url: str, seed: int, shift: float = 0.0) -> str | None:
    """Runs ``quick-base`` and ``quick-head`` of the quick matrix (6 evolution and 4 Kraken
    cells, 12 seeds, :func:`~allele.analytics.synthetic_answers.quick_matrix_trial`), every
    seed stored; returns the parameter whose level was slowed by ``shift`` (None without)."""
    rows, before, after, cause = quick_matrix_trial(seed, shift=shift)
    with open_store(url) as st:
        for name, values in (("quick-base", before), ("quick-head", after)):
            rid = st.create_run(name, "quick", "evolution", {}, {})
            cells: dict[str, CellResult] = {}
            for i, (row, v) in enumerate(zip(rows, values, strict=True)):
                target = row["target"]
                p = {k: x for k, x in row.items() if k != "target"}
                key = cell_key(target, p)
                cell = cells.setdefault(key, CellResult(key, target, p, "ok", []))
                cell.samples.append(Sample("wall_s", float(v), i % 12, 0))
            st.save_cells(rid, list(cells.values()))
            st.finish_run(rid, "finished")
    return cause
