"""Telemetry under load: N components recording into one Telemetry until it saturates.

Two figures (issue 17), each with the p99 latency of one record call on the component's thread:

(a) **record path**: N threads call the observer methods as fast as they can for ``--seconds``
    while the background thread drains into the bounded inbox (``observe.inbox_limit``). Printed:
    events/s offered, accepted (ingested into the streams) and dropped (counted by the inbox);
    goal >= 1,000,000 events/s with every drop counted (recorded = ingested + dropped).
(b) **end to end into SQLite**: N paced threads at ``--e2e-rate`` events/s in all, into a
    Telemetry whose sink is a SQLite result store, for ``--soak-seconds`` (600 for the figure in
    docs/scale.md; 20 for a quick check). Printed: events/s delivered, inbox and point drops (goal:
    none), the resident set size over the soak (first and last fifth, and its slope: flat memory)
    and the backlog at the end. Goal >= 50,000 events/s.
    Then the flush path's capacity: a backlog of ``--backlog`` events drained and flushed into a
    fresh store, timed: the current flush (packed point blocks) against the row-per-point insert
    it replaced (the baseline, re-implemented here), as a ratio in the same invocation.

Events are a mix of the two high-rate sources: Kraken sequences (9 points each) and evolution
generations (12 points each), alternating by component. Latency is timed on every 64th call with
``perf_counter_ns`` (timing every call would double its cost); under the GIL a call's latency
includes waiting for another thread's slice, which is what a component really sees.

Usage::

    python benchmarks/telemetry_load.py                        # the doc figures (10-minute soak)
    python benchmarks/telemetry_load.py --soak-seconds 20      # a quick check
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from allele.core.observer import GenerationStats, SequenceStats
from allele.observe import Telemetry
from allele.store import open_store

SAMPLE_EVERY = 64
RESERVOIR = 50_000


def _stats(i: int, k: int) -> Any:
    if i % 2:
        return GenerationStats(generation=k, best=k / 1e6, mean=0.1, std=0.1, diversity=0.3,
                               evaluations=100, seconds=0.002)
    return SequenceStats(steps=100, seconds=1e-4, state_norm=1.0, saturated_fraction=0.0,
                         memory_fill=10, memory_capacity=100)


def _recorder(tel: Telemetry, i: int) -> Callable[[str, Any], None]:
    return tel.on_generation if i % 2 else tel.on_sequence  # type: ignore[return-value]


def _producer(tel: Telemetry, i: int, stop: threading.Event, start: threading.Barrier,
              rate: float | None, lat: list[int], counts: list[int]) -> None:
    """Record as fast as possible (``rate`` None) or at ``rate`` events/s, in bursts of 64."""
    name = f"{'evolution' if i % 2 else 'kraken'}-{i}"
    pool = [_stats(i, k) for k in range(256)]
    rec = _recorder(tel, i)
    ns = time.perf_counter_ns
    rng = random.Random(i)
    n = timed = 0
    start.wait()
    t0 = time.perf_counter()
    while not stop.is_set():
        for k in range(0, 256, SAMPLE_EVERY):
            a = ns()
            rec(name, pool[k])
            dt = ns() - a
            # a uniform reservoir of the timed calls: constant memory over a long soak
            if timed < RESERVOIR:
                lat.append(dt)
            else:
                j = rng.randrange(timed + 1)
                if j < RESERVOIR:
                    lat[j] = dt
            timed += 1
            for s in pool[k + 1:k + SAMPLE_EVERY]:
                rec(name, s)
        n += 256
        if rate is not None:
            ahead = n / rate - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)
    counts[i] = n


def _p99_us(lat: list[list[int]]) -> float:
    flat = np.concatenate([np.asarray(x, dtype=np.float64) for x in lat if x])
    return float(np.percentile(flat, 99)) / 1e3


def _run(tel: Telemetry, n: int, seconds: float, rate: float | None,
         on_tick: Callable[[], None] | None = None) -> tuple[float, list[int], list[list[int]]]:
    stop = threading.Event()
    start = threading.Barrier(n + 1)
    lat: list[list[int]] = [[] for _ in range(n)]
    counts = [0] * n
    per = None if rate is None else rate / n
    threads = [threading.Thread(target=_producer, args=(tel, i, stop, start, per, lat[i], counts))
               for i in range(n)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        time.sleep(min(1.0, max(0.0, end - time.perf_counter())))
        if on_tick is not None:
            on_tick()
    stop.set()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, counts, lat


def record_path(n: int, seconds: float, limit: int) -> None:
    tel = Telemetry(system=False, sink=None, inbox_limit=limit)
    wall, _counts, lat = _run(tel, n, seconds, None)
    tel.close()
    recorded, accepted, dropped = tel.events_recorded, tel.events_total, tel.inbox_dropped
    print(f"(a) record path: {n} components, {seconds:.0f} s, inbox_limit {limit:,}")
    print(f"    offered  {recorded / wall:>12,.0f} events/s   (goal >= 1,000,000: "
          f"{'MET' if recorded / wall >= 1e6 else 'NOT MET'})")
    print(f"    accepted {accepted / wall:>12,.0f} events/s")
    print(f"    dropped  {dropped / wall:>12,.0f} events/s   ({dropped:,} counted; recorded "
          f"{recorded:,} = accepted {accepted:,} + dropped {dropped:,}: "
          f"{'yes' if recorded == accepted + dropped else 'NO'})")
    print(f"    p99 record latency {_p99_us(lat):.2f} us  (median "
          f"{statistics.median(x for li in lat for x in li) / 1e3:.2f} us)")


def end_to_end(n: int, seconds: float, rate: float, tmp: Path) -> None:
    store = open_store(f"sqlite:///{tmp / 'soak.db'}")
    tel = Telemetry(system=False, sink=store)
    proc = psutil.Process()
    rss: list[tuple[float, float]] = []
    t0 = time.perf_counter()

    def tick() -> None:
        rss.append((time.perf_counter() - t0, proc.memory_info().rss / 2**20))

    gc.collect()
    wall, _counts, lat = _run(tel, n, seconds, rate, tick)
    backlog = len(tel._inbox)
    t1 = time.perf_counter()
    tel.close()
    tail = time.perf_counter() - t1
    recorded = tel.events_recorded
    m = tel.self_metrics()
    t = np.array([x[0] for x in rss])
    r = np.array([x[1] for x in rss])
    fifth = max(1, len(r) // 5)
    slope = float(np.polyfit(t, r, 1)[0]) * 60 if len(r) > 2 else float("nan")
    size = (tmp / "soak.db").stat().st_size / 2**20
    print(f"(b) end to end into SQLite: {n} components at {rate:,.0f} events/s offered, "
          f"{seconds:.0f} s soak")
    rate_in = recorded / (wall + tail)  # the final flush included
    ok = rate_in >= 50_000 and not tel.inbox_dropped and not tel.points_dropped
    print(f"    delivered {rate_in:>11,.0f} events/s into the store (goal >= 50,000 with no drop: "
          f"{'MET' if ok else 'NOT MET'}); "
          f"{m['allele_telemetry_points_written_total']:,.0f} points written")
    print(f"    dropped: inbox {tel.inbox_dropped:,}, points {tel.points_dropped:,}; "
          f"sink failures {tel.sink_failures}; backlog at the end {backlog:,} events, "
          f"flushed in {tail:.2f} s")
    print(f"    RSS MiB: first fifth median {np.median(r[:fifth]):.1f}, last fifth median "
          f"{np.median(r[-fifth:]):.1f}, max {r.max():.1f}, slope {slope:+.2f} MiB/min")
    print(f"    p99 record latency {_p99_us(lat):.2f} us; store file {size:,.0f} MiB")
    store.close()


class RowPerPointSink:
    """The write path before packed blocks: one row per point in a ``metric_points`` table
    indexed by ``(metric, timestamp)``, inserted with SQLAlchemy Core in one transaction per
    batch (the store's code of schema version 4, re-implemented here as the baseline)."""

    def __init__(self, path: Path) -> None:
        from sqlalchemy import (
            Column,
            Float,
            Index,
            Integer,
            MetaData,
            String,
            Table,
            Text,
            create_engine,
            event,
        )

        self.engine = create_engine(f"sqlite:///{path}")

        @event.listens_for(self.engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.close()

        md = MetaData()
        self.table = Table(
            "metric_points", md,
            Column("pk", Integer, primary_key=True, autoincrement=True),
            Column("metric", String(200), nullable=False),
            Column("component", String(200), nullable=False),
            Column("labels", Text, nullable=False),
            Column("timestamp", Float, nullable=False),
            Column("value", Float, nullable=False),
        )
        Index("ix_metric_points_metric_ts", self.table.c.metric, self.table.c.timestamp)
        md.create_all(self.engine)

    def write_metric_points(self, points: Any) -> None:
        from allele.store.codecs import labels_json

        rows = [{"metric": p.metric, "component": p.component,
                 "labels": labels_json(p.labels), "timestamp": float(p.timestamp),
                 "value": float(p.value)} for p in points]
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), rows)

    def close(self) -> None:
        self.engine.dispose()


