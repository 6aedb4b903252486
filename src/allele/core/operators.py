"""Genetic operators over whole populations held as arrays.

Every function works on a population array of shape ``(N, 8)`` (or pairs of parent arrays) and
draws all its randomness from the ``numpy.random.Generator`` it is given. All of them keep trait
values inside [0, 1]. Selection returns indices into the population.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


# -- selection ----------------------------------------------------------------------------------
def select_tournament(
    fitness: FloatArray, n: int, rng: np.random.Generator, tournament_size: int = 3
) -> IntArray:
    """``n`` winners of tournaments of ``tournament_size`` contestants drawn with replacement.

    Ties go to the contestant drawn first."""
    contestants = rng.integers(0, fitness.shape[0], size=(tournament_size, n))
    best: IntArray = contestants[0]
    best_fit = fitness[best]
    for j in range(1, tournament_size):
        challenger = contestants[j]
        challenger_fit = fitness[challenger]
        better = challenger_fit > best_fit
        best = np.where(better, challenger, best)
        best_fit = np.where(better, challenger_fit, best_fit)
    return best


def select_roulette(fitness: FloatArray, n: int, rng: np.random.Generator) -> IntArray:
    """Fitness-proportionate selection; fitness is shifted so the worst individual gets a small,
    non-zero share (negative fitness values are allowed)."""
    shifted = fitness - fitness.min()
    total = shifted.sum()
    if not np.isfinite(total) or total <= 0.0:  # all equal: uniform choice
        return rng.integers(0, fitness.shape[0], size=n)
    shifted += total * 1e-3 / fitness.shape[0]
    cumulative = np.cumsum(shifted)
    picks = rng.random(n) * cumulative[-1]
    idx: IntArray = np.minimum(np.searchsorted(cumulative, picks, side="right"),
                               fitness.shape[0] - 1)
    return idx


def select_rank(
    fitness: FloatArray, n: int, rng: np.random.Generator, pressure: float = 1.7
) -> IntArray:
    """Linear ranking selection: the best gets ``pressure`` times the average share, the worst
    ``2 - pressure`` times (``pressure`` in [1, 2])."""
    size = fitness.shape[0]
    order = np.argsort(fitness, kind="stable")  # worst first
    if size == 1:
        return np.zeros(n, dtype=np.intp)
    ranks = np.arange(size, dtype=np.float64)
    weights = (2.0 - pressure) + 2.0 * (pressure - 1.0) * ranks / (size - 1)
    cumulative = np.cumsum(weights)
    picks = rng.random(n) * cumulative[-1]
    positions = np.minimum(np.searchsorted(cumulative, picks, side="right"), size - 1)
    chosen: IntArray = order[positions]
    return chosen


# -- crossover ----------------------------------------------------------------------------------
def crossover_blend(
    a: FloatArray, b: FloatArray, rng: np.random.Generator, alpha: float = 0.5
) -> FloatArray:
    """BLX-alpha: each child trait is uniform on the parents' interval widened by ``alpha`` on
    both sides, then clipped to [0, 1]. One child per parent pair."""
    low = np.minimum(a, b)
    span = np.subtract(a, b)
    np.abs(span, out=span)
    child = rng.random(a.shape)
    child *= 1.0 + 2.0 * alpha
    child -= alpha
    child *= span
    child += low
    np.clip(child, 0.0, 1.0, out=child)
    return child


def crossover_uniform(a: FloatArray, b: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Each child trait comes from either parent with probability 1/2."""
    return np.where(rng.random(a.shape) < 0.5, a, b)


def crossover_sbx(
    a: FloatArray, b: FloatArray, rng: np.random.Generator, eta: float = 15.0
) -> FloatArray:
    """Bounded simulated binary crossover (Deb and Agrawal) on [0, 1], distribution index
    ``eta``; returns the first child of each pair."""
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    span = hi - lo
    u = rng.random(a.shape)
    child = np.where(rng.random(a.shape) < 0.5, a, b).astype(np.float64, copy=True)
    moving = span > 1e-14
    if not moving.any():
        return child
    safe_span = np.where(moving, span, 1.0)
    # spread factor bounded by the distance to the nearer bound
    beta = 1.0 + 2.0 * np.minimum(lo, 1.0 - hi) / safe_span
    alpha = 2.0 - np.power(beta, -(eta + 1.0))
    inv = 1.0 / (eta + 1.0)
    betaq = np.where(
        u <= 1.0 / alpha,
        np.power(u * alpha, inv),
        np.power(1.0 / np.maximum(2.0 - u * alpha, 1e-300), inv),
    )
    c1 = 0.5 * ((lo + hi) - betaq * span)
    c2 = 0.5 * ((lo + hi) + betaq * span)
    pick = np.where(rng.random(a.shape) < 0.5, c1, c2)
    child = np.where(moving, pick, child)
    np.clip(child, 0.0, 1.0, out=child)
    return child


def diversity(population: FloatArray) -> float:
    """Mean over traits of the population's standard deviation of that trait."""
    weights = np.full(population.shape[0], 1.0 / population.shape[0])
    centred = population - weights @ population  # two passes: no cancellation error
    centred *= centred
    return float(np.sqrt(weights @ centred).mean())


# -- mutation -----------------------------------------------------------------------------------
def mutate_gaussian(
    population: FloatArray, rng: np.random.Generator, rate: float, sigma: float
) -> FloatArray:
    """In place: each trait mutates with probability ``rate`` by N(0, sigma), clipped to [0, 1].
    Returns ``population``.

    Rather than one uniform draw per trait, the mutated positions are drawn directly: a Poisson
    number of uniformly placed hits with mean ``size * -ln(1 - rate)`` marks each position
    independently with probability exactly ``1 - exp(ln(1 - rate)) = rate`` (Poisson thinning);
    a position hit twice mutates once. Same distribution, about a tenth of the random numbers.
    """
    if rate <= 0.0 or sigma <= 0.0:
        return population
    work = np.ascontiguousarray(population)  # a view unless population is strided
    flat = work.reshape(-1)
    if rate >= 1.0:
        flat += rng.standard_normal(flat.size) * sigma
        np.clip(flat, 0.0, 1.0, out=flat)
    else:
        hits = int(rng.poisson(flat.size * -np.log1p(-rate)))
        where = rng.integers(0, flat.size, hits)
        values = flat[where] + rng.standard_normal(hits) * sigma
        np.clip(values, 0.0, 1.0, out=values)
        flat[where] = values
    if work is not population:
        population[...] = work
    return population
