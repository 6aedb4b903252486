"""A model registry for evolved genomes, on the MLflow Model Registry.

A genome is registered as an MLflow pyfunc model (:class:`GenomeModel`) whose one artifact is the
genome JSON. ``predict`` returns, for every input row, the system prompt the genome gives an
agent (``allele.core.prompt.build_system_prompt``, exactly what :class:`allele.core.agent.NLPAgent`
sends), the trait vector, and a fitness when the row (or the registration) names a fitness spec.

Versions carry the lineage as tags (``allele.genome_id``, ``allele.parent_ids``,
``allele.generation``, ``allele.fitness``); the registry uses aliases (``champion`` by default),
never stages. URIs are ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.

Fitness specs are JSON mappings: ``{"target": {trait: value, ...}, "weights": {...}}`` (closeness
to a target personality, see :func:`allele.core.fitness.target_personality`) or
``{"trait_weights": {trait: weight, ...}}`` (a linear objective).

Importing this module imports MLflow (it raises :class:`~allele.errors.TrackingError` without).
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from allele.core.genome import TRAITS, Genome
from allele.errors import TrackingError, ValidationError
from allele.tracking._deps import require_mlflow
from allele.tracking._sqlite import open_client, sqlite_file
from allele.tracking.registry_checks import (
    check_alias,
    check_model_name,
    dynamics_summary,
    fitness_from_spec,
    name_filter,
    parse_model_ref,
    parse_tags,
    present,
)

_log = logging.getLogger(__name__)

mlflow = require_mlflow()
importlib.import_module("mlflow.pyfunc")
import pandas as pd  # noqa: E402  (a dependency of MLflow; the predict type hint needs it)

_MODEL_CODE = """\
# The genome pyfunc model of Allele (MLflow models-from-code: nothing is pickled).
import mlflow

from allele.tracking.registry import GenomeModel

mlflow.models.set_model(GenomeModel())
"""

MODEL_ARTIFACT_PATH = "genome_model"
GENOME_ARTIFACT = "genome"
DEFAULT_EXPERIMENT = "allele-genomes"

TAG_GENOME_ID = "allele.genome_id"
TAG_PARENT_IDS = "allele.parent_ids"
TAG_GENERATION = "allele.generation"
TAG_FITNESS = "allele.fitness"


def system_prompt_for(genome: Genome, dynamics: str | None = None) -> str:
    """The system prompt an NLPAgent with this genome sends (the agent's own mapping);
    ``dynamics`` as in :func:`dynamics_summary`."""
    from allele.core.prompt import build_system_prompt

    return build_system_prompt(genome.traits, dynamics_summary(dynamics))


def _rows(model_input: Any) -> list[dict[str, Any]]:
    if model_input is None:
        return [{}]
    if hasattr(model_input, "to_dict") and hasattr(model_input, "columns"):
        records: list[dict[str, Any]] = model_input.to_dict(orient="records")
        return records
    if isinstance(model_input, Mapping):
        return [dict(model_input)]
    if isinstance(model_input, Sequence) and not isinstance(model_input, str):
        return [dict(r) if isinstance(r, Mapping) else {} for r in model_input]
    raise ValidationError(f"GenomeModel.predict takes rows (a DataFrame or a list of mappings), "
                          f"got {type(model_input).__name__}")


class GenomeModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """The pyfunc flavour of a genome: the artifact ``genome`` is the genome JSON.

    ``predict(rows)`` gives one output row per input row with ``genome_id``, ``system_prompt``,
    ``traits`` (the 8 values in :data:`allele.core.genome.TRAITS` order) and ``fitness``. Optional
    input columns: ``dynamics`` (a conversation-dynamics summary such as ``engagement rising``,
    shown as the prompt line ``Conversation dynamics: engagement rising.``; that whole line is
    accepted too, see :func:`dynamics_summary`) and
    ``fitness_spec`` (a fitness spec mapping or JSON string); without a row spec the spec given
    at registration (model config ``fitness_spec``) is used, and without either ``fitness`` is
    NaN.
    """

    genome: Genome
    fitness_spec: Any = None

    def load_context(self, context: Any) -> None:
        path = Path(context.artifacts[GENOME_ARTIFACT])
        self.genome = Genome.from_json(path.read_text(encoding="utf-8"))
        config = getattr(context, "model_config", None) or {}
        self.fitness_spec = config.get("fitness_spec")

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> Any:
        genome = self.genome
        vec = genome.vector()
        out: list[dict[str, Any]] = []
        for row in _rows(model_input):
            dynamics = row.get("dynamics")
            spec = row.get("fitness_spec")
            if not present(spec):
                spec = self.fitness_spec
            fitness = math.nan
            if spec is not None and present(spec):
                fn = fitness_from_spec(spec)
                fitness = float(np.asarray(fn(vec[None, :]))[0])
            out.append({
                "genome_id": genome.id,
                "system_prompt": system_prompt_for(genome, dynamics),
                "traits": [float(v) for v in vec],
                "fitness": fitness,
            })
        return pd.DataFrame(out, columns=["genome_id", "system_prompt", "traits", "fitness"])


# ----------------------------------------------------------------------------- registry API
@dataclass
class RegisteredGenome:
    """One registered genome version."""

    name: str
    version: str
    genome: Genome
    aliases: list[str] = field(default_factory=list)
    run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """``models:/NAME/VERSION``."""
        return f"models:/{self.name}/{self.version}"


@dataclass
class TraitDifference:
    """One trait of two genome versions."""

    trait: str
    a: float
    b: float

    @property
    def delta(self) -> float:
        """``b - a``."""
        return self.b - self.a


@dataclass
class GenomeComparison:
    """Two versions of a registered genome side by side."""

    name: str
    a: RegisteredGenome
    b: RegisteredGenome
    traits: list[TraitDifference]

    @property
    def fitness_a(self) -> float | None:
        """The first version's fitness (its genome's latest)."""
        return self.a.genome.fitness

    @property
    def fitness_b(self) -> float | None:
        """The second version's fitness."""
        return self.b.genome.fitness

    @property
    def fitness_delta(self) -> float | None:
        """``fitness_b - fitness_a`` when both are known."""
        if self.fitness_a is None or self.fitness_b is None:
            return None
        return self.fitness_b - self.fitness_a

    def changed(self, tolerance: float = 0.0) -> list[TraitDifference]:
        """The traits whose values differ by more than ``tolerance``."""
        return [t for t in self.traits if abs(t.delta) > tolerance]


