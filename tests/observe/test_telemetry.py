"""Telemetry against the observer Protocol, fed with real stats objects."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from allele.core.observer import (
    ChatErrorStats,
    ChatStats,
    GenerationStats,
    Observer,
    ReadoutStats,
    SequenceStats,
)
from allele.errors import ValidationError
from allele.observe import CATALOGUE, MetricSink, Telemetry
from allele.observe.metrics import Histogram

from .conftest import ManualClock, MemorySink


def gen(g: int, best: float, seconds: float = 0.01, evaluations: int = 100) -> GenerationStats:
    return GenerationStats(generation=g, best=best, mean=best / 2, std=0.1, diversity=0.3,
                           evaluations=evaluations, seconds=seconds)


def ok(seconds: float = 1.0, prompt: int = 10, completion: int = 20, ttft: float | None = None,
       retries: int = 0) -> ChatStats:
    return ChatStats(provider="openai", model="m", prompt_tokens=prompt,
                     completion_tokens=completion, seconds=seconds, time_to_first_token=ttft,
                     retries=retries, streamed=ttft is not None)


def err(cause: str, retries: int = 2) -> ChatErrorStats:
    return ChatErrorStats(provider="openai", model="m", cause=cause, seconds=0.5,
                          retries=retries, message="boom")


@pytest.fixture
def tel(clock: ManualClock) -> Telemetry:
    return Telemetry(background=False, system=False, clock=clock)


def test_telemetry_implements_the_observer_protocol(tel: Telemetry) -> None:
    assert isinstance(tel, Observer)


def test_evolution_metrics_and_derived_values(tel: Telemetry, clock: ManualClock) -> None:
    bests = [0.5, 0.6, 0.6, 0.55, 0.7]
    secs = [0.01, 0.01, 0.01, 0.05, 0.01]
    for g, (b, s) in enumerate(zip(bests, secs, strict=True)):
        tel.on_generation("evo-a", gen(g, b, s))
        clock.advance(1.0)
    assert tel.latest("allele_evolution_best_fitness", "evo-a") == 0.7
    assert tel.latest("allele_evolution_generation", "evo-a") == 4
    assert tel.latest("allele_evolution_generations_total", "evo-a") == 5
    assert tel.latest("allele_evolution_evaluations_total", "evo-a") == 500
    assert tel.latest("allele_evolution_evaluations_per_second", "evo-a") == pytest.approx(
        100 / 0.01)
    improvement = tel.series("allele_evolution_improvement", "evo-a").values
    np.testing.assert_allclose(improvement, [0.0, 0.1, 0.0, -0.05, 0.15], atol=1e-12)
    stagnation = tel.series("allele_evolution_stagnation_generations", "evo-a").values
    assert stagnation.tolist() == [0, 0, 1, 2, 0]
    ratio = tel.series("allele_evolution_generation_time_ratio", "evo-a").values
    assert ratio[0] == 1.0 and ratio[1] == pytest.approx(1.0)
    assert ratio[3] == pytest.approx(5.0)  # 0.05 s against an average of 0.01 s
    best = tel.series("allele_evolution_best_fitness", "evo-a")
    assert best.values.tolist() == bests
    assert best.timestamps.tolist() == [1_700_000_000.0 + i for i in range(5)]
    hist = next(f for f in tel.snapshot(["allele_evolution_generation_seconds"]))
    state = hist.histograms[0]
    assert state.count == 5 and state.sum == pytest.approx(sum(secs))
    le = dict(state.buckets)
    assert le["0.01"] == 4 and le["0.05"] == 5 and le["0.005"] == 0 and le["+Inf"] == 5


def test_series_since_component_glob_and_merge(tel: Telemetry, clock: ManualClock) -> None:
    for g in range(4):
        tel.on_generation("evolution-0", gen(g, 0.1 * g))
        tel.on_generation("evolution-1", gen(g, 1.0 + g))
        clock.advance(10.0)
    since = 1_700_000_000.0 + 20.0
    part = tel.series("allele_evolution_best_fitness", "evolution-1", since=since)
    assert part.values.tolist() == [3.0, 4.0]
    merged = tel.series("allele_evolution_best_fitness")
    assert merged.component == "*" and len(merged) == 8
    assert np.all(np.diff(merged.timestamps) >= 0)
    streams = tel.streams("allele_evolution_best_fitness", component="evolution-*")
    assert [s.component for s in streams] == ["evolution-0", "evolution-1"]
    assert tel.components("evolution") == ["evolution-0", "evolution-1"]
    empty = tel.series("allele_kraken_state_norm")
    assert len(empty) == 0 and empty.last is None
    with pytest.raises(KeyError, match="unknown metric"):
        tel.series("allele_no_such_metric")


def test_kraken_and_readout_metrics(tel: Telemetry) -> None:
    for i in range(3):
        tel.on_sequence("kraken-0", SequenceStats(steps=100, seconds=0.002, state_norm=3.0 + i,
                                                  saturated_fraction=0.1 * i,
                                                  memory_fill=100 * (i + 1),
                                                  memory_capacity=1000))
    tel.on_readout("kraken-0", ReadoutStats(samples=900, seconds=0.05, train_nrmse=0.02))
    assert tel.latest("allele_kraken_sequences_total", "kraken-0") == 3
    assert tel.latest("allele_kraken_steps_total", "kraken-0") == 300
    assert tel.latest("allele_kraken_steps_per_second", "kraken-0") == pytest.approx(50_000)
    assert tel.latest("allele_kraken_state_norm", "kraken-0") == 5.0
    assert tel.latest("allele_kraken_saturated_fraction", "kraken-0") == pytest.approx(0.2)
    assert tel.latest("allele_kraken_memory_fill", "kraken-0") == 300
    assert tel.latest("allele_kraken_memory_fill_ratio", "kraken-0") == pytest.approx(0.3)
    assert tel.latest("allele_kraken_readout_nrmse", "kraken-0") == 0.02
    assert tel.latest("allele_kraken_readout_trainings_total", "kraken-0") == 1
    assert tel.latest("allele_kraken_readout_samples", "kraken-0") == 900
    assert tel.components() == ["kraken-0"]


def test_agent_metrics_failures_by_cause_and_failure_ratio(tel: Telemetry) -> None:
    tel.on_chat("agent-0", ok(seconds=2.0, prompt=10, completion=40, ttft=0.3, retries=1))
    tel.on_chat_error("agent-0", err("connect", retries=2))
    tel.on_chat_error("agent-0", err("timeout", retries=2))
    tel.on_chat_error("agent-0", err("connect", retries=2))
    assert tel.latest("allele_agent_requests_total", "agent-0") == 4
    assert tel.latest("allele_agent_failures_total", "agent-0", {"cause": "connect"}) == 2
    assert tel.latest("allele_agent_failures_total", "agent-0", {"cause": "timeout"}) == 1
    assert tel.latest("allele_agent_prompt_tokens_total", "agent-0") == 10
    assert tel.latest("allele_agent_completion_tokens_total", "agent-0") == 40
    assert tel.latest("allele_agent_tokens_per_second", "agent-0") == pytest.approx(20.0)
    assert tel.latest("allele_agent_retries_total", "agent-0") == 7
    assert tel.latest("allele_agent_failure_ratio", "agent-0") == pytest.approx(0.75)
    connect = tel.series("allele_agent_failures_total", "agent-0", labels={"cause": "connect"})
    assert connect.values.tolist() == [1.0, 2.0]
    (req,) = tel.snapshot(["allele_agent_request_seconds"])
    assert req.histograms[0].count == 1 and req.histograms[0].sum == 2.0
    (ttft,) = tel.snapshot(["allele_agent_time_to_first_token_seconds"])
    assert ttft.histograms[0].count == 1 and dict(ttft.histograms[0].buckets)["0.5"] == 1
    # the failure ratio is over the last 20 requests: 20 successes push the failures out
    for _ in range(20):
        tel.on_chat("agent-0", ok())
    assert tel.latest("allele_agent_failure_ratio", "agent-0") == 0.0
    assert tel.latest("allele_agent_requests_total", "agent-0") == 24


def test_system_sample_is_real(tel: Telemetry) -> None:
    sample = tel.sample_system()
    assert sample.rss_bytes > 10_000_000 and sample.threads >= 1 and sample.open_files >= 3
    assert len(sample.gc_collections) == 3
    assert tel.latest("allele_process_rss_bytes", "process") == sample.rss_bytes
    assert tel.latest("allele_process_threads", "process") == sample.threads
    for g in range(3):
        assert tel.latest("allele_process_gc_collections_total", "process",
                          {"generation": str(g)}) == sample.gc_collections[g]
    assert tel.latest("allele_process_cpu_percent", "process") == sample.cpu_percent


def test_background_thread_samples_and_drains() -> None:
    import time

    with Telemetry(sample_interval_s=0.05, drain_interval_s=0.02) as tel:
        tel.on_generation("evolution-bg", gen(0, 0.5))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
                tel.events_total < 2 or len(tel.series("allele_process_rss_bytes")) < 2):
            time.sleep(0.02)
    assert tel.latest("allele_evolution_best_fitness", "evolution-bg") == 0.5
    assert len(tel.series("allele_process_rss_bytes", "process")) >= 2


def test_eight_threads_lose_nothing(tel: Telemetry) -> None:
    per_thread = 5000
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        barrier.wait()
        for k in range(per_thread):
            tel.on_chat("agent-shared", ok(prompt=1, completion=k % 3))
            tel.on_generation(f"evolution-{i}", gen(k, float(k), evaluations=2))
            if k % 1000 == 0:
                tel.drain()  # readers drain concurrently with writers

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tel.latest("allele_agent_requests_total", "agent-shared") == 8 * per_thread
    assert tel.latest("allele_agent_prompt_tokens_total", "agent-shared") == 8 * per_thread
    expected_completion = 8 * sum(k % 3 for k in range(per_thread))
    assert tel.latest("allele_agent_completion_tokens_total",
                      "agent-shared") == expected_completion
    for i in range(8):
        assert tel.latest("allele_evolution_generations_total", f"evolution-{i}") == per_thread
        assert tel.latest("allele_evolution_evaluations_total",
                          f"evolution-{i}") == 2 * per_thread
    assert tel.events_total == 16 * per_thread


def test_ring_is_bounded_but_totals_are_not(clock: ManualClock) -> None:
    tel = Telemetry(background=False, system=False, clock=clock, ring_size=16)
    for g in range(100):
        tel.on_generation("e", gen(g, float(g)))
        clock.advance(1)
    s = tel.series("allele_evolution_best_fitness", "e")
    assert s.values.tolist() == [float(g) for g in range(84, 100)]
    assert tel.latest("allele_evolution_generations_total", "e") == 100
    (h,) = tel.snapshot(["allele_evolution_generation_seconds"])
    assert h.histograms[0].count == 100


def test_unknown_events_are_counted_not_raised(tel: Telemetry) -> None:
    tel.record("x", object())
    tel.on_generation("e", gen(0, 1.0))
    assert tel.drain() == 1
    assert tel.unknown_events == 1


def test_sink_gets_batches_of_points(clock: ManualClock) -> None:
    sink = MemorySink()
    assert isinstance(sink, MetricSink)
    tel = Telemetry(sink=sink, background=False, system=False, clock=clock, batch_size=7)
    for g in range(3):
        tel.on_generation("evolution-0", gen(g, 0.1 * g))
        clock.advance(1)
    tel.on_chat_error("agent-0", err("connect"))
    written = tel.flush()
    n_evo = sum(1 for m in CATALOGUE.values() if m.source == "evolution")
    # agent error record: requests, failures{cause}, prompt/completion/retries totals, ratio
    assert written == 3 * n_evo + 6 == len(sink.points)
    assert all(len(b) <= 7 for b in sink.batches) and len(sink.batches) == -(-written // 7)
    best = [p for p in sink.points if p.metric == "allele_evolution_best_fitness"]
    assert [p.value for p in best] == pytest.approx([0.0, 0.1, 0.2])
    assert [p.timestamp for p in best] == [1_700_000_000.0 + i for i in range(3)]
    fail = [p for p in sink.points if p.metric == "allele_agent_failures_total"]
    assert fail[0].labels == (("cause", "connect"),) and fail[0].component == "agent-0"
    assert tel.flush() == 0  # nothing new
    assert tel.points_written == written


def test_failing_sink_never_raises_and_catches_up(clock: ManualClock) -> None:
    sink = MemorySink()
    sink.down = True
    tel = Telemetry(sink=sink, background=False, system=False, clock=clock, batch_size=5,
                    max_pending_points=40)
    n_evo = sum(1 for m in CATALOGUE.values() if m.source == "evolution")
    tel.on_generation("e", gen(0, 0.5))
    assert tel.flush() == 0
    assert tel.sink_failures == 1 and tel.self_metrics()["allele_telemetry_pending_points"] == (
        n_evo)
    for g in range(1, 5):  # 5 * n_evo points > 40: the oldest are dropped and counted
        tel.on_generation("e", gen(g, 0.5 + g))
    assert tel.flush() == 0
    assert tel.sink_failures == 2
    assert tel.points_dropped == 5 * n_evo - 40
    sink.down = False
    assert tel.flush() == 40
    values = [p.value for p in sink.points if p.metric == "allele_evolution_best_fitness"]
    assert values == sorted(values) and values[-1] == 4.5  # the newest survived, in order


def test_invalid_configuration_is_rejected() -> None:
    with pytest.raises(ValidationError):
        Telemetry(background=False, system=False, ring_size=0)
    with pytest.raises(ValidationError):
        Telemetry(background=False, system=False, batch_size=0)


def test_histogram_buckets_are_le_inclusive() -> None:
    h = Histogram([1.0, 2.0])
    for v in (0.5, 1.0, 1.5, 2.0, 3.0):
        h.observe(v)
    assert h.cumulative() == [("1.0", 2.0), ("2.0", 4.0), ("+Inf", 5.0)]
    assert h.sum == 8.0
    with pytest.raises(ValueError):
        Histogram([2.0, 1.0])


def test_failing_exporter_subscriber_is_counted_not_raised(tel: Telemetry) -> None:
    seen: list[str] = []

    def broken(source: str, component: str, rec: object) -> None:
        raise RuntimeError("exporter down")

    tel.subscribe(broken)
    tel.subscribe(lambda source, component, rec: seen.append(f"{source}:{component}"))
    tel.on_generation("evolution-0", gen(0, 0.5))
    tel.on_chat_error("agent-0", err("timeout"))
    assert tel.drain() == 2
    assert tel.subscriber_failures == 2
    assert seen == ["evolution:evolution-0", "agent:agent-0"]
    assert tel.latest("allele_evolution_best_fitness", "evolution-0") == 0.5
