"""Labelled data with realistic noise for the analyses that may answer "nothing here".

The noise is the kind these machines have, not the kind the methods assume: run-wide shifts
(every cell of a run a little slower), per-seed effects shared by the cells of a run, Student-t(3)
sample noise with occasional outliers, AR(0.9) telemetry metrics.

* :func:`matrix_trial`: an 18-cell matrix (3 seeds per cell) measured twice, with no cause or
  with a shift injected into one level of one parameter (root-cause analysis).
* :func:`quick_matrix_trial`: the project's quick matrix (6 evolution and 4 Kraken cells, 12
  seeds) measured twice, with its real noise levels, with no cause or with a shift injected
  (root-cause analysis on a matrix too small to permute).
* :func:`ar_metrics_trial`: telemetry metrics that wander (AR(0.9)) and no cause.
* :func:`seed_surface`: seed-level quality and cost over a grid, on a known response surface or
  on pure noise (recommendations).
* :func:`mixed_incidents`: a labelled alert set: incidents on one host each, simultaneous
  incidents on other hosts, chains of unrelated alerts spaced just under the linking distance,
  and flapping singletons (alert correlation).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from allele.analytics._common import FloatArray

__all__ = [
    "MATRIX_GRID",
    "QUICK_CELLS",
    "LabelledAlert",
    "ar_metrics_trial",
    "matrix_trial",
    "mixed_incidents",
    "pair_scores",
    "quick_matrix_trial",
    "seed_surface",
]

MATRIX_GRID: dict[str, list[Any]] = {
    "population": [50, 100, 200],
    "mutation_rate": [0.01, 0.05, 0.1],
    "crossover": ["blend", "sbx"],
}
"""3 x 3 x 2 = 18 cells."""


def _sample_noise(rng: np.random.Generator, size: int, scale: float) -> FloatArray:
    """Student-t(3) noise scaled to sd ``scale`` (t3 has sd sqrt(3)), 2% outliers of +30%."""
    t = rng.standard_t(3, size) * scale / np.sqrt(3.0)
    out = rng.random(size) < 0.02
    return np.asarray(t + out * 0.3, dtype=np.float64)


def matrix_trial(
    seed: int, shift: float = 0.0, seeds: int = 3, noise: float = 0.05,
) -> tuple[list[dict[str, Any]], FloatArray, FloatArray, str | None]:
    """Seed-level wall times of an 18-cell matrix (:data:`MATRIX_GRID` plus a numeric
    ``problem_size`` that differs in every cell) before and after, one row per (cell, seed).

    Noise per run: a run-wide factor (lognormal sd 5%, as measured between runs here), a
    per-seed factor shared by the cells (sd 2%), Student-t(3) sample noise of sd ``noise`` with
    2% outliers. With ``shift`` > 0 the cells where one random parameter takes one random value
    are ``1 + shift`` times slower after.
    Returns ``(rows, before, after, cause)`` (cause None without a shift).
    """
    rng = np.random.default_rng(seed)
    sizes = rng.permutation(np.arange(10, 10 + 18 * 7, 7))
    cells = [dict(zip(MATRIX_GRID, combo, strict=True))
             for combo in itertools.product(*MATRIX_GRID.values())]
    for cell, size in zip(cells, sizes, strict=True):
        cell["problem_size"] = int(size)
    cause = None
    bad: Any = None
    if shift > 0:
        cause = list(MATRIX_GRID)[int(rng.integers(0, len(MATRIX_GRID)))]
        bad = MATRIX_GRID[cause][int(rng.integers(0, len(MATRIX_GRID[cause])))]
    rows = [dict(c) for c in cells for _ in range(seeds)]
    base = np.array([0.01 * r["population"] * (1 + 5 * r["mutation_rate"]) for r in rows])

    def run() -> FloatArray:
        wide = rng.normal(0, 0.05)
        per_seed = np.tile(rng.normal(0, 0.02, seeds), len(cells))
        return np.asarray(base * np.exp(wide + per_seed + _sample_noise(rng, len(rows), noise)),
                          dtype=np.float64)

    before = run()
    after = run()
    if cause is not None:
        after = after * np.array([1.0 + shift if r[cause] == bad else 1.0 for r in rows])
    return rows, before, after, cause


QUICK_CELLS: list[dict[str, Any]] = (
    [{"target": "evolution", "generations": 30, "mutation_rate": 0.1, "population_size": n,
      "selection": sel, "target_fitness": 0.97}
     for n in (50, 250, 1000) for sel in ("rank", "tournament")]
    + [{"target": "kraken", "reservoir_size": n, "spectral_radius": r, "test_steps": 500,
        "threads": 1, "train_steps": 1000, "washout": 100}
       for n in (50, 200) for r in (0.8, 0.95)])
"""The cells of ``benchmarks/quick.yaml`` as ``allele analyze rca`` sees them (the target is a
parameter, the fixed parameters are listed)."""


def quick_matrix_trial(
    seed: int, shift: float = 0.0, seeds: int = 12, noise: float = 0.4, drift: float = 0.1,
    run_shift: float = 0.3,
) -> tuple[list[dict[str, Any]], FloatArray, FloatArray, str | None]:
    """Seed-level times of the quick matrix (:data:`QUICK_CELLS`) in a base and a head run,
    one row per (cell, seed), seeds paired.

    The noise follows what the 16 recorded runs of this machine show (``benchmarks/data``):
    each run is slower or faster as a whole (lognormal, sd ``run_shift``: run level sd 0.53 in
    wall_s, 0.09 in CPU time); each cell drifts on its own between runs (sd ``drift``: cell x
    run interaction 0.23 / 0.15 there, seed noise included); a seed's workload is the same in
    both runs (it cancels in the pairing), and every measurement has Student-t(3) noise of sd
    ``noise`` (per-run seed sd 0.58 / 0.32) with 2% outliers of +30%. With ``shift`` > 0 the
    cells where one random candidate (target, population_size, selection, reservoir_size,
    spectral_radius) takes one random value are ``1 + shift`` times slower in the head run.
    Returns ``(rows, before, after, cause)`` (cause None without a shift).
    """
    rng = np.random.default_rng(seed)
    candidates = ["target", "population_size", "selection", "reservoir_size",
                  "spectral_radius"]
    cause: str | None = None
    bad: Any = None
    if shift > 0:
        cause = candidates[int(rng.integers(0, len(candidates)))]
        values = sorted({repr(c[cause]) for c in QUICK_CELLS if cause in c})
        bad = values[int(rng.integers(0, len(values)))]
    rows = [dict(c) for c in QUICK_CELLS for _ in range(seeds)]
    size = np.array([float(r.get("population_size", r.get("reservoir_size", 1))) for r in rows])
    workload = 1e-4 * size * np.exp(rng.normal(0, 0.2, len(rows)))

    def run() -> FloatArray:
        cell = np.repeat(rng.normal(0, drift, len(QUICK_CELLS)), seeds)
        wide = rng.normal(0, run_shift)
        return np.asarray(workload * np.exp(wide + cell + _sample_noise(rng, len(rows), noise)),
                          dtype=np.float64)

    before = run()
    after = run()
    if cause is not None:
        after = after * np.array([1.0 + shift if repr(r.get(cause)) == bad else 1.0
                                  for r in rows])
    return rows, before, after, cause


def ar_metrics_trial(seed: int, n: int = 300, n_metrics: int = 8, phi: float = 0.9
                     ) -> tuple[dict[str, FloatArray], str, int]:
    """``n_metrics`` independent AR(``phi``) metrics (unit marginal sd, different levels), no
    cause anywhere; returns ``(metrics, target, anomaly_index)`` with the index in the last
    quarter, as if a detector had flagged the target there."""
    rng = np.random.default_rng(seed)
    metrics: dict[str, FloatArray] = {}
    innov = np.sqrt(1 - phi**2)
    for i in range(n_metrics):
        x = np.empty(n)
        x[0] = rng.normal()
        e = rng.normal(0, innov, n)
        for t in range(1, n):
            x[t] = phi * x[t - 1] + e[t]
        metrics[f"m{i}"] = x + 5.0 * (i % 3)
    return metrics, "m0", int(rng.integers(3 * n // 4, n - 1))


def seed_surface(
    seed: int = 0, seeds: int = 4, noise: float = 0.02, null: bool = False,
) -> tuple[list[dict[str, Any]], FloatArray, FloatArray, FloatArray, dict[str, Any]]:
    """Seed-level matrix results: quality peaks at population 250, mutation 0.05, crossover
    'sbx' (or, with ``null``, does not depend on the parameters at all); cost grows linearly
    with population. Quality noise: a per-seed effect shared by all cells (sd ``noise`` / 2)
    plus Student-t(3) noise of sd ``noise``. Returns ``(params, quality, cost, seed_ids,
    optimum)``, one row per (cell, seed)."""
    rng = np.random.default_rng(seed)
    pops = [50, 100, 150, 200, 250, 300, 350, 400]
    muts = [0.01, 0.05, 0.2]
    xs = ["blend", "uniform", "sbx"]
    bonus = {"blend": 0.0, "uniform": -0.03, "sbx": 0.04}
    seed_effect = rng.normal(0, noise / 2, seeds)
    params: list[dict[str, Any]] = []
    quality: list[float] = []
    cost: list[float] = []
    ids: list[int] = []
    for p, m, x in itertools.product(pops, muts, xs):
        q = 0.8 - 0.25 * ((p - 250) / 200) ** 2 - 0.12 * (np.log10(m) - np.log10(0.05)) ** 2 \
            + bonus[x]
        for s in range(seeds):
            params.append({"population": p, "mutation_rate": m, "crossover": x})
            value = 0.8 if null else q
            quality.append(value + seed_effect[s] + float(rng.standard_t(3)) * noise / np.sqrt(3))
            cost.append(0.002 * p * (1.1 if x == "sbx" else 1.0) * rng.lognormal(0, 0.03))
            ids.append(s)
    optimum = {"population": 250, "mutation_rate": 0.05, "crossover": "sbx"}
    return (params, np.asarray(quality), np.asarray(cost), np.asarray(ids, dtype=np.float64),
            optimum)


@dataclass(frozen=True)
class LabelledAlert:
    """An alert with the incident it belongs to (-1: noise, an incident of its own)."""

    fingerprint: str
    name: str
    labels: dict[str, str]
    severity: str
    starts_at: float
    incident: int = -1
    state: str = "firing"
    series: FloatArray | None = field(default=None, compare=False)


def mixed_incidents(seed: int, n_incidents: int = 6, hosts: int = 8
                    ) -> list[LabelledAlert]:
    """A labelled alert set with the noise that makes correlators chain.

    * incidents: 3-5 alerts on one host within 2 minutes, metric windows co-moving, every alert
      labelled ``scope=component``; half the incidents start at the same second as another
      incident on a different host;
    * chains: 4 unrelated alerts on one host, 4.5 minutes apart (each within the 10-minute window
      of the next, the first and last 13.5 minutes apart), independent series;
    * singletons: flapping alerts on random hosts at random times;
    * a quarter of all alerts carry no metric window (co-movement unknown).
    """
    rng = np.random.default_rng(seed)
    names = ["HighLatency", "HighCPU", "HighRSS", "ErrorRate", "SlowGeneration", "QueueDepth"]
    t_base = 1_700_000_000.0
    out: list[LabelledAlert] = []

    def add(name: str, host: str, t: float, inc: int, series: FloatArray) -> None:
        fp = f"{name}:{host}:{len(out)}"
        out.append(LabelledAlert(fp, name, {"host": host, "scope": "component",
                                            "alertname": name}, "warning", t, inc,
                                 series=series if rng.random() >= 0.25 else None))

    starts: list[float] = []
    for inc in range(n_incidents):
        # odd incidents start with the previous one, on another host
        t0 = starts[-1] if inc % 2 == 1 else t_base + inc * 7200.0 + rng.uniform(0, 60)
        starts.append(t0)
        host = f"host-{inc % hosts}"
        latent = np.cumsum(rng.normal(0, 1, 60))
        for j in range(int(rng.integers(3, 6))):
            series = latent * rng.uniform(0.5, 2.0) + rng.normal(0, 0.3, 60)
            add(names[j % len(names)], host, t0 + rng.uniform(0, 120), inc, series)
    for c in range(3):
        host = f"host-{int(rng.integers(0, hosts))}"
        t0 = t_base + 3600.0 + c * 7200.0 + rng.uniform(0, 60)
        for j in range(4):
            add(names[(j + c) % len(names)], host, t0 + j * 270.0, -1,
                np.cumsum(rng.normal(0, 1, 60)))
    for _ in range(8):
        add(names[int(rng.integers(0, len(names)))], f"host-{int(rng.integers(0, hosts))}",
            t_base + rng.uniform(0, n_incidents * 7200.0), -1, np.cumsum(rng.normal(0, 1, 60)))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def pair_scores(groups: list[list[str]], incident_of: dict[str, int]) -> tuple[float, float]:
    """Pairwise (precision, recall) of a grouping: a pair of alerts grouped together is right
    when both belong to the same incident (noise alerts, incident -1, belong to none)."""
    fps = sorted(incident_of)
    group_of = {fp: gi for gi, g in enumerate(groups) for fp in g}
    tp = fp_ = fn = 0
    for i, a in enumerate(fps):
        for b in fps[i + 1:]:
            same = incident_of[a] >= 0 and incident_of[a] == incident_of[b]
            together = group_of.get(a) is not None and group_of.get(a) == group_of.get(b)
            tp += same and together
            fp_ += together and not same
            fn += same and not together
    precision = tp / (tp + fp_) if tp + fp_ else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall
