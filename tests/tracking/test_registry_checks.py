"""What the genome registry refuses before it writes anything (no MLflow database needed):
aliases MLflow reserves, fitness specs that would make every fitness NaN, names a filter string
must quote, and predict's dynamics line."""

from __future__ import annotations

import math

import numpy as np
import pytest

from allele.core.fitness import target_personality, weighted_objectives
from allele.core.genome import TRAITS, Genome
from allele.core.prompt import build_system_prompt
from allele.errors import ValidationError
from allele.tracking.registry_checks import (
    check_alias,
    check_model_name,
    dynamics_summary,
    fitness_from_spec,
    name_filter,
)


@pytest.mark.parametrize("alias", ["latest", "Latest", "LATEST", "v7", "V12", "v0"])
def test_aliases_mlflow_reserves_are_refused(alias: str) -> None:
    with pytest.raises(ValidationError, match=f"alias '{alias}' is reserved by MLflow"):
        check_alias(alias)


@pytest.mark.parametrize("alias", ["bad alias", "a/b", "x@y", "", "a" * 256, "ok\n"])
def test_aliases_mlflow_cannot_hold_are_refused(alias: str) -> None:
    with pytest.raises(ValidationError, match="invalid alias"):
        check_alias(alias)


@pytest.mark.parametrize("alias", ["champion", "v7b", "version7", "latest-2", "a_b-c", "a" * 255])
def test_good_aliases_pass(alias: str) -> None:
    assert check_alias(alias) == alias


def test_alias_rule_is_mlflows() -> None:
    """The same verdicts as MLflow's own checks, on both sides of every rule."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import (
        _validate_model_alias_name,
        _validate_model_alias_name_reserved,
    )

    for alias in ["latest", "LaTeSt", "v7", "V7", "v", "v7b", "champion", "a-b_c", "a b", "a.b",
                  "a" * 255, "a" * 256, "ünï"]:
        try:
            _validate_model_alias_name(alias)
            _validate_model_alias_name_reserved(alias)
            mlflow_ok = True
        except MlflowException:
            mlflow_ok = False
        try:
            check_alias(alias)
            ours = True
        except ValidationError:
            ours = False
        assert ours == mlflow_ok, alias


def test_model_names() -> None:
    assert check_model_name("support-bot.v2_a") == "support-bot.v2_a"
    for bad in ["a'b", "bad name", "-x", "", "a\n"]:
        with pytest.raises(ValidationError, match="invalid registered model name"):
            check_model_name(bad)


@pytest.mark.parametrize(("spec", "message"), [
    ('{"target": {"empathy": 0.9}, "weights": {"empathy": NaN}}',
     "weight of 'empathy' must be finite, got nan"),
    ('{"target": {"empathy": 0.9}, "weights": {"empathy": Infinity}}',
     "weight of 'empathy' must be finite, got inf"),
    ('{"trait_weights": {"empathy": -Infinity}}', "weight of 'empathy' must be finite, got -inf"),
    ('{"trait_weights": {"empathy": NaN}}', "weight of 'empathy' must be finite, got nan"),
    ('{"target": {"empathy": NaN}}', "trait 'empathy' must be in \\[0, 1\\], got nan"),
    ('{"target": 5}', "fitness spec 'target' must be a mapping of trait -> number, got 5"),
    ('{"target": {"empathy": 0.9}, "weights": [1]}', "fitness spec 'weights' must be a mapping"),
    ('{"trait_weights": "empathy"}', "fitness spec 'trait_weights' must be a mapping"),
    ('{"target": {"empathy": 0.9}, "trait_weights": {"empathy": 1}}', "not both"),
    ('{"weights": {"empathy": 1}, "trait_weights": {"empathy": 1}}', "'weights' needs a 'target'"),
    ('{"trait_weights": {"empathy": "1"}}', "weight of 'empathy' must be a number"),
])
def test_bad_fitness_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        fitness_from_spec(spec)


def test_good_fitness_specs_score() -> None:
    g = Genome({"empathy": 0.6})
    target = fitness_from_spec({"target": {"empathy": 0.9}, "weights": {"empathy": 2.0}})
    assert target(g.vector()[None, :])[0] == pytest.approx(1 - 0.3)
    linear = fitness_from_spec('{"trait_weights": {"empathy": 1, "creativity": 1}}')
    assert linear(g.vector()[None, :])[0] == pytest.approx((0.6 + 0.5) / 2)
    assert fitness_from_spec({"target": {"empathy": 0.9}, "weights": None}) is not None


def test_core_fitness_functions_refuse_non_finite_weights() -> None:
    """The functions the specs build on: a NaN or infinite weight made every fitness NaN."""
    for weight in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValidationError, match="weight of 'empathy' must be finite"):
            target_personality({"empathy": 0.9}, weights={"empathy": weight})
        with pytest.raises(ValidationError, match="weight of 'empathy' must be finite"):
            weighted_objectives({"empathy": weight})
    fn = weighted_objectives({"empathy": 1e300, "creativity": 1.0})
    assert np.isfinite(fn(np.full((1, len(TRAITS)), 0.5))).all()


def test_name_filter_quotes_what_mlflow_can_quote() -> None:
    assert name_filter("support-bot") == "name = 'support-bot'"
    assert name_filter("a'b") == 'name = "a\'b"'
    assert name_filter('a"b') == "name = 'a\"b'"
    with pytest.raises(ValidationError, match="holds both ' and \""):
        name_filter("a'b\"c")


@pytest.mark.parametrize("given", [
    "engagement rising",
    "engagement rising.",
    "Conversation dynamics: engagement rising",
    "Conversation dynamics: engagement rising.",
    "  conversation dynamics:   engagement rising.  ",
])
def test_dynamics_line_or_summary_gives_one_prefix_and_one_period(given: str) -> None:
    assert dynamics_summary(given) == "engagement rising"
    prompt = build_system_prompt(Genome().traits, dynamics_summary(given))
    assert prompt.endswith("\nConversation dynamics: engagement rising.")
    assert prompt.count("Conversation dynamics") == 1


@pytest.mark.parametrize("given", [None, math.nan, "", "  ", "Conversation dynamics:", "."])
def test_no_dynamics(given: object) -> None:
    assert dynamics_summary(given) is None
