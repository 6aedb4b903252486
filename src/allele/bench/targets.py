"""Benchmark targets: functions ``(params, seed) -> {metric: value}``.

A target gets one cell's parameters and one seed and returns its *quality* metrics; the runner
measures the *costs* around the call (wall, CPU, peak RSS; see :mod:`allele.bench.profiler`).

Built-in targets (name in a spec's ``target:``):

``evolution``
    Runs an :class:`~allele.core.evolution.EvolutionEngine` towards a fixed target personality.
    Params: every :class:`~allele.core.evolution.EvolutionConfig` field except ``seed``, plus
    ``target_fitness`` (default 0.95) and ``cost_us`` (CPU microseconds burnt per evaluated genome,
    default 0). Metrics: ``best_fitness``, ``mean_fitness``, ``diversity`` (last generation),
    ``generations_to_target`` (first generation whose best reaches ``target_fitness``; when it is
    never reached the value is ``generations + 1``, a censored value, and ``reached_target`` is 0),
    ``reached_target`` (1 or 0), ``evaluations``.
``kraken``
    Trains a :class:`~allele.core.kraken.KrakenLNN` readout for one-step-ahead Mackey-Glass
    prediction (the series seeded by the cell's seed) and scores it on the following steps.
    Params: the KrakenLNN constructor's numeric arguments, ``backend``, ``threads`` (1 or 2;
    use 1 when the matrix runs one worker per core), and ``train_steps`` (default 2000),
    ``test_steps`` (1000), ``washout`` (100), ``tau`` (17). Metrics: ``nrmse``
    (test), ``train_nrmse``, ``steps_per_s`` (prediction steps per second), ``fit_s``.
``agent``
    One streamed chat of an :class:`~allele.core.agent.NLPAgent` (by default the local SmolLM2
    model in process). Params: ``temperature``, ``max_tokens``, ``provider``, ``model``,
    ``base_url``, ``prompt``, ``expect`` (a word the answer must contain to count as a success;
    default ``""``: any non-empty answer succeeds). Metrics: ``tokens_per_s``,
    ``time_to_first_token_s``, ``completion_tokens``, ``success`` (1 or 0).
``genome_ops``
    Micro-costs of the genome operators. Params: ``op`` (one of :data:`GENOME_OPS`), ``n``
    (population rows, default 1000), ``loops`` (default 50). Metrics: ``us_per_call`` and
    ``ns_per_genome``.

Any other target is ``package.module:function`` with the same signature.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from allele.bench.metrics import Direction, MetricInfo, declaration
from allele.errors import AlleleError, BenchmarkError, ValidationError

TargetFn = Callable[[dict[str, Any], int], Mapping[str, float]]
ParamCheck = Callable[[Mapping[str, Any]], None]


class ParamError(ValidationError):
    """A built-in target's parameter is not acceptable; ``param`` names it (None: unknown)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class TargetInfo:
    """A built-in target: its function, the metrics it returns (each declared: which way is
    better and its unit), and its parameter check."""

    name: str
    fn: TargetFn
    metrics: Mapping[str, MetricInfo]
    check_params: ParamCheck
    description: str


def _declare(**metrics: tuple[Direction, str]) -> dict[str, MetricInfo]:
    return {name: declaration(name, d, u) for name, (d, u) in metrics.items()}


def reject_state(name: str, state: object) -> None:
    """Built-in targets build their own input: a spec ``setup`` cannot feed them."""
    if state is not None:
        raise BenchmarkError(f"the built-in target {name!r} takes no state: a spec's "
                             "'setup'/'teardown' works with a 'package.module:function' target "
                             "only; remove them from this benchmark")


def _unknown(params: Mapping[str, Any], allowed: set[str], target: str) -> None:
    for key in params:
        if key not in allowed:
            raise ParamError(
                f"unknown parameter {key!r} for target {target!r} "
                f"(allowed: {', '.join(sorted(allowed))})", key)


def _number(params: Mapping[str, Any], key: str, low: float, high: float = math.inf,
            integer: bool = False) -> None:
    if key not in params:
        return
    v = params[key]
    ok_type = isinstance(v, int) if integer else isinstance(v, int | float)
    if isinstance(v, bool) or not ok_type:
        kind = "an integer" if integer else "a number"
        raise ParamError(f"{key} must be {kind}, got {v!r}", key)
    if not (low <= float(v) <= high):
        raise ParamError(f"{key} must be in [{low}, {high}], got {v!r}", key)


# --- evolution ----------------------------------------------------------------------------------

EVOLUTION_TARGET_TRAITS = {
    "empathy": 0.9,
    "engagement": 0.7,
    "technical_knowledge": 0.8,
    "creativity": 0.4,
    "conciseness": 0.6,
    "context_awareness": 0.85,
    "adaptability": 0.5,
    "personability": 0.75,
}
"""The personality the ``evolution`` target evolves towards."""

