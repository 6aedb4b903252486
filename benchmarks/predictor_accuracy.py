"""PerformancePredictor against a known response surface: held-out error, baseline, coverage.

    PYTHONPATH=src .venv/bin/python benchmarks/predictor_accuracy.py [--seeds 5]

The surface (the same as ``tests/analytics/test_predict.py``): best fitness with an optimum near
population 100 and mutation 0.08 over a 6 x 5 x 2 grid (population, mutation rate, crossover),
every cell run 3 times with a per-cell shift (sd 0.03) and Student-t(5) noise (scale 0.03); wall
time proportional to the population with lognormal noise (sd 0.1). A quarter of the cells is
held out; per seed it prints the chosen model, the held-out MAE beside the chance baseline (the
training mean) and the share of held-out observations inside the 90% interval, and the MAE
against the noise-free truth at 20 random configurations off the grid.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from allele.analytics import PerformancePredictor

GRID = list(itertools.product([10, 20, 50, 100, 200, 500], [0.01, 0.05, 0.1, 0.15, 0.2],
                              ["blend", "sbx"]))


def truth(a: float, b: float, c: str) -> float:
    return 1.0 - 0.3 * (np.log10(a) - 2.0) ** 2 - 20 * (b - 0.08) ** 2 + (0.1 if c == "sbx" else 0)


def cells(seed: int) -> tuple[list[dict[str, object]], dict[str, list[float]]]:
    rng = np.random.default_rng(seed)
    params, fit, wall = [], [], []
    for a, b, c in GRID:
        shift = rng.normal(0, 0.03)
        for _ in range(3):
            params.append({"population_size": a, "mutation_rate": b, "crossover": c})
            fit.append(truth(a, b, c) + shift + 0.03 * rng.standard_t(5))
            wall.append(0.01 * a * float(np.exp(rng.normal(0, 0.1))))
    return params, {"best_fitness": fit, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    print("seed  metric        model     held-out MAE  baseline MAE  coverage  truth MAE")
    cover: dict[str, list[float]] = {"best_fitness": [], "wall_s": []}
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        params, metrics = cells(seed)
        pp = PerformancePredictor(level=0.9, seed=seed).fit(params, metrics)
        rng = np.random.default_rng(100 + seed)
        probe = [{"population_size": float(10 ** rng.uniform(1, 2.7)),
                  "mutation_rate": float(rng.uniform(0.01, 0.2)),
                  "crossover": str(rng.choice(["blend", "sbx"]))} for _ in range(20)]
        preds = pp.predict(probe)
        true_fit = np.array([truth(q["population_size"], q["mutation_rate"], q["crossover"])
                             for q in probe])
        true_wall = np.array([0.01 * q["population_size"] for q in probe])
        for m, true in (("best_fitness", true_fit), ("wall_s", true_wall)):
            v = pp.validation_[m]
            cover[m].append(v.coverage)
            tmae = float(np.mean(np.abs(np.array([p[m].mean for p in preds]) - true)))
            print(f"{seed:4d}  {m:12s}  {v.model:8s}  {v.mae:12.4f}  {v.baseline_mae:12.4f}  "
                  f"{v.coverage:8.2f}  {tmae:9.4f}")
    for m, c in cover.items():
        print(f"{m}: mean held-out coverage {np.mean(c):.2f} (nominal 0.90)")
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
