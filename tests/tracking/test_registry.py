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


@pytest.mark.parametrize("alias", ["v7", "latest"])
def test_a_refused_alias_registers_nothing(mlflow_uri: str, client: Any, champion: Genome,
                                           name: str, alias: str) -> None:
    """MLflow reserves these aliases; the version used to be created before MLflow refused
    the alias, so a failed `genome register` still left a version without alias."""
    register_genome(champion, name, tracking_uri=mlflow_uri)
    with pytest.raises(ValidationError, match=f"alias '{alias}' is reserved by MLflow"):
        register_genome(champion, name, alias=alias, tracking_uri=mlflow_uri)
    assert [(v.version, v.aliases) for v in list_genomes(name, tracking_uri=mlflow_uri)] == [
        ("1", ["champion"])]
    with pytest.raises(ValidationError, match="alias 'v7' is reserved"):
        register_genome(champion, f"{name}-new", alias="v7", tracking_uri=mlflow_uri)
    assert client.search_registered_models(f"name = '{name}-new'") == []


def test_a_registration_failing_after_the_version_is_undone(
        mlflow_uri: str, client: Any, champion: Genome, name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever fails once the version exists (here MLflow refusing the alias), the version is
    deleted again, and the registered model too when this registration created it."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    register_genome(champion, name, tracking_uri=mlflow_uri)

    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        raise MlflowException("alias refused")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", refuse)
    with pytest.raises(TrackingError, match="alias refused"):
        register_genome(champion, name, alias="other", tracking_uri=mlflow_uri)
    with pytest.raises(TrackingError, match="alias refused"):
        register_genome(champion, f"{name}-new", alias="other", tracking_uri=mlflow_uri)
    monkeypatch.undo()
    assert [str(v.version) for v in client.search_model_versions(f"name = '{name}'")] == ["1"]
    assert client.search_registered_models(f"name = '{name}-new'") == []
    runs = client.search_runs([client.get_experiment_by_name("allele-genomes").experiment_id],
                              filter_string=f"attributes.run_name = 'register-{name}-new'")
    assert [r.info.status for r in runs] == ["FAILED"]


def test_register_does_not_log_the_signature_warning(mlflow_uri: str, champion: Genome,
                                                     name: str) -> None:
    """MLflow logs "Failed to infer model signature" (a genome model takes any rows by
    design) through logging, which the warnings filter did not catch: that one record is
    dropped while registering, and only then; every other MLflow record still passes."""
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("mlflow.pyfunc")
    level, filters = logger.level, list(logger.filters)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        register_genome(champion, name, tracking_uri=mlflow_uri)
        assert logger.filters == filters
        assert not [r for r in records if "infer model signature" in r.getMessage()]
        records.clear()
        from allele.tracking.registry import _no_signature_warning

        with _no_signature_warning():
            logger.warning("Failed to infer model signature: Type hint <x> cannot be used")
            logger.warning("Failed to infer model signature from input example, error: boom")
            logger.warning("something else")
        logger.warning("Failed to infer model signature: Type hint <y> cannot be used")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [r.getMessage() for r in records] == [
        "Failed to infer model signature from input example, error: boom", "something else",
        "Failed to infer model signature: Type hint <y> cannot be used"]


def test_list_finds_names_with_quotes(mlflow_uri: str, client: Any, name: str) -> None:
    """`genome list "a'b"` was MLflow's "Invalid clause(s) in filter string"."""
    for quoted in (f"{name}'s", f'{name}"q'):
        client.create_registered_model(quoted)  # not an Allele name, but MLflow holds it
        client.create_model_version(quoted, source="/nowhere", tags={TAG_GENOME_ID: "g1"})
        assert [(v.name, v.version) for v in list_genomes(quoted, tracking_uri=mlflow_uri)] == [
            (quoted, "1")]
    assert list_genomes(f"{name}'x", tracking_uri=mlflow_uri) == []
    with pytest.raises(ValidationError, match="holds both"):
        list_genomes(f"{name}'\"", tracking_uri=mlflow_uri)


def test_predict_takes_the_dynamics_line_or_its_summary() -> None:
    """The docs call `dynamics` a line; the prompt adds its prefix and period: given the whole
    line, neither is doubled."""
    from allele.tracking.registry import GenomeModel

    model = GenomeModel()
    model.genome = Genome({"empathy": 0.8})
    out = model.predict(None, [{"dynamics": "Conversation dynamics: engagement rising."},
                               {"dynamics": "engagement rising"}])
    expected = build_system_prompt(model.genome.traits, "engagement rising")
    assert list(out["system_prompt"]) == [expected, expected]
    assert expected.endswith("\nConversation dynamics: engagement rising.")


def test_bad_fitness_spec_registers_nothing(mlflow_uri: str, champion: Genome, name: str,
                                            tmp_path: Path) -> None:
    from allele.cli import app

    path = tmp_path / "g.json"
    path.write_text(champion.to_json())
    res = CliRunner().invoke(app, [
        "genome", "register", str(path), "-n", name, "--tracking-uri", mlflow_uri,
        "--fitness-spec", '{"target": {"empathy": 0.9}, "weights": {"empathy": NaN}}'])
    assert res.exit_code == 2, res.output
    assert res.output == "error: weight of 'empathy' must be finite, got nan\n"
    assert list_genomes(name, tracking_uri=mlflow_uri) == []


@pytest.mark.parametrize(("field", "value", "message"), [
    ("fitness_history", 5, "genome field 'fitness_history' must be a list of numbers, got 5"),
    ("parent_ids", "abc", "genome field 'parent_ids' must be a list of genome id strings, got "
                          "'abc'"),
    ("id", None, "genome field 'id' must be a string, got None"),
])
def test_register_refuses_malformed_genome_files(tmp_path: Path, field: str, value: Any,
                                                 message: str) -> None:
    from allele.cli import app

    data = json.loads(Genome().to_json())
    data[field] = value
    path = tmp_path / "g.json"
    path.write_text(json.dumps(data))
    res = CliRunner().invoke(app, ["genome", "register", str(path), "-n", "g",
                                   "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert (res.exit_code, res.output) == (2, f"error: {message}\n")
    assert not (tmp_path / "m.db").exists()


def test_tables_keep_ids_whole_and_fitness_readable(
        mlflow_uri: str, champion: Genome, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """In a pipe (80 columns before) and in an 80-column terminal, `genome list` shows whole
    genome ids (users copy them) and fitness values that differ read differently: `show` printed
    `fitness 1` for 0.9999999979, `diff` `1 | 1 | +2.06826e-09`."""
    from rich.console import Console

    import allele.cli.genome as genome_cli
    from allele.cli import app

    name = f"support-bot-with-a-rather-long-name-{uuid.uuid4().hex[:8]}"
    a = Genome(champion.traits, generation=30, parent_ids=("f46f14d4:29:153",),
               fitness_history=[0.5, 0.9999999958823933])
    b = Genome(champion.traits, id="f46f14d4:30:67", generation=30,
               fitness_history=[0.9999999979317411])
    register_genome(a, name, alias="champion-of-the-week", tracking_uri=mlflow_uri)
    register_genome(b, name, alias="challenger", tracking_uri=mlflow_uri)
    runner = CliRunner()  # not a terminal
    res = runner.invoke(app, ["genome", "list", name, "--tracking-uri", mlflow_uri])
    assert res.exit_code == 0, res.output
    assert a.id in res.output and len(a.id) == 32 and b.id in res.output
    assert "0.9999999959" in res.output and "0.9999999979" in res.output
    monkeypatch.setattr(genome_cli, "_console", lambda: Console(width=80, emoji=False))
    res = runner.invoke(app, ["genome", "list", name, "--tracking-uri", mlflow_uri])
    assert res.exit_code == 0, res.output
    assert max(len(line) for line in res.output.splitlines()) <= 80
    assert a.id in res.output and "0.9999999959" in res.output
    monkeypatch.undo()
    res = runner.invoke(app, ["genome", "show", f"{name}@challenger", "--tracking-uri",
                              mlflow_uri])
    assert res.exit_code == 0, res.output
    assert "generation 30, parents -, fitness 0.9999999979\n" in res.output
    res = runner.invoke(app, ["genome", "diff", name, "1", "2", "--tracking-uri", mlflow_uri])
    line = next(x for x in res.output.splitlines() if "fitness" in x)
    assert line.split()[1:8:2] == ["fitness", "0.9999999959", "0.9999999979", "+2.049e-09"]


def test_fitness_texts_have_digits_enough_to_differ() -> None:
    from allele.cli.genome import fitness_texts

    assert fitness_texts([0.9999999979317411, None, 0.5]) == ["0.9999999979", "-", "0.5"]
    assert fitness_texts([0.99999999793, 0.99999999794]) == ["0.99999999793", "0.99999999794"]
    assert fitness_texts([1.0, 1.0 - 2**-52]) == ["1", "0.9999999999999998"]
    assert fitness_texts([]) == []
