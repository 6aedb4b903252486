"""The genome registry on a real SQLite registry: register, alias, load by alias, predict,
compare versions, list, and the ``allele genome`` commands."""

from __future__ import annotations

import json
import math
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from allele.core.evolution import EvolutionConfig, EvolutionEngine
from allele.core.fitness import target_personality
from allele.core.genome import TRAITS, Genome
from allele.core.prompt import build_system_prompt
from allele.errors import TrackingError, ValidationError
from allele.tracking.registry import (
    TAG_FITNESS,
    TAG_GENERATION,
    TAG_GENOME_ID,
    TAG_PARENT_IDS,
    compare_versions,
    get_genome,
    list_genomes,
    load_genome,
    load_genome_model,
    parse_model_ref,
    register_genome,
)

TARGET = {"empathy": 0.9, "creativity": 0.2}


@pytest.fixture(scope="module")
def champion() -> Genome:
    cfg = EvolutionConfig(population_size=40, generations=15, seed=7)
    return EvolutionEngine(cfg, target_personality(TARGET)).run().best


@pytest.fixture
def name() -> str:
    return f"genome-{uuid.uuid4().hex[:8]}"


def test_round_trip_register_alias_load_and_predict(
        mlflow_uri: str, client: Any, champion: Genome, name: str) -> None:
    reg = register_genome(champion, name, tags={"team": "nlp"}, tracking_uri=mlflow_uri,
                          fitness_spec={"target": TARGET})
    assert reg.version == "1" and reg.aliases == ["champion"]
    mv = client.get_model_version_by_alias(name, "champion")
    assert str(mv.version) == "1"
    assert mv.tags[TAG_GENOME_ID] == champion.id
    assert mv.tags[TAG_PARENT_IDS] == ",".join(champion.parent_ids) and champion.parent_ids
    assert mv.tags[TAG_GENERATION] == str(champion.generation)
    assert float(mv.tags[TAG_FITNESS]) == champion.fitness
    assert mv.tags["team"] == "nlp"
    assert {k: str(v) for k, v in client.get_registered_model(name).aliases.items()} == {
        "champion": "1"}

    loaded = load_genome(f"models:/{name}@champion", tracking_uri=mlflow_uri)
    assert loaded == champion  # id, lineage, fitness history and traits, exactly

    model = load_genome_model(f"models:/{name}@champion", tracking_uri=mlflow_uri)
    out = model.predict(pd.DataFrame([
        {"dynamics": None, "fitness_spec": None},
        {"dynamics": "the user sounds frustrated",
         "fitness_spec": json.dumps({"trait_weights": {"empathy": 1.0}})},
    ]))
    assert list(out.columns) == ["genome_id", "system_prompt", "traits", "fitness"]
    assert len(out) == 2
    for traits in out["traits"]:
        assert list(traits) == [champion.traits[t] for t in TRAITS]
    assert out["system_prompt"][0] == build_system_prompt(champion.traits)
    assert out["system_prompt"][1] == build_system_prompt(champion.traits,
                                                          "the user sounds frustrated")
    expected = float(target_personality(TARGET)(champion.vector()[None, :])[0])
    assert out["fitness"][0] == pytest.approx(expected)  # the registration's default spec
    assert out["fitness"][1] == pytest.approx(champion["empathy"])


