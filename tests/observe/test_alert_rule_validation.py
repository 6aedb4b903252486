"""Rules are checked when they load: every annotation template must render with the fields the
evaluator provides, and a threshold must be a finite number (a broken template used to load and
then fire as raw text, e.g. ``"{valu:.2f} {nope}"``; ``threshold: .nan`` never fired)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from allele.core.observer import ChatErrorStats
from allele.errors import ConfigError
from allele.observe import Telemetry
from allele.observe.alert_model import AlertRule, load_rules, parse_rules
from allele.observe.alerts import AlertManager

from .conftest import ManualClock

DOCS = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def one(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"name": "A", "metric": "allele_agent_failure_ratio",
                               "op": ">", "threshold": 1}
    base.update(kw)
    return base


@pytest.mark.parametrize(("text", "message"), [
    ("{valu:.2f} {nope}", "rule A: annotations: annotation 'summary' names unknown field {valu}"),
    ("{value:.2q}", "rule A: annotations: annotation 'summary' is not a valid template "
                    "'{value:.2q}': Unknown format code 'q' for object of type 'float'"),
    ("{component:.2f}", "annotation 'summary' is not a valid template '{component:.2f}': "
                        "Unknown format code 'f' for object of type 'str'"),
    ("{} failed", "annotation 'summary' is not a valid template '{} failed'"),
    ("{value", "annotation 'summary' is not a valid template '{value'"),
    ("{value!z}", "annotation 'summary' is not a valid template '{value!z}'"),
    ("{value[0]}", "annotation 'summary' is not a valid template '{value[0]}'"),
    ("{cause}", "names unknown field {cause}"),  # a label of another metric
])
def test_broken_annotation_is_a_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rules([one(annotations={"summary": text})], "r.yaml")
    assert str(info.value).startswith("r.yaml: rule A: annotations: ")
    assert message in str(info.value)
    assert "Value error" not in str(info.value)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_threshold_must_be_finite(tmp_path: Path, value: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("rules:\n  - name: A\n    metric: allele_agent_failure_ratio\n"
                    f"    threshold: {value}\n")
    with pytest.raises(ConfigError, match=r"r\.yaml: rule A: threshold: threshold must be a "
                                          r"finite number, not -?(nan|inf)$"):
        load_rules(path)


def test_valid_templates_load() -> None:
    (r,) = parse_rules([one(metric="allele_agent_failures_total", labels={"team": "ml"},
                            annotations={"summary": "{{literal}} {alertname} {severity} {op} "
                                         "{metric} {team} {cause!r} {value:.0%} {threshold:g}",
                                         "runbook": "no fields at all"})])
    assert r.annotations["runbook"] == "no fields at all"


def test_shipped_and_documented_rules_load() -> None:
    assert len(load_rules()) >= 5
    (block,) = re.findall(r"```yaml\n(rules:\n  - name: AgentFailureRatioHigh.*?)```",
                          DOCS.read_text(), re.S)
    (r,) = parse_rules(yaml.safe_load(block))
    assert r.annotations["summary"] == "{component}: {value:.0%} of the last 20 requests failed"


def test_every_accepted_field_is_rendered_by_the_evaluator(clock: ManualClock) -> None:
    """The fields validation accepts are the ones the evaluator really fills in."""
    text = ("{alertname}|{component}|{severity}|{cause}|{team}|{metric}|{op}|{value:.1f}|"
            "{threshold:g}")
    rule = AlertRule.model_validate(one(metric="allele_agent_failures_total", op=">=",
                                        labels={"team": "ml"}, annotations={"summary": text}))
    tel = Telemetry(background=False, system=False, clock=clock)
    tel.on_chat_error("agent-0", ChatErrorStats(provider="openai", model="m", cause="timeout",
                                                seconds=0.1, retries=0, message="x"))
    (a,) = AlertManager(tel, [rule], [], clock=clock).evaluate()
    assert a.annotations["summary"] == (
        "A|agent-0|warning|timeout|ml|allele_agent_failures_total|>=|1.0|1")
