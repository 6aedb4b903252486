"""The one catalogue of benchmark metrics: which way is better, the resolution of a measurement,
and which metrics the runner measures, stand for speed, for quality or for resources.

Every table, report, comparison and change-point analysis asks here; nothing else keeps a list of
metric names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["lower", "higher"]

MEASURED_METRICS = ("wall_s", "cpu_user_s", "cpu_sys_s", "peak_rss_mb", "alloc_peak_mb",
                    "tracemalloc_peak_mb")
"""Metrics the runner measures around every target call (tracemalloc only when enabled)."""

INSTRUCTION_METRICS = ("instructions", "estimated_cycles")
"""Metrics the ``instructions`` instrument stores (per call; :mod:`allele.bench.instruments`)."""
LOOPS_METRIC = "loops"
"""Not a measurement: how many calls one timed sample made (the calibrated inner loop; 1 for a
target called once per sample). Stored beside every (seed, repeat) of a cell, so compared runs
can check they timed the same way (:mod:`allele.bench.compare`); never compared itself."""

TIME_METRICS = ("wall_s", "cpu_user_s", "ns_per_genome", "us_per_call", "time_to_first_token_s")
"""Metrics that stand for speed, in order of preference (the first present is shown)."""

QUALITY_METRICS = ("best_fitness", "nrmse", "mean_fitness", "tokens_per_s", "steps_per_s",
                   "diversity", "generations_to_target", "success")
"""Metrics that stand for quality, in order of preference."""

RESOURCE_METRICS = frozenset({"cpu_user_s", "cpu_sys_s", "peak_rss_mb", "alloc_peak_mb",
                              "tracemalloc_peak_mb"})
"""The runner's resource measurements (never a target's quality)."""


# Which way is better for each well-known metric. Metrics not listed default to "lower" when
# their name looks like a cost (time, seconds, memory, rss, nrmse, error) and "higher" otherwise;
# see :func:`direction_of`.
METRIC_DIRECTIONS: dict[str, Direction] = {
    "wall_s": "lower",
    "cpu_user_s": "lower",
    "cpu_sys_s": "lower",
    "peak_rss_mb": "lower",
    "alloc_peak_mb": "lower",
    "tracemalloc_peak_mb": "lower",
    "best_fitness": "higher",
    "mean_fitness": "higher",
    "diversity": "higher",
    "generations_to_target": "lower",
    "nrmse": "lower",
    "steps_per_s": "higher",
    "tokens_per_s": "higher",
    "time_to_first_token_s": "lower",
    "success": "higher",
    "instructions": "lower",
    "estimated_cycles": "lower",
    "us_per_call": "lower",
    "ns_per_genome": "lower",
    "fit_s": "lower",
    "train_nrmse": "lower",
    "completion_tokens": "higher",
    "reached_target": "higher",
    "evaluations": "lower",
}

METRIC_UNITS: dict[str, str] = {
    "wall_s": "s", "cpu_user_s": "s", "cpu_sys_s": "s", "fit_s": "s",
    "time_to_first_token_s": "s", "us_per_call": "us", "ns_per_genome": "ns",
    "peak_rss_mb": "MiB", "alloc_peak_mb": "MiB", "tracemalloc_peak_mb": "MiB",
    "steps_per_s": "1/s", "tokens_per_s": "1/s",
}
"""The unit of each well-known metric (what :func:`allele.bench.format.quantity` writes)."""

# Name-based guessing, the fallback for a metric nobody declared. Rates first: a name that says
# "per second" is a throughput (higher is better) even though it ends in "_s"; then counts of
# costs; then the time, memory and error hints.
_RATE_HINTS = ("per_s", "per_sec", "_per_second", "ops_s", "throughput", "_rate_hz", "qps")
_COST_HINTS = ("time", "_s", "seconds", "latency", "rss", "memory", "_mb", "_kb", "_gb", "bytes",
               "nrmse", "error", "loss", "miss", "instructions", "cycles", "per_call",
               "per_genome", "per_item", "per_op", "_ns", "_us", "_ms", "duration", "overhead")


CPU_TIME_METRICS = ("cpu_user_s", "cpu_sys_s")
"""getrusage CPU times: their resolution is measured with each run (the environment's
``cpu.time_resolution_s``) and the comparison uses it; the catalogue's 1 ms below is for runs
recorded without it."""

METRIC_RESOLUTIONS: dict[str, float] = {
    # getrusage CPU times: the kernel accounts them in scheduler ticks on many systems, and a
    # cell that barely enters the kernel reads 0 one time and a few microseconds the next
    "cpu_user_s": 1e-3,
    "cpu_sys_s": 1e-3,
    # peak RSS is read in kilobytes and moves by a page table or an allocator arena
    "peak_rss_mb": 1.0,
}
"""Absolute resolution of the runner's own measurements: values below it carry no signal."""


