"""Alert rules, the Alertmanager state machine on an injected clock, and the notifiers."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from allele.config import ObserveSettings, Settings
from allele.core.observer import ChatErrorStats, ChatStats, GenerationStats
from allele.errors import ConfigError, ValidationError
from allele.observe import Telemetry
from allele.observe.alert_model import (
    AlertRule,
    load_rules,
    parse_duration,
    parse_rules,
    rules_from_settings,
)
from allele.observe.alerts import AlertManager
from allele.observe.notify import CallbackNotifier, LogNotifier, Notification, WebhookNotifier

from .conftest import ManualClock, Receiver


def gen(g: int, seconds: float, best: float = 0.5) -> GenerationStats:
    return GenerationStats(generation=g, best=best, mean=0.4, std=0.1, diversity=0.3,
                           evaluations=100, seconds=seconds)


def chat_ok() -> ChatStats:
    return ChatStats(provider="openai", model="m", prompt_tokens=5, completion_tokens=5,
                     seconds=0.1, time_to_first_token=None, retries=0, streamed=False)


def chat_err(cause: str = "connect") -> ChatErrorStats:
    return ChatErrorStats(provider="openai", model="m", cause=cause, seconds=0.1, retries=0,
                          message="refused")


def rule(**kw: object) -> AlertRule:
    base: dict[str, object] = {"name": "SlowGeneration",
                               "metric": "allele_evolution_generation_seconds",
                               "op": ">", "threshold": 1.0, "for": "30s",
                               "annotations": {"summary": "{component} took {value:.1f}s"}}
    base.update(kw)
    return AlertRule.model_validate(base)


@pytest.fixture
def tel(clock: ManualClock) -> Telemetry:
    return Telemetry(background=False, system=False, clock=clock)


def collect() -> tuple[list[Notification], CallbackNotifier]:
    got: list[Notification] = []
    return got, CallbackNotifier(got.append)


def test_durations() -> None:
    assert parse_duration("250ms") == 0.25
    assert parse_duration("5m") == 300.0
    assert parse_duration(12) == 12.0
    assert parse_duration("1.5h") == 5400.0
    with pytest.raises(ValidationError):
        parse_duration("soon")
    with pytest.raises(ValidationError):
        parse_duration(-1)


def test_pending_firing_repeat_resolved(tel: Telemetry, clock: ManualClock) -> None:
    got, cb = collect()
    am = AlertManager(tel, [rule()], [cb], clock=clock, repeat_interval_s=600)
    tel.on_generation("evolution-0", gen(0, 0.1))
    assert am.evaluate() == []
    clock.advance(5)
    tel.on_generation("evolution-0", gen(1, 2.5))
    (a,) = am.evaluate()
    assert a.state == "pending" and a.value == 2.5 and a.starts_at is None
    assert a.labels == {"alertname": "SlowGeneration", "component": "evolution-0",
                        "severity": "warning"}
    assert got == []
    clock.advance(20)
    tel.on_generation("evolution-0", gen(2, 3.0))
    assert am.evaluate()[0].state == "pending"  # 20 s < for 30 s
    clock.advance(15)
    tel.on_generation("evolution-0", gen(3, 3.5))
    (a,) = am.evaluate()
    assert a.state == "firing" and a.starts_at == clock.now and a.value == 3.5
    assert a.annotations["summary"] == "evolution-0 took 3.5s"
    assert [n.status for n in got] == ["firing"]
    for _ in range(5):  # deduplicated: evaluating again sends nothing new
        clock.advance(10)
        tel.on_generation("evolution-0", gen(4, 3.0))
        am.evaluate()
    assert len(got) == 1 and len(am.alerts("firing")) == 1
    clock.advance(600)  # repeat interval elapsed
    tel.on_generation("evolution-0", gen(5, 3.0))
    am.evaluate()
    assert [n.status for n in got] == ["firing", "firing"]
    assert got[1].repeat == 1 and got[0].key != got[1].key
    assert got[0].alert.fingerprint == got[1].alert.fingerprint
    clock.advance(1)
    tel.on_generation("evolution-0", gen(6, 0.2))
    assert am.evaluate() == []
    assert [n.status for n in got] == ["firing", "firing", "resolved"]
    resolved = got[-1].alert
    assert resolved.state == "resolved" and resolved.ends_at == clock.now
    assert resolved.starts_at == a.starts_at
    (hist,) = am.history()
    assert hist.fingerprint == a.fingerprint and hist.state == "resolved"


def test_pending_that_clears_never_notifies(tel: Telemetry, clock: ManualClock) -> None:
    got, cb = collect()
    am = AlertManager(tel, [rule()], [cb], clock=clock)
    tel.on_generation("evolution-0", gen(0, 5.0))
    assert am.evaluate()[0].state == "pending"
    clock.advance(10)
    tel.on_generation("evolution-0", gen(1, 0.1))
    assert am.evaluate() == []
    assert got == [] and am.history() == []


def test_one_alert_per_component_and_label_set(tel: Telemetry, clock: ManualClock) -> None:
    got, cb = collect()
    r = AlertRule.model_validate({"name": "AgentFailing", "metric": "allele_agent_failures_total",
                                  "op": ">=", "threshold": 1, "labels": {"team": "ml"}})
    am = AlertManager(tel, [r], [cb], clock=clock)
    for _ in range(3):
        tel.on_chat_error("agent-0", chat_err("connect"))
    tel.on_chat_error("agent-0", chat_err("timeout"))
    tel.on_chat_error("agent-1", chat_err("connect"))
    alerts = am.evaluate()
    am.evaluate()
    keys = sorted((a.labels["component"], a.labels["cause"]) for a in alerts)
    assert keys == [("agent-0", "connect"), ("agent-0", "timeout"), ("agent-1", "connect")]
    assert all(a.labels["team"] == "ml" and a.state == "firing" for a in alerts)
    assert len(got) == 3 and len({n.alert.fingerprint for n in got}) == 3
    value = {(a.labels["component"], a.labels["cause"]): a.value for a in alerts}
    assert value[("agent-0", "connect")] == 3


def test_silence_holds_notifications_until_it_expires(tel: Telemetry, clock: ManualClock) -> None:
    got, cb = collect()
    am = AlertManager(tel, [rule(**{"for": 0})], [cb], clock=clock)
    s = am.silence({"alertname": "Slow*", "component": "evolution-0"}, "5m", comment="known")
    tel.on_generation("evolution-0", gen(0, 9.0))
    tel.on_generation("evolution-1", gen(0, 9.0))
    alerts = {a.labels["component"]: a for a in am.evaluate()}
    assert alerts["evolution-0"].silenced and alerts["evolution-0"].state == "firing"
    assert not alerts["evolution-1"].silenced
    assert [n.alert.labels["component"] for n in got] == ["evolution-1"]
    clock.advance(200)
    tel.on_generation("evolution-0", gen(1, 9.0))
    tel.on_generation("evolution-1", gen(1, 9.0))
    am.evaluate()
    assert len(got) == 1 and [x.id for x in am.silences()] == [s.id]
    clock.advance(101)  # past the expiry
    tel.on_generation("evolution-0", gen(2, 9.0))
    tel.on_generation("evolution-1", gen(2, 9.0))
    am.evaluate()
    assert [n.alert.labels["component"] for n in got] == ["evolution-1", "evolution-0"]
    assert am.silences() == [] and len(am.silences(include_expired=True)) == 1


def test_expire_silence_early(tel: Telemetry, clock: ManualClock) -> None:
    got, cb = collect()
    am = AlertManager(tel, [rule(**{"for": 0})], [cb], clock=clock)
    s = am.silence({"severity": "warning"}, 3600)
    tel.on_generation("evolution-0", gen(0, 9.0))
    am.evaluate()
    assert got == []
    am.expire_silence(s.id)
    clock.advance(1)
    am.evaluate()
    assert len(got) == 1
    with pytest.raises(ValidationError):
        am.expire_silence("silence-999")


def test_stale_component_resolves(tel: Telemetry, clock: ManualClock) -> None:
    got, cb = collect()
    am = AlertManager(tel, [rule(**{"for": 0})], [cb], clock=clock, stale_after_s=60)
    tel.on_generation("evolution-0", gen(0, 9.0))
    assert am.evaluate()[0].state == "firing"
    clock.advance(61)  # the engine stopped reporting
    assert am.evaluate() == []
    assert [n.status for n in got] == ["firing", "resolved"]


def test_window_reductions(tel: Telemetry, clock: ManualClock) -> None:
    mean_rule = AlertRule.model_validate({
        "name": "MeanSlow", "metric": "allele_evolution_generation_seconds", "reduce": "mean",
        "window": "1m", "op": ">", "threshold": 1.0})
    rate_rule = AlertRule.model_validate({
        "name": "FailingFast", "metric": "allele_agent_requests_total", "reduce": "rate",
        "window": "1m", "op": ">=", "threshold": 0.5})
    am = AlertManager(tel, [mean_rule, rate_rule], clock=clock)
    for i, secs in enumerate([0.5, 0.5, 2.5]):  # mean 1.17 > 1
        tel.on_generation("evolution-0", gen(i, secs))
        tel.on_chat("agent-0", chat_ok())
        clock.advance(2)  # requests_total grows by 1 every 2 s: rate 0.5/s
    names = sorted(a.name for a in am.evaluate())
    assert names == ["FailingFast", "MeanSlow"]
    clock.advance(120)  # both windows are empty now
    tel.on_generation("evolution-0", gen(9, 0.1))
    assert am.evaluate() == []
    with pytest.raises(ValueError, match="needs a window"):
        AlertRule.model_validate({"name": "x", "metric": "allele_agent_requests_total",
                                  "reduce": "rate", "threshold": 1})


def test_default_rules_load_and_fire(tel: Telemetry, clock: ManualClock) -> None:
    rules = load_rules()
    names = {r.name for r in rules}
    assert {"AgentFailureRatioHigh", "GenerationTimeJump", "ProcessRSSHigh"} <= names
    got, cb = collect()
    am = AlertManager(tel, rules, [cb], clock=clock)
    for g in range(10):
        tel.on_generation("evolution-0", gen(g, 0.01))
    tel.on_generation("evolution-0", gen(10, 0.2))  # 20x the average
    for _ in range(5):
        tel.on_chat_error("agent-0", chat_err())
    fired = {a.name: a for a in am.evaluate()}
    assert fired["GenerationTimeJump"].state == "firing"
    assert fired["GenerationTimeJump"].value == pytest.approx(20.0)
    assert fired["AgentFailureRatioHigh"].state == "pending"  # for: 1m
    clock.advance(61)
    for _ in range(5):
        tel.on_chat_error("agent-0", chat_err())
    tel.on_generation("evolution-0", gen(11, 0.01))
    fired = {a.name: a for a in am.evaluate()}
    assert fired["AgentFailureRatioHigh"].state == "firing"
    assert "GenerationTimeJump" not in fired  # the jump left the 1 minute window
    assert [n.alert.name for n in got if n.status == "firing"] == [
        "GenerationTimeJump", "AgentFailureRatioHigh"]


def test_rules_yaml_errors_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - name: X\n    metric: allele_nope\n    threshold: 1\n")
    with pytest.raises(ConfigError, match="rule X: metric"):
        load_rules(bad)
    bad.write_text("rules:\n  - name: X\n    metric: allele_process_rss_bytes\n"
                   "    threshold: 1\n    for: soon\n")
    with pytest.raises(ConfigError, match="not a duration"):
        load_rules(bad)
    bad.write_text("rules: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_rules(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="duplicate"):
        parse_rules([{"name": "A", "metric": "allele_process_rss_bytes", "threshold": 1}] * 2)
    with pytest.raises(ConfigError, match="may not set"):
        parse_rules([{"name": "A", "metric": "allele_process_rss_bytes", "threshold": 1,
                      "labels": {"severity": "x"}}])


def test_rules_from_settings(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("- name: Mine\n  metric: allele_process_threads\n  op: '>'\n"
                    "  threshold: 500\n  severity: critical\n")
    (r,) = rules_from_settings(Settings(observe=ObserveSettings(alert_rules=path)))
    assert (r.name, r.op, r.threshold, r.severity) == ("Mine", ">", 500.0, "critical")
    assert len(rules_from_settings(Settings())) == len(load_rules())


def test_failing_notifiers_never_raise(tel: Telemetry, clock: ManualClock) -> None:
    def explode(_: Notification) -> None:
        raise RuntimeError("notifier down")

    class Broken:
        def send(self, n: Notification) -> None:
            raise OSError("broken pipe")

        def close(self) -> None:
            raise OSError("broken pipe")

    cb = CallbackNotifier(explode)
    got, good = collect()
    am = AlertManager(tel, [rule(**{"for": 0})], [cb, Broken(), good], clock=clock)
    tel.on_generation("evolution-0", gen(0, 9.0))
    am.evaluate()
    assert cb.failures == 1 and am.notifier_failures == 1 and len(got) == 1
    am.close()


def test_log_notifier(tel: Telemetry, clock: ManualClock, caplog: pytest.LogCaptureFixture
                      ) -> None:
    am = AlertManager(tel, [rule(**{"for": 0, "severity": "critical"})], [LogNotifier()],
                      clock=clock)
    with caplog.at_level(logging.INFO, logger="allele.alerts"):
        tel.on_generation("evolution-0", gen(0, 9.0))
        am.evaluate()
        clock.advance(1)
        tel.on_generation("evolution-0", gen(1, 0.1))
        am.evaluate()
    levels = [(r.levelno, "FIRING" in r.getMessage(), "RESOLVED" in r.getMessage())
              for r in caplog.records]
    assert levels == [(logging.ERROR, True, False), (logging.INFO, False, True)]


def test_webhook_delivers_json(tel: Telemetry, clock: ManualClock, receiver: Receiver) -> None:
    hook = WebhookNotifier(receiver.url, backoff_initial_s=0.05, backoff_max_s=0.2)
    am = AlertManager(tel, [rule(**{"for": 0})], [hook], clock=clock)
    tel.on_generation("evolution-0", gen(0, 9.0))
    am.evaluate()
    clock.advance(1)
    tel.on_generation("evolution-0", gen(1, 0.0))
    am.evaluate()
    assert hook.flush(5)
    assert hook.delivered == 2 and hook.failures == 0
    (k1, firing), (k2, resolved) = receiver.requests
    assert firing["status"] == "firing" and resolved["status"] == "resolved"
    assert k1 == firing["key"] and k2 == resolved["key"] and k1 != k2
    alert = firing["alerts"][0]
    assert alert["labels"]["alertname"] == "SlowGeneration" and alert["value"] == 9.0
    assert alert["startsAt"].endswith("Z") and alert["endsAt"] is None
    assert resolved["alerts"][0]["endsAt"] is not None
    am.close()


def test_webhook_receiver_down_then_back_loses_and_duplicates_nothing(
        tel: Telemetry, clock: ManualClock) -> None:
    down = Receiver()  # not started: connections are refused
    hook = WebhookNotifier(down.url, backoff_initial_s=0.02, backoff_max_s=0.1, timeout_s=2)
    rules = [rule(name=f"Slow{i}", threshold=float(i), **{"for": 0}) for i in range(5)]
    am = AlertManager(tel, rules, [hook], clock=clock)
    tel.on_generation("evolution-0", gen(0, 9.0))
    am.evaluate()  # five alerts fire
    clock.advance(1)
    tel.on_generation("evolution-0", gen(1, 2.5))
    am.evaluate()  # Slow3, Slow4 resolve; the others stay firing
    deadline = time.monotonic() + 5
    while hook.failures < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hook.failures >= 3 and hook.delivered == 0  # it really was down
    down.start()  # the receiver comes back on the same port
    try:
        assert hook.flush(10)
        keys = down.keys
        assert len(keys) == 7 == len(set(keys))  # 5 firing + 2 resolved, each exactly once
        statuses = sorted((b["alerts"][0]["labels"]["alertname"], b["status"])
                          for _, b in down.requests)
        assert statuses == sorted([(f"Slow{i}", "firing") for i in range(5)]
                                  + [("Slow3", "resolved"), ("Slow4", "resolved")])
        assert hook.delivered == 7 and hook.given_up == 0 and hook.dropped == 0
    finally:
        am.close()
        down.stop()


def test_webhook_bounded_queue_and_permanent_errors(tel: Telemetry, clock: ManualClock) -> None:
    refusing = Receiver(status=400)
    refusing.start()
    try:
        hook = WebhookNotifier(refusing.url, queue_size=1, backoff_initial_s=0.01,
                               backoff_max_s=0.01)
        rules = [rule(name=f"R{i}", **{"for": 0}) for i in range(30)]
        am = AlertManager(tel, rules, [hook], clock=clock)
        tel.on_generation("evolution-0", gen(0, 9.0))
        am.evaluate()  # 30 notifications into a queue of one
        assert hook.flush(10)
        assert hook.dropped > 0
        assert hook.given_up == hook.failures == 30 - hook.dropped  # 400: no retry
        assert len(refusing.requests) == 30 - hook.dropped
        am.close()
    finally:
        refusing.stop()


def test_webhook_max_attempts(tel: Telemetry, clock: ManualClock) -> None:
    down = Receiver()
    hook = WebhookNotifier(down.url, max_attempts=3, backoff_initial_s=0.01,
                           backoff_max_s=0.02)
    am = AlertManager(tel, [rule(**{"for": 0})], [hook], clock=clock)
    tel.on_generation("evolution-0", gen(0, 9.0))
    am.evaluate()
    assert hook.flush(5)
    assert hook.failures == 3 and hook.given_up == 1 and hook.delivered == 0
    am.close()


def test_alerts_are_exported_with_the_telemetry(tel: Telemetry, clock: ManualClock) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from allele.observe.export import exposition, make_registry

    am = AlertManager(tel, [rule(**{"for": 0})], clock=clock)
    registry = make_registry(tel, collectors=[am.collector()])
    tel.on_generation("evolution-0", gen(0, 9.0))
    am.evaluate()
    fams = {f.name: f for f in text_string_to_metric_families(exposition(registry).decode())}
    (sample,) = fams["allele_alerts"].samples
    assert sample.labels == {"alertname": "SlowGeneration", "component": "evolution-0",
                             "severity": "warning", "state": "firing"}
    assert fams["allele_alert_notifications"].samples[0].value == 1.0
    am.close()
    names = {f.name for f in text_string_to_metric_families(exposition(registry).decode())}
    assert "allele_alerts" not in names
