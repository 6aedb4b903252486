"""EvolutionEngine: a genetic algorithm over a population held as one ``(N, 8)`` array.

One generation: keep the ``elitism`` best individuals unchanged; fill the rest with children of
parents chosen by the selection operator, crossed over with probability ``crossover_rate`` (else a
copy of the first parent) and mutated by Gaussian noise; evaluate the children in one batch.

Everything random comes from one ``numpy.random.Generator`` seeded from ``config.seed``, so a seed
gives a bit-identical history. Genome ids are derived from the seed, the generation and the row
(``"<tag>:<generation>:<row>"``), so lineage is reproducible too.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator

from allele.core import operators as ops
from allele.core.genome import N_TRAITS, Genome
from allele.core.observer import GenerationStats, default_name, default_observer, notify
from allele.core.settings_model import CoreConfig
from allele.errors import ValidationError

FloatArray = NDArray[np.float64]
FitnessFn = Callable[..., Any]


class EvolutionConfig(CoreConfig):
    """Validated configuration of an :class:`EvolutionEngine`.

    Invalid values raise :class:`allele.errors.ValidationError` naming the field. ``seed``
    (None: a fresh one each run) must be >= 0.
    """

    label = "evolution config"

    population_size: int = Field(100, ge=2, le=1_000_000)
    generations: int = Field(50, ge=0)
    mutation_rate: float = Field(0.1, ge=0.0, le=1.0)
    mutation_sigma: float = Field(0.1, ge=0.0, le=1.0)
    crossover_rate: float = Field(0.9, ge=0.0, le=1.0)
    elitism: int = Field(2, ge=0)
    selection: Literal["tournament", "roulette", "rank"] = "tournament"
    tournament_size: int = Field(3, ge=1)
    crossover: Literal["blend", "uniform", "sbx"] = "blend"
    blend_alpha: float = Field(0.5, ge=0.0, le=2.0)
    sbx_eta: float = Field(15.0, gt=0.0)
    rank_pressure: float = Field(1.7, ge=1.0, le=2.0)
    seed: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _check(self) -> EvolutionConfig:
        if self.elitism >= self.population_size:
            raise ValueError(
                f"elitism ({self.elitism}) must be smaller than population_size "
                f"({self.population_size})"
            )
        return self

    @classmethod
    def build(cls, **kwargs: Any) -> EvolutionConfig:
        """The same as the constructor (which raises :class:`allele.errors.ValidationError` too)."""
        return cls(**kwargs)


@dataclass
class EvolutionResult:
    """The outcome of :meth:`EvolutionEngine.run`."""

    best: Genome
    history: list[GenerationStats]
    population: FloatArray
    fitness: FloatArray
    evaluations: int = 0
    seconds: float = 0.0
    config: EvolutionConfig | None = field(default=None, repr=False)


class _PerGenome:
    """Adapts a per-genome fitness ``Genome -> float`` to a batch one."""

    vectorized = True

    def __init__(self, fn: FitnessFn):
        self.fn = fn

    def __call__(self, population: FloatArray) -> FloatArray:
        out = np.empty(population.shape[0])
        for i in range(population.shape[0]):
            out[i] = float(self.fn(Genome.from_vector(population[i], id=f"eval-{i}")))
        return out


def _annotation_of_first_param(fn: FitnessFn) -> Any:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if not params:
        return None
    ann = params[0].annotation
    return None if ann is inspect.Parameter.empty else ann


def as_batch_fitness(fn: FitnessFn) -> Callable[[FloatArray], FloatArray]:
    """Return ``fn`` as a batch fitness ``(N, 8) -> (N,)``.

    A function marked ``vectorized`` (see :func:`allele.core.fitness.vectorized`) or whose first
    parameter is annotated as an array is used as is; one annotated with ``Genome`` (or
    unannotated) is called once per genome.
    """
    if not callable(fn):
        raise ValidationError(f"fitness must be callable, got {fn!r}")
    if getattr(fn, "vectorized", False):
        return fn
    ann = _annotation_of_first_param(fn)
    text = ann if isinstance(ann, str) else getattr(ann, "__name__", repr(ann))
    if ann is not None and ("ndarray" in str(text) or "NDArray" in str(text)
                            or "Array" in str(text)):
        return fn
    return _PerGenome(fn)


def _seed_tag(seed: int | None) -> str:
    if seed is None:
        return uuid.uuid4().hex[:8]
    return hashlib.sha256(f"allele-seed-{seed}".encode()).hexdigest()[:8]


class EvolutionEngine:
    """A genetic algorithm over personality genomes.

    >>> from allele.core.fitness import target_personality
    >>> cfg = EvolutionConfig(population_size=50, generations=10, seed=1)
    >>> result = EvolutionEngine(cfg, target_personality({"empathy": 0.9})).run()
    >>> result.history[-1].best >= result.history[0].best
    True
    """

    def __init__(
        self,
        config: EvolutionConfig | None = None,
        fitness: FitnessFn | None = None,
        observer: Any = None,
        name: str | None = None,
        initial_population: FloatArray | None = None,
    ) -> None:
        if config is None:
            config = EvolutionConfig()
        if not isinstance(config, EvolutionConfig):
            raise ValidationError(f"config must be an EvolutionConfig, got {type(config).__name__}")
        if fitness is None:
            raise ValidationError("EvolutionEngine needs a fitness function")
        self.config = config
        self.fitness_fn = as_batch_fitness(fitness)
        self.name = name if name is not None else default_name("evolution")
        self.observer = (observer if observer is not None
                         else default_observer("evolution", self.name))
        self.rng = np.random.default_rng(config.seed)
        self._tag = _seed_tag(config.seed)
        n = config.population_size
        if initial_population is not None:
            pop = np.array(initial_population, dtype=np.float64, copy=True)
            if pop.shape != (n, N_TRAITS):
                raise ValidationError(
                    f"initial_population must have shape ({n}, {N_TRAITS}), got {pop.shape}")
            if not ((pop >= 0.0) & (pop <= 1.0)).all():
                raise ValidationError("initial_population values must be in [0, 1]")
            self._initial: FloatArray | None = pop
        else:
            self._initial = None
        self.population: FloatArray = np.empty((n, N_TRAITS))
        self.fitness: FloatArray = np.empty(n)
        self.parents: NDArray[np.intp] = np.full((n, 2), -1, dtype=np.intp)
        self.generation = -1  # -1: not initialised; 0: initial population evaluated
        self.history: list[GenerationStats] = []
        self.evaluations = 0
        self._best_vec: FloatArray | None = None
        self._best_fit = -math.inf
        self._best_gen = 0
        self._best_row = 0
        self._best_parents: tuple[str, ...] = ()
        self._best_fitness_history: list[float] = []
        self._select = self._make_selector()
        self._cross = self._make_crossover()

    # -- operators chosen once ------------------------------------------------------------------
    def _make_selector(self) -> Callable[[FloatArray, int], NDArray[np.intp]]:
        cfg, rng = self.config, self.rng
        if cfg.selection == "tournament":
            k = cfg.tournament_size
            return lambda fit, n: ops.select_tournament(fit, n, rng, k)
        if cfg.selection == "roulette":
            return lambda fit, n: ops.select_roulette(fit, n, rng)
        p = cfg.rank_pressure
        return lambda fit, n: ops.select_rank(fit, n, rng, p)

    def _make_crossover(self) -> Callable[[FloatArray, FloatArray], FloatArray]:
        cfg, rng = self.config, self.rng
        if cfg.crossover == "blend":
            alpha = cfg.blend_alpha
            return lambda a, b: ops.crossover_blend(a, b, rng, alpha)
        if cfg.crossover == "uniform":
            return lambda a, b: ops.crossover_uniform(a, b, rng)
        eta = cfg.sbx_eta
        return lambda a, b: ops.crossover_sbx(a, b, rng, eta)

    # -- evaluation -----------------------------------------------------------------------------
    def _evaluate(self, pop: FloatArray) -> FloatArray:
        raw = self.fitness_fn(pop)
        scores = np.asarray(raw, dtype=np.float64)
        if scores.shape != (pop.shape[0],):
            raise ValidationError(
                f"fitness returned shape {scores.shape}, expected ({pop.shape[0]},)")
        if not np.isfinite(scores).all():
            bad = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise ValidationError(f"fitness returned a non-finite value ({scores[bad]!r}) "
                                  f"for row {bad}")
        self.evaluations += pop.shape[0]
        return scores

    def genome_id(self, generation: int, row: int) -> str:
        """The reproducible id of the individual in ``row`` of ``generation``."""
        return f"{self._tag}:{generation}:{row}"

    def _record(self, t0: float, evaluations: int) -> GenerationStats:
        fit = self.fitness
        best_row = int(np.argmax(fit))
        best = float(fit[best_row])
        if best > self._best_fit:
            self._best_fit = best
            self._best_vec = self.population[best_row].copy()
            self._best_gen = self.generation
            self._best_row = best_row
            p = self.parents[best_row]
            self._best_parents = tuple(
                self.genome_id(self.generation - 1, int(i)) for i in p if i >= 0
            )
        self._best_fitness_history.append(self._best_fit)
        stats = GenerationStats(
            generation=self.generation,
            best=best,
            mean=float(fit.mean()),
            std=float(fit.std()),
            diversity=ops.diversity(self.population),
            evaluations=evaluations,
            seconds=time.perf_counter() - t0,
        )
        self.history.append(stats)
        if self.observer is not None:
            notify(self.observer, "on_generation", self.name, stats)
        return stats

    def initialize(self) -> GenerationStats:
        """Create and evaluate generation 0 (done by the first :meth:`step` if not called)."""
        t0 = time.perf_counter()
        before = self.evaluations
        if self._initial is not None:
            self.population[:] = self._initial
        else:
            self.population[:] = self.rng.random(self.population.shape)
        self.fitness = self._evaluate(self.population)
        self.generation = 0
        return self._record(t0, self.evaluations - before)

    def step(self) -> GenerationStats:
        """Evolve one generation and return its statistics."""
        if self.generation < 0:
            self.initialize()
        t0 = time.perf_counter()
        before = self.evaluations
        cfg = self.config
        n = cfg.population_size
        e = cfg.elitism
        n_children = n - e
        fit = self.fitness
        pop = self.population

        new_pop = np.empty_like(pop)
        new_fit = np.empty_like(fit)
        new_parents = np.empty((n, 2), dtype=np.intp)
        if e:
            elite = np.argpartition(fit, n - e)[n - e:] if e < n else np.arange(n)
            elite = elite[np.argsort(-fit[elite], kind="stable")]
            new_pop[:e] = pop[elite]
            new_fit[:e] = fit[elite]
            new_parents[:e, 0] = elite
            new_parents[:e, 1] = -1

        first = self._select(fit, n_children)
        second = self._select(fit, n_children)
        a = pop[first]
        children = self._cross(a, pop[second])
        keep_first = self.rng.random(n_children) >= cfg.crossover_rate
        children[keep_first] = a[keep_first]
        if cfg.mutation_rate > 0 and cfg.mutation_sigma > 0:
            ops.mutate_gaussian(children, self.rng, cfg.mutation_rate, cfg.mutation_sigma)
        new_pop[e:] = children
        new_parents[e:, 0] = first
        new_parents[e:, 1] = np.where(keep_first, -1, second)
        new_fit[e:] = self._evaluate(children)

        self.population = new_pop
        self.fitness = new_fit
        self.parents = new_parents
        self.generation += 1
        return self._record(t0, self.evaluations - before)

    def run(self, generations: int | None = None) -> EvolutionResult:
        """Run ``generations`` generations (default: ``config.generations``)."""
        todo = self.config.generations if generations is None else generations
        if todo < 0:
            raise ValidationError(f"generations must be >= 0, got {todo}")
        t0 = time.perf_counter()
        if self.generation < 0:
            self.initialize()
        for _ in range(todo):
            self.step()
        return EvolutionResult(
            best=self.best_genome(),
            history=list(self.history),
            population=self.population.copy(),
            fitness=self.fitness.copy(),
            evaluations=self.evaluations,
            seconds=time.perf_counter() - t0,
            config=self.config,
        )

    def best_genome(self) -> Genome:
        """The best individual seen so far, as a :class:`Genome` with lineage."""
        if self._best_vec is None:
            raise ValidationError("the engine has not evaluated any population yet")
        return Genome.from_vector(
            self._best_vec,
            id=self.genome_id(self._best_gen, self._best_row),
            generation=self._best_gen,
            parent_ids=self._best_parents,
            fitness_history=self._best_fitness_history,
        )

    def genomes(self) -> list[Genome]:
        """The current population as independent :class:`Genome` objects (no shared arrays)."""
        return [
            Genome.from_vector(
                self.population[i],
                id=self.genome_id(self.generation, i),
                generation=max(self.generation, 0),
                parent_ids=tuple(self.genome_id(self.generation - 1, int(p))
                                 for p in self.parents[i] if p >= 0),
                fitness_history=[float(self.fitness[i])],
            )
            for i in range(self.config.population_size)
        ]
