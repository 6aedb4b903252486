"""The alert model: rules, alerts, silences and their states, and loading rules from YAML.

Plain data shared by the :class:`~allele.observe.alerts.AlertManager` (which evaluates rules and
tracks alerts) and the notifiers (:mod:`allele.observe.notify`, whose notifications carry an
:class:`Alert`); it imports neither, so both can import it.

A rule compares a reduction of one metric (``last`` value, or ``mean`` / ``max`` / ``min`` /
``rate`` / ``delta`` over a ``window``) per component against a threshold. An alert's label set
is ``alertname``, ``component``, ``severity``, the metric's own labels and the rule's ``labels``;
its :func:`fingerprint` identifies it. Rules load from YAML (a list, or a mapping with a
``rules`` list); the shipped defaults are ``default_rules.yaml`` in this package.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from allele.errors import ConfigError, ValidationError
from allele.observe.metrics import CATALOGUE

if TYPE_CHECKING:
    from allele.config import Settings

State = Literal["inactive", "pending", "firing", "resolved"]
Status = Literal["firing", "resolved"]
"""The status of a notification: the alert started (or keeps) firing, or it resolved."""
Severity = Literal["info", "warning", "critical"]
Op = Literal[">", ">=", "<", "<=", "==", "!="]
Reduce = Literal["last", "mean", "max", "min", "rate", "delta"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}
_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: float | int | str) -> float:
    """``30`` / ``"30s"`` / ``"250ms"`` / ``"5m"`` / ``"1h"`` / ``"1d"`` -> seconds."""
    if isinstance(value, bool):
        raise ValidationError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if not match:
            raise ValidationError(f"not a duration: {value!r} (use e.g. 30s, 5m, 1h)")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 0 or not math.isfinite(seconds):
        raise ValidationError(f"duration must be >= 0: {value!r}")
    return seconds


class AlertRule(BaseModel):
    """One threshold rule (YAML keys are the field names; ``for`` may be written as ``for``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    metric: str
    component: str = "*"
    match: dict[str, str] = Field(default_factory=dict)
    op: Op = ">"
    threshold: float
    for_s: float = Field(0.0, alias="for")
    reduce: Reduce = "last"
    window_s: float = Field(0.0, alias="window")
    severity: Severity = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("threshold")
    @classmethod
    def _finite(cls, v: float) -> float:
        # NaN compares false with everything (so ``>`` never fires and ``!=`` always does) and
        # an infinite threshold is never (or always) crossed: either way the rule is a typo.
        if not math.isfinite(v):
            raise ValueError(f"threshold must be a finite number, not {v!r}")
        return v

    @field_validator("for_s", "window_s", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in CATALOGUE:
            raise ValueError(f"unknown metric {v!r}")
        return v

    @field_validator("labels")
    @classmethod
    def _no_reserved(cls, v: dict[str, str]) -> dict[str, str]:
        reserved = {"alertname", "component", "severity"} & set(v)
        if reserved:
            raise ValueError(f"labels may not set {sorted(reserved)}")
        return v

    @field_validator("annotations")
    @classmethod
    def _renderable(cls, v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        # The evaluator renders annotations leniently (a broken template is sent as raw text),
        # so a typo would only show up in a notification: render each one here with the fields
        # the evaluator provides and sample values. Skipped when metric or labels are invalid:
        # the rule is rejected for those and the fields are not known.
        if "metric" not in info.data or "labels" not in info.data:
            return v
        fields = annotation_fields(info.data["metric"], info.data["labels"],
                                   info.data.get("threshold", 1.0))
        for key, template in v.items():
            check_template(key, template, fields)
        return v

    @model_validator(mode="after")
    def _window_needed(self) -> AlertRule:
        if self.reduce != "last" and self.window_s <= 0:
            raise ValueError(f"reduce {self.reduce!r} needs a window")
        return self

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)


_SAMPLE_VALUE = 0.5
_SAMPLE_LABEL = "x"


def annotation_values(labels: Mapping[str, str], value: float, threshold: float, metric: str,
                      op: str) -> dict[str, Any]:
    """The fields an annotation template is rendered with: the alert's labels (``alertname``,
    ``component``, ``severity``, the metric's labels and the rule's ``labels``), ``value``,
    ``threshold``, ``metric`` and ``op``. One builder for
    :meth:`allele.observe.alerts.AlertManager.evaluate` and the rule's own check
    (:func:`annotation_fields`), so the two cannot name different fields."""
    return {**labels, "value": value, "threshold": threshold, "metric": metric, "op": op}


def annotation_fields(metric: str, labels: Mapping[str, str], threshold: float,
                      ) -> dict[str, Any]:
    """Sample values of the fields an annotation template may name (:func:`annotation_values`,
    with the label names a rule on ``metric`` gets). Numbers are floats and labels strings, as
    when the evaluator renders it, so a format spec that fails on the real type fails here
    too."""
    names = ("alertname", "component", "severity", *CATALOGUE[metric].label_names, *labels)
    return annotation_values(dict.fromkeys(names, _SAMPLE_LABEL), _SAMPLE_VALUE,
                             float(threshold), metric, ">")


def check_template(key: str, template: str, fields: Mapping[str, Any]) -> None:
    """Raise ValueError naming annotation ``key`` unless ``template`` renders with ``fields``
    (an unknown field, a positional ``{}``, a bad format spec or conversion, unbalanced braces).
    """
    try:
        template.format_map(fields)
    except KeyError as exc:
        raise ValueError(f"annotation {key!r} names unknown field {{{exc.args[0]}}} "
                         f"(known: {', '.join(sorted(fields))})") from None
    except (ValueError, IndexError, TypeError, AttributeError) as exc:
        raise ValueError(f"annotation {key!r} is not a valid template "
                         f"{template!r}: {exc}") from None


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable id of a label set."""
    text = "\x1f".join(f"{k}\x1e{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Alert:
    """A snapshot of one alert (plain data; the analytics layer correlates these)."""

    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    severity: str
    state: State
    value: float
    fingerprint: str
    active_at: float
    starts_at: float | None
    ends_at: float | None
    silenced: bool = False


@dataclass(frozen=True, slots=True)
class Silence:
    """Hold back notifications of alerts whose labels match every matcher (values may be globs)
    between ``starts_at`` and ``ends_at``."""

    id: str
    matchers: dict[str, str]
    starts_at: float
    ends_at: float
    comment: str = ""

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every matcher matches its label (a label the alert lacks is ``""``: a
        regression alert has no ``alertname``, so a matcher on it never matches one)."""
        return all(fnmatch.fnmatchcase(labels.get(k, ""), v) for k, v in self.matchers.items())


def exact_matchers(labels: Mapping[str, str]) -> dict[str, str]:
    """Matchers that match these label values literally: every label of ``labels``, with the
    glob characters ``*``, ``?`` and ``[`` of its value escaped. A silence with them matches
    the alert with this label set (and no alert whose value of any of them differs)."""
    return {k: re.sub(r"([*?\[])", r"[\1]", v) for k, v in labels.items()}


# --- loading rules -------------------------------------------------------------------------------


def parse_rules(data: Any, source: str = "<rules>") -> list[AlertRule]:
    """Rules from parsed YAML: a list, or a mapping with a ``rules`` list."""
    if isinstance(data, Mapping):
        unknown = set(data) - {"rules"}
        if unknown:
            raise ConfigError(f"{source}: unknown top-level keys {sorted(unknown)}")
        data = data.get("rules", [])
    if data is None:
        data = []
    if not isinstance(data, list):
        raise ConfigError(f"{source}: expected a list of rules")
    rules: list[AlertRule] = []
    for i, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise ConfigError(f"{source}: rule {i} is not a mapping")
        try:
            rules.append(AlertRule.model_validate(dict(item)))
        except (PydanticValidationError, ValidationError) as exc:
            name = item.get("name", f"#{i}")
            raise ConfigError(f"{source}: rule {name}: {_pydantic_message(exc)}") from None
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source}: duplicate rule names {dupes}")
    return rules


def _pydantic_message(exc: Exception) -> str:
    if isinstance(exc, PydanticValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'rule'}: "
            f"{str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors())
    return str(exc)


def load_rules(path: str | Path | None = None) -> list[AlertRule]:
    """Rules from a YAML file, or the shipped default rules when ``path`` is None."""
    if path is None:
        text = resources.files("allele.observe").joinpath("default_rules.yaml").read_text()
        source = "default_rules.yaml"
    else:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read alert rules {p}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not a text (UTF-8) file: {exc}") from None
        source = str(p)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    return parse_rules(data, source)


def rules_from_settings(settings: Settings) -> list[AlertRule]:
    """``settings.observe.alert_rules`` if set, else the default rules."""
    return load_rules(settings.observe.alert_rules)