PER_CALL_METRICS = ("wall_s", "cpu_user_s", "cpu_sys_s")
"""The runner's measurements it divides by the inner-loop count: their resolution per call is
the timer's divided by the count (a 1 ms CPU tick over 1000 calls resolves 1 us a call)."""


def resolution_per_call(metric: str, loops: int, resolution: float | None = None) -> float:
    """The resolution of one call's ``metric`` in samples of ``loops`` calls (``resolution``:
    the samples' own, measured; default the catalogue's)."""
    res = resolution_of(metric) if resolution is None else resolution
    return res / max(1, loops) if metric in PER_CALL_METRICS else res


def resolution_of(metric: str) -> float:
    """The absolute resolution of ``metric`` (0 when it has none, i.e. every value counts)."""
    return METRIC_RESOLUTIONS.get(metric, 0.0)


def direction_of(metric: str) -> Direction:
    """Whether lower or higher values of ``metric`` are better: the catalogue, else a guess from
    the name (a rate such as ``ops_per_sec`` is higher; a time, a size, a count of misses,
    instructions or a cost per call is lower; anything else higher). A target or spec should
    declare it instead (:class:`Metric`, the spec's ``metrics`` mapping)."""
    if metric in METRIC_DIRECTIONS:
        return METRIC_DIRECTIONS[metric]
    name = metric.lower()
    if any(h in name for h in _RATE_HINTS) or name.endswith("_hz"):
        return "higher"
    return "lower" if any(h in name for h in _COST_HINTS) else "higher"


def unit_of(metric: str) -> str:
    """The catalogue's unit of ``metric``, else one guessed from a suffix (``_s``, ``_ms``,
    ``_us``, ``_ns``, ``_mb``, ``_per_s``), else ``""`` (a plain number)."""
    if metric in METRIC_UNITS:
        return METRIC_UNITS[metric]
    name = metric.lower()
    if any(h in name for h in _RATE_HINTS):
        return "1/s"
    for suffix, unit in (("_ns", "ns"), ("_us", "us"), ("_ms", "ms"), ("_s", "s"),
                         ("_kb", "KB"), ("_mb", "MB"), ("_gb", "GB"), ("_bytes", "B")):
        if name.endswith(suffix):
            return unit
    return ""


def metric_order(names: list[str]) -> list[str]:
    """The target's own metrics first (in the given order), then the runner's measurements;
    never the inner-loop count (:data:`LOOPS_METRIC`), which is not a measurement."""
    return ([n for n in measurements(names) if n not in MEASURED_METRICS]
            + [m for m in MEASURED_METRICS if m in names])


def loops_label(counts: Iterable[float]) -> str:
    """The inner-loop counts of a cell's (or a target's) samples as one label: ``"7"``,
    ``"200-400"`` when they differ, ``""`` when none was stored (one call a sample)."""
    loops = sorted({int(v) for v in counts})
    if not loops:
        return ""
    return str(loops[0]) if len(loops) == 1 else f"{loops[0]}-{loops[-1]}"


def measurements(names: Iterable[str]) -> list[str]:
    """``names`` without the inner-loop count (:data:`LOOPS_METRIC`), in their order."""
    return [n for n in names if n != LOOPS_METRIC]


DETERMINISTIC_METRICS: dict[str, float] = {
    # Instruction counts under callgrind (issue 12): the same code on the same input counts the
    # same to a few parts in 10^5; the relative tolerance is at least twice the A/A spread that
    # benchmarks/instruction_stability.py measures.
    "instructions": 0.003,
    "estimated_cycles": 0.003,
}
"""Metrics measured deterministically, with their relative tolerance: compared exactly (a change
beyond the tolerance is a verdict), never pooled into a statistical FDR family."""


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """What a comparison, a table or a report needs to know about one metric."""

    name: str
    direction: Direction
    unit: str = ""
    resolution: float = 0.0
    deterministic: bool = False
    tolerance: float | None = None
    """Relative tolerance of a deterministic metric (None for a statistical one)."""
    declared: bool = False
    """True when the direction was declared (spec, target or catalogue); False when guessed
    from the name."""


