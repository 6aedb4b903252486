"""The metric catalogue and the plain data types of ``allele.observe``.

Every metric Allele records is declared once here, as a :class:`MetricDef`: its Prometheus name,
kind (counter / gauge / histogram), help text, the event source it is derived from, how a value is
read from one recorded event, its extra label names and (for histograms) its fixed buckets.

Records are the raw events kept in the ring buffers: a tuple ``(timestamp, stats, derived)`` where
``stats`` is the component's own frozen stats object (``GenerationStats`` ...) and ``derived`` is a
small tuple of values the Telemetry computed when it ingested the event (cumulative totals,
improvement, stagnation...). Values are read from records lazily (at query, scrape or flush time),
which is what keeps the cost on the observed component's thread to one ``deque.append``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from allele.core.observer import (
    ChatErrorStats,
    ChatStats,
    GenerationStats,
    ReadoutStats,
    SequenceStats,
)

# A point is defined by the store, which receives it (see MetricSink below); re-exported here.
from allele.store.points import Labels as Labels
from allele.store.points import MetricPoint as MetricPoint

MetricKind = Literal["counter", "gauge", "histogram"]
Source = Literal["evolution", "kraken", "readout", "agent", "system"]
Record = tuple[float, Any, tuple[Any, ...]]
"""``(timestamp, stats, derived)``; see the module docstring."""

SOURCES: Final[tuple[Source, ...]] = ("evolution", "kraken", "readout", "agent", "system")


@dataclass(frozen=True, slots=True)
class SystemSample:
    """One sample of the observed process, taken by the system sampler (psutil + gc)."""

    cpu_percent: float
    rss_bytes: int
    threads: int
    open_files: int
    gc_collections: tuple[int, ...]


@runtime_checkable
class MetricSink(Protocol):
    """Where Telemetry flushes its points in batches (the result store implements this)."""

    def write_metric_points(self, points: Sequence[MetricPoint]) -> None: ...


@dataclass(frozen=True, slots=True)
class Series:
    """A queried series: parallel arrays of timestamps and values, oldest first.

    ``component`` is ``"*"`` when several components were merged into one series.
    """

    metric: str
    component: str
    labels: Labels
    timestamps: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def last(self) -> float | None:
        """The most recent value, or None for an empty series."""
        return float(self.values[-1]) if len(self) else None


ValueFn = Callable[[Record], "float | None"]
LabelFn = Callable[[Record], tuple[str, ...]]


def _no_labels(_: Record) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True, slots=True)
class MetricDef:
    """The declaration of one metric."""

    name: str
    kind: MetricKind
    help: str
    source: Source
    value: ValueFn
    label_names: tuple[str, ...] = ()
    labels: LabelFn = _no_labels
    buckets: tuple[float, ...] = ()
    unit: str = ""


class Histogram:
    """Fixed-bucket histogram state (not thread-safe; Telemetry updates it under its lock).

    Observations are appended to ``pending`` (one list append on the ingest path) and folded
    into the bucket counts in a vectorised batch by :meth:`fold` (called before any read).
    """

    __slots__ = ("_edges", "bounds", "count", "counts", "pending", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError("histogram buckets must be strictly increasing")
        self.bounds: tuple[float, ...] = tuple(float(b) for b in bounds)
        self._edges = np.asarray(self.bounds, dtype=np.float64)
        self.counts = np.zeros(len(self.bounds) + 1, dtype=np.int64)  # last one is +Inf
        self.sum = 0.0
        self.count = 0
        self.pending: list[float] = []

    def observe(self, value: float) -> None:
        self.pending.append(value)
        if len(self.pending) >= 8192:
            self.fold()

    def fold(self) -> None:
        """Move pending observations into the buckets (``value <= le`` semantics)."""
        if not self.pending:
            return
        values = np.asarray(self.pending, dtype=np.float64)
        self.pending.clear()  # in place: ingest code may hold a bound ``pending.append``
        idx = np.searchsorted(self._edges, values, side="left")
        self.counts += np.bincount(idx, minlength=self.counts.shape[0])
        self.sum += float(values.sum())
        self.count += int(values.shape[0])

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus-style cumulative ``(le, count)`` pairs ending with ``+Inf``."""
        self.fold()
        running = np.cumsum(self.counts)
        out = [(_fmt_le(b), float(n)) for b, n in zip(self.bounds, running[:-1], strict=True)]
        out.append(("+Inf", float(self.count)))
        return out


def _fmt_le(bound: float) -> str:
    return repr(float(bound))


# --- snapshots handed to exporters ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistogramState:
    """A copy of one histogram: cumulative ``(le, count)`` buckets, sum and count."""

    component: str
    buckets: list[tuple[str, float]]
    sum: float
    count: int


@dataclass(frozen=True, slots=True)
class FamilySnapshot:
    """Current values of one metric across components, taken under the Telemetry's lock."""

    metric: MetricDef
    samples: list[tuple[str, tuple[str, ...], float]]
    histograms: list[HistogramState]


# --- fixed buckets -------------------------------------------------------------------------------

GENERATION_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
)
SEQUENCE_BUCKETS: Final = (
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
)
REQUEST_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

