"""Builds ``tests/golden/store.db``, the fixture store behind the golden-output tests.

Run once and committed: the golden outputs are taken from the committed file, so this script is
kept only to say how the file was made (run ids are random, so a rebuilt store would need new
goldens). Eight runs of a two-target spec with seeded noise; the evolution cell at population 250
steps up 25% in wall time from the fifth run on; the last run has one failed cell and started on
a busier machine.

    python tests/golden/make_store.py tests/golden/store.db
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

from allele.store import open_store
from allele.store.model import CellResult, Sample, cell_key

T0 = 1_790_000_000.0  # 2026-09-21, fixed so the printed dates never move
SEEDS = range(12)


def _env(load: float) -> dict[str, object]:
    return {"cpu": {"model": "Golden CPU", "logical": 2}, "python": {"version": "3.11.7"},
            "git": {"commit": "0123456789abcdef", "dirty": False}, "load": {"1m": load},
            "packages": {"numpy": "2.2.0"}}


def _cells(run: int, rng: np.random.Generator) -> list[CellResult]:
    cells = []
    for pop in (50, 250):
        params = {"population_size": pop, "generations": 20}
        base = 0.002 * pop / 50
        step = 1.25 if (pop == 250 and run >= 5) else 1.0
        samples = []
        for seed in SEEDS:
            wall = base * step * rng.lognormal(0.0, 0.03)
            samples += [Sample("wall_s", wall, seed, 0),
                        Sample("cpu_user_s", wall * 0.97, seed, 0),
                        Sample("peak_rss_mb", 50 + pop / 25 + rng.normal(0, 0.2), seed, 0),
                        Sample("best_fitness", 0.9 + 0.01 * rng.random(), seed, 0)]
        cells.append(CellResult(cell_key("evolution", params), "evolution", params, "ok",
                                samples, started_at=T0 + run * 3600, finished_at=T0 + run * 3600
                                + 1))
    for units in (50, 200):
        params = {"reservoir_size": units, "steps": 500}
        if run == 8 and units == 200:
            cells.append(CellResult(cell_key("kraken", params), "kraken", params, "failed", [],
                                    error="ValueError: reservoir diverged [at step 417]",
                                    started_at=T0 + run * 3600, finished_at=T0 + run * 3600 + 1))
            continue
        samples = []
        for seed in SEEDS:
            wall = 0.004 * units / 50 * rng.lognormal(0.0, 0.04)
            samples += [Sample("wall_s", wall, seed, 0),
                        Sample("cpu_user_s", wall * 0.95, seed, 0),
                        Sample("nrmse", 0.01 * rng.lognormal(0.0, 0.1), seed, 0)]
        cells.append(CellResult(cell_key("kraken", params), "kraken", params, "ok", samples,
                                started_at=T0 + run * 3600, finished_at=T0 + run * 3600 + 1))
    return cells


def main(path: Path) -> None:
    if path.exists():
        path.unlink()
    url = f"sqlite:///{path}"
    rng = np.random.default_rng(20261203)
    spec = {"name": "golden", "seeds": len(SEEDS)}
    with open_store(url) as store:
        for run in range(1, 9):
            run_id = store.create_run(f"golden-{run:02d}", "golden", "evolution,kraken", spec,
                                      _env(1.9 if run == 8 else 0.4))
            store.save_cells(run_id, _cells(run, rng))
            store.finish_run(run_id, "finished")
    engine = create_engine(url)
    with engine.begin() as conn:  # fixed times: the outputs print them
        conn.execute(text("UPDATE runs SET created_at = :t0 + pk * 3600, "
                          "finished_at = :t0 + pk * 3600 + 60"), {"t0": T0})
    engine.dispose()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("store.db"))
