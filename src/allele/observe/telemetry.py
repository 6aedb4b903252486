"""Telemetry: the observer that core components report to.

Design for a cost the observed component never notices:

* The observer methods (``on_generation`` ...) do two things: append ``(name, timestamp, stats)``
  to an inbox ``collections.deque`` and advance an ``itertools.count``. Both are single C calls,
  atomic under the GIL, so any number of threads can record at once without a lock.
* The inbox is bounded (``observe.inbox_limit``, 200,000 events by default): a deque with
  ``maxlen`` drops its oldest event when a new one arrives while it is full. The counter says how
  many events were recorded, so the drops are counted exactly: recorded - drained - still queued
  (``inbox_dropped``, exposed as ``allele_telemetry_inbox_dropped_total``). The count is exact once
  recording pauses and never counts an event that was not dropped while it runs (the counter is
  read before the queue length).
* Everything else happens later, in batches, off the component's thread: the background thread
  (or any reader: :meth:`Telemetry.series`, a ``/metrics`` scrape, an alert evaluation,
  :meth:`Telemetry.flush`) *drains* the inbox under a lock into one stream per
  ``(source, component)``: cumulative counters, fixed-bucket histograms, and a bounded ring buffer
  of the raw records. Metric values are read from those records only when someone asks.

Labels are bounded by construction: the component name, plus ``cause`` for agent failures and
``generation`` for GC runs. Never a genome id.

This module holds the three jobs on that data: ingest (the observer methods and :meth:`drain`),
query (:meth:`Telemetry.series`, :meth:`Telemetry.snapshot` ...) and flush to the sink. The
per-component state lives in :mod:`allele.observe.streams`; Prometheus serving in
:mod:`allele.observe.export`; the process-wide default observer in :mod:`allele.observe.install`.
"""

from __future__ import annotations

import fnmatch
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from allele.config import ObserveSettings, Settings
from allele.core import observer as _core_observer
from allele.core.observer import (
    ChatErrorStats,
    ChatStats,
    GenerationStats,
    ReadoutStats,
    SequenceStats,
)
from allele.observe.blocks import drop_first, stream_blocks, take
from allele.observe.metrics import (
    CATALOGUE,
    SOURCE_OF_STATS,
    FamilySnapshot,
    HistogramState,
    Labels,
    MetricSink,
    Record,
    Series,
    SystemSample,
    metric_def,
    record_points,
)
from allele.observe.streams import STREAM_TYPES, Stream
from allele.store.points import PointBlock

_log = logging.getLogger("allele.observe")

SYSTEM_COMPONENT = "process"
"""Component name under which the system sampler's series are kept."""

Subscriber = Callable[[str, str, Record], None]


def _matches(pattern: str | None, component: str) -> bool:
    if pattern is None:
        return True
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(component, pattern)
    return component == pattern


def _since(ring: deque[Record], since: float | None) -> list[Record]:
    if since is None:
        return list(ring)
    out = list(itertools.takewhile(lambda r: r[0] >= since, reversed(ring)))
    out.reverse()
    return out


