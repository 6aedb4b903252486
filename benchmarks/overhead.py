"""Overhead of observing: the same seeded workload with and without a Telemetry attached.

Run:  .venv/bin/python benchmarks/overhead.py [--repeats 9] [--chunk 1000,100]

* evolution: EvolutionEngine, population 1000, 200 generations, a cheap vectorised fitness
  (``target_personality``);
* kraken: KrakenLNN (100 units, fitted readout) streaming 20,000 steps through
  ``process_sequence`` in chunks of ``--chunk`` steps;
* per event: the cost of one observer call on the component's thread (hot path), the cost
  including the later ingestion (drain) of that event, and prometheus-client's own ``Counter.inc``
  plus the same metrics recorded directly with prometheus-client objects, all in this run.

Whole runs are interleaved (baseline, observed, observed, baseline, ...) and the medians are
compared,
both in wall time and in process CPU time (all threads, so the Telemetry's background thread is
counted). On a shared, loaded machine wall time swings by tens of percent between runs; CPU time
is far steadier and is the figure to judge a 1 % budget by. The script also prints the attributed
cost: events x measured per-event cost (hot path + ingestion) over the baseline run time.
The Telemetry uses default settings (system sampler and background thread on, no sink); its
creation and closing are outside the timed region, its background work is inside.

A finer, paired measurement follows each: one component whose observer is switched on and off
call by call, each call timed in *thread* CPU time (which other processes on a busy machine
cannot inflate), the observed calls also paying the ingestion of their events.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from allele.core.observer import GenerationStats, notify
from allele.observe import Telemetry

Timing = tuple[float, float]


class _Clock:
    """Wall and process-CPU time of a region."""

    def __enter__(self) -> _Clock:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0

    @property
    def result(self) -> Timing:
        return (self.wall, self.cpu)


def _interleaved(repeats: int, base: Callable[[], Timing], observed: Callable[[], Timing]
                 ) -> tuple[list[Timing], list[Timing]]:
    b: list[Timing] = []
    o: list[Timing] = []
    base()  # warm-up (numba compilation, caches)
    observed()
    for i in range(repeats):
        if i % 2 == 0:
            b.append(base())
            o.append(observed())
        else:
            o.append(observed())
            b.append(base())
    return b, o


def _report(title: str, b: list[Timing], o: list[Timing]) -> float:
    print(title)
    pct = 0.0
    for i, what in ((0, "wall"), (1, "cpu ")):
        bb = [x[i] * 1e3 for x in b]
        oo = [x[i] * 1e3 for x in o]
        mb, mo = statistics.median(bb), statistics.median(oo)
        pct = (mo / mb - 1.0) * 100.0
        print(f"  {what} baseline median {mb:9.2f} ms  observed median {mo:9.2f} ms  "
              f"overhead {pct:+6.2f} %")
        print(f"       runs baseline [{', '.join(f'{x:.1f}' for x in bb)}]")
        print(f"       runs observed [{', '.join(f'{x:.1f}' for x in oo)}]")
    return pct


def bench_evolution(repeats: int, population: int, generations: int
                    ) -> tuple[float, int, float]:
    from allele.core.evolution import EvolutionConfig, EvolutionEngine
    from allele.core.fitness import target_personality

    cfg = EvolutionConfig(population_size=population, generations=generations, seed=7)
    fitness = target_personality({"empathy": 0.9, "technical_knowledge": 0.8,
                                  "conciseness": 0.3})

    def base() -> Timing:
        engine = EvolutionEngine(cfg, fitness, name="bench")
        with _Clock() as c:
            engine.run()
        return c.result

    def observed() -> Timing:
        tel = Telemetry()
        engine = EvolutionEngine(cfg, fitness, observer=tel, name="bench")
        with _Clock() as c:
            engine.run()
        tel.close()
        seen = tel.series("allele_evolution_generation_seconds", component="bench")
        assert len(seen) == generations + 1, len(seen)
        return c.result

    b, o = _interleaved(repeats, base, observed)
    events = generations + 1
    return _report(f"evolution: population {population}, {generations} generations "
                   f"({events} events)", b, o), events, statistics.median(x[1] for x in b)


def bench_kraken(repeats: int, steps: int, chunk: int) -> tuple[float, int, float]:
    from allele.core.datasets import mackey_glass
    from allele.core.kraken import KrakenLNN

    series = np.asarray(mackey_glass(steps + 2001), dtype=np.float64)
    train_u, train_y = series[:2000], series[1:2001]
    stream = series[2001:2001 + steps]
    chunks = [stream[i:i + chunk] for i in range(0, steps, chunk)]

    def make(observer: Telemetry | None) -> KrakenLNN:
        net = KrakenLNN(reservoir_size=100, seed=3, observer=observer, name="bench")
        net.fit(train_u, train_y)
        return net

    def run(net: KrakenLNN) -> Timing:
        with _Clock() as c:
            for part in chunks:
                net.process_sequence(part)
        return c.result

    def base() -> Timing:
        return run(make(None))

    def observed() -> Timing:
        tel = Telemetry()
        result = run(make(tel))
        tel.close()
        assert tel.latest("allele_kraken_steps_total", "bench") == steps
        return result

    b, o = _interleaved(repeats, base, observed)
    return _report(f"kraken: streaming {steps} steps in chunks of {chunk} "
                   f"({len(chunks)} process_sequence calls)", b, o), len(chunks), \
        statistics.median(x[1] for x in b)


DRAIN_EVERY = 32


def _paired_report(title: str, ratios: list[float]) -> float:
    med = statistics.median(ratios) * 100.0
    print(f"{title}")
    print(f"  paired per-call CPU overhead, median of {len(ratios)} runs: {med:+.3f} %   "
          f"(runs: {', '.join(f'{r * 100:+.2f}' for r in ratios)})")
    return med


def paired_evolution(repeats: int, population: int, generations: int) -> float:
    """One engine whose observer is switched on and off every generation (alternating which
    parity is observed between runs); each step is timed in thread CPU time.

    The observed steps pay the observer call and the ingestion of their events (a drain every
    DRAIN_EVERY observed calls, timed on their side; the default background thread drains every
    0.25 s). Observing does not change what the engine computes, so both halves do the same
    work on the same data.
    """
    from allele.core.evolution import EvolutionConfig, EvolutionEngine
    from allele.core.fitness import target_personality

    cfg = EvolutionConfig(population_size=population, generations=generations, seed=7)
    fitness = target_personality({"empathy": 0.9, "technical_knowledge": 0.8,
                                  "conciseness": 0.3})
    clock = time.thread_time_ns
    ratios: list[float] = []
    for r in range(repeats):
        tel = Telemetry(background=False, system=False)
        engine = EvolutionEngine(cfg, fitness, name="bench")
        engine.initialize()
        spent = {True: 0, False: 0}
        n_observed = 0
        for g in range(generations):
            observed = (g + r) % 2 == 0
            engine.observer = tel if observed else None
            t0 = clock()
            engine.step()
            if observed:
                n_observed += 1
                if n_observed % DRAIN_EVERY == 0:
                    tel.drain()
            spent[observed] += clock() - t0
        t0 = clock()
        tel.drain()
        spent[True] += clock() - t0
        assert len(tel.series("allele_evolution_best_fitness", "bench")) == n_observed
        ratios.append(spent[True] / spent[False] - 1.0)
    return _paired_report(f"evolution (paired, observer toggled per generation): population "
                          f"{population}, {generations} generations", ratios)


def paired_kraken(repeats: int, steps: int, chunk: int) -> float:
    """One network streaming the chunks, its observer switched on and off every call; each
    call timed in thread CPU time, the observed calls also paying the ingestion (as above).
    This includes KrakenLNN computing its SequenceStats for the observed calls."""
    from allele.core.datasets import mackey_glass
    from allele.core.kraken import KrakenLNN

    series = np.asarray(mackey_glass(steps + 2001), dtype=np.float64)
    train_u, train_y = series[:2000], series[1:2001]
    stream = series[2001:2001 + steps]
    chunks = [stream[i:i + chunk] for i in range(0, steps, chunk)]
    passes = max(1, 200 // len(chunks))  # enough calls per run to average over
    clock = time.thread_time_ns
    ratios: list[float] = []
    for r in range(repeats):
        tel = Telemetry(background=False, system=False)
        net = KrakenLNN(reservoir_size=100, seed=3, name="bench")
        net.fit(train_u, train_y)
        spent = {True: 0, False: 0}
        n_observed = 0
        for p in range(passes):
            for i, part in enumerate(chunks):
                observed = (i + p + r) % 2 == 0
                net.observer = tel if observed else None
                t0 = clock()
                net.process_sequence(part)
                if observed:
                    n_observed += 1
                    if n_observed % DRAIN_EVERY == 0:
                        tel.drain()
                spent[observed] += clock() - t0
        t0 = clock()
        tel.drain()
        spent[True] += clock() - t0
        assert tel.latest("allele_kraken_sequences_total", "bench") == n_observed
        ratios.append(spent[True] / spent[False] - 1.0)
    return _paired_report(f"kraken (paired, observer toggled per call): chunks of {chunk} "
                          f"steps, {passes} pass(es) over {steps} steps", ratios)


def system_sampler_cost(samples: int = 50) -> float:
    """Thread CPU time of one system sample; at the default 1 s interval this is the sampler's
    share of one core."""
    tel = Telemetry(background=False, system=True)
    tel.sample_system()
    t0 = time.thread_time_ns()
    for _ in range(samples):
        tel.sample_system()
    tel.drain()
    per = (time.thread_time_ns() - t0) / samples
    interval = tel.sample_interval_s
    print(f"system sampler: {per / 1e3:.0f} us per sample, every {interval:g} s = "
          f"{per / 1e9 / interval * 100:.3f} % of one core")
    return per


def bench_per_event(n: int, repeats: int) -> dict[str, float]:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    stats = GenerationStats(generation=5, best=0.9, mean=0.5, std=0.1, diversity=0.2,
                            evaluations=1000, seconds=0.0005)
    reg = CollectorRegistry()
    counter = Counter("bench_events", "x", registry=reg)
    # What recording the same evolution metrics directly with prometheus-client would cost.
    lab = ("component",)
    gauges = [Gauge(f"bench_g{i}", "x", lab, registry=reg).labels("evolution-0")
              for i in range(9)]
    counters = [Counter(f"bench_c{i}", "x", lab, registry=reg).labels("evolution-0")
                for i in range(2)]
    hist = Histogram("bench_h", "x", lab, registry=reg).labels("evolution-0")

    def prom_equivalent() -> None:
        for g in gauges:
            g.set(0.5)
        counters[0].inc()
        counters[1].inc(1000)
        hist.observe(0.0005)

    results: dict[str, list[float]] = {"hot": [], "notify": [], "inclusive": [], "counter": [],
                                       "prom_equiv": []}
    block = range(1000)
    blocks = max(1, n // 1000)
    inc = counter.inc
    clock = time.thread_time_ns  # CPU time of this thread: other processes cannot inflate it
    for _ in range(repeats):
        # Blocks of 1000 events alternate between the contenders so that load changes on a
        # shared machine hit all of them alike.
        tel = Telemetry(background=False, system=False)
        on_gen = tel.on_generation
        hot = via_notify = incl = cnt = equiv = 0
        for _ in range(blocks):
            t0 = clock()
            for _ in block:
                on_gen("evolution-0", stats)
            t1 = clock()
            tel.drain()
            t2 = clock()
            for _ in block:
                notify(tel, "on_generation", "evolution-0", stats)
            t3 = clock()
            tel.drain()
            t4 = clock()
            for _ in block:
                inc()
            t5 = clock()
            for _ in block:
                prom_equivalent()
            t6 = clock()
            hot += t1 - t0
            via_notify += t3 - t2
            incl += t4 - t2
            cnt += t5 - t4
            equiv += t6 - t5
        total = blocks * 1000
        results["hot"].append(hot / total)
        results["notify"].append(via_notify / total)
        results["inclusive"].append(incl / total)
        results["counter"].append(cnt / total)
        results["prom_equiv"].append(equiv / total)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"per event, thread CPU time ({n} events x {repeats} interleaved repeats, medians):")
    print(f"  Telemetry.on_generation (hot path)                   {med['hot']:8.0f} ns")
    print(f"  through core's notify() as components call it        {med['notify']:8.0f} ns")
    print(f"  notify() + ingestion (drain), all a generation costs {med['inclusive']:8.0f} ns")
    print(f"  prometheus-client Counter.inc                        {med['counter']:8.0f} ns")
    print(f"  prometheus-client, same 12 evolution metrics         {med['prom_equiv']:8.0f} ns")
    print(f"  hot path / Counter.inc = {med['hot'] / med['counter']:.2f}; "
          f"all-in / prometheus equivalent = {med['inclusive'] / med['prom_equiv']:.2f}")
    return med


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--population", type=int, default=1000)
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--chunk", default="1000,100",
                        help="process_sequence chunk sizes, comma-separated")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--only", choices=["evolution", "kraken"], default=None)
    args = parser.parse_args(argv)
    per_event = bench_per_event(args.events, args.repeats)["inclusive"]
    system_sampler_cost()
    if args.only in (None, "evolution"):
        _, events, base_cpu = bench_evolution(args.repeats, args.population, args.generations)
        print(f"  attributed: {events} generations x {per_event:.0f} ns = "
              f"{events * per_event / 1e6:.3f} ms = "
              f"{events * per_event / 1e9 / base_cpu * 100:.3f} % of the baseline CPU time")
        paired_evolution(args.repeats, args.population, args.generations)
    if args.only in (None, "kraken"):
        for chunk in (int(c) for c in args.chunk.split(",")):
            _, events, base_cpu = bench_kraken(args.repeats, args.steps, chunk)
            print(f"  attributed to Telemetry: {events} events x {per_event:.0f} ns = "
                  f"{events * per_event / 1e6:.3f} ms = "
                  f"{events * per_event / 1e9 / base_cpu * 100:.3f} % of the baseline CPU time "
                  "(KrakenLNN's own SequenceStats computation is not included here; the paired "
                  "figure below includes it)")
            paired_kraken(args.repeats, args.steps, chunk)
    return 0


if __name__ == "__main__":
    sys.exit(main())