FAILURE_WINDOW: Final = 20
"""``allele_agent_failure_ratio`` is the failed fraction of the last this-many requests."""
EWMA_ALPHA: Final = 0.1
"""Weight of the newest generation in the generation-time average the jump ratio divides by."""

# Indices into the ``derived`` tuple of each source.
(EVO_GENERATIONS, EVO_EVALUATIONS, EVO_IMPROVEMENT, EVO_STAGNATION, EVO_TIME_RATIO,
 EVO_EPS) = range(6)
KR_SEQUENCES, KR_STEPS, KR_STEPS_PER_S = range(3)
RO_TRAININGS = 0
(AG_REQUESTS, AG_FAILURES, AG_PROMPT, AG_COMPLETION, AG_RETRIES, AG_FAILURE_RATIO,
 AG_CAUSE_COUNT) = range(7)


def _stat(name: str) -> ValueFn:
    def read(rec: Record) -> float:
        return float(getattr(rec[1], name))

    return read


def _derived(index: int) -> ValueFn:
    def read(rec: Record) -> float:
        return float(rec[2][index])

    return read


def _ok_only(fn: ValueFn) -> ValueFn:
    def read(rec: Record) -> float | None:
        return fn(rec) if type(rec[1]) is ChatStats else None

    return read


def _failure_count(rec: Record) -> float | None:
    return float(rec[2][AG_CAUSE_COUNT]) if type(rec[1]) is ChatErrorStats else None


def _failure_cause(rec: Record) -> tuple[str, ...]:
    stats = rec[1]
    return (stats.cause,) if type(stats) is ChatErrorStats else ("",)


def _tokens_per_second(rec: Record) -> float | None:
    stats = rec[1]
    if type(stats) is not ChatStats:
        return None
    return stats.completion_tokens / stats.seconds if stats.seconds > 0 else 0.0


def _ttft(rec: Record) -> float | None:
    stats = rec[1]
    if type(stats) is not ChatStats or stats.time_to_first_token is None:
        return None
    return float(stats.time_to_first_token)


def _gc_total(rec: Record) -> float | None:
    # One point per generation; the label function below says which.
    return None


def _steps_per_second(rec: Record) -> float:
    return float(rec[2][KR_STEPS_PER_S])


def _memory_fill_ratio(rec: Record) -> float:
    stats: SequenceStats = rec[1]
    return stats.memory_fill / stats.memory_capacity if stats.memory_capacity > 0 else 0.0


_EVOLUTION: list[MetricDef] = [
    MetricDef("allele_evolution_generations_total", "counter",
              "Generations completed.", "evolution", _derived(EVO_GENERATIONS)),
    MetricDef("allele_evolution_generation", "gauge",
              "Index of the last completed generation.", "evolution", _stat("generation")),
    MetricDef("allele_evolution_best_fitness", "gauge",
              "Best fitness in the last generation.", "evolution", _stat("best")),
    MetricDef("allele_evolution_mean_fitness", "gauge",
              "Mean fitness of the last generation.", "evolution", _stat("mean")),
    MetricDef("allele_evolution_fitness_std", "gauge",
              "Standard deviation of fitness in the last generation.", "evolution", _stat("std")),
    MetricDef("allele_evolution_diversity", "gauge",
              "Population diversity reported by the engine.", "evolution", _stat("diversity")),
    MetricDef("allele_evolution_evaluations_total", "counter",
              "Fitness evaluations performed.", "evolution", _derived(EVO_EVALUATIONS)),
    MetricDef("allele_evolution_evaluations_per_second", "gauge",
              "Evaluations per second of the last generation.", "evolution",
              _derived(EVO_EPS)),
    MetricDef("allele_evolution_generation_seconds", "histogram",
              "Wall time of one generation.", "evolution", _stat("seconds"),
              buckets=GENERATION_BUCKETS, unit="s"),
    MetricDef("allele_evolution_improvement", "gauge",
              "Best fitness minus the previous generation's best (0 on the first).", "evolution",
              _derived(EVO_IMPROVEMENT)),
    MetricDef("allele_evolution_stagnation_generations", "gauge",
              "Consecutive generations without a new best-so-far fitness.", "evolution",
              _derived(EVO_STAGNATION)),
    MetricDef("allele_evolution_generation_time_ratio", "gauge",
              "Generation wall time over the moving average of the previous ones (1 at first).",
              "evolution", _derived(EVO_TIME_RATIO)),
]

