"""Prometheus exposition over HTTP and the OpenTelemetry bridge."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from allele.core.observer import ChatErrorStats, GenerationStats, SequenceStats
from allele.errors import ConfigError
from allele.observe import CATALOGUE, Telemetry
from allele.observe.export import OpenTelemetryBridge, make_registry, serve

from .conftest import ManualClock


def feed(tel: Telemetry) -> None:
    for g, (best, secs) in enumerate([(0.2, 0.003), (0.4, 0.02), (0.7, 0.2)]):
        tel.on_generation("evolution-0", GenerationStats(
            generation=g, best=best, mean=best / 2, std=0.05, diversity=0.5, evaluations=50,
            seconds=secs))
    tel.on_sequence("kraken-0", SequenceStats(steps=200, seconds=0.004, state_norm=2.5,
                                              saturated_fraction=0.01, memory_fill=200,
                                              memory_capacity=1000))
    tel.on_chat_error("agent-0", ChatErrorStats(provider="openai", model="m", cause="timeout",
                                                seconds=1.0, retries=2, message="t"))


def parse(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams: dict[str, Any], family: str, name: str | None = None, **labels: str) -> float:
    for s in fams[family].samples:
        if s.name == (name or family) and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise AssertionError(f"no sample {name or family} {labels}")


def test_metrics_served_over_http_and_parsed(clock: ManualClock) -> None:
    tel = Telemetry(background=False, system=False, clock=clock)
    feed(tel)
    tel.sample_system()
    server = serve(make_registry(tel), port=0)
    try:
        assert server.host == "127.0.0.1" and server.port > 0
        resp = httpx.get(server.url, timeout=10)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/plain")
        fams = parse(resp.text)
    finally:
        server.close()
        tel.close()
    assert fams["allele_evolution_best_fitness"].type == "gauge"
    assert sample(fams, "allele_evolution_best_fitness", component="evolution-0") == 0.7
    assert fams["allele_evolution_generations"].type == "counter"
    assert sample(fams, "allele_evolution_generations", "allele_evolution_generations_total",
                  component="evolution-0") == 3
    h = "allele_evolution_generation_seconds"
    assert fams[h].type == "histogram"
    assert sample(fams, h, h + "_count", component="evolution-0") == 3
    assert sample(fams, h, h + "_sum", component="evolution-0") == pytest.approx(0.223)
    assert sample(fams, h, h + "_bucket", component="evolution-0", le="0.0025") == 0
    assert sample(fams, h, h + "_bucket", component="evolution-0", le="0.005") == 1
    assert sample(fams, h, h + "_bucket", component="evolution-0", le="0.025") == 2
    assert sample(fams, h, h + "_bucket", component="evolution-0", le="+Inf") == 3
    assert sample(fams, "allele_kraken_steps", "allele_kraken_steps_total",
                  component="kraken-0") == 200
    assert sample(fams, "allele_agent_failures", "allele_agent_failures_total",
                  component="agent-0", cause="timeout") == 1
    assert sample(fams, "allele_process_rss_bytes", component="process") > 1e6
    assert sample(fams, "allele_telemetry_events", "allele_telemetry_events_total") == 6
    # every catalogue metric of a source that reported is exposed
    for m in CATALOGUE.values():
        if m.source in ("evolution", "system") or m.name.startswith("allele_kraken_s"):
            family = m.name.removesuffix("_total")
            assert family in fams, family
    # private registry: nothing leaked into prometheus-client's global one
    assert REGISTRY.get_sample_value("allele_evolution_best_fitness",
                                     {"component": "evolution-0"}) is None


def test_serve_port_in_use_is_a_config_error() -> None:
    tel = Telemetry(background=False, system=False)
    registry = make_registry(tel)
    first = serve(registry, port=0)
    try:
        with pytest.raises(ConfigError, match="cannot serve metrics"):
            serve(registry, port=first.port)
    finally:
        first.close()
        tel.close()


class _Instrument:
    def __init__(self, kind: str, name: str, callbacks: Sequence[Callable[[Any], Iterable[Any]]]
                 | None = None) -> None:
        self.kind, self.name = kind, name
        self.callbacks = list(callbacks or [])
        self.recorded: list[tuple[float, dict[str, Any]]] = []

    def record(self, amount: float, attributes: dict[str, Any] | None = None,
               context: Any = None) -> None:
        self.recorded.append((amount, dict(attributes or {})))


def _recording_meter() -> Any:
    """A minimal in-memory implementation of opentelemetry-api's abstract ``Meter``."""
    metrics = pytest.importorskip("opentelemetry.metrics")

    class RecordingMeter(metrics.Meter):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__("allele-test")
            self.instruments: dict[str, _Instrument] = {}

        def _add(self, kind: str, name: str, callbacks: Any = None) -> _Instrument:
            inst = _Instrument(kind, name, callbacks)
            self.instruments[name] = inst
            return inst

        def create_counter(self, name: str, unit: str = "", description: str = "") -> Any:
            return self._add("counter", name)

        def create_up_down_counter(self, name: str, unit: str = "",
                                   description: str = "") -> Any:
            return self._add("updown", name)

        def create_observable_counter(self, name: str, callbacks: Any = None, unit: str = "",
                                      description: str = "") -> Any:
            return self._add("observable_counter", name, callbacks)

        def create_histogram(self, name: str, unit: str = "", description: str = "",
                             **kw: Any) -> Any:
            return self._add("histogram", name)

        def create_observable_gauge(self, name: str, callbacks: Any = None, unit: str = "",
                                    description: str = "") -> Any:
            return self._add("observable_gauge", name, callbacks)

        def create_observable_up_down_counter(self, name: str, callbacks: Any = None,
                                              unit: str = "", description: str = "") -> Any:
            return self._add("observable_updown", name, callbacks)

    return RecordingMeter()