def test_prompt_is_the_one_the_agent_sends(mlflow_uri: str, champion: Genome, name: str,
                                           tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Also: the model works after its download directory is gone (none is left behind)."""
    from allele.core.agent import AgentConfig, NLPAgent

    register_genome(champion, name, tracking_uri=mlflow_uri)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    model = load_genome_model(f"{name}/1", tracking_uri=mlflow_uri)
    assert list(scratch.iterdir()) == []
    row = model.predict([{}]).iloc[0]
    agent = NLPAgent(champion, AgentConfig(provider="openai", model="x",
                                           base_url="http://127.0.0.1:9/v1"))
    assert row["system_prompt"] == agent.system_prompt
    assert math.isnan(row["fitness"])  # no fitness spec anywhere


def test_reading_a_genome_skips_the_environment_check_loading_the_model_keeps_it(
        mlflow_uri: str, champion: Genome, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`genome show` / `diff` read a genome: MLflow's check of the model's pip requirements
    against this environment (every installed distribution's metadata, about 1.4 s) is for a
    model loaded to be used, so only load_genome_model runs it."""
    import mlflow.pyfunc

    register_genome(champion, name, tracking_uri=mlflow_uri)
    checked: list[list[str]] = []
    monkeypatch.setattr(mlflow.pyfunc, "warn_dependency_requirement_mismatches", checked.append)
    assert load_genome(f"models:/{name}/1", tracking_uri=mlflow_uri).traits == champion.traits
    assert checked == []
    load_genome_model(f"{name}/1", tracking_uri=mlflow_uri)
    assert len(checked) == 1 and any(r.startswith("allele==") for r in checked[0])


def test_versions_aliases_compare_and_list(mlflow_uri: str, champion: Genome, name: str) -> None:
    register_genome(champion, name, tracking_uri=mlflow_uri)
    child = Genome.from_vector(np.clip(champion.vector() + np.linspace(-0.2, 0.2, 8), 0, 1),
                               generation=champion.generation + 1, parent_ids=(champion.id,),
                               fitness_history=[0.5])
    reg2 = register_genome(child, name, alias="challenger", tracking_uri=mlflow_uri)
    assert reg2.version == "2"
    cmp = compare_versions(name, "champion", 2, tracking_uri=mlflow_uri)
    assert (cmp.a.version, cmp.b.version) == ("1", "2")
    assert [t.trait for t in cmp.traits] == list(TRAITS)
    for t in cmp.traits:
        assert t.a == champion[t.trait] and t.b == child[t.trait]
        assert t.delta == pytest.approx(child[t.trait] - champion[t.trait])
    assert cmp.fitness_a == champion.fitness and cmp.fitness_b == 0.5
    assert cmp.fitness_delta == pytest.approx(0.5 - champion.fitness)
    assert len(cmp.changed(1e-9)) == sum(
        abs(child[t] - champion[t]) > 1e-9 for t in TRAITS)
    listed = list_genomes(name, tracking_uri=mlflow_uri)
    assert [(v.version, v.aliases) for v in listed] == [("2", ["challenger"]), ("1", ["champion"])]
    # moving the alias moves what load_genome returns
    register_genome(child, name, alias="champion", tracking_uri=mlflow_uri)
    assert get_genome(f"{name}@champion", tracking_uri=mlflow_uri).version == "3"


def test_errors_are_clear(mlflow_uri: str, champion: Genome, name: str) -> None:
    with pytest.raises(TrackingError, match="no registered genome"):
        load_genome(f"models:/{name}@champion", tracking_uri=mlflow_uri)
    with pytest.raises(ValidationError, match="not a genome model reference"):
        parse_model_ref("models:/a/b/c")
    with pytest.raises(ValidationError, match="invalid registered model name"):
        register_genome(champion, "bad name!", tracking_uri=mlflow_uri)
    with pytest.raises(ValidationError, match="unknown trait"):
        register_genome(champion, name, tracking_uri=mlflow_uri,
                        fitness_spec={"target": {"charm": 1.0}})
    assert parse_model_ref("x@champion") == ("x", "champion", None)
    assert parse_model_ref("models:/x/3") == ("x", None, "3")


def test_genome_cli(mlflow_uri: str, champion: Genome, name: str, tmp_path: Path) -> None:
    from allele.cli import app

    runner = CliRunner(env={"COLUMNS": "220"})
    path = tmp_path / "g.json"
    path.write_text(champion.to_json())
    res = runner.invoke(app, ["genome", "register", str(path), "--name", name, "--tag", "a=b",
                              "--tracking-uri", mlflow_uri])
    assert res.exit_code == 0, res.output
    assert "version 1" in res.output and "champion" in res.output
    child = champion.with_traits(empathy=0.1)
    path2 = tmp_path / "g2.json"
    path2.write_text(child.to_json())
    res = runner.invoke(app, ["genome", "register", str(path2), "--name", name, "--alias",
                              "challenger", "--tracking-uri", mlflow_uri])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["genome", "list", name, "--tracking-uri", mlflow_uri])
    assert res.exit_code == 0 and champion.id in res.output and child.id in res.output
    res = runner.invoke(app, ["genome", "show", f"{name}@champion", "--json",
                              "--tracking-uri", mlflow_uri])
    assert res.exit_code == 0 and Genome.from_json(res.output) == champion
    res = runner.invoke(app, ["genome", "diff", name, "1", "challenger",
                              "--tracking-uri", mlflow_uri])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if "empathy" in x)
    assert f"{champion['empathy']:.4f}" in line and "0.1000" in line
    assert f"{0.1 - champion['empathy']:+.4f}" in line


def test_reading_a_registry_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    from allele.cli import app

    missing = tmp_path / "no" / "dir" / "m.db"
    for args in (["genome", "list"], ["genome", "show", "g@champion"]):
        res = CliRunner().invoke(app, [*args, "--tracking-uri", f"sqlite:///{missing}"])
        assert res.exit_code == 2, res.output
        assert "no MLflow registry at" in res.output and "nothing was created" in res.output
    assert not (tmp_path / "no").exists()  # it made the directories and a 950 KB database