_KRAKEN: list[MetricDef] = [
    MetricDef("allele_kraken_sequences_total", "counter",
              "Sequences processed (process_sequence / predict calls).", "kraken",
              _derived(KR_SEQUENCES)),
    MetricDef("allele_kraken_steps_total", "counter",
              "Time steps processed.", "kraken", _derived(KR_STEPS)),
    MetricDef("allele_kraken_steps_per_second", "gauge",
              "Steps per second of the last sequence.", "kraken", _steps_per_second),
    MetricDef("allele_kraken_sequence_seconds", "histogram",
              "Latency of one sequence call.", "kraken", _stat("seconds"),
              buckets=SEQUENCE_BUCKETS, unit="s"),
    MetricDef("allele_kraken_state_norm", "gauge",
              "Euclidean norm of the reservoir state after the last sequence.", "kraken",
              _stat("state_norm")),
    MetricDef("allele_kraken_saturated_fraction", "gauge",
              "Fraction of saturated reservoir units after the last sequence.", "kraken",
              _stat("saturated_fraction")),
    MetricDef("allele_kraken_memory_fill", "gauge",
              "States held in the temporal memory buffer.", "kraken", _stat("memory_fill")),
    MetricDef("allele_kraken_memory_capacity", "gauge",
              "Capacity of the temporal memory buffer.", "kraken", _stat("memory_capacity")),
    MetricDef("allele_kraken_memory_fill_ratio", "gauge",
              "Memory buffer fill as a fraction of its capacity.", "kraken", _memory_fill_ratio),
    MetricDef("allele_kraken_readout_trainings_total", "counter",
              "Readout trainings.", "readout", _derived(RO_TRAININGS)),
    MetricDef("allele_kraken_readout_train_seconds", "gauge",
              "Wall time of the last readout training.", "readout", _stat("seconds"), unit="s"),
    MetricDef("allele_kraken_readout_nrmse", "gauge",
              "Training NRMSE of the last readout.", "readout", _stat("train_nrmse")),
    MetricDef("allele_kraken_readout_samples", "gauge",
              "Samples used by the last readout training.", "readout", _stat("samples")),
]

_AGENT: list[MetricDef] = [
    MetricDef("allele_agent_requests_total", "counter",
              "Chat requests (successful or failed).", "agent", _derived(AG_REQUESTS)),
    MetricDef("allele_agent_failures_total", "counter",
              "Failed chat requests by cause.", "agent", _failure_count,
              label_names=("cause",), labels=_failure_cause),
    MetricDef("allele_agent_request_seconds", "histogram",
              "Latency of successful chat requests.", "agent", _ok_only(_stat("seconds")),
              buckets=REQUEST_BUCKETS, unit="s"),
    MetricDef("allele_agent_time_to_first_token_seconds", "histogram",
              "Time to the first streamed token.", "agent", _ttft, buckets=TTFT_BUCKETS,
              unit="s"),
    MetricDef("allele_agent_prompt_tokens_total", "counter",
              "Prompt tokens sent.", "agent", _derived(AG_PROMPT)),
    MetricDef("allele_agent_completion_tokens_total", "counter",
              "Completion tokens received.", "agent", _derived(AG_COMPLETION)),
    MetricDef("allele_agent_tokens_per_second", "gauge",
              "Completion tokens per second of the last successful request.", "agent",
              _tokens_per_second),
    MetricDef("allele_agent_retries_total", "counter",
              "Provider retries (successful and failed requests).", "agent",
              _derived(AG_RETRIES)),
    MetricDef("allele_agent_failure_ratio", "gauge",
              f"Failed fraction of the last {FAILURE_WINDOW} requests.", "agent",
              _derived(AG_FAILURE_RATIO)),
]

_SYSTEM: list[MetricDef] = [
    MetricDef("allele_process_cpu_percent", "gauge",
              "Process CPU use since the previous sample (100 = one core).", "system",
              _stat("cpu_percent")),
    MetricDef("allele_process_rss_bytes", "gauge",
              "Resident set size.", "system", _stat("rss_bytes"), unit="bytes"),
    MetricDef("allele_process_threads", "gauge",
              "Threads of the process.", "system", _stat("threads")),
    MetricDef("allele_process_open_files", "gauge",
              "Open file descriptors (handles on Windows).", "system", _stat("open_files")),
    MetricDef("allele_process_gc_collections_total", "counter",
              "Garbage-collector runs by generation.", "system", _gc_total,
              label_names=("generation",)),
]

CATALOGUE: Final[dict[str, MetricDef]] = {
    m.name: m for m in (*_EVOLUTION, *_KRAKEN, *_AGENT, *_SYSTEM)
}
"""Every metric Telemetry records, by name."""

BY_SOURCE: Final[dict[str, list[MetricDef]]] = {
    s: [m for m in CATALOGUE.values() if m.source == s] for s in SOURCES
}

SOURCE_OF_STATS: Final[dict[type, Source]] = {
    GenerationStats: "evolution",
    SequenceStats: "kraken",
    ReadoutStats: "readout",
    ChatStats: "agent",
    ChatErrorStats: "agent",
    SystemSample: "system",
}


def metric_def(name: str) -> MetricDef:
    """Look a metric up by name (``KeyError`` with the known names if unknown)."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(sorted(CATALOGUE))}") from None


def record_points(
    metric: MetricDef, rec: Record
) -> list[tuple[tuple[str, ...], float]]:
    """The ``(label values, value)`` pairs one record contributes to ``metric``."""
    if metric.name == "allele_process_gc_collections_total":
        stats: SystemSample = rec[1]
        return [((str(g),), float(n)) for g, n in enumerate(stats.gc_collections)]
    value = metric.value(rec)
    if value is None:
        return []
    return [(metric.labels(rec), value)]
