"""Built-in benchmark targets: they run the real components and report meaningful metrics."""

from __future__ import annotations

import math

import pytest

from allele.bench.executors import ProcessPoolExecutor
from allele.bench.targets import (
    BUILTINS,
    GENOME_OPS,
    ParamError,
    check_agent,
    check_evolution,
    check_genome_ops,
    check_kraken,
    evolution,
    genome_ops,
    kraken,
    resolve_target,
    spin,
    work,
)
from allele.bench.task import CellTask
from allele.errors import BenchmarkError
from allele.store.model import cell_key


def test_evolution_metrics_are_seeded_and_sensible() -> None:
    params = {"population_size": 60, "generations": 25, "target_fitness": 0.9}
    a = evolution(dict(params), 3)
    assert a == evolution(dict(params), 3)  # bit-for-bit reproducible per seed
    assert a != evolution(dict(params), 4)
    assert set(a) == set(BUILTINS["evolution"].metrics)
    assert 0 < a["mean_fitness"] <= a["best_fitness"] <= 1.0
    assert a["diversity"] > 0
    assert a["evaluations"] >= 60 * 25
    if a["reached_target"] == 1.0:
        assert 0 <= a["generations_to_target"] <= 25
    else:
        assert a["generations_to_target"] == 26


def test_evolution_target_is_censored_when_never_reached() -> None:
    out = evolution({"population_size": 10, "generations": 2, "target_fitness": 2.0}, 0)
    assert (out["reached_target"], out["generations_to_target"]) == (0.0, 3.0)
    easy = evolution({"population_size": 10, "generations": 2, "target_fitness": -1.0}, 0)
    assert (easy["reached_target"], easy["generations_to_target"]) == (1.0, 0.0)


def test_more_generations_do_not_lower_the_best_fitness() -> None:
    short = evolution({"population_size": 80, "generations": 3}, 1)
    long = evolution({"population_size": 80, "generations": 40}, 1)
    assert long["best_fitness"] >= short["best_fitness"]


def test_kraken_learns_mackey_glass() -> None:
    params = {"reservoir_size": 100, "train_steps": 1000, "test_steps": 300,
              "spectral_radius": 0.9}
    out = kraken(dict(params), 0)
    assert set(out) == set(BUILTINS["kraken"].metrics)
    assert out["nrmse"] < 0.1  # one-step prediction of a smooth chaotic series
    assert out["steps_per_s"] > 0 and out["fit_s"] > 0
    again = kraken(dict(params), 0)
    assert again["nrmse"] == out["nrmse"]
    assert kraken(dict(params), 1)["nrmse"] != out["nrmse"]


def test_kraken_threads_param_changes_speed_not_numbers() -> None:
    params = {"reservoir_size": 300, "train_steps": 600, "test_steps": 400, "threads": 1}
    one = kraken(dict(params), 3)
    two = kraken({**params, "threads": 2}, 3)
    assert one["nrmse"] == two["nrmse"] and one["train_nrmse"] == two["train_nrmse"]


@pytest.mark.parametrize("op", GENOME_OPS)
def test_genome_ops_measure_every_operator(op: str) -> None:
    out = genome_ops({"op": op, "n": 200, "loops": 3}, 0)
    assert out["us_per_call"] > 0 and out["ns_per_genome"] > 0
    per = 200 if op not in ("genome_random", "genome_json") else 1
    assert math.isclose(out["ns_per_genome"], out["us_per_call"] * 1000 / per)


@pytest.mark.parametrize(("check", "params", "param", "fragment"), [
    (check_evolution, {"populaton_size": 5}, "populaton_size", "unknown parameter"),
    (check_evolution, {"selection": "best"}, "selection", "tournament"),
    (check_evolution, {"population_size": 4, "elitism": 4}, None, "elitism"),
    (check_evolution, {"seed": 3}, "seed", "unknown parameter"),
    (check_kraken, {"reservoir_size": 0}, "reservoir_size", "in [1"),
    (check_kraken, {"backend": "gpu"}, "backend", "numba"),
    (check_kraken, {"threads": 3}, "threads", "in [1"),
    (check_kraken, {"washout": 500, "train_steps": 100}, "washout", "smaller"),
    (check_agent, {"temperature": 3}, "temperature", "in [0.0, 2.0]"),
    (check_agent, {"provider": "hf"}, "provider", "llamacpp"),
    (check_genome_ops, {"op": "fly"}, "op", "mutate"),
    (check_genome_ops, {"n": True}, "n", "integer"),
])
def test_param_checks_name_the_bad_param(check: object, params: dict[str, object],
                                         param: str | None, fragment: str) -> None:
    with pytest.raises(ParamError) as info:
        check(params)  # type: ignore[operator]
    assert info.value.param == param
    assert fragment in str(info.value)


def test_good_params_pass_the_checks() -> None:
    check_evolution({"population_size": 1000, "mutation_rate": 0.2, "selection": "rank",
                     "generations": 50, "target_fitness": 0.97, "cost_us": 1.5})
    check_kraken({"reservoir_size": 1000, "spectral_radius": 0.95, "backend": "numpy"})
    check_agent({"temperature": 0.8, "max_tokens": 64, "provider": "llamacpp"})
    check_genome_ops({"op": "crossover_sbx", "n": 10, "loops": 2})


def test_resolve_target() -> None:
    assert resolve_target("evolution") is evolution
    assert resolve_target("allele.bench.targets:spin") is spin
    with pytest.raises(BenchmarkError, match="cannot import"):
        resolve_target("allele.nothing_here:fn")
    with pytest.raises(BenchmarkError, match="has no function 'nope'"):
        resolve_target("allele.bench.targets:nope")
    with pytest.raises(BenchmarkError, match="expected"):
        resolve_target("not-a-ref")


def test_utility_targets() -> None:
    assert spin({"ms": 1}, 0)["iterations"] > 0
    assert work({"n": 1000}, 1) == work({"n": 1000}, 1)
    assert work({"n": 1000}, 1) != work({"n": 1000}, 2)


@pytest.mark.llm
def test_agent_target_with_the_local_model() -> None:
    """Runs in a worker process: a crash of llama.cpp is a failed assertion, not a dead pytest."""
    params = {"temperature": 0.2, "max_tokens": 16}
    t = CellTask(key=cell_key("agent", params), benchmark="agent", target="agent",
                 params=params, seeds=(0,), timeout_s=300)
    with ProcessPoolExecutor(1) as pool:
        result = next(iter(pool.run([t])))
    assert result.status == "ok", result.error
    assert result.values("success") == [1.0]
    assert 0 < result.values("completion_tokens")[0] <= 16
    assert result.values("tokens_per_s")[0] > 0
    assert 0 < result.values("time_to_first_token_s")[0] < result.values("wall_s")[0]