_EVOLUTION_EXTRA = {"target_fitness", "cost_us"}


def _evolution_config_fields() -> set[str]:
    from allele.core.evolution import EvolutionConfig

    return set(EvolutionConfig.model_fields) - {"seed"}


def check_evolution(params: Mapping[str, Any]) -> None:
    """Check ``evolution`` params with the engine's own validated config."""
    from allele.core.evolution import EvolutionConfig

    fields = _evolution_config_fields()
    _unknown(params, fields | _EVOLUTION_EXTRA, "evolution")
    _number(params, "target_fitness", -math.inf, math.inf)
    _number(params, "cost_us", 0.0, 1e7)
    try:
        EvolutionConfig(**{k: v for k, v in params.items() if k in fields})
    except ValidationError as exc:  # "invalid evolution config: <field>: <why> (got ...)"
        key = exc.param if exc.param in params else None
        msg = str(exc).removeprefix(f"invalid {EvolutionConfig.label}: ")
        raise ParamError(msg.removeprefix(f"{key}: ") if key else msg, key) from None


def evolution(params: dict[str, Any], seed: int, *, state: object = None) -> dict[str, float]:
    """The ``evolution`` built-in target (see the module docstring)."""
    reject_state("evolution", state)
    from allele.core.evolution import EvolutionConfig, EvolutionEngine
    from allele.core.fitness import costly, target_personality

    fields = _evolution_config_fields()
    config = EvolutionConfig.build(**{k: v for k, v in params.items() if k in fields}, seed=seed)
    fitness: Any = target_personality(EVOLUTION_TARGET_TRAITS)
    cost = float(params.get("cost_us", 0.0))
    if cost > 0:
        fitness = costly(fitness, cost)
    goal = float(params.get("target_fitness", 0.95))
    result = EvolutionEngine(config, fitness, name="bench-evolution").run()
    reached = next((s.generation for s in result.history if s.best >= goal), None)
    last = result.history[-1]
    return {
        "best_fitness": float(result.best.fitness if result.best.fitness is not None
                              else last.best),
        "mean_fitness": float(last.mean),
        "diversity": float(last.diversity),
        "generations_to_target": float(reached if reached is not None
                                       else config.generations + 1),
        "reached_target": 1.0 if reached is not None else 0.0,
        "evaluations": float(result.evaluations),
    }


# --- kraken -------------------------------------------------------------------------------------

_KRAKEN_NUMERIC = {
    "reservoir_size": (1, 100_000, True),
    "spectral_radius": (0.0, 100.0, False),
    "leak_rate": (1e-12, 1.0, False),
    "input_scaling": (0.0, 1e6, False),
    "connectivity": (1e-12, 1.0, False),
    "ridge": (0.0, 1e6, False),
    "noise": (0.0, 1e3, False),
    "memory_size": (1, 10_000_000, True),
    "train_steps": (50, 10_000_000, True),
    "test_steps": (2, 10_000_000, True),
    "washout": (0, 1_000_000, True),
    "tau": (1.0, 1000.0, False),
    "threads": (1, 2, True),
}


def check_kraken(params: Mapping[str, Any]) -> None:
    """Check ``kraken`` params."""
    _unknown(params, set(_KRAKEN_NUMERIC) | {"backend"}, "kraken")
    for key, (low, high, integer) in _KRAKEN_NUMERIC.items():
        _number(params, key, low, high, integer)
    if "backend" in params and params["backend"] not in ("numba", "numpy"):
        raise ParamError(f"backend must be 'numba' or 'numpy', got {params['backend']!r}",
                         "backend")
    if params.get("washout", 100) >= params.get("train_steps", 2000):
        raise ParamError("washout must be smaller than train_steps", "washout")


def kraken(params: dict[str, Any], seed: int, *, state: object = None) -> dict[str, float]:
    """The ``kraken`` built-in target (see the module docstring)."""
    reject_state("kraken", state)
    from allele.core.datasets import mackey_glass, nrmse
    from allele.core.kraken import KrakenLNN

    train = int(params.get("train_steps", 2000))
    test = int(params.get("test_steps", 1000))
    washout = int(params.get("washout", 100))
    tau = float(params.get("tau", 17.0))
    series = mackey_glass(train + test + 1, tau=tau, seed=seed)
    inputs, targets = series[:-1], series[1:]
    ctor = {k: params[k] for k in ("reservoir_size", "spectral_radius", "leak_rate",
                                   "input_scaling", "connectivity", "ridge", "noise",
                                   "memory_size", "backend", "threads") if k in params}
    net = KrakenLNN(**ctor, seed=seed, name="bench-kraken")
    t0 = time.perf_counter()
    net.fit(inputs[:train], targets[:train], warmup=washout)
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    pred = net.predict(inputs[train:])
    pred_s = time.perf_counter() - t1
    return {
        "nrmse": float(nrmse(targets[train:], pred)),
        "train_nrmse": float(net.train_nrmse_ if net.train_nrmse_ is not None else math.nan),
        "steps_per_s": float(test / pred_s) if pred_s > 0 else math.inf,
        "fit_s": float(fit_s),
    }