def test_opentelemetry_bridge(clock: ManualClock) -> None:
    meter = _recording_meter()
    tel = Telemetry(background=False, system=False, clock=clock)
    bridge = OpenTelemetryBridge(tel, meter)
    assert set(bridge.instruments) == set(CATALOGUE)
    feed(tel)
    tel.drain()
    best = meter.instruments["allele_evolution_best_fitness"]
    assert best.kind == "observable_gauge"
    (obs,) = [o for cb in best.callbacks for o in cb(None)]
    assert obs.value == 0.7 and obs.attributes == {"component": "evolution-0"}
    failures = meter.instruments["allele_agent_failures_total"]
    assert failures.kind == "observable_counter"
    (obs,) = [o for cb in failures.callbacks for o in cb(None)]
    assert obs.value == 1 and obs.attributes == {"component": "agent-0", "cause": "timeout"}
    hist = meter.instruments["allele_evolution_generation_seconds"]
    assert hist.kind == "histogram"
    assert hist.recorded == [(0.003, {"component": "evolution-0"}),
                             (0.02, {"component": "evolution-0"}),
                             (0.2, {"component": "evolution-0"})]


def test_opentelemetry_bridge_default_meter_is_the_api_noop() -> None:
    pytest.importorskip("opentelemetry.metrics")
    tel = Telemetry(background=False, system=False)
    bridge = OpenTelemetryBridge(tel)  # no SDK installed: the API's no-op meter, no error
    feed(tel)
    assert tel.drain() == 5 and len(bridge.instruments) == len(CATALOGUE)


def test_only_the_metrics_path_serves_the_metrics() -> None:
    """A mistyped scrape path is a 404, not the metrics (prometheus-client answers any path);
    ``/`` says where they are."""
    tel = Telemetry(background=False, system=False)
    server = serve(make_registry(tel), port=0)
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert "allele_telemetry_events" in httpx.get(f"{base}/metrics", timeout=10).text
        root = httpx.get(f"{base}/", timeout=10)
        assert root.status_code == 200 and "/metrics" in root.text
        assert "allele_" not in root.text
        wrong = httpx.get(f"{base}/metric", timeout=10)
        assert wrong.status_code == 404 and "allele_" not in wrong.text
        assert httpx.get(f"{base}/favicon.ico", timeout=10).status_code == 404
    finally:
        server.close()
        tel.close()