def _uri(tracking_uri: str | None) -> str:
    if tracking_uri:
        return tracking_uri
    from allele.config import load_settings

    return load_settings().tracking.tracking_uri


def _client(tracking_uri: str | None, *, read: bool = True) -> Any:
    """An MlflowClient on the registry; for a ``read`` (list, show, load) of a SQLite registry,
    its file must exist: MLflow would create it, and its directories, only to find nothing
    (``genome list --tracking-uri sqlite:////no/dir/m.db`` left a 950 KB database behind)."""
    uri = _uri(tracking_uri)
    db = sqlite_file(uri)
    if read and db is not None and not db.exists():
        raise TrackingError(f"no MLflow registry at {uri!r}: the file does not exist (nothing "
                            "was created; `allele genome register` creates it)")
    try:
        return open_client(uri)  # a new SQLite database is created atomically
    except TrackingError:
        raise  # a half-created SQLite database, named
    except Exception as exc:  # an unsupported or malformed URI: MLflow says so at once
        text = " ".join(str(exc).split())[:300]
        raise TrackingError(f"cannot use the MLflow registry at {uri!r}: {text}") from None


def _lineage_tags(genome: Genome) -> dict[str, str]:
    tags = {
        TAG_GENOME_ID: genome.id,
        TAG_PARENT_IDS: ",".join(genome.parent_ids),
        TAG_GENERATION: str(genome.generation),
    }
    if genome.fitness is not None:
        tags[TAG_FITNESS] = repr(float(genome.fitness))
    return tags


class _DropSignatureWarning(logging.Filter):
    """Drops MLflow's "Failed to infer model signature: Type hint ..." record: a genome model
    takes any rows by design (its predict is typed ``pd.DataFrame -> Any``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to infer model signature: Type hint")


@contextmanager
def _no_signature_warning() -> Iterator[None]:
    logger = logging.getLogger("mlflow.pyfunc")
    drop = _DropSignatureWarning()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _save_genome_model(client: Any, run_id: str, genome: Genome,
                       fitness_spec: Mapping[str, Any] | None) -> None:
    """Save the genome as a pyfunc model and log it as the run's ``genome_model`` artifact."""
    import allele

    with tempfile.TemporaryDirectory() as tmp:
        genome_path = Path(tmp) / "genome.json"
        genome_path.write_text(genome.to_json(), encoding="utf-8")
        model_dir = Path(tmp) / MODEL_ARTIFACT_PATH
        code_path = Path(tmp) / "genome_model.py"
        code_path.write_text(_MODEL_CODE, encoding="utf-8")
        with warnings.catch_warnings(), _no_signature_warning():
            warnings.filterwarnings("ignore", message=".*[Tt]ype hint.*")
            mlflow.pyfunc.save_model(
                path=str(model_dir),
                python_model=str(code_path),
                artifacts={GENOME_ARTIFACT: str(genome_path)},
                model_config=({"fitness_spec": dict(fitness_spec)} if fitness_spec else None),
                pip_requirements=[f"allele=={allele.__version__}",
                                  f"mlflow=={mlflow.__version__}"],
            )
        client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT_PATH)