def metric_info(name: str, declared: Mapping[str, MetricInfo] | None = None) -> MetricInfo:
    """Everything known about ``name``: a declaration in ``declared`` (from the run's spec or
    its targets) wins; then the built-in catalogue; then a guess from the name."""
    if declared is not None and name in declared:
        return declared[name]
    tolerance = DETERMINISTIC_METRICS.get(name)
    return MetricInfo(name=name, direction=direction_of(name), unit=unit_of(name),
                      resolution=resolution_of(name), deterministic=tolerance is not None,
                      tolerance=tolerance,
                      declared=name in METRIC_DIRECTIONS or tolerance is not None)


UNITS = ("", "s", "ms", "us", "ns", "B", "KiB", "MiB", "GiB", "KB", "MB", "GB", "1/s", "%")
"""Units :func:`allele.bench.format.quantity` scales (any other unit is written as given)."""


@dataclass(frozen=True, slots=True)
class Metric:
    """A target's metric value with its declaration: return ``Metric(1234.0, unit="1/s",
    direction="higher")`` in place of a bare number and the run stores the declaration, so a
    comparison never guesses which way is better from the name."""

    value: float
    unit: str = ""
    direction: Direction | None = None

    def __post_init__(self) -> None:
        if self.direction not in (None, "lower", "higher"):
            raise ValueError(f"Metric direction must be 'lower' or 'higher', got "
                             f"{self.direction!r}")


def declaration(name: str, direction: Direction | None, unit: str | None = None) -> MetricInfo:
    """A declared metric (``direction`` None: the catalogue's or guessed one, still marked
    guessed unless the catalogue knows it)."""
    base = metric_info(name)
    return MetricInfo(name=name, direction=direction or base.direction,
                      unit=base.unit if unit is None else unit, resolution=base.resolution,
                      deterministic=base.deterministic, tolerance=base.tolerance,
                      declared=direction is not None or base.declared)


def declarations_to_doc(decls: Mapping[str, MetricInfo]) -> dict[str, dict[str, str]]:
    """Declarations as stored in a run's spec document (``{name: {direction, unit}}``)."""
    return {n: {"unit": d.unit, **({"direction": d.direction} if d.declared else {})}
            for n, d in sorted(decls.items()) if d.declared or d.unit}


def quality_metrics(metrics: Iterable[str],
                    declared: Mapping[str, MetricInfo] | None = None) -> list[str]:
    """The target's own higher-is-better metrics among ``metrics`` (not the runner's
    measurements nor its loop count): what a recommendation's quality can be."""
    return [m for m in measurements(metrics) if m not in MEASURED_METRICS
            and metric_info(m, declared).direction == "higher"]


def with_declarations(doc: object, learned: Mapping[str, Mapping[str, str]]
                      ) -> dict[str, Any] | None:
    """A run's spec document with the declarations its targets made by returning ``Metric``
    values (``learned``: ``{name: {unit, direction}}``) added, a spec's own declaration of a
    metric's direction winning; None when that adds nothing."""
    out = dict(doc) if isinstance(doc, Mapping) else {}
    have = dict(out.get("metrics") or {})
    new = {k: {**v, **have.get(k, {})} for k, v in learned.items()
           if "direction" not in have.get(k, {})}
    if not new:
        return None
    out["metrics"] = {**have, **new}
    return out


def declarations_from_doc(doc: object) -> dict[str, MetricInfo]:
    """The declarations stored with a run (its spec document's ``metrics``); ``{}`` for a run
    recorded before declarations existed."""
    raw = doc.get("metrics") if isinstance(doc, Mapping) else None
    out: dict[str, MetricInfo] = {}
    if not isinstance(raw, Mapping):
        return out
    for name, d in raw.items():
        if not isinstance(d, Mapping):
            continue
        direction = d.get("direction")
        unit = d.get("unit")
        out[str(name)] = declaration(str(name),
                                     direction if direction in ("lower", "higher") else None,
                                     unit if isinstance(unit, str) else None)
    return out


def declaration_differences(base: Mapping[str, MetricInfo], head: Mapping[str, MetricInfo],
                            metrics: set[str] | None = None) -> list[str]:
    """One sentence per metric whose declaration differs between BASE and HEAD (HEAD's is
    used)."""
    out: list[str] = []
    for name in sorted(set(base) | set(head)):
        if metrics is not None and name not in metrics:
            continue
        b, h = base.get(name), head.get(name)
        if b is None or h is None:
            continue
        if (b.direction, b.unit) != (h.direction, h.unit):
            out.append(f"metric {name!r} is declared differently: BASE {b.direction} is better"
                       f"{f' ({b.unit})' if b.unit else ''}, HEAD {h.direction} is better"
                       f"{f' ({h.unit})' if h.unit else ''}; HEAD's declaration is used")
    return out