# --- agent --------------------------------------------------------------------------------------

DEFAULT_AGENT_PROMPT = "In one short sentence: what is a genetic algorithm?"
_AGENT_KEYS = {"temperature", "max_tokens", "provider", "model", "base_url", "prompt", "expect",
               "timeout_s"}


def check_agent(params: Mapping[str, Any]) -> None:
    """Check ``agent`` params."""
    _unknown(params, _AGENT_KEYS, "agent")
    _number(params, "temperature", 0.0, 2.0)
    _number(params, "max_tokens", 1, 100_000, integer=True)
    _number(params, "timeout_s", 0.001, 1e6)
    if "provider" in params and params["provider"] not in ("llamacpp", "openai"):
        raise ParamError(f"provider must be 'llamacpp' or 'openai', got {params['provider']!r}",
                         "provider")
    for key in ("model", "base_url", "prompt", "expect"):
        if key in params and not isinstance(params[key], str | None):
            raise ParamError(f"{key} must be a string", key)


def agent(params: dict[str, Any], seed: int, *, state: object = None) -> dict[str, float]:
    """The ``agent`` built-in target (see the module docstring)."""
    reject_state("agent", state)
    from allele.core.agent import AgentConfig, NLPAgent
    from allele.core.genome import Genome

    cfg_keys = {"temperature", "max_tokens", "provider", "model", "base_url", "timeout_s"}
    cfg: dict[str, Any] = {k: params[k] for k in cfg_keys if k in params}
    cfg["kraken_enabled"] = False
    cfg["seed"] = seed
    config = AgentConfig(**cfg)
    genome = Genome.random(np.random.default_rng(seed))
    prompt = str(params.get("prompt") or DEFAULT_AGENT_PROMPT)
    expect = str(params.get("expect") or "").lower()
    provider = None
    if config.provider == "llamacpp":
        # Load the model once per process (the cache is keyed by the load seed); the cell's seed
        # still drives sampling through the request's GenerationParams.
        from allele.core.llm import LlamaCppProvider

        provider = LlamaCppProvider(config.model, n_ctx=config.n_ctx, seed=0)
    with NLPAgent(genome, config, name="bench-agent", provider=provider) as bot:
        start = time.perf_counter()
        stream = bot.stream(prompt)
        chunks = list(stream)
        response = stream.finish()
        total = time.perf_counter() - start
    text = response.text or "".join(chunks)
    tokens = int(response.completion_tokens)
    first = response.time_to_first_token
    decode = total - (first if first is not None else 0.0)
    ok = bool(text.strip()) and (expect in text.lower() if expect else True)
    return {
        "tokens_per_s": float(tokens / decode) if decode > 0 and tokens > 0 else 0.0,
        "time_to_first_token_s": float(first if first is not None else total),
        "completion_tokens": float(tokens),
        "success": 1.0 if ok else 0.0,
    }


# --- genome operators ---------------------------------------------------------------------------

GENOME_OPS = ("mutate", "crossover_blend", "crossover_uniform", "crossover_sbx",
              "select_tournament", "select_rank", "select_roulette", "genome_random",
              "genome_json")


def check_genome_ops(params: Mapping[str, Any]) -> None:
    """Check ``genome_ops`` params."""
    _unknown(params, {"op", "n", "loops"}, "genome_ops")
    if params.get("op", "mutate") not in GENOME_OPS:
        raise ParamError(f"op must be one of {', '.join(GENOME_OPS)}, got {params.get('op')!r}",
                         "op")
    _number(params, "n", 2, 10_000_000, integer=True)
    _number(params, "loops", 1, 10_000_000, integer=True)


