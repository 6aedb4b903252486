"""The bounded inbox: a flood beyond ``inbox_limit`` drops the oldest events and counts each one."""

from __future__ import annotations

import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from allele.config import ObserveSettings, Settings
from allele.core.observer import GenerationStats, SequenceStats
from allele.errors import ValidationError
from allele.observe import Telemetry
from allele.observe.export import exposition, make_registry

from .conftest import ManualClock


def gen(g: int) -> GenerationStats:
    return GenerationStats(generation=g, best=g / 1000, mean=0.1, std=0.1, diversity=0.3,
                           evaluations=10, seconds=0.01)


def seq(steps: int) -> SequenceStats:
    return SequenceStats(steps=steps, seconds=0.001, state_norm=1.0, saturated_fraction=0.0,
                         memory_fill=1, memory_capacity=10)


def test_the_limit_comes_from_settings_and_must_be_positive() -> None:
    assert ObserveSettings().inbox_limit == 200_000
    tel = Telemetry(background=False, system=False,
                    settings=Settings(observe=ObserveSettings(inbox_limit=123)))
    assert tel.inbox_limit == 123
    with pytest.raises(ValidationError):
        Telemetry(background=False, system=False, inbox_limit=0)


def test_a_flood_drops_the_oldest_and_counts_every_drop(clock: ManualClock) -> None:
    tel = Telemetry(background=False, system=False, clock=clock, inbox_limit=1000)
    for g in range(2500):
        tel.on_generation("evo", gen(g))
    assert tel.self_metrics()["allele_telemetry_inbox_events"] == 1000
    assert tel.drain() == 1000
    assert tel.inbox_dropped == 1500
    assert tel.events_recorded == 2500
    # the newest 1000 survived: generations 1500..2499, the first kept is 1500
    assert tel.latest("allele_evolution_generation", "evo") == 2499
    assert tel.latest("allele_evolution_generations_total", "evo") == 1000
    first = tel.series("allele_evolution_generation", "evo").values[0]
    assert first == 1500
    # below the limit nothing more is dropped
    for g in range(999):
        tel.on_generation("evo", gen(g))
    tel.drain()
    assert tel.inbox_dropped == 1500
    m = tel.self_metrics()
    assert m["allele_telemetry_inbox_dropped_total"] == 1500
    assert m["allele_telemetry_events_total"] == 1999
    assert m["allele_telemetry_inbox_limit"] == 1000


def test_drops_from_many_threads_while_draining_add_up_exactly() -> None:
    tel = Telemetry(background=False, system=False, inbox_limit=500)
    per_thread, threads = 20_000, 4
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def flood(i: int) -> None:
        start.wait()
        for k in range(per_thread):
            tel.on_sequence(f"kraken-{i}", seq(k))

    def drainer() -> None:
        start.wait()
        while not stop.is_set():
            tel.drain()

    workers = [threading.Thread(target=flood, args=(i,)) for i in range(threads)]
    d = threading.Thread(target=drainer)
    for t in (*workers, d):
        t.start()
    for t in workers:
        t.join()
    stop.set()
    d.join()
    tel.drain()
    total = per_thread * threads
    assert tel.events_recorded == total
    assert tel.events_total + tel.inbox_dropped == total
    assert tel.inbox_dropped > 0
    # what each component kept is exactly what was ingested for it
    kept = sum(tel.latest("allele_kraken_sequences_total", f"kraken-{i}") or 0
               for i in range(threads))
    assert kept == tel.events_total


def test_drops_are_exposed_on_metrics(clock: ManualClock) -> None:
    tel = Telemetry(background=False, system=False, clock=clock, inbox_limit=10)
    for g in range(37):
        tel.on_generation("evo", gen(g))
    text = exposition(make_registry(tel)).decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    fam = fams["allele_telemetry_inbox_dropped"]
    assert fam.type == "counter"
    assert [s.value for s in fam.samples if s.name.endswith("_total")] == [27.0]
    assert [s.value for s in fams["allele_telemetry_inbox_limit"].samples] == [10.0]
