"""Fitness functions.

A fitness function is either *vectorised*, taking the whole ``(N, 8)`` population array and
returning ``(N,)`` scores (mark it with :func:`vectorized`), or *per-genome*, taking a
:class:`~allele.core.genome.Genome` and returning a float; the engine wraps the latter
automatically. Higher is better.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from allele.core.genome import N_TRAITS, TRAIT_INDEX, TRAITS, check_trait
from allele.errors import ValidationError

FloatArray = NDArray[np.float64]


@runtime_checkable
class VectorFitness(Protocol):
    """A fitness function over a whole population: ``(N, 8) -> (N,)``."""

    vectorized: bool

    def __call__(self, population: FloatArray, /) -> FloatArray: ...


F = TypeVar("F", bound=Callable[..., Any])


def vectorized(fn: F) -> F:
    """Mark ``fn`` as a vectorised fitness: it receives the (N, 8) population array."""
    fn.vectorized = True  # type: ignore[attr-defined]
    return fn


def _trait_vector(values: Mapping[str, float], default: float) -> FloatArray:
    vec = np.full(N_TRAITS, default, dtype=np.float64)
    for name, value in values.items():
        if name not in TRAIT_INDEX:
            raise ValidationError(f"unknown trait {name!r}; the traits are: {', '.join(TRAITS)}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"weight of {name!r} must be a number, got {value!r}")
        if not np.isfinite(value):  # a NaN or infinite weight made every fitness NaN
            raise ValidationError(f"weight of {name!r} must be finite, got {value!r}")
        vec[TRAIT_INDEX[name]] = float(value)
    return vec


class TargetPersonality:
    """Closeness to a target personality: ``1 - sqrt(sum_i w_i (x_i - t_i)^2 / sum_i w_i)``.

    1.0 exactly at the target, 0.0 at the farthest corner of the unit cube. Traits not named in
    ``target`` are not scored (weight 0) unless ``weights`` says otherwise.
    """

    vectorized = True

    def __init__(self, target: Mapping[str, float], weights: Mapping[str, float] | None = None):
        if not target:
            raise ValidationError("target_personality needs at least one target trait")
        self.target = np.full(N_TRAITS, 0.5)
        for name, value in target.items():
            checked = check_trait(name, value)
            self.target[TRAIT_INDEX[name]] = checked
        mask = np.zeros(N_TRAITS)
        for name in target:
            mask[TRAIT_INDEX[name]] = 1.0
        self.weights = _trait_vector(weights, 0.0) if weights is not None else mask
        if (self.weights < 0).any() or self.weights.sum() <= 0:
            raise ValidationError("target weights must be >= 0 with a positive sum")
        self._w = self.weights / self.weights.sum()

    def __call__(self, population: FloatArray, /) -> FloatArray:
        diff = population - self.target
        diff *= diff
        out: FloatArray = diff @ self._w
        np.sqrt(out, out=out)
        return 1.0 - out


def target_personality(
    target: Mapping[str, float], weights: Mapping[str, float] | None = None
) -> TargetPersonality:
    """Vectorised fitness rewarding closeness to ``target`` (see :class:`TargetPersonality`)."""
    return TargetPersonality(target, weights)


class TraitWeights:
    """A linear objective: the weighted mean of traits (negative weights penalise a trait)."""

    vectorized = True

    def __init__(self, weights: Mapping[str, float]):
        self.weights = _trait_vector(weights, 0.0)
        norm = np.abs(self.weights).sum()
        if norm <= 0:
            raise ValidationError("trait weights need at least one non-zero weight")
        self._w = self.weights / norm

    def __call__(self, population: FloatArray, /) -> FloatArray:
        out: FloatArray = population @ self._w
        return out


class WeightedObjectives:
    """A weighted sum of vectorised objectives: ``sum_k w_k f_k(P) / sum_k |w_k|``."""

    vectorized = True

    def __init__(self, objectives: Sequence[tuple[float, VectorFitness]]):
        if not objectives:
            raise ValidationError("weighted_objectives needs at least one (weight, objective)")
        for weight, fn in objectives:
            if not getattr(fn, "vectorized", False):
                raise ValidationError(f"objective {fn!r} is not vectorised (use @vectorized)")
            if not np.isfinite(weight):
                raise ValidationError(f"objective weight must be finite, got {weight!r}")
        self.objectives = list(objectives)
        self._norm = sum(abs(w) for w, _ in objectives)
        if self._norm == 0:
            raise ValidationError("objective weights must not all be zero")

    def __call__(self, population: FloatArray, /) -> FloatArray:
        total = np.zeros(population.shape[0])
        for weight, fn in self.objectives:
            total += weight * fn(population)
        total /= self._norm
        return total


def weighted_objectives(
    objectives: Sequence[tuple[float, VectorFitness]] | Mapping[str, float],
) -> WeightedObjectives | TraitWeights:
    """A multi-objective fitness.

    Given ``[(weight, objective), ...]`` it combines vectorised objectives; given a mapping of
    trait -> weight it is the linear :class:`TraitWeights` objective.
    """
    if isinstance(objectives, Mapping):
        return TraitWeights(objectives)
    return WeightedObjectives(objectives)


class Costly:
    """Wraps a vectorised fitness and burns ``cost_us`` microseconds of CPU per evaluation,
    so benchmarks can model expensive fitness functions deterministically."""

    vectorized = True

    def __init__(self, base: VectorFitness, cost_us: float):
        if cost_us < 0 or not np.isfinite(cost_us):
            raise ValidationError(f"cost_us must be a finite number >= 0, got {cost_us!r}")
        self.base = base
        self.cost_us = float(cost_us)

    def __call__(self, population: FloatArray, /) -> FloatArray:
        deadline = time.perf_counter() + population.shape[0] * self.cost_us * 1e-6
        while time.perf_counter() < deadline:
            pass
        return self.base(population)


def costly(base: VectorFitness, cost_us: float) -> Costly:
    """``base`` with a fixed CPU cost of ``cost_us`` microseconds per evaluated genome."""
    return Costly(base, cost_us)