class Telemetry:
    """Records what observed components do; implements :class:`allele.core.observer.Observer`.

    ``sink``: a :class:`~allele.observe.metrics.MetricSink` (e.g. the result store) receiving
    :class:`~allele.observe.metrics.MetricPoint` batches every ``flush_interval_s``.
    ``system``: run the psutil system sampler every ``sample_interval_s``.
    ``background``: start the background thread that drains, samples and flushes (turn it off to
    drive everything by hand: :meth:`drain`, :meth:`sample_system`, :meth:`flush`).
    ``clock``: where timestamps come from (``time.time``; tests inject their own).
    ``inbox_limit``: the most events waiting to be drained (older ones are dropped and counted).
    Defaults for ``ring_size``, ``sample_interval_s``, ``flush_interval_s`` and ``inbox_limit``
    come from ``settings.observe`` (see :mod:`allele.config`).
    """

    def __init__(
        self,
        *,
        sink: MetricSink | None = None,
        ring_size: int | None = None,
        sample_interval_s: float | None = None,
        flush_interval_s: float | None = None,
        system: bool = True,
        background: bool = True,
        clock: Callable[[], float] = time.time,
        settings: Settings | ObserveSettings | None = None,
        batch_size: int = 100_000,
        max_pending_points: int = 2_000_000,
        drain_interval_s: float = 0.25,
        inbox_limit: int | None = None,
    ) -> None:
        obs = settings.observe if isinstance(settings, Settings) else settings
        obs = obs or ObserveSettings()
        self.ring_size = int(ring_size if ring_size is not None else obs.ring_size)
        self.sample_interval_s = float(
            sample_interval_s if sample_interval_s is not None else obs.sample_interval_s)
        self.flush_interval_s = float(
            flush_interval_s if flush_interval_s is not None else obs.flush_interval_s)
        self.inbox_limit = int(inbox_limit if inbox_limit is not None else obs.inbox_limit)
        if (self.ring_size < 1 or self.sample_interval_s <= 0 or self.flush_interval_s <= 0
                or self.inbox_limit < 1):
            from allele.errors import ValidationError

            raise ValidationError("ring_size, inbox_limit and intervals must be positive")
        if batch_size < 1 or max_pending_points < 1:
            from allele.errors import ValidationError

            raise ValidationError("batch_size and max_pending_points must be positive")
        self._clock = clock
        self._sink = sink
        self._batch_size = batch_size
        self._max_pending = max_pending_points
        self._drain_interval = drain_interval_s

        self._inbox: deque[tuple[str, float, Any]] = deque(maxlen=self.inbox_limit)
        self._push = self._inbox.append
        self._recorded = itertools.count()
        self._tick = self._recorded.__next__
        self._taken = 0  # events popped from the inbox (known or not), under the lock
        self._bind_hot_path()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._streams: dict[tuple[str, str], Stream] = {}
        self._adders: dict[tuple[str, type], Callable[[float, Any], Record]] = {}
        self._unsent: deque[PointBlock] = deque()
        self._unsent_points = 0
        self._subscribers: list[Subscriber] = []

        self.events_total = 0
        self.unknown_events = 0
        self.inbox_dropped = 0
        self.points_written = 0
        self.points_dropped = 0
        self.sink_failures = 0
        self.subscriber_failures = 0

        self._sampler: Any = None
        if system:
            from allele.observe.system import SystemSampler

            self._sampler = SystemSampler()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self.start()

    def _bind_hot_path(self) -> None:
        """Replace the observer methods of this instance by one closure over the inbox's
        ``append``, the clock and the counter: no attribute look-up per call (about 15% of the
        record path's cost; the methods below stay as the documented, typed surface)."""
        push, tick, clock = self._push, self._tick, self._clock

        def record(name: str, stats: Any) -> None:
            push((name, clock(), stats))
            tick()

        self.on_generation = record  # type: ignore[method-assign]
        self.on_sequence = record  # type: ignore[method-assign]
        self.on_readout = record  # type: ignore[method-assign]
        self.on_chat = record  # type: ignore[method-assign]
        self.on_chat_error = record  # type: ignore[method-assign]
        self.record = record  # type: ignore[method-assign]

    # --- the observer Protocol: the hot path, one append each ----------------------------------

    def on_generation(self, name: str, stats: GenerationStats) -> None:
        self._push((name, self._clock(), stats))
        self._tick()

    def on_sequence(self, name: str, stats: SequenceStats) -> None:
        self._push((name, self._clock(), stats))
        self._tick()

    def on_readout(self, name: str, stats: ReadoutStats) -> None:
        self._push((name, self._clock(), stats))
        self._tick()

    def on_chat(self, name: str, stats: ChatStats) -> None:
        self._push((name, self._clock(), stats))
        self._tick()

    def on_chat_error(self, name: str, stats: ChatErrorStats) -> None:
        self._push((name, self._clock(), stats))
        self._tick()

    def record(self, name: str, stats: object) -> None:
        """Record any supported stats object (the five above or a SystemSample)."""
        self._push((name, self._clock(), stats))
        self._tick()

    def record_at(self, name: str, ts: float, stats: object) -> None:
        """Record a stats object observed at time ``ts`` elsewhere (e.g. forwarded from a
        benchmark worker process)."""
        self._push((name, float(ts), stats))
        self._tick()

    # --- ingestion ------------------------------------------------------------------------------

    def drain(self) -> int:
        """Move the queued events into their streams; returns how many were ingested.

        One pass takes the events queued when it starts (not those recorded meanwhile), so a
        flood cannot hold the lock for ever.
        """
        if not self._inbox:
            self._count_dropped()
            return 0
        with self._lock:
            inbox = self._inbox
            streams = self._streams
            subscribers = self._subscribers
            n = 0
            adders = self._adders
            pop = inbox.popleft
            taken = 0
            for _ in range(len(inbox)):
                try:
                    name, ts, stats = pop()
                except IndexError:  # pragma: no cover - only this pass pops
                    break
                taken += 1
                add = adders.get((name, type(stats)))
                if add is None:
                    add = self._new_stream(name, stats)
                    if add is None:
                        continue
                rec = add(ts, stats)
                n += 1
                if subscribers:
                    self._publish(subscribers, rec[1].__class__, name, rec)
            self._taken += taken
            self.events_total += n
            self._count_dropped_locked()
            if n:
                for stream in streams.values():
                    for hist in stream.hists.values():
                        if len(hist.pending) >= 4096:
                            hist.fold()
        return n

    @property
    def events_recorded(self) -> int:
        """Events handed to the observer methods so far (accepted or later dropped)."""
        # itertools.count has no read that does not advance it; its repr is "count(N)".
        return int(repr(self._recorded)[6:-1])

    def _count_dropped(self) -> int:
        with self._lock:
            return self._count_dropped_locked()

    def _count_dropped_locked(self) -> int:
        # The counter first, then the queue: an event counted is in the queue, drained or
        # dropped, so this never exceeds the true number dropped (see the module docstring).
        recorded = self.events_recorded
        dropped = recorded - self._taken - len(self._inbox)
        if dropped > self.inbox_dropped:
            self.inbox_dropped = dropped
        return self.inbox_dropped

    def _new_stream(self, name: str, stats: Any) -> Callable[[float, Any], Record] | None:
        source = SOURCE_OF_STATS.get(type(stats))
        if source is None:
            self.unknown_events += 1
            return None
        stream = self._streams.get((source, name))
        if stream is None:
            stream = STREAM_TYPES[source](source, name, self.ring_size, self._sink is not None)
            self._streams[(source, name)] = stream
        self._adders[(name, type(stats))] = stream.add
        return stream.add

    def _publish(self, subscribers: list[Subscriber], stats_type: type, name: str, rec: Record
                 ) -> None:
        source = SOURCE_OF_STATS[stats_type]
        for fn in subscribers:
            try:
                fn(source, name, rec)
            except Exception:
                self.subscriber_failures += 1
                _log.exception("telemetry subscriber %r failed", fn)

    def subscribe(self, fn: Subscriber) -> None:
        """Call ``fn(source, component, record)`` for every event as it is drained."""
        with self._lock:
            self._subscribers.append(fn)

    def sample_system(self) -> SystemSample:
        """Take one system sample now and record it under component ``"process"``."""
        if self._sampler is None:
            from allele.observe.system import SystemSampler

            self._sampler = SystemSampler()
        sample: SystemSample = self._sampler.sample()
        self._push((SYSTEM_COMPONENT, self._clock(), sample))
        self._tick()
        return sample

    # --- queries --------------------------------------------------------------------------------

    def components(self, source: str | None = None) -> list[str]:
        """Names of the components seen so far (optionally of one source)."""
        self.drain()
        with self._lock:
            names = {c for (s, c) in self._streams if source is None or s == source}
        return sorted(names)

    def streams(
        self,
        metric: str,
        component: str | None = None,
        since: float | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[Series]:
        """One :class:`Series` per (component, label set) of ``metric`` still in the rings.

        ``component`` may be a glob (``"evolution-*"``); ``since`` keeps points with
        ``timestamp >= since``; ``labels`` keeps series whose labels include these pairs.
        Counters give their cumulative value after each event; histograms give each observation.
        """
        m = metric_def(metric)
        self.drain()
        groups: dict[tuple[str, Labels], tuple[list[float], list[float]]] = {}
        with self._lock:
            for (source, comp), stream in self._streams.items():
                if source != m.source or not _matches(component, comp):
                    continue
                for rec in _since(stream.ring, since):
                    for values, v in record_points(m, rec):
                        lab = tuple(zip(m.label_names, values, strict=True))
                        if labels and any(dict(lab).get(k) != val for k, val in labels.items()):
                            continue
                        ts_list, v_list = groups.setdefault((comp, lab), ([], []))
                        ts_list.append(rec[0])
                        v_list.append(v)
        return [
            Series(metric, comp, lab, np.asarray(ts, dtype=np.float64),
                   np.asarray(vals, dtype=np.float64))
            for (comp, lab), (ts, vals) in sorted(groups.items())
        ]

    def series(
        self,
        metric: str,
        component: str | None = None,
        since: float | None = None,
        labels: dict[str, str] | None = None,
    ) -> Series:
        """Timestamps and values of ``metric`` (oldest first) from the in-memory rings.

        With one matching component and label set this is that series; when several match (no
        ``component`` given and several components report the metric) they are merged in time
        order and ``component`` is ``"*"`` — pass ``component`` to get one of them.
        """
        parts = self.streams(metric, component, since, labels)
        if len(parts) == 1:
            return parts[0]
        if not parts:
            empty = np.empty(0, dtype=np.float64)
            return Series(metric, component or "*", tuple(sorted((labels or {}).items())),
                          empty, empty.copy())
        ts = np.concatenate([p.timestamps for p in parts])
        vals = np.concatenate([p.values for p in parts])
        order = np.argsort(ts, kind="stable")
        comps = {p.component for p in parts}
        comp = comps.pop() if len(comps) == 1 else "*"
        return Series(metric, comp, tuple(sorted((labels or {}).items())), ts[order],
                      vals[order])

    def latest(self, metric: str, component: str, labels: dict[str, str] | None = None
               ) -> float | None:
        """The current value of a counter or gauge for one component (None if never seen)."""
        for fam in self.snapshot([metric]):
            for comp, values, v in fam.samples:
                lab = dict(zip(fam.metric.label_names, values, strict=True))
                if comp == component and all(lab.get(k) == x for k, x in (labels or {}).items()):
                    return v
        return None

    def snapshot(self, metrics: Sequence[str] | None = None) -> list[FamilySnapshot]:
        """Current values of every metric (or of the named ones), for exporters."""
        self.drain()
        defs = [metric_def(n) for n in metrics] if metrics is not None else list(
            CATALOGUE.values())
        out: list[FamilySnapshot] = []
        with self._lock:
            streams = sorted(self._streams.items())
            for m in defs:
                samples: list[tuple[str, tuple[str, ...], float]] = []
                hists: list[HistogramState] = []
                for (source, comp), stream in streams:
                    if source != m.source:
                        continue
                    if m.kind == "histogram":
                        h = stream.hists[m.name]
                        hists.append(HistogramState(comp, h.cumulative(), h.sum, h.count))
                        continue
                    kept = stream.label_counts(m)
                    if kept is None:
                        kept = []
                        for rec in reversed(stream.ring):
                            kept = record_points(m, rec)
                            if kept:
                                break
                    samples.extend((comp, values, v) for values, v in kept)
                out.append(FamilySnapshot(m, samples, hists))
        return out

    def self_metrics(self) -> dict[str, float]:
        """Telemetry's own health counters."""
        return {
            "allele_telemetry_events_total": float(self.events_total),
            "allele_telemetry_inbox_dropped_total": float(self._count_dropped()),
            "allele_telemetry_inbox_events": float(len(self._inbox)),
            "allele_telemetry_inbox_limit": float(self.inbox_limit),
            "allele_telemetry_unknown_events_total": float(self.unknown_events),
            "allele_telemetry_points_written_total": float(self.points_written),
            "allele_telemetry_points_dropped_total": float(self.points_dropped),
            "allele_telemetry_sink_failures_total": float(self.sink_failures),
            "allele_telemetry_pending_points": float(self._unsent_points),
            "allele_observer_failures_total": float(_core_observer.observer_failures),
        }

    # --- the sink -------------------------------------------------------------------------------

    @property
    def sink(self) -> MetricSink | None:
        return self._sink

    def flush(self) -> int:
        """Write pending points to the sink in batches; returns how many were written.

        Points travel as :class:`~allele.store.points.PointBlock` s, one per series and flush
        (a sink with ``write_metric_blocks``, the result store, stores each as one row; any
        other sink gets :class:`MetricPoint` s), at most ``batch_size`` points per write call:
        one transaction per call on the store.

        A failing sink never raises: the failure is counted (``sink_failures``) and logged, the
        batch stays queued for the next flush, and the points queued first beyond
        ``max_pending_points`` are dropped (counted in ``points_dropped``).
        """
        if self._sink is None:
            return 0
        self.drain()
        with self._lock:
            taken: list[tuple[str, str, list[Record]]] = []
            for (source, comp), stream in self._streams.items():
                if stream.pending:
                    taken.append((source, comp, stream.pending))
                    stream.pending = []
        new_blocks = [b for source, comp, recs in taken for b in stream_blocks(source, comp, recs)]
        written = 0
        with self._flush_lock:
            unsent = self._unsent
            unsent.extend(new_blocks)
            self._unsent_points += sum(len(b) for b in new_blocks)
            excess = self._unsent_points - self._max_pending
            if excess > 0:
                drop_first(unsent, excess)
                self._unsent_points -= excess
                self.points_dropped += excess
                _log.warning("telemetry dropped %d points the sink could not take", excess)
            while unsent:
                batch = take(unsent, self._batch_size)
                n = sum(len(b) for b in batch)
                try:
                    self._write(batch)
                except Exception:
                    unsent.extendleft(reversed(batch))
                    self.sink_failures += 1
                    _log.exception("telemetry sink %r failed; %d points kept for retry",
                                   self._sink, self._unsent_points)
                    break
                self._unsent_points -= n
                written += n
                self.points_written += n
        return written

    def _write(self, batch: list[PointBlock]) -> None:
        write_blocks = getattr(self._sink, "write_metric_blocks", None)
        if write_blocks is not None:
            write_blocks(batch)
        else:
            assert self._sink is not None
            self._sink.write_metric_points([p for b in batch for p in b.points()])

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (drain, system samples, flushes). Idempotent."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="allele-telemetry", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_sample = time.monotonic()
        next_flush = time.monotonic() + self.flush_interval_s
        tick = min(self._drain_interval, self.sample_interval_s, self.flush_interval_s)
        while not self._stop.wait(tick):
            try:
                now = time.monotonic()
                if self._sampler is not None and now >= next_sample:
                    self.sample_system()
                    next_sample = now + self.sample_interval_s
                self.drain()
                if self._sink is not None and now >= next_flush:
                    self.flush()
                    next_flush = now + self.flush_interval_s
            except Exception:  # the background thread must survive anything
                _log.exception("telemetry background step failed")

    def close(self) -> None:
        """Stop the background thread, then drain and flush what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.drain()
        self.flush()

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

