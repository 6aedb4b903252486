"""Targets the live-telemetry tests reference as ``tests.bench.live_targets:NAME`` (workers import
them): a user target recording its own metrics, and one that evolves a small population so that an
observed component runs inside the worker."""

from __future__ import annotations

import time
from typing import Any

from allele.observe import usermetrics as um

REQUESTS = um.counter("livetest_requests_total", "Calls of the live test target.",
                      labels=["kind"])
DEPTH = um.gauge("livetest_queue_depth", "A gauge the target sets to its x.")
LATENCY = um.histogram("livetest_latency_seconds", "Sleep per call.", buckets=[0.001, 0.01, 0.1])


def user_metrics(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Records its own metrics; sleeps ``sleep_s``; returns x * seed."""
    x = float(params.get("x", 1))
    REQUESTS.labels(kind=str(params.get("kind", "a"))).inc()
    DEPTH.set(x)
    sleep = float(params.get("sleep_s", 0.0))
    if sleep:
        time.sleep(sleep)
    LATENCY.observe(sleep)
    return {"score": x * seed}


def many_labels(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Feeds ``n`` distinct label values into one counter (the series limit refuses most)."""
    c = um.counter("livetest_ids_total", "One series per id.", labels=["id"])
    for i in range(int(params.get("n", 10))):
        c.labels(id=f"{seed}-{i}").inc()
    return {"n": float(params.get("n", 10))}


def evolve(params: dict[str, Any], seed: int) -> dict[str, float]:
    """A few generations of a small EvolutionEngine (observed through the default observer)."""
    from allele.core.evolution import EvolutionConfig, EvolutionEngine
    from allele.core.fitness import target_personality

    engine = EvolutionEngine(EvolutionConfig(population_size=20,
                                             generations=int(params.get("generations", 5)),
                                             seed=seed),
                             target_personality({"empathy": 0.9}))
    result = engine.run()
    return {"best": float(result.history[-1].best)}
