"""Telemetry flushing into the real result store (SQLite), read back as the same series."""

from __future__ import annotations

from pathlib import Path

from allele.core.evolution import EvolutionConfig, EvolutionEngine
from allele.core.fitness import target_personality
from allele.core.observer import ChatErrorStats
from allele.observe import MetricSink, Telemetry
from allele.store import open_store


def test_points_reach_the_result_store(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'results.db'}")
    as_object: object = store
    assert isinstance(as_object, MetricSink)
    try:
        tel = Telemetry(sink=store, background=False, system=False, batch_size=50)
        cfg = EvolutionConfig(population_size=30, generations=12, seed=2)
        EvolutionEngine(cfg, target_personality({"empathy": 1.0}), observer=tel,
                        name="evo-store").run()
        tel.on_chat_error("agent-s", ChatErrorStats(provider="openai", model="m",
                                                    cause="timeout", seconds=1.0, retries=0,
                                                    message="t"))
        written = tel.flush()
        assert written > 13 * 10 and tel.sink_failures == 0
        mem = tel.series("allele_evolution_best_fitness", "evo-store")
        stored = store.read_metric_points("allele_evolution_best_fitness", "evo-store")
        assert [p.value for p in stored] == mem.values.tolist()
        assert [p.timestamp for p in stored] == mem.timestamps.tolist()
        (fail,) = store.read_metric_points("allele_agent_failures_total", "agent-s")
        assert fail.labels == (("cause", "timeout"),) and fail.value == 1.0
    finally:
        store.close()