def _create_version(client: Any, name: str, run_id: str, alias: str | None,
                    tags: dict[str, str], description: str | None) -> Any:
    """A new version of ``name`` from the run's model, ``alias`` pointed at it; if anything
    fails (Ctrl-C included) the version, and the registered model if this call made it, are
    removed again: a failed registration leaves no version behind."""
    from mlflow.exceptions import MlflowException

    created = False
    try:
        client.create_registered_model(name, description=description)
        created = True
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    mv = None
    try:
        mv = client.create_model_version(
            name, source=f"runs:/{run_id}/{MODEL_ARTIFACT_PATH}", run_id=run_id, tags=tags,
            description=description)
        if alias:
            client.set_registered_model_alias(name, alias, mv.version)
    except BaseException:
        _undo_version(client, name, mv, created)
        raise
    return mv


def _undo_version(client: Any, name: str, mv: Any, created_model: bool) -> None:
    try:
        if mv is not None:
            client.delete_model_version(name, str(mv.version))
        if created_model and not client.search_model_versions(name_filter(name)):
            client.delete_registered_model(name)
    except Exception as exc:  # the original error is the one raised; this one is logged
        _log.error("could not remove version %s of %r after a failed registration: %s",
                   getattr(mv, "version", "-"), name, exc)


def register_genome(
    genome: Genome,
    name: str,
    alias: str | None = "champion",
    tags: Mapping[str, Any] | None = None,
    *,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    fitness_spec: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> RegisteredGenome:
    """Register ``genome`` as a new version of model ``name`` and point ``alias`` at it.

    The version's tags hold the lineage (genome id, parent ids, generation, fitness) plus
    ``tags``. ``fitness_spec`` (validated now) becomes the model's default fitness for predict.
    Name, alias and spec are checked before anything is written; a registration that fails
    later leaves no version behind.
    """
    if not isinstance(genome, Genome):
        raise ValidationError(f"register_genome takes a Genome, got {type(genome).__name__}")
    check_model_name(name)
    if alias:
        check_alias(alias)
    if fitness_spec is not None:
        fitness_from_spec(fitness_spec)  # fail now, not at predict time
    from mlflow.exceptions import MlflowException

    from allele.tracking._common import default_artifact_location, owner_tags

    uri = _uri(tracking_uri)
    client = _client(uri, read=False)
    version_tags = {**_lineage_tags(genome), **{str(k): str(v) for k, v in (tags or {}).items()}}
    try:
        exp = client.get_experiment_by_name(experiment)
        exp_id = (exp.experiment_id if exp is not None else client.create_experiment(
            experiment, artifact_location=default_artifact_location(uri)))
        run = client.create_run(exp_id, run_name=f"register-{name}",
                                tags={"allele.kind": "genome", **owner_tags(),
                                      **_lineage_tags(genome)})
        run_id = run.info.run_id
        try:
            _save_genome_model(client, run_id, genome, fitness_spec)
            client.log_param(run_id, "genome_id", genome.id)
            mv = _create_version(client, name, run_id, alias, version_tags, description)
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id, status="FINISHED")
    except MlflowException as exc:
        raise TrackingError(f"could not register genome {genome.id} as {name!r} at {uri}: "
                            f"{exc}") from exc
    return RegisteredGenome(name=name, version=str(mv.version), genome=genome,
                            aliases=[alias] if alias else [], run_id=run_id, tags=version_tags)