def genome_ops(params: dict[str, Any], seed: int, *, state: object = None) -> dict[str, float]:
    """The ``genome_ops`` built-in target (see the module docstring)."""
    reject_state("genome_ops", state)
    from allele.core import operators as ops
    from allele.core.genome import N_TRAITS, Genome

    op = str(params.get("op", "mutate"))
    n = int(params.get("n", 1000))
    loops = int(params.get("loops", 50))
    rng = np.random.default_rng(seed)
    pop = rng.random((n, N_TRAITS))
    other = rng.random((n, N_TRAITS))
    fit = rng.random(n)
    call: Callable[[], object]
    per_call = n
    if op == "mutate":
        def call() -> object:
            return ops.mutate_gaussian(pop, rng, 0.1, 0.1)
    elif op == "crossover_blend":
        def call() -> object:
            return ops.crossover_blend(pop, other, rng)
    elif op == "crossover_uniform":
        def call() -> object:
            return ops.crossover_uniform(pop, other, rng)
    elif op == "crossover_sbx":
        def call() -> object:
            return ops.crossover_sbx(pop, other, rng)
    elif op == "select_tournament":
        def call() -> object:
            return ops.select_tournament(fit, n, rng)
    elif op == "select_rank":
        def call() -> object:
            return ops.select_rank(fit, n, rng)
    elif op == "select_roulette":
        def call() -> object:
            return ops.select_roulette(fit, n, rng)
    elif op == "genome_random":
        per_call = 1

        def call() -> object:
            return Genome.random(rng)
    else:  # genome_json
        per_call = 1
        g = Genome.random(rng)

        def call() -> object:
            return Genome.from_json(g.to_json())
    call()  # first call outside the timing (lazy imports, caches)
    t0 = time.perf_counter()
    for _ in range(loops):
        call()
    elapsed = time.perf_counter() - t0
    return {
        "us_per_call": elapsed / loops * 1e6,
        "ns_per_genome": elapsed / (loops * per_call) * 1e9,
    }


# --- utility targets (for tests, calibration and the overhead benchmark) ------------------------


def spin(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Burn ``ms`` milliseconds of CPU in a pure-Python loop; returns ``iterations``.

    Reference it as ``allele.bench.targets:spin``. ``sleep_ms`` sleeps instead (no CPU).
    """
    if "sleep_ms" in params:
        time.sleep(float(params["sleep_ms"]) / 1000.0)
        return {"iterations": 0.0}
    deadline = time.perf_counter() + float(params.get("ms", 10.0)) / 1000.0
    count = 0
    while time.perf_counter() < deadline:
        count += 1
    return {"iterations": float(count)}


def work(params: dict[str, Any], seed: int) -> dict[str, float]:
    """A fixed amount of CPU work (``n`` loop iterations, default 200000), independent of the
    clock, so serial and parallel runs do the same work. Reference: ``allele.bench.targets:work``.
    """
    n = int(params.get("n", 200_000))
    acc = seed
    for i in range(n):
        acc = (acc * 1103515245 + i) & 0xFFFFFFFF
    return {"checksum": float(acc)}


BUILTINS: dict[str, TargetInfo] = {
    "evolution": TargetInfo(
        "evolution", evolution,
        _declare(best_fitness=("higher", ""), mean_fitness=("higher", ""),
                 diversity=("higher", ""), generations_to_target=("lower", ""),
                 reached_target=("higher", ""), evaluations=("lower", "")),
        check_evolution, "genetic algorithm towards a target personality"),
    "kraken": TargetInfo(
        "kraken", kraken,
        _declare(nrmse=("lower", ""), train_nrmse=("lower", ""), steps_per_s=("higher", "1/s"),
                 fit_s=("lower", "s")),
        check_kraken, "reservoir network, Mackey-Glass one-step prediction"),
    "agent": TargetInfo(
        "agent", agent,
        _declare(tokens_per_s=("higher", "1/s"), time_to_first_token_s=("lower", "s"),
                 completion_tokens=("higher", ""), success=("higher", "")),
        check_agent, "one streamed chat of an NLPAgent"),
    "genome_ops": TargetInfo(
        "genome_ops", genome_ops,
        _declare(us_per_call=("lower", "us"), ns_per_genome=("lower", "ns")),
        check_genome_ops, "genome operator micro-costs"),
}


def include_working_directory() -> None:
    """Make ``module:function`` targets of the working directory importable (in this process
    and in the worker processes it starts), as ``python -m`` would."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


def resolve_target(ref: str) -> TargetFn:
    """A built-in target name or ``package.module:function`` -> the callable.

    Raises :class:`BenchmarkError` when the module cannot be imported or has no such function.
    """
    if ref in BUILTINS:
        return BUILTINS[ref].fn
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise BenchmarkError(f"target {ref!r}: expected a built-in name or package.module:function")
    try:
        module = importlib.import_module(module_name)
    except AlleleError:
        raise
    except Exception as exc:
        raise BenchmarkError(f"target {ref!r}: cannot import {module_name}: "
                             f"{type(exc).__name__}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise BenchmarkError(f"target {ref!r}: {module_name} has no function {attr!r}")
    return fn  # type: ignore[no-any-return]
