"""Spec validation and matrix expansion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from allele.bench.runner import plan
from allele.bench.select import matches, parse_filters
from allele.bench.spec import (
    BenchmarkSpec,
    load_suite,
    loads_suite,
    ordered,
    parse_suite,
)
from allele.errors import AlleleError, ConfigError
from allele.store.model import cell_key

ROOT = Path(__file__).resolve().parents[2]


def bench(**kw: Any) -> BenchmarkSpec:
    kw.setdefault("name", "b")
    kw.setdefault("target", "pkg.mod:fn")
    return BenchmarkSpec(**kw)


def test_cartesian_product_with_fixed_params() -> None:
    b = bench(matrix={"a": [1, 2], "b": ["x", "y", "z"]}, fixed={"c": 0.5, "a": 99})
    cells = b.expand()
    assert len(cells) == 6
    assert {(c["a"], c["b"]) for c in cells} == {(a, b) for a in (1, 2) for b in "xyz"}
    assert all(c["c"] == 0.5 for c in cells)  # fixed added; the matrix value of 'a' wins


def test_exclude_removes_every_matching_combination() -> None:
    b = bench(matrix={"a": [1, 2], "b": ["x", "y"], "c": [True, False]},
              exclude=[{"a": 1, "b": "y"}, {"c": False, "b": "x", "a": 2}])
    got = {(c["a"], c["b"], c["c"]) for c in b.expand()}
    assert got == {(1, "x", True), (1, "x", False), (2, "x", True), (2, "y", True),
                   (2, "y", False)}


def test_include_follows_github_actions_semantics() -> None:
    b = bench(matrix={"fruit": ["apple", "pear"], "animal": ["cat", "dog"]},
              include=[
                  {"color": "green"},                      # extends every combination
                  {"color": "pink", "animal": "cat"},      # overwrites an added value only
                  {"fruit": "apple", "shape": "circle"},   # extends the apple combinations
                  {"fruit": "banana"},                     # matches nothing: a new combination
                  {"fruit": "banana", "animal": "cat"},    # matches nothing original: new too
              ])
    cells = b.expand()
    by = {(c["fruit"], c.get("animal")): c for c in cells}
    assert by[("apple", "cat")] == {"fruit": "apple", "animal": "cat", "color": "pink",
                                    "shape": "circle"}
    assert by[("apple", "dog")] == {"fruit": "apple", "animal": "dog", "color": "green",
                                    "shape": "circle"}
    assert by[("pear", "cat")] == {"fruit": "pear", "animal": "cat", "color": "pink"}
    assert by[("pear", "dog")] == {"fruit": "pear", "animal": "dog", "color": "green"}
    assert by[("banana", None)] == {"fruit": "banana"}
    assert by[("banana", "cat")] == {"fruit": "banana", "animal": "cat"}
    assert len(cells) == 6


def test_include_never_overwrites_an_original_matrix_value() -> None:
    b = bench(matrix={"a": [1, 2]}, include=[{"a": 3, "extra": 1}])
    cells = b.expand()
    assert {c["a"] for c in cells} == {1, 2, 3}
    assert [c for c in cells if c.get("extra") == 1] == [{"a": 3, "extra": 1}]


def test_include_can_bring_back_an_excluded_combination() -> None:
    b = bench(matrix={"a": [1, 2], "b": [1, 2]}, exclude=[{"a": 2}],
              include=[{"a": 2, "b": 2}])
    assert sorted((c["a"], c["b"]) for c in b.expand()) == [(1, 1), (1, 2), (2, 2)]


def test_no_matrix_is_one_cell_of_fixed_params_and_duplicates_collapse() -> None:
    assert bench(fixed={"n": 3}).expand() == [{"n": 3}]
    b = bench(matrix={"a": [1]}, include=[{"a": 1}, {"b": 5}, {"b": 5}])
    assert b.expand() == [{"a": 1, "b": 5}]


def test_seeds_count_and_list() -> None:
    assert bench(seeds=4).seed_list == [0, 1, 2, 3]
    assert bench(seeds=[7, 3]).seed_list == [7, 3]


def test_seed_matrix_suite_has_all_three_components() -> None:
    full = load_suite(ROOT / "benchmarks" / "seed-matrix.yaml")
    assert full.targets == ["evolution", "kraken", "agent"]
    counts = {b.name: len(b.expand()) for b in full.benchmarks}
    assert counts == {"evolution": 5 * 3 * 2, "kraken": 5 * 2, "agent": 2 * 2}
    evo = full.benchmarks[0]
    assert {c["population_size"] for c in evo.expand()} == {50, 100, 250, 500, 1000}
    quick = load_suite(ROOT / "benchmarks" / "seed-matrix.yaml", preset="quick")
    qcounts = {b.name: len(b.expand()) for b in quick.benchmarks}
    assert qcounts == {"evolution": 6, "kraken": 4, "agent": 2}
    assert all(b.seed_list == list(range(12)) or b.name == "agent" for b in quick.benchmarks)
    assert quick.benchmarks[2].seed_list == [0, 1]
    assert quick.benchmarks[0].fixed["generations"] == 30
    assert quick.benchmarks[0].fixed["target_fitness"] == 0.97  # merged, not replaced


def test_preset_merge_order() -> None:
    text = """
