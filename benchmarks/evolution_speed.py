"""How long one generation of EvolutionEngine takes, against a per-individual Python loop.

Prints ms/generation for populations 50 .. 5000 (tournament selection, blend crossover, Gaussian
mutation, elitism 2, a cheap vectorised fitness), and the speed-up over a straightforward
per-individual implementation of the same operators run in this same invocation.

    .venv/bin/python benchmarks/evolution_speed.py [--generations 200]

Goal (issue 2): at most 1 ms per generation at population 1000.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from allele.core.evolution import EvolutionConfig, EvolutionEngine
from allele.core.fitness import target_personality
from allele.core.genome import N_TRAITS

TARGET = {"empathy": 0.9, "engagement": 0.8, "technical_knowledge": 0.3, "creativity": 0.6}
FITNESS = target_personality(TARGET)
T_VEC = [float(v) for v in FITNESS.target]
W_VEC = [float(v) for v in FITNESS._w]


def engine_ms_per_gen(pop: int, generations: int, seed: int) -> float:
    cfg = EvolutionConfig(population_size=pop, generations=generations, seed=seed)
    engine = EvolutionEngine(cfg, FITNESS)
    engine.initialize()
    for _ in range(5):  # warm caches
        engine.step()
    times = []
    for _ in range(generations):
        t0 = time.perf_counter()
        engine.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def loop_fitness(ind: list[float]) -> float:
    return 1.0 - sum(w * (x - t) ** 2 for x, t, w in zip(ind, T_VEC, W_VEC, strict=True)) ** 0.5


def loop_ms_per_gen(pop: int, generations: int, seed: int) -> float:
    """The same GA written the obvious way: a list of individuals, one Python loop each."""
    rnd = random.Random(seed)
    population = [[rnd.random() for _ in range(N_TRAITS)] for _ in range(pop)]
    fitness = [loop_fitness(ind) for ind in population]
    times = []
    for _ in range(generations):
        t0 = time.perf_counter()
        order = sorted(range(pop), key=lambda i: fitness[i], reverse=True)
        new_pop = [list(population[i]) for i in order[:2]]
        new_fit = [fitness[i] for i in order[:2]]
        while len(new_pop) < pop:
            a = max((rnd.randrange(pop) for _ in range(3)), key=lambda i: fitness[i])
            b = max((rnd.randrange(pop) for _ in range(3)), key=lambda i: fitness[i])
            child = []
            for x, y in zip(population[a], population[b], strict=True):
                lo, span = min(x, y), abs(x - y)
                v = lo - 0.5 * span + rnd.random() * 2.0 * span
                if rnd.random() < 0.1:
                    v += rnd.gauss(0.0, 0.1)
                child.append(min(1.0, max(0.0, v)))
            new_pop.append(child)
            new_fit.append(loop_fitness(child))
        population, fitness = new_pop, new_fit
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--loop-generations", type=int, default=10)
    args = parser.parse_args()
    print(f"{'population':>10} {'engine ms/gen':>14} {'loop ms/gen':>12} {'speed-up':>9}")
    for pop in (50, 100, 250, 500, 1000, 5000):
        eng = engine_ms_per_gen(pop, args.generations, seed=1)
        loop = loop_ms_per_gen(pop, args.loop_generations, seed=1)
        print(f"{pop:>10} {eng:>14.3f} {loop:>12.2f} {loop / eng:>8.1f}x")
    eng_1000 = engine_ms_per_gen(1000, args.generations, seed=2)
    verdict = "meets" if eng_1000 <= 1.0 else "MISSES"
    print(f"population 1000: {eng_1000:.3f} ms/generation ({eng_1000 / 1.0:.2f} of the 1 ms goal): "
          f"{verdict} the goal")


if __name__ == "__main__":
    main()
