"""Per-component stream state: what Telemetry keeps for one ``(source, component)``.

One stream per source kind (evolution, kraken, readout, agent, system) folds each ingested event
into cumulative counters and fixed-bucket histograms and keeps the raw record in a bounded ring
(and, when a sink is attached, in ``pending`` until the next flush). Streams are plain state: they
are only touched by :class:`~allele.observe.telemetry.Telemetry` under its lock, off the observed
component's thread, so none of them locks anything itself. ``add`` does the few additions and one
ring append an event needs; every metric value is read from the records later, at query time.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from allele.core.observer import (
    ChatErrorStats,
    ChatStats,
    GenerationStats,
    ReadoutStats,
    SequenceStats,
)
from allele.observe.metrics import (
    BY_SOURCE,
    EWMA_ALPHA,
    FAILURE_WINDOW,
    Histogram,
    MetricDef,
    Record,
    Source,
    SystemSample,
)


class Stream:
    """The state every stream has: the ring, the unflushed records and the histograms."""

    __slots__ = ("component", "hists", "pending", "ring", "source")

    def __init__(self, source: Source, component: str, ring_size: int, keep: bool) -> None:
        self.source = source
        self.component = component
        self.ring: deque[Record] = deque(maxlen=ring_size)
        self.pending: list[Record] | None = [] if keep else None
        self.hists: dict[str, Histogram] = {
            m.name: Histogram(m.buckets) for m in BY_SOURCE[source] if m.kind == "histogram"
        }

    def add(self, ts: float, stats: Any) -> Record:
        raise NotImplementedError

    def _keep(self, rec: Record) -> Record:
        self.ring.append(rec)
        if self.pending is not None:
            self.pending.append(rec)
        return rec

    def label_counts(self, metric: MetricDef) -> list[tuple[tuple[str, ...], float]] | None:
        """Current values of a labelled counter kept outside the ring (None: read the ring)."""
        return None


class EvolutionStream(Stream):
    __slots__ = (
        "_h",
        "best_so_far",
        "evaluations",
        "ewma",
        "generations",
        "prev_best",
        "stagnation",
    )

    def __init__(self, source: Source, component: str, ring_size: int, keep: bool) -> None:
        super().__init__(source, component, ring_size, keep)
        self.generations = 0
        self.evaluations = 0
        self.prev_best: float | None = None
        self.best_so_far: float | None = None
        self.stagnation = 0
        self.ewma: float | None = None
        self._h = self.hists["allele_evolution_generation_seconds"].pending.append

    def add(self, ts: float, s: GenerationStats) -> Record:
        self.generations += 1
        self.evaluations += s.evaluations
        best = s.best
        prev = self.prev_best
        improvement = 0.0 if prev is None else best - prev
        self.prev_best = best
        so_far = self.best_so_far
        if so_far is None or best > so_far:
            self.best_so_far = best
            self.stagnation = 0
        else:
            self.stagnation += 1
        secs = s.seconds
        ew = self.ewma
        if ew is None:
            ratio = 1.0
            self.ewma = secs
        else:
            ratio = secs / ew if ew > 0 else 1.0
            self.ewma = ew + EWMA_ALPHA * (secs - ew)
        self._h(secs)
        eps = s.evaluations / secs if secs > 0 else 0.0
        rec = (ts, s, (self.generations, self.evaluations, improvement, self.stagnation, ratio,
                       eps))
        self.ring.append(rec)
        if self.pending is not None:
            self.pending.append(rec)
        return rec


class KrakenStream(Stream):
    __slots__ = ("_h", "sequences", "steps")

    def __init__(self, source: Source, component: str, ring_size: int, keep: bool) -> None:
        super().__init__(source, component, ring_size, keep)
        self.sequences = 0
        self.steps = 0
        self._h = self.hists["allele_kraken_sequence_seconds"].pending.append

    def add(self, ts: float, s: SequenceStats) -> Record:
        self.sequences += 1
        self.steps += s.steps
        secs = s.seconds
        self._h(secs)
        sps = s.steps / secs if secs > 0 else 0.0
        rec = (ts, s, (self.sequences, self.steps, sps))
        self.ring.append(rec)
        if self.pending is not None:
            self.pending.append(rec)
        return rec


class ReadoutStream(Stream):
    __slots__ = ("trainings",)

    def __init__(self, source: Source, component: str, ring_size: int, keep: bool) -> None:
        super().__init__(source, component, ring_size, keep)
        self.trainings = 0

    def add(self, ts: float, s: ReadoutStats) -> Record:
        self.trainings += 1
        return self._keep((ts, s, (self.trainings,)))


class AgentStream(Stream):
    __slots__ = (
        "_h_req",
        "_h_ttft",
        "causes",
        "completion",
        "failures",
        "prompt",
        "requests",
        "retries",
        "window",
        "window_failures",
    )

    def __init__(self, source: Source, component: str, ring_size: int, keep: bool) -> None:
        super().__init__(source, component, ring_size, keep)
        self.requests = 0
        self.failures = 0
        self.prompt = 0
        self.completion = 0
        self.retries = 0
        self.causes: dict[str, int] = {}
        self.window: deque[int] = deque(maxlen=FAILURE_WINDOW)
        self.window_failures = 0
        self._h_req = self.hists["allele_agent_request_seconds"]
        self._h_ttft = self.hists["allele_agent_time_to_first_token_seconds"]

    def add(self, ts: float, s: ChatStats | ChatErrorStats) -> Record:
        self.requests += 1
        self.retries += s.retries
        win = self.window
        if len(win) == FAILURE_WINDOW:
            self.window_failures -= win[0]
        if type(s) is ChatErrorStats:
            self.failures += 1
            cause_count = self.causes.get(s.cause, 0) + 1
            self.causes[s.cause] = cause_count
            win.append(1)
            self.window_failures += 1
        else:
            assert isinstance(s, ChatStats)
            cause_count = 0
            self.prompt += s.prompt_tokens
            self.completion += s.completion_tokens
            self._h_req.observe(s.seconds)
            if s.time_to_first_token is not None:
                self._h_ttft.observe(s.time_to_first_token)
            win.append(0)
        ratio = self.window_failures / len(win)
        return self._keep((ts, s, (self.requests, self.failures, self.prompt, self.completion,
                                   self.retries, ratio, cause_count)))

    def label_counts(self, metric: MetricDef) -> list[tuple[tuple[str, ...], float]] | None:
        if metric.name == "allele_agent_failures_total":
            return [((cause,), float(n)) for cause, n in sorted(self.causes.items())]
        return None


class SystemStream(Stream):
    __slots__ = ()

    def add(self, ts: float, s: SystemSample) -> Record:
        return self._keep((ts, s, ()))


STREAM_TYPES: dict[str, type[Stream]] = {
    "evolution": EvolutionStream,
    "kraken": KrakenStream,
    "readout": ReadoutStream,
    "agent": AgentStream,
    "system": SystemStream,
}