def register_genome_file(
    path: str | os.PathLike[str],
    name: str,
    alias: str | None = "champion",
    tags: Sequence[str] = (),
    *,
    fitness_spec: str | None = None,
    tracking_uri: str | None = None,
) -> RegisteredGenome:
    """:func:`register_genome` from a genome JSON file (``Genome.to_json``), ``KEY=VALUE`` tags
    and a JSON fitness spec: what ``allele genome register`` takes."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read genome file {path}: {exc}") from None
    genome = Genome.from_json(text)
    spec = None
    if fitness_spec is not None:
        try:
            spec = json.loads(fitness_spec)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"--fitness-spec is not valid JSON: {exc}") from None
    return register_genome(genome, name, alias=alias, tags=parse_tags(tags),
                           tracking_uri=tracking_uri, fitness_spec=spec)


def _model_version(client: Any, ref: str) -> Any:
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_model_ref(ref)
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise TrackingError(f"no registered genome {ref!r}: {exc.message}") from None


def _download_model(client: Any, mv: Any, uri: str, dst: str) -> str:
    import mlflow.artifacts

    source = client.get_model_version_download_uri(mv.name, mv.version)
    return str(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=dst,
                                                   tracking_uri=uri))


def _registered(client: Any, mv: Any, genome: Genome) -> RegisteredGenome:
    return RegisteredGenome(name=str(mv.name), version=str(mv.version), genome=genome,
                            aliases=list(getattr(mv, "aliases", []) or []),
                            run_id=mv.run_id, tags=dict(mv.tags or {}))


def load_genome_model(ref: str, *, tracking_uri: str | None = None,
                      dst_path: str | os.PathLike[str] | None = None) -> Any:
    """The pyfunc model of a registered genome (``predict`` as in :class:`GenomeModel`).

    The model is downloaded to ``dst_path`` when given (and kept there); otherwise to a
    temporary directory removed once the model is loaded (it reads its genome into memory)."""
    uri = _uri(tracking_uri)
    client = _client(uri)
    mv = _model_version(client, ref)
    if dst_path is not None:
        return mlflow.pyfunc.load_model(_download_model(client, mv, uri, str(dst_path)))
    with tempfile.TemporaryDirectory(prefix="allele-genome-") as tmp:
        return mlflow.pyfunc.load_model(_download_model(client, mv, uri, tmp))


def get_genome(ref: str, *, tracking_uri: str | None = None) -> RegisteredGenome:
    """A registered genome version with its aliases and tags (``ref`` as in :func:`load_genome`)."""
    uri = _uri(tracking_uri)
    client = _client(uri)
    mv = _model_version(client, ref)
    with tempfile.TemporaryDirectory() as tmp:
        # reading the genome needs none of the model's pip requirements; MLflow's check of them
        # against the environment reads every installed distribution's metadata (1.4 s of a
        # 4-5 s `allele genome show`); load_genome_model keeps it
        model = mlflow.pyfunc.load_model(_download_model(client, mv, uri, tmp),
                                         suppress_warnings=True)
        genome = model.unwrap_python_model().genome
    return _registered(client, mv, genome)


def load_genome(ref: str, *, tracking_uri: str | None = None) -> Genome:
    """The genome of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    return get_genome(ref, tracking_uri=tracking_uri).genome


def _ref(name: str, v: str | int) -> str:
    text = str(v)
    return f"models:/{name}/{text}" if text.isdigit() else f"models:/{name}@{text}"


def compare_versions(name: str, v1: str | int, v2: str | int, *,
                     tracking_uri: str | None = None) -> GenomeComparison:
    """Compare two versions (numbers or aliases) of a registered genome: traits and fitness."""
    a = get_genome(_ref(name, v1), tracking_uri=tracking_uri)
    b = get_genome(_ref(name, v2), tracking_uri=tracking_uri)
    ta, tb = a.genome.traits, b.genome.traits
    return GenomeComparison(name=name, a=a, b=b,
                            traits=[TraitDifference(t, ta[t], tb[t]) for t in TRAITS])


@dataclass
class VersionSummary:
    """A registered version as listed (no artifact download)."""

    name: str
    version: str
    aliases: list[str]
    tags: dict[str, str]
    created_ms: int


def list_genomes(name: str | None = None, *, tracking_uri: str | None = None
                 ) -> list[VersionSummary]:
    """Every version of ``name`` (or of every registered genome), newest first."""
    filt = name_filter(name) if name else None
    client = _client(tracking_uri)
    versions = client.search_model_versions(filt) if filt else client.search_model_versions()
    out: list[VersionSummary] = []
    alias_cache: dict[str, dict[str, list[str]]] = {}
    for mv in versions:
        if TAG_GENOME_ID not in (mv.tags or {}):
            continue  # not a genome
        if mv.name not in alias_cache:
            by_version: dict[str, list[str]] = {}
            for alias, ver in (client.get_registered_model(mv.name).aliases or {}).items():
                by_version.setdefault(str(ver), []).append(alias)
            alias_cache[mv.name] = by_version
        out.append(VersionSummary(name=str(mv.name), version=str(mv.version),
                                  aliases=sorted(alias_cache[mv.name].get(str(mv.version), [])),
                                  tags=dict(mv.tags or {}),
                                  created_ms=int(mv.creation_timestamp or 0)))
    out.sort(key=lambda v: (v.name, -int(v.version)))
    return out
