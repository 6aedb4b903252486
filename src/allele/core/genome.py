"""Genome: eight personality traits in [0, 1] plus identity and lineage.

The evolution engine keeps whole populations as one ``(N, 8)`` array; a :class:`Genome` is the
object view of one row, made for the best individual, for agents and for the registry.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from allele.errors import ValidationError

TRAITS: tuple[str, ...] = (
    "empathy",
    "engagement",
    "technical_knowledge",
    "creativity",
    "conciseness",
    "context_awareness",
    "adaptability",
    "personability",
)
"""The eight traits, in the column order of population arrays."""

N_TRAITS = len(TRAITS)
TRAIT_INDEX: dict[str, int] = {name: i for i, name in enumerate(TRAITS)}
DEFAULT_TRAIT_VALUE = 0.5


def check_trait(name: str, value: object) -> float:
    """Return ``value`` as a float if ``name`` is a trait and the value a number in [0, 1]."""
    if name not in TRAIT_INDEX:
        raise ValidationError(f"unknown trait {name!r}; the traits are: {', '.join(TRAITS)}")
    if isinstance(value, bool) or not isinstance(value, Real | np.floating | np.integer):
        raise ValidationError(f"trait {name!r} must be a number in [0, 1], got {value!r}")
    v = float(value)
    if math.isnan(v) or not 0.0 <= v <= 1.0:
        raise ValidationError(f"trait {name!r} must be in [0, 1], got {value!r}")
    return v


def check_vector(vec: ArrayLike) -> NDArray[np.float64]:
    """Validate an 8-vector of trait values and return it as a new float64 array."""
    arr = np.array(vec, dtype=np.float64, copy=True)
    if arr.shape != (N_TRAITS,):
        raise ValidationError(f"a trait vector has shape ({N_TRAITS},), got {arr.shape}")
    bad = ~((arr >= 0.0) & (arr <= 1.0))  # NaN fails both comparisons
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValidationError(f"trait {TRAITS[i]!r} must be in [0, 1], got {arr[i]!r}")
    return arr


def _field_id(data: Mapping[str, Any]) -> str | None:
    if "id" not in data:
        return None  # a new id
    value = data["id"]
    if not isinstance(value, str):
        raise ValidationError(f"genome field 'id' must be a string, got {value!r}")
    return value


def _field_parent_ids(data: Mapping[str, Any]) -> tuple[str, ...]:
    value = data.get("parent_ids", [])
    if not isinstance(value, list | tuple) or not all(isinstance(p, str) for p in value):
        raise ValidationError(f"genome field 'parent_ids' must be a list of genome id strings, "
                              f"got {value!r}")
    return tuple(value)


def _field_history(data: Mapping[str, Any]) -> list[float]:
    value = data.get("fitness_history", [])
    if not isinstance(value, list | tuple) or any(
            isinstance(f, bool) or not isinstance(f, Real) for f in value):
        raise ValidationError(f"genome field 'fitness_history' must be a list of numbers, got "
                              f"{value!r}")
    return [float(f) for f in value]


class Genome:
    """One personality: 8 traits in [0, 1], a stable id, generation, parents and fitness history.

    Traits not given to the constructor start at 0.5. ``from_dict`` is strict and lossless.
    """

    __slots__ = ("_vec", "fitness_history", "generation", "id", "parent_ids")

    def __init__(
        self,
        traits: Mapping[str, float] | None = None,
        *,
        id: str | None = None,
        generation: int = 0,
        parent_ids: Sequence[str] = (),
        fitness_history: Sequence[float] = (),
    ) -> None:
        vec = np.full(N_TRAITS, DEFAULT_TRAIT_VALUE, dtype=np.float64)
        if traits is not None:
            if not isinstance(traits, Mapping):
                raise ValidationError(f"traits must be a mapping of trait -> value, got {traits!r}")
            for name, value in traits.items():
                checked = check_trait(name, value)
                vec[TRAIT_INDEX[name]] = checked
        if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
            raise ValidationError(f"generation must be an integer >= 0, got {generation!r}")
        self._vec = vec
        self.id: str = id if id is not None else uuid.uuid4().hex
        self.generation = generation
        self.parent_ids: tuple[str, ...] = tuple(str(p) for p in parent_ids)
        self.fitness_history: list[float] = [float(f) for f in fitness_history]

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def from_vector(cls, vec: ArrayLike, **meta: Any) -> Genome:
        """A genome whose traits are the 8 values of ``vec`` (in :data:`TRAITS` order)."""
        g = cls(**meta)
        g._vec = check_vector(vec)
        return g

    @classmethod
    def random(cls, rng: np.random.Generator, **meta: Any) -> Genome:
        """A genome with traits drawn uniformly from [0, 1] by ``rng``."""
        return cls.from_vector(rng.random(N_TRAITS), **meta)

    # -- views --------------------------------------------------------------------------------
    @property
    def traits(self) -> dict[str, float]:
        """The traits as a new dict (changing it does not change the genome)."""
        return {name: float(self._vec[i]) for i, name in enumerate(TRAITS)}

    def vector(self) -> NDArray[np.float64]:
        """The traits as a new float64 array of shape (8,)."""
        return self._vec.copy()

    def __getitem__(self, name: str) -> float:
        if name not in TRAIT_INDEX:
            raise ValidationError(f"unknown trait {name!r}; the traits are: {', '.join(TRAITS)}")
        return float(self._vec[TRAIT_INDEX[name]])

    @property
    def fitness(self) -> float | None:
        """The latest recorded fitness, or None."""
        return self.fitness_history[-1] if self.fitness_history else None

    def with_traits(self, **changes: float) -> Genome:
        """A child genome (new id, next generation, this one as parent) with some traits changed."""
        traits = self.traits
        for name, value in changes.items():
            traits[name] = check_trait(name, value)
        return Genome(traits, generation=self.generation + 1, parent_ids=(self.id,))

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; floats stay exact (JSON round-trips Python floats losslessly)."""
        return {
            "id": self.id,
            "generation": self.generation,
            "parent_ids": list(self.parent_ids),
            "traits": self.traits,
            "fitness_history": list(self.fitness_history),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Genome:
        """Rebuild a genome from :meth:`to_dict` output; every trait must be present."""
        if not isinstance(data, Mapping):
            raise ValidationError(f"a genome dict is a mapping, got {type(data).__name__}")
        allowed = {"id", "generation", "parent_ids", "traits", "fitness_history"}
        unknown = set(data) - allowed
        if unknown:
            raise ValidationError(f"unknown genome field(s): {', '.join(sorted(unknown))}")
        traits = data.get("traits")
        if not isinstance(traits, Mapping):
            raise ValidationError("a genome dict needs a 'traits' mapping")
        missing = [t for t in TRAITS if t not in traits]
        if missing:
            raise ValidationError(f"genome dict is missing trait(s): {', '.join(missing)}")
        return cls(
            traits,
            id=_field_id(data),
            generation=data.get("generation", 0),
            parent_ids=_field_parent_ids(data),
            fitness_history=_field_history(data),
        )

    def to_json(self) -> str:
        """The genome as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Genome:
        """Rebuild a genome from :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"genome JSON is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    # -- comparison -----------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Genome):
            return NotImplemented
        return (
            self.id == other.id
            and self.generation == other.generation
            and self.parent_ids == other.parent_ids
            and self.fitness_history == other.fitness_history
            and bool(np.array_equal(self._vec, other._vec))
        )

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        traits = ", ".join(f"{n}={self._vec[i]:.3f}" for i, n in enumerate(TRAITS))
        return f"Genome(id={self.id!r}, generation={self.generation}, {traits})"