name: s
defaults: {repeats: 2, seeds: 5}
presets: {fast: {repeats: 1, warmup: 1}}
benchmarks:
  - name: one
    target: m:f
    repeats: 3
    matrix: {a: [1, 2, 3], b: [1]}
    presets: {fast: {warmup: 0, matrix: {a: [1]}}}
  - name: two
    target: m:g
"""
    plain = loads_suite(text)
    assert [b.repeats for b in plain.benchmarks] == [3, 2]
    fast = loads_suite(text, preset="fast")
    one, two = fast.benchmarks
    assert (one.repeats, one.warmup, one.matrix) == (1, 0, {"a": [1], "b": [1]})
    assert (two.repeats, two.warmup, two.seed_list) == (1, 1, [0, 1, 2, 3, 4])
    assert fast.preset == "fast"


def test_single_benchmark_file(tmp_path: Path) -> None:
    p = tmp_path / "one.yaml"
    p.write_text("name: solo\ntarget: evolution\norder: sequential\n"
                 "matrix: {population_size: [10, 20]}\nfixed: {generations: 2}\n")
    suite = load_suite(p)
    assert suite.name == "solo" and suite.order == "sequential"
    assert [b.name for b in suite.benchmarks] == ["solo"]
    assert len(plan(suite)) == 2


@pytest.mark.parametrize(("text", "fragments"), [
    ("name: s\ntarget: m:f\nrepeets: 3\n", ["repeets", "unknown key", "allowed:", "repeats"]),
    ("name: s\nbenchmarks:\n  - {name: a, target: m:f}\n  - {name: b, target: m:f, "
     "repeats: 0}\n", ["benchmarks[1].repeats", "greater than or equal to 1"]),
    ("name: s\ntarget: nope\n", ["target", "unknown target 'nope'", "package.module:function"]),
    ("name: s\ntarget: m:f\norder: shuffled\n", ["order", "'randomized' or 'sequential'"]),
    ("name: s\ntarget: m:f\nisolation: thread\n", ["isolation", "'process' or 'inline'"]),
    ("name: s\ntarget: evolution\nmatrix: {populaton_size: [50]}\n",
     ["matrix.populaton_size", "unknown parameter", "population_size"]),
    ("name: s\ntarget: evolution\nmatrix: {mutation_rate: [0.1, 1.5]}\n",
     ["matrix.mutation_rate", "less than or equal to 1"]),
    ("name: s\ntarget: kraken\nfixed: {reservoir_size: big}\n",
     ["fixed.reservoir_size", "integer"]),
    ("name: s\ntarget: evolution\nmetrics: [best_fitness, speed]\n",
     ["metrics[1]", "unknown metric 'speed'", "wall_s"]),
    ("name: s\ntarget: m:f\nmatrix: {a: []}\n", ["matrix", "no values"]),
    ("name: s\ntarget: m:f\nseeds: [1, 1]\n", ["seeds", "repeats a seed"]),
    ("name: s\ntarget: m:f\nseeds: 0\n", ["seeds", "between 1 and"]),
    ("name: s\npresets: {quick: {repets: 1}}\nbenchmarks: [{name: a, target: m:f}]\n",
     ["presets.quick.repets", "unknown key", "allowed:"]),
    ("name: s\nbenchmarks:\n  - {name: a, target: m:f}\n  - {name: a, target: m:g}\n",
     ["benchmarks[1].name", "duplicate"]),
    ("name: s\nbenchmarks:\n  - {name: a, target: m:f, matrix: {x: [1]}}\n"
     "  - {name: b, target: m:f, fixed: {x: 1}}\n", ["both define the cell"]),
    ("name: s\nbenchmarks: []\n", ["benchmarks", "at least 1"]),
    ("name: s\ntarget: m:f\nmatrix: [1, 2]\n", ["matrix", "dictionary"]),
    ("- 1\n- 2\n", ["must be a mapping"]),
    ("name: s\ntarget: m:f\nmatrix: {a: [1, 2\n", ["invalid YAML at line"]),
    ("target: m:f\n", ["name", "required"]),
])
def test_bad_specs_are_one_line_config_errors(text: str, fragments: list[str],
                                              tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_suite(p)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{p}: ")
    for fragment in fragments:
        assert fragment in msg, msg


def test_unknown_preset_lists_the_known_ones(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("name: s\ntarget: m:f\npresets: {quick: {seeds: 1}, ci: {seeds: 2}}\n")
    with pytest.raises(ConfigError, match=r"unknown preset 'fast' \(allowed: ci, quick\)"):
        load_suite(p, preset="fast")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such spec file"):
        load_suite(tmp_path / "absent.yaml")


def test_filters_parse_values_as_yaml_scalars() -> None:
    f = parse_filters(["population_size=100", "selection=rank", "selection=tournament",
                       "benchmark=evolution"])
    assert f == {"population_size": [100], "selection": ["rank", "tournament"],
                 "benchmark": ["evolution"]}
    params = {"population_size": 100, "selection": "rank"}
    assert matches(f, "evolution", "evolution", params)
    assert not matches(f, "other", "evolution", params)
    assert not matches(f, "evolution", "evolution", {**params, "selection": "roulette"})
    assert not matches({"missing": [1]}, "b", "t", params)
    with pytest.raises(ConfigError, match="key=value"):
        parse_filters(["novalue"])


def test_randomized_order_is_a_seeded_permutation() -> None:
    items = list(range(50))
    a = ordered(items, "randomized", 3)
    assert a == ordered(items, "randomized", 3)
    assert a != items and sorted(a) == items
    assert ordered(items, "randomized", 4) != a
    assert ordered(items, "sequential", 3) == items


def test_plan_keys_tasks_and_filters() -> None:
    suite = load_suite(ROOT / "benchmarks" / "seed-matrix.yaml", preset="quick")
    tasks = plan(suite)
    # 12 cells: evolution and kraken in 3 rounds of 4 seeds, the agent in 2 rounds of 1
    assert len({t.key for t in tasks}) == 12 and len(tasks) == 10 * 3 + 2 * 2
    assert [t.index for t in tasks] == list(range(len(tasks)))
    t = next(t for t in tasks if t.target == "kraken" and t.round == 1)
    assert t.key == cell_key("kraken", t.params) and t.warmup == 1
    assert t.seeds == (1, 4, 7, 10) and t.rounds == 3
    agent = [t.seeds for t in tasks if t.target == "agent" and t.params["temperature"] == 0.2]
    assert agent == [(0,), (1,)]
    only = plan(suite, ["benchmark=kraken", "reservoir_size=50"])
    assert len(only) == 2 * 3 and all(t.params["reservoir_size"] == 50 for t in only)


# --- hypothesis: whatever the input, a clear AlleleError or a valid spec ---------------------

_keys = st.sampled_from(["name", "target", "matrix", "include", "exclude", "fixed", "repeats",
                         "warmup", "timeout_s", "seeds", "order", "order_seed", "isolation",
                         "metrics", "presets", "defaults", "benchmarks", "profile",
                         "tracemalloc", "memory_limit_mb", "rounds", "bogus", "quick"])
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**20),
                     st.floats(allow_nan=True), st.text(max_size=12),
                     st.sampled_from(["evolution", "kraken", "m:f", "process", "inline",
                                      "randomized", "population_size"]))
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(_keys, st.text(max_size=6)), inner,
                                            max_size=4)),
    max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.dictionaries(_keys, _values, max_size=8), _values),
       preset=st.sampled_from([None, "quick"]))
@example(data={"matrix": {"\n": None}}, preset=None)  # a key with a line break, found by fuzzing
def test_random_specs_never_escape_as_tracebacks(data: Any, preset: str | None) -> None:
    try:
        suite = parse_suite(data, source="fuzz.yaml", preset=preset)
    except AlleleError as exc:
        assert str(exc).startswith("fuzz.yaml: ")
        assert "\n" not in str(exc)
    else:
        for b in suite.benchmarks:
            b.expand()


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_random_yaml_text_never_escapes(text: str) -> None:
    try:
        loads_suite(text, source="t.yaml")
    except AlleleError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=100, deadline=None)
@given(matrix=st.dictionaries(st.sampled_from(["a", "b", "c"]),
                              st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True),
                              min_size=1, max_size=3),
       exclude=st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 3),
                                        min_size=1, max_size=2), max_size=3))
def test_expansion_is_the_product_minus_excludes(matrix: dict[str, list[int]],
                                                 exclude: list[dict[str, int]]) -> None:
    import itertools

    b = bench(matrix=matrix, exclude=exclude)
    axes = list(matrix)
    product = [dict(zip(axes, v, strict=True)) for v in itertools.product(*matrix.values())]
    expected = [c for c in product
                if not any(all(c.get(k) == v for k, v in e.items()) for e in exclude)]
    assert b.expand() == expected


def test_yaml_round_trip_of_a_model_dump(tmp_path: Path) -> None:
    suite = load_suite(ROOT / "benchmarks" / "seed-matrix.yaml", preset="quick")
    dumped = suite.model_dump(mode="json")
    again = type(suite).model_validate(yaml.safe_load(yaml.safe_dump(dumped)))
    assert plan(again) == plan(suite)


def test_null_values_survive_merging_and_a_preset_can_reset_metrics() -> None:
    suite = loads_suite("name: s\ntarget: m:f\nfixed: {x: null}\nmatrix: {a: [null, 1]}\n"
                        "include: [{b: null}]\nmetrics: [a]\npresets: {all: {metrics: null}}\n",
                        preset="all")
    b = suite.benchmarks[0]
    assert b.expand() == [{"x": None, "a": None, "b": None}, {"x": None, "a": 1, "b": None}]
    assert b.metrics is None


def test_exponent_numbers_are_numbers_in_specs_and_filters() -> None:
    """YAML 1.2's floats: ``n: [1e5, 2.0e5]`` ran n='1e5' (a string, shown as n=1e5) beside
    n=200000.0, because YAML 1.1 wants a dot; a quoted "1e5" stays a string."""
    suite = loads_suite('name: e\ntarget: m:f\nmatrix: {n: [1e5, 2.0e5, 3E-2, "1e5"]}\n')
    values = [c["n"] for c in suite.benchmarks[0].expand()]
    assert values == [100000.0, 200000.0, 0.03, "1e5"]
    assert parse_filters(["n=1e5"]) == {"n": [100000.0]}
    assert matches(parse_filters(["n=1e5"]), "e", "m:f", {"n": 100000.0})
