"""KrakenLNN accuracy on the reference tasks, held-out data, several seeds.

    .venv/bin/python benchmarks/kraken_accuracy.py [--seeds 5]

* Mackey-Glass (tau=17) one-step prediction, 500 units, preset ``mackey_glass``: train on 5000
  steps (warm-up 200), test on the next 2000. Goal: NRMSE <= 1e-3.
* NARMA10, 200 units, preset ``narma10``: train on 5000 steps (warm-up 200), test on 1000.
  Goal: NRMSE <= 0.3.

Baselines in the same run: persistence (``y[t+1] = u[t]``) for Mackey-Glass, and a reservoir
with the plain defaults (no preset) for both tasks, so the preset's gain is visible.
"""

from __future__ import annotations

import argparse
import statistics

from allele.core.datasets import mackey_glass, narma10, nrmse
from allele.core.kraken import KrakenLNN


def mackey(seed: int, preset: bool) -> float:
    series = mackey_glass(7001)
    u, y = series[:-1], series[1:]
    net = (KrakenLNN.from_preset("mackey_glass", reservoir_size=500, seed=seed) if preset
           else KrakenLNN(reservoir_size=500, seed=seed))
    net.fit(u[:5000], y[:5000], warmup=200)
    return nrmse(y[5000:], net.predict(u[5000:]))


def narma(seed: int, preset: bool) -> float:
    u, y = narma10(6000, seed=seed)
    net = (KrakenLNN.from_preset("narma10", reservoir_size=200, seed=seed) if preset
           else KrakenLNN(reservoir_size=200, seed=seed))
    net.fit(u[:5000], y[:5000], warmup=200)
    return nrmse(y[5000:], net.predict(u[5000:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    seeds = range(args.seeds)
    series = mackey_glass(7001)
    persistence = nrmse(series[5001:], series[5000:-1])
    rows = [
        ("Mackey-Glass, 500 units, preset", [mackey(s, True) for s in seeds], 1e-3),
        ("Mackey-Glass, 500 units, defaults", [mackey(s, False) for s in seeds], None),
        ("NARMA10, 200 units, preset", [narma(s, True) for s in seeds], 0.3),
        ("NARMA10, 200 units, defaults", [narma(s, False) for s in seeds], None),
    ]
    print(f"held-out NRMSE over seeds 0..{args.seeds - 1} (Mackey-Glass persistence baseline: "
          f"{persistence:.3g})")
    print(f"{'task':36s} {'median':>10s} {'worst':>10s}  goal")
    for label, values, goal in rows:
        verdict = "" if goal is None else (
            f"<= {goal:g}: {'PASS' if max(values) <= goal else 'FAIL'}")
        print(f"{label:36s} {statistics.median(values):10.3g} {max(values):10.3g}  {verdict}")
    print(f"preset vs persistence (Mackey-Glass): {persistence / statistics.median(rows[0][1]):,.0f}x"
          f" lower error")


if __name__ == "__main__":
    main()
