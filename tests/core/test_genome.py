import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from allele.core.genome import TRAITS, Genome, check_vector
from allele.errors import AlleleError, ValidationError

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
trait_maps = st.fixed_dictionaries({t: unit for t in TRAITS})


def test_eight_traits_in_design_order():
    assert TRAITS == (
        "empathy", "engagement", "technical_knowledge", "creativity",
        "conciseness", "context_awareness", "adaptability", "personability",
    )


def test_defaults_and_partial_traits():
    g = Genome({"empathy": 0.9})
    assert g["empathy"] == 0.9
    assert all(g[t] == 0.5 for t in TRAITS if t != "empathy")
    assert g.generation == 0 and g.parent_ids == () and g.fitness is None
    assert len(g.id) == 32


@given(trait_maps, st.integers(0, 10_000), st.lists(st.floats(allow_nan=False,
       allow_infinity=False), max_size=5), st.lists(st.text(min_size=1, max_size=8), max_size=3))
def test_json_round_trip_is_lossless(traits, generation, history, parents):
    g = Genome(traits, generation=generation, fitness_history=history, parent_ids=parents)
    back = Genome.from_json(g.to_json())
    assert back == g
    assert back.traits == traits  # exact floats, not approximately
    assert back.fitness_history == history
    assert json.loads(g.to_json())["traits"] == traits


@pytest.mark.parametrize("value", [-0.01, 1.0001, math.nan, math.inf, "0.5", None, True])
def test_bad_values_name_the_trait_and_value(value):
    with pytest.raises(ValidationError) as info:
        Genome({"creativity": value})
    assert "creativity" in str(info.value)
    assert repr(value) in str(info.value) or str(value) in str(info.value)


def test_unknown_trait_is_named():
    with pytest.raises(ValidationError, match="unknown trait 'humour'"):
        Genome({"humour": 0.5})
    with pytest.raises(ValidationError, match="humour"):
        Genome()["humour"]


def test_validation_error_is_an_allele_error():
    assert issubclass(ValidationError, AlleleError)


def test_from_dict_is_strict():
    d = Genome().to_dict()
    del d["traits"]["empathy"]
    with pytest.raises(ValidationError, match="missing trait.*empathy"):
        Genome.from_dict(d)
    d = Genome().to_dict()
    d["colour"] = "red"
    with pytest.raises(ValidationError, match="unknown genome field.*colour"):
        Genome.from_dict(d)
    with pytest.raises(ValidationError, match="not valid JSON"):
        Genome.from_json("{nope")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("fitness_history", 5, "'fitness_history' must be a list of numbers, got 5"),
    ("fitness_history", "0.9", "'fitness_history' must be a list of numbers, got '0.9'"),
    ("fitness_history", [0.5, "x"], "'fitness_history' must be a list of numbers"),
    ("fitness_history", [True], "'fitness_history' must be a list of numbers"),
    ("parent_ids", "abc", "'parent_ids' must be a list of genome id strings, got 'abc'"),
    ("parent_ids", [1, 2], "'parent_ids' must be a list of genome id strings, got \\[1, 2\\]"),
    ("parent_ids", None, "'parent_ids' must be a list of genome id strings, got None"),
    ("id", None, "'id' must be a string, got None"),
    ("id", 42, "'id' must be a string, got 42"),
    ("generation", "3", "generation must be an integer >= 0, got '3'"),
])
def test_malformed_json_fields_are_named(field, value, message):
    """A user's genome file with a field of the wrong type is a one-line ValidationError naming
    the field: `"fitness_history": 5` was a TypeError, `"parent_ids": "abc"` became parents
    a, b, c, and `"id": null` the id "None"."""
    d = Genome({"empathy": 0.7}, parent_ids=("p1",), fitness_history=[0.25]).to_dict()
    d[field] = value
    with pytest.raises(ValidationError, match=message) as info:
        Genome.from_json(json.dumps(d))
    assert "\n" not in str(info.value)


def test_json_fields_are_read_as_they_are():
    g = Genome.from_json(json.dumps({
        "id": "g:1:2", "generation": 3, "parent_ids": ["g:0:1", "g:0:7"],
        "traits": dict.fromkeys(TRAITS, 0.25), "fitness_history": [0.5, 1]}))
    assert (g.id, g.generation, g.parent_ids) == ("g:1:2", 3, ("g:0:1", "g:0:7"))
    assert g.fitness_history == [0.5, 1.0] and g.fitness == 1.0
    without = Genome.from_json(json.dumps({"traits": dict.fromkeys(TRAITS, 0.25)}))
    assert len(without.id) == 32 and without.parent_ids == () and without.fitness_history == []


def test_vector_views_are_copies():
    g = Genome({"empathy": 0.2})
    v = g.vector()
    v[0] = 0.99
    t = g.traits
    t["empathy"] = 0.77
    assert g["empathy"] == 0.2


def test_from_vector_checks_shape_and_range():
    with pytest.raises(ValidationError, match="shape"):
        Genome.from_vector([0.1, 0.2])
    with pytest.raises(ValidationError, match="adaptability"):
        Genome.from_vector([0.5] * 6 + [1.5, 0.5])
    assert check_vector(np.zeros(8)).dtype == np.float64


def test_random_is_seeded():
    a = Genome.random(np.random.default_rng(3))
    b = Genome.random(np.random.default_rng(3))
    assert a.traits == b.traits and a.id != b.id


def test_with_traits_makes_a_child():
    parent = Genome({"empathy": 0.2}, generation=4)
    child = parent.with_traits(empathy=0.3)
    assert child.parent_ids == (parent.id,) and child.generation == 5 and child["empathy"] == 0.3
    with pytest.raises(ValidationError):
        parent.with_traits(empathy=2.0)
