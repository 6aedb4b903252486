"""Real runs of every component under a Telemetry: every metric appears with the component's own
values, and observing changes nothing (bit-identical results with and without a Telemetry, even
when the Telemetry's sink and notifiers fail)."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from allele.core.evolution import EvolutionConfig, EvolutionEngine
from allele.core.fitness import target_personality
from allele.core.observer import GenerationStats
from allele.errors import ProviderError
from allele.observe import CATALOGUE, Telemetry
from allele.observe.alert_model import load_rules
from allele.observe.alerts import AlertManager
from allele.observe.notify import CallbackNotifier, Notification, WebhookNotifier

from .conftest import ChatServer, MemorySink, free_port

TARGET = {"empathy": 0.9, "technical_knowledge": 0.7, "conciseness": 0.2}


def _no_time(h: GenerationStats) -> dict[str, object]:
    d = asdict(h)
    d.pop("seconds")  # wall time is the one field that legitimately differs between runs
    return d


def _present(tel: Telemetry, source: str) -> set[str]:
    names = set()
    for fam in tel.snapshot():
        if fam.metric.source == source and (fam.samples or any(h.count for h in fam.histograms)):
            names.add(fam.metric.name)
    return names


def test_evolution_run_metrics_equal_the_run() -> None:
    cfg = EvolutionConfig(population_size=60, generations=25, seed=11)
    tel = Telemetry(background=False, system=False)
    result = EvolutionEngine(cfg, target_personality(TARGET), observer=tel, name="evo").run()
    hist = result.history
    expected = {m.name for m in CATALOGUE.values() if m.source == "evolution"}
    assert _present(tel, "evolution") == expected
    assert tel.latest("allele_evolution_best_fitness", "evo") == hist[-1].best
    assert tel.latest("allele_evolution_mean_fitness", "evo") == hist[-1].mean
    assert tel.latest("allele_evolution_fitness_std", "evo") == hist[-1].std
    assert tel.latest("allele_evolution_diversity", "evo") == hist[-1].diversity
    assert tel.latest("allele_evolution_generation", "evo") == hist[-1].generation == 25
    assert tel.latest("allele_evolution_generations_total", "evo") == len(hist) == 26
    assert tel.latest("allele_evolution_evaluations_total", "evo") == result.evaluations
    assert tel.series("allele_evolution_best_fitness", "evo").values.tolist() == [
        h.best for h in hist]
    np.testing.assert_allclose(tel.series("allele_evolution_improvement", "evo").values,
                               np.diff([hist[0].best] + [h.best for h in hist]), atol=0)
    assert tel.series("allele_evolution_generation_seconds", "evo").values.tolist() == [
        h.seconds for h in hist]
    assert tel.latest("allele_evolution_evaluations_per_second", "evo") == pytest.approx(
        hist[-1].evaluations / hist[-1].seconds)
    best_so_far = np.maximum.accumulate([h.best for h in hist])
    stagnation = tel.series("allele_evolution_stagnation_generations", "evo").values
    for g in range(1, len(hist)):
        improved = best_so_far[g] > best_so_far[g - 1]
        assert stagnation[g] == (0 if improved else stagnation[g - 1] + 1)
    (h,) = tel.snapshot(["allele_evolution_generation_seconds"])
    assert h.histograms[0].count == 26
    assert h.histograms[0].sum == pytest.approx(sum(x.seconds for x in hist))
    assert max(best_so_far) == pytest.approx(result.best.fitness)


def test_observing_evolution_changes_nothing_even_when_telemetry_fails(
        clock: object) -> None:
    cfg = EvolutionConfig(population_size=80, generations=30, seed=5, selection="rank",
                          crossover="sbx")
    plain = EvolutionEngine(cfg, target_personality(TARGET)).run()

    sink = MemorySink()
    sink.down = True  # the store is down for the whole run

    def explode(_: Notification) -> None:
        raise RuntimeError("pager down")

    dead_hook = WebhookNotifier(f"http://127.0.0.1:{free_port()}/x", max_attempts=2,
                                backoff_initial_s=0.01, backoff_max_s=0.01)
    with Telemetry(sink=sink, flush_interval_s=0.01, drain_interval_s=0.005,
                   sample_interval_s=0.01) as tel:

        def broken_exporter(source: str, component: str, rec: object) -> None:
            raise RuntimeError("exporter down")

        tel.subscribe(broken_exporter)
        rules = [*load_rules()]
        from allele.observe.alert_model import AlertRule

        rules.append(AlertRule.model_validate({
            "name": "AnyGeneration", "metric": "allele_evolution_generations_total",
            "op": ">=", "threshold": 1}))
        am = AlertManager(tel, rules, [CallbackNotifier(explode), dead_hook])
        am.start(interval_s=0.01)
        watched = EvolutionEngine(cfg, target_personality(TARGET), observer=tel).run()
        tel.drain()
        am.evaluate()
        am.close()
    assert [_no_time(h) for h in watched.history] == [_no_time(h) for h in plain.history]
    assert np.array_equal(watched.population, plain.population)
    assert np.array_equal(watched.fitness, plain.fitness)
    assert watched.best.traits == plain.best.traits
    assert sink.calls >= 1 and tel.sink_failures >= 1 and sink.batches == []
    assert tel.subscriber_failures >= 31
    assert am.notifications_sent >= 1
    assert tel.latest("allele_evolution_generations_total",
                      tel.components("evolution")[0]) == 31


def test_kraken_run_metrics_and_identical_outputs() -> None:
    from allele.core.datasets import mackey_glass
    from allele.core.kraken import KrakenLNN

    series = np.asarray(mackey_glass(3000), dtype=np.float64)
    u, y = series[:2000], series[1:2001]
    stream = series[2001:2801]

    def run(observer: Telemetry | None) -> tuple[KrakenLNN, list[np.ndarray], list[np.ndarray]]:
        net = KrakenLNN(reservoir_size=80, seed=4, observer=observer, name="kr")
        net.fit(u, y)
        outs, states = [], []
        for i in range(0, len(stream), 100):
            res = net.process_sequence(stream[i:i + 100])
            assert res.outputs is not None
            outs.append(res.outputs)
            states.append(res.state)
        net.predict(stream[:200])
        return net, outs, states

    _, plain_out, plain_states = run(None)
    tel = Telemetry(background=False, system=False)
    net, outs, states = run(tel)
    for a, b in zip(plain_out, outs, strict=True):
        assert np.array_equal(a, b)
    for a, b in zip(plain_states, states, strict=True):
        assert np.array_equal(a, b)

    expected = {m.name for m in CATALOGUE.values() if m.source in ("kraken", "readout")}
    assert _present(tel, "kraken") | _present(tel, "readout") == expected
    assert tel.latest("allele_kraken_sequences_total", "kr") == 8 + 1  # + predict
    assert tel.latest("allele_kraken_steps_total", "kr") == 800 + 200
    norms = tel.series("allele_kraken_state_norm", "kr").values[:8]
    np.testing.assert_allclose(norms, [np.linalg.norm(s) for s in states], rtol=1e-12)
    sat = tel.series("allele_kraken_saturated_fraction", "kr").values[:8]
    assert sat.tolist() == [float(np.mean(np.abs(s) > 0.99)) for s in states]
    assert tel.latest("allele_kraken_memory_capacity", "kr") == net.memory_size
    fills = tel.series("allele_kraken_memory_fill", "kr").values[:8]
    assert fills.tolist() == [net.memory_fill] * 8  # fit() already filled the buffer
    assert tel.latest("allele_kraken_memory_fill_ratio", "kr") == (
        net.memory_fill / net.memory_size)
    assert tel.latest("allele_kraken_readout_nrmse", "kr") == net.train_nrmse_
    assert tel.latest("allele_kraken_readout_trainings_total", "kr") == 1
    (h,) = tel.snapshot(["allele_kraken_sequence_seconds"])
    assert h.histograms[0].count == 9


def test_agent_connect_failures_are_counted_and_prompt_unchanged() -> None:
    from allele.core.agent import AgentConfig, NLPAgent
    from allele.core.genome import Genome

    genome = Genome({"empathy": 0.8, "creativity": 0.3})
    cfg = AgentConfig(provider="openai", model="x", base_url=f"http://127.0.0.1:{free_port()}/v1",
                      max_retries=1, retry_backoff_s=0.0, timeout_s=2)
    tel = Telemetry(background=False, system=False)
    watched = NLPAgent(genome, cfg, observer=tel, name="ag")
    plain = NLPAgent(genome, cfg, name="ag2")
    assert watched.system_prompt == plain.system_prompt
    for _ in range(3):
        with pytest.raises(ProviderError) as info:
            watched.chat("hello?")
        assert info.value.cause == "connect"
    assert tel.latest("allele_agent_requests_total", "ag") == 3
    assert tel.latest("allele_agent_failures_total", "ag", {"cause": "connect"}) == 3
    assert tel.latest("allele_agent_retries_total", "ag") == 3 * info.value.retries
    assert tel.latest("allele_agent_failure_ratio", "ag") == 1.0
    assert watched.history == [] and watched.system_prompt == plain.system_prompt


def test_agent_http_run_metrics_equal_the_responses(chat_server: ChatServer) -> None:
    from allele.core.agent import AgentConfig, NLPAgent
    from allele.core.genome import Genome

    genome = Genome({"empathy": 0.9, "conciseness": 0.8})
    cfg = AgentConfig(provider="openai", model="echo", base_url=chat_server.base_url,
                      max_retries=2, retry_backoff_s=0.0, kraken_enabled=True, seed=3)
    tel = Telemetry(background=False, system=False)
    watched = NLPAgent(genome, cfg, observer=tel, name="http")
    plain = NLPAgent(genome, cfg, name="plain")
    chat_server.fail_first = 1  # the first request is retried once
    first = watched.chat("Tell me about reservoirs.")
    stream = watched.stream("And about genomes?")
    text = "".join(stream)
    second = stream.finish()
    assert text == second.text == "you said: And about genomes?"
    n_watched = len(chat_server.bodies)
    plain.chat("Tell me about reservoirs.")
    plain.stream("And about genomes?").finish()
    sent_watched = chat_server.bodies[1:n_watched]  # skip the 503'd duplicate
    sent_plain = chat_server.bodies[n_watched:]
    assert [b["messages"] for b in sent_watched] == [b["messages"] for b in sent_plain]
    assert watched.system_prompt == plain.system_prompt

    expected = {m.name for m in CATALOGUE.values() if m.source == "agent"}
    assert _present(tel, "agent") == expected - {"allele_agent_failures_total"}
    assert first.retries == 1
    assert tel.latest("allele_agent_requests_total", "http") == 2
    assert tel.latest("allele_agent_retries_total", "http") == 1
    assert tel.latest("allele_agent_prompt_tokens_total", "http") == (
        first.prompt_tokens + second.prompt_tokens)
    assert tel.latest("allele_agent_completion_tokens_total", "http") == (
        first.completion_tokens + second.completion_tokens)
    assert tel.latest("allele_agent_tokens_per_second", "http") == pytest.approx(
        second.completion_tokens / second.seconds)
    assert tel.latest("allele_agent_failure_ratio", "http") == 0.0
    (req,) = tel.snapshot(["allele_agent_request_seconds"])
    assert req.histograms[0].count == 2
    assert req.histograms[0].sum == pytest.approx(first.seconds + second.seconds)
    assert second.time_to_first_token is not None and first.time_to_first_token is None
    assert tel.series("allele_agent_time_to_first_token_seconds", "http").values.tolist() == [
        second.time_to_first_token]


def test_install_observes_components_created_without_observer() -> None:
    from allele.core import observer as core_observer
    from allele.core.kraken import KrakenLNN
    from allele.core.observer import NullObserver, SequenceStats
    from allele.observe.install import FanOut, install

    class Counting(NullObserver):
        def __init__(self) -> None:
            self.sequences = 0

        def on_sequence(self, name: str, stats: SequenceStats) -> None:
            self.sequences += 1

    other = Counting()
    before = core_observer.set_default_observer_factory(lambda kind, name: other)
    tel = Telemetry(background=False, system=False)
    uninstall = install(tel)
    try:
        net = KrakenLNN(reservoir_size=20, seed=1, name="auto")
        assert isinstance(net.observer, FanOut)
        net.process_sequence(np.linspace(0, 1, 50))
        assert tel.latest("allele_kraken_steps_total", "auto") == 50
        assert other.sequences == 1  # the factory installed before still gets its events
    finally:
        uninstall()
        core_observer.set_default_observer_factory(before)
    later = KrakenLNN(reservoir_size=20, seed=1, name="later")
    assert later.observer is not tel and not isinstance(later.observer, FanOut)


def test_install_observes_an_evolution_engine_created_without_observer() -> None:
    from allele.core.evolution import EvolutionConfig, EvolutionEngine
    from allele.core.fitness import target_personality
    from allele.observe.install import install

    tel = Telemetry(background=False, system=False)
    uninstall = install(tel)
    try:
        engine = EvolutionEngine(EvolutionConfig(population_size=20, generations=3, seed=2),
                                 target_personality({"empathy": 0.9}), name="auto-evo")
        result = engine.run()
        assert tel.latest("allele_evolution_generation", "auto-evo") == result.history[-1].generation
        assert tel.latest("allele_evolution_best_fitness", "auto-evo") == pytest.approx(
            result.history[-1].best)
    finally:
        uninstall()
    later = EvolutionEngine(EvolutionConfig(population_size=20, generations=1, seed=2),
                            target_personality({"empathy": 0.9}))
    assert later.observer is None
