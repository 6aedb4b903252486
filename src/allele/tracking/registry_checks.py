"""What the genome registry checks before it writes anything, without importing MLflow:
model names, aliases (MLflow's rule, reserved names included), model references, ``--tag``
items, fitness specs, the filter string that finds a name, and predict's ``dynamics`` input."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from allele.errors import ValidationError


def fitness_from_spec(spec: Mapping[str, Any] | str) -> Any:
    """A vectorised fitness function from a fitness spec (a mapping or its JSON text):
    ``{"target": {trait: value, ...}, "weights": {...}}`` (closeness to a target personality,
    see :func:`allele.core.fitness.target_personality`) or ``{"trait_weights": {trait: weight,
    ...}}`` (a linear objective). Every value must be a finite number."""
    from allele.core.fitness import target_personality, weighted_objectives

    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"fitness spec is not valid JSON: {exc}") from None
    if not isinstance(spec, Mapping):
        raise ValidationError(f"a fitness spec is a mapping, got {spec!r}")
    unknown = set(spec) - {"target", "weights", "trait_weights"}
    if unknown:
        raise ValidationError(f"unknown fitness spec key(s): {', '.join(sorted(unknown))}")
    if "target" in spec and "trait_weights" in spec:
        raise ValidationError("a fitness spec has 'target' (with optional 'weights') or "
                              "'trait_weights', not both")
    for key in ("target", "weights", "trait_weights"):
        if key in spec and not (key == "weights" and spec[key] is None) and not isinstance(
                spec[key], Mapping):
            raise ValidationError(f"fitness spec {key!r} must be a mapping of trait -> number, "
                                  f"got {spec[key]!r}")
    if "target" in spec:
        return target_personality(spec["target"], spec.get("weights"))
    if "weights" in spec:
        raise ValidationError("fitness spec 'weights' needs a 'target' (for a linear objective "
                              "use 'trait_weights')")
    if "trait_weights" in spec:
        return weighted_objectives(dict(spec["trait_weights"]))
    raise ValidationError("a fitness spec needs 'target' or 'trait_weights'")


DYNAMICS_PREFIX = "Conversation dynamics:"


def dynamics_summary(value: Any) -> str | None:
    """The dynamics summary of a predict row's ``dynamics`` (None when absent or blank).

    The prompt shows a summary as the line ``Conversation dynamics: <summary>.``; the whole
    line is accepted too, and its prefix and final period are not repeated."""
    if not present(value):
        return None
    text = str(value).strip()
    if text[:len(DYNAMICS_PREFIX)].lower() == DYNAMICS_PREFIX.lower():
        text = text[len(DYNAMICS_PREFIX):].strip()
    if text.endswith("."):
        text = text[:-1].rstrip()
    return text or None


def present(value: Any) -> bool:
    """Whether a predict row's cell holds a value (not None, not a DataFrame's NaN)."""
    if value is None:
        return False
    return not (isinstance(value, float) and math.isnan(value))


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_ALIAS_RE = re.compile(r"[\w\-]{1,255}")  # MLflow's alias rule (mlflow.utils.validation)
_RESERVED_ALIAS_RE = re.compile(r"latest|[vV]\d+", re.IGNORECASE)


def check_model_name(name: str) -> str:
    """``name`` if it is a registered genome name (letters, digits, '_', '-', '.')."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValidationError(f"invalid registered model name {name!r}: use letters, digits, "
                              "'_', '-' and '.'")
    return name


def check_alias(alias: str) -> str:
    """``alias`` if MLflow accepts it as a model alias: letters, digits, '_' and '-', at most
    255 characters, and not one MLflow reserves (``latest``, and ``v<digits>`` which names a
    version): checked before anything is written, so a refused alias registers nothing."""
    if not isinstance(alias, str) or not _ALIAS_RE.fullmatch(alias):
        raise ValidationError(f"invalid alias {alias!r}: use letters, digits, '_' and '-' (at "
                              "most 255 characters)")
    if _RESERVED_ALIAS_RE.fullmatch(alias):
        raise ValidationError(f"alias {alias!r} is reserved by MLflow ('latest' and "
                              "v<number>, which name versions): choose another")
    return alias


def parse_tags(items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings (``--tag``) as a mapping; the value may be empty or hold ``=``."""
    tags: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValidationError(f"--tag takes KEY=VALUE, got {item!r}")
        tags[key] = value
    return tags


_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def parse_model_ref(ref: str) -> tuple[str, str | None, str | None]:
    """``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``NAME@ALIAS`` or ``NAME/VERSION``
    -> (name, alias, version)."""
    text = ref if ref.startswith("models:/") else f"models:/{ref}"
    m = _MODELS_URI.match(text)
    if m is None:
        raise ValidationError(f"not a genome model reference: {ref!r} (use models:/NAME@ALIAS "
                              "or models:/NAME/VERSION)")
    return m.group("name"), m.group("alias"), m.group("version")


def name_filter(name: str) -> str:
    """The MLflow filter string ``name = '...'`` matching exactly ``name``: MLflow's filter
    strings have no escape character, so a name holding ' is put in double quotes."""
    if "'" not in name:
        return f"name = '{name}'"
    if '"' not in name:
        return f'name = "{name}"'
    raise ValidationError(f"cannot search MLflow for the model name {name!r}: it holds both ' "
                          "and \" (MLflow's filter strings cannot quote it)")
