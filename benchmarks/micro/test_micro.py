"""The project's own micro-benchmarks, measured with pytest-benchmark.

    .venv/bin/pytest benchmarks/micro -p allele.bench.pytest_plugin \
        --allele-store sqlite:///.allele/results.db --allele-run micro-$(git rev-parse --short HEAD)

Every benchmark becomes one cell of the run (target ``pytest:benchmarks/micro/test_micro.py::...``,
params from the parametrisation), one ``wall_s`` sample per round; compare two such runs with
``allele bench compare`` or follow them with ``allele bench regressions``. Without the ``-p``
option (or the ``pytest11`` entry point) they are plain pytest-benchmark tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from allele.core.evolution import EvolutionConfig, EvolutionEngine
from allele.core.fitness import target_personality
from allele.core.kraken import KrakenLNN
from allele.core.operators import (
    crossover_blend,
    crossover_sbx,
    mutate_gaussian,
    select_rank,
    select_tournament,
)

SIZES = [100, 1000, 10_000]
TARGET = {"empathy": 0.9, "engagement": 0.8, "technical_knowledge": 0.7}


def _population(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 8))


@pytest.mark.parametrize("n", SIZES)
def test_mutate_gaussian(benchmark: Any, n: int) -> None:
    pop = _population(n)
    rng = np.random.default_rng(1)
    out = benchmark(mutate_gaussian, pop, rng, 0.1, 0.1)
    assert out.shape == (n, 8) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.mark.parametrize("n", SIZES)
def test_crossover_blend(benchmark: Any, n: int) -> None:
    a, b = _population(n, 1), _population(n, 2)
    rng = np.random.default_rng(3)
    child = benchmark(crossover_blend, a, b, rng)
    assert child.shape == (n, 8)


@pytest.mark.parametrize("n", SIZES)
def test_crossover_sbx(benchmark: Any, n: int) -> None:
    a, b = _population(n, 1), _population(n, 2)
    rng = np.random.default_rng(3)
    child = benchmark(crossover_sbx, a, b, rng)
    assert child.shape == (n, 8)


@pytest.mark.parametrize("n", SIZES)
def test_select_tournament(benchmark: Any, n: int) -> None:
    fitness = np.random.default_rng(4).random(n)
    rng = np.random.default_rng(5)
    winners = benchmark(select_tournament, fitness, n, rng)
    assert winners.shape == (n,)


@pytest.mark.parametrize("n", SIZES)
def test_select_rank(benchmark: Any, n: int) -> None:
    fitness = np.random.default_rng(4).random(n)
    rng = np.random.default_rng(5)
    winners = benchmark(select_rank, fitness, n, rng)
    assert winners.shape == (n,)


@pytest.mark.parametrize("population_size", [100, 1000])
@pytest.mark.parametrize("selection", ["tournament", "rank"])
def test_one_generation(benchmark: Any, population_size: int, selection: str) -> None:
    config = EvolutionConfig(population_size=population_size, generations=1_000_000,
                             selection=selection, seed=0)
    engine = EvolutionEngine(config, target_personality(TARGET), name="micro")
    engine.initialize()
    stats = benchmark(engine.step)
    assert stats.best >= stats.mean


@pytest.mark.parametrize("reservoir_size", [100, 500])
def test_reservoir_step(benchmark: Any, reservoir_size: int) -> None:
    net = KrakenLNN(reservoir_size=reservoir_size, seed=0, memory_size=64)
    step = np.array([[0.5]])
    net.process_sequence(step)  # numba compiles on the first call: not measured
    result = benchmark(net.process_sequence, step)
    assert result.state.shape == (reservoir_size,)