def _fill(tel: Telemetry, events: int, components: int = 4) -> None:
    pools = [[_stats(i, k) for k in range(256)] for i in range(components)]
    names = [f"{'evolution' if i % 2 else 'kraken'}-{i}" for i in range(components)]
    recs = [_recorder(tel, i) for i in range(components)]
    for k in range(events):
        i = k % components
        recs[i](names[i], pools[i][k % 256])


def flush_capacity(backlog: int, tmp: Path, rounds: int = 3) -> None:
    """Drain and flush a backlog of ``backlog`` events into a fresh SQLite file, timed; the
    packed store against the row-per-point baseline, alternating, ``rounds`` times."""
    packed: list[float] = []
    rows: list[float] = []
    points = 0.0
    for r in range(rounds):
        for kind in ("rows", "packed"):
            path = tmp / f"flush-{kind}-{r}.db"
            sink: Any = RowPerPointSink(path) if kind == "rows" else open_store(
                f"sqlite:///{path}")
            tel = Telemetry(system=False, background=False, sink=sink,
                            inbox_limit=backlog + 1)
            _fill(tel, backlog)
            gc.collect()
            t0 = time.perf_counter()
            tel.flush()
            dt = time.perf_counter() - t0
            assert tel.events_total == backlog and tel.points_dropped == 0
            points = tel.points_written
            (packed if kind == "packed" else rows).append(backlog / dt)
            sink.close()
            path.unlink()
    p, b = statistics.median(packed), statistics.median(rows)
    print(f"flush path: a backlog of {backlog:,} events ({points:,.0f} points) drained and "
          f"flushed into SQLite, median of {rounds}")
    print(f"    packed blocks   {p:>11,.0f} events/s   ({p * points / backlog:,.0f} points/s)")
    print(f"    row per point   {b:>11,.0f} events/s   (baseline)")
    print(f"    ratio packed / row per point: {p / b:.1f}x;  goal 50,000 events/s: "
          f"{'MET' if p >= 50_000 else 'NOT MET'} by the flush path alone")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--components", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0, help="record-path run length")
    ap.add_argument("--inbox-limit", type=int, default=200_000)
    ap.add_argument("--soak-seconds", type=float, default=600.0)
    ap.add_argument("--e2e-rate", type=float, default=60_000.0)
    ap.add_argument("--backlog", type=int, default=200_000)
    ap.add_argument("--skip", default="", help="comma list of a,b,flush to skip")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, pid {os.getpid()}")
    with tempfile.TemporaryDirectory() as d:
        if "a" not in skip:
            record_path(args.components, args.seconds, args.inbox_limit)
        if "flush" not in skip:
            flush_capacity(args.backlog, Path(d))
        if "b" not in skip:
            end_to_end(args.components, args.soak_seconds, args.e2e_rate, Path(d))


if __name__ == "__main__":
    main()
